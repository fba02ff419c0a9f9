/**
 * Text from the database or the command line, made safe to print for people: a do_id holding ESC
 * sequences could otherwise clear or rewrite the operator's terminal, a node_id holding a newline could
 * forge lines of a listing, and bidi controls could show one id as another. `--json` needs none of
 * this: `JSON.stringify` escapes what JSON must, and scripts get the text exactly.
 *
 * @module
 */

/**
 * What is escaped: the C0 controls, DEL and the C1 controls (`\p{Cc}`), the line and paragraph
 * separators, and Unicode's bidi controls (U+061C, U+200E, U+200F, U+202A-202E, U+2066-2069).
 */
const UNPRINTABLE = /[\p{Cc}\u2028\u2029\p{Bidi_Control}]/gu

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' }

/**
 * `text` with every character that would act on a terminal rather than show shown as an escape: `\n`,
 * `\r`, `\t`, `\x1b` (up to U+00FF), `\u202e` (above). A backslash is left as it is, so an escape
 * and the same characters typed are alike here; `--json` tells them apart.
 *
 * @example printable('room-\x1b[2J') // 'room-\\x1b[2J'
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const named = NAMED[c]
    if (named !== undefined) return named
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`
  })
}
