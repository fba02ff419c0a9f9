/**
 * The command-line options every benchmark shares: `--rtt MS` (an artificial network delay per request,
 * bench/rtt-client.ts), `--sync off|normal|full|extra` (`PRAGMA synchronous`; unset = SQLite's default
 * FULL: every commit syncs the WAL) and `--quick` (a smoke run with small counts).
 */
const argv = process.argv.slice(2)

/** The arguments as given, for the `command:` line a benchmark prints. */
export const ARGV: readonly string[] = argv

/** A non-negative number option, or `fallback` when it is absent. */
export function numberOption(name: string, fallback: number): number {
  const i = argv.indexOf(name)
  if (i < 0) return fallback
  const value = Number(argv[i + 1])
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} expects a number >= 0, got ${String(argv[i + 1])}`)
  return value
}

/** `--rtt MS`: the artificial round trip, ms (0: local). */
export const RTT_MS = numberOption('--rtt', 0)

const syncIndex = argv.indexOf('--sync')
/** `PRAGMA synchronous` for the bench database; unset = SQLite's default (FULL). */
export const SYNC = syncIndex < 0 ? undefined : String(argv[syncIndex + 1]).toUpperCase()
if (SYNC !== undefined && !['OFF', 'NORMAL', 'FULL', 'EXTRA'].includes(SYNC)) {
  throw new Error(`--sync expects off|normal|full|extra, got ${SYNC}`)
}

/** `--quick`: small counts, a few seconds in all. */
export const QUICK = argv.includes('--quick')
