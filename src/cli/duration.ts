/**
 * Durations as an operator types them (`1d`, `12h`, `30m`, `500ms`, `1h30m`) and as the CLI prints
 * them back.
 *
 * @module
 */

/** Milliseconds per unit; `ms` before `m` in the pattern so `500ms` is not read as minutes. */
const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
}

const PART = /(\d+)(ms|s|m|h|d|w)/gy
const WHOLE = /^(?:\d+(?:ms|s|m|h|d|w))+$/

/**
 * The milliseconds of `text`: one or more `<whole number><unit>` parts, units `ms s m h d w`, or a bare
 * `0`. `undefined` when it is not a duration (the caller names its flag in the message).
 */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0
  if (!WHOLE.test(text)) return undefined
  let total = 0
  PART.lastIndex = 0
  for (let match = PART.exec(text); match !== null; match = PART.exec(text)) {
    total += Number(match[1]) * UNITS[match[2]!]!
  }
  return Number.isSafeInteger(total) ? total : undefined
}

/** `ms` exactly, in the units parseDuration reads: `1d`, `1h30m`, `500ms`, `0ms` (parseDuration's inverse). */
export function formatExactDuration(ms: number): string {
  if (ms === 0) return '0ms'
  let rest = ms
  let text = ''
  for (const unit of ['w', 'd', 'h', 'm', 's', 'ms']) {
    const size = UNITS[unit]!
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`
      rest %= size
    }
  }
  return text
}

/** `850ms`, `12.3s`, `4m 05s`, `3h 20m`, `2d 04h`: two units at most, for a table cell. */
export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : ''
  const a = Math.abs(ms)
  if (a < 1000) return `${sign}${Math.round(a)}ms`
  if (a < 60_000) return `${sign}${(a / 1000).toFixed(1)}s`
  const pad = (n: number) => String(Math.floor(n)).padStart(2, '0')
  if (a < 3_600_000) return `${sign}${Math.floor(a / 60_000)}m ${pad((a % 60_000) / 1000)}s`
  if (a < 86_400_000) return `${sign}${Math.floor(a / 3_600_000)}h ${pad((a % 3_600_000) / 60_000)}m`
  return `${sign}${Math.floor(a / 86_400_000)}d ${pad((a % 86_400_000) / 3_600_000)}h`
}

/** `512 B`, `1.2 KiB`, `3.4 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}
