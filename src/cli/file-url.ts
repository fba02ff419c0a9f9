/**
 * The local file a `file:` URL names, read one way for both the check of `--db` (args.ts, bad usage)
 * and the opening (database.ts), so a URL that passes the check is the file that is opened.
 *
 * @module
 */
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/** A `file:` URL that names no local file; `reason` says why, fit to follow the flag's name. */
export class MalformedFileUrlError extends Error {
  /** What is wrong with the URL, e.g. `a file: URL names no host, ...`. */
  readonly reason: string

  constructor(reason: string, options?: { cause?: unknown }) {
    super(`malformed file: URL: ${reason}`, options)
    this.name = 'MalformedFileUrlError'
    this.reason = reason
  }
}

/**
 * The file a `file:` URL names (percent-decoded, query dropped), `undefined` for any other URL and for
 * `file::memory:`. Throws {@link MalformedFileUrlError} when it names none.
 */
export function localPath(url: string): string | undefined {
  if (!/^file:/i.test(url)) return undefined
  const bare = url.replace(/[?#].*$/, '')
  try {
    if (/^file:\/\//i.test(bare)) return fileURLToPath(bare)
    const path = decodeURIComponent(bare.slice('file:'.length))
    return path === ':memory:' ? undefined : resolve(path)
  } catch (error) {
    throw new MalformedFileUrlError(reasonOf(error, bare), { cause: error })
  }
}

function reasonOf(error: unknown, bare: string): string {
  if (error instanceof URIError) {
    return 'bad percent-encoding in the file: URL (a "%" must start a %XX escape of UTF-8; "%25" is a "%")'
  }
  const code = (error as { code?: unknown } | null)?.code
  if (code === 'ERR_INVALID_FILE_URL_HOST') {
    // file://x.db reads "x.db" as a host: the usual slip for file:x.db.
    const host = new URL(bare).host
    return `a file: URL names no host, got "${host}" (file:x.db for a relative path, file:///abs/x.db for an absolute one)`
  }
  if (code === 'ERR_INVALID_FILE_URL_PATH') return 'the file: URL encodes a "/" in its path (%2F)'
  if (code === 'ERR_INVALID_URL') return 'not a valid file: URL'
  throw error
}
