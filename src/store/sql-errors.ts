/**
 * How the SQL stores turn a driver's error into the library's: one mapper for every SQLite-dialect
 * backend (libSQL puts the SQLite code in `code`, D1 at the end of its message).
 */
import { LockError, StatementError, StoreUnavailableError } from '../errors.js'
import { STALE_TOKEN_MESSAGE } from './sql.js'

/** SQLite result codes, wherever the driver put them. */
const SQLITE_CODE = /\bSQLITE_[A-Z_]+/g
/** The ones that mean "another connection is writing" (PROTOCOL: a WAL lock race): the same statement may succeed later. */
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED|PROTOCOL)/
/** Transport trouble, for errors that carry no SQLite code. */
const TRANSIENT_TEXT =
  /database is locked|database table is locked|timeout|timed out|ECONNRESET|ECONNREFUSED|EPIPE|fetch failed|network|socket|HRANA_WEBSOCKET|SERVER_ERROR|D1_ERROR.*(reset|overloaded|unavailable)/i
/**
 * D1's messages whose documented action is "Retry the operation"
 * (https://developers.cloudflare.com/d1/observability/debug-d1/#error-list) and that carry none of the
 * words above. Quoted whole, not by keyword: "transient" or "disconnected" alone could be a user's word.
 */
const D1_TRANSIENT_TEXT =
  /Cannot resolve D1 DB due to transient issue on remote node|Replica disconnected from primary|Can't read from request stream because client disconnected/i

/**
 * SQLite codes that name the statement's own failure: the database refused what it was asked
 * (a constraint, a missing table, a type or size the statement cannot carry). Deterministic, so a
 * retry would only repeat it. Other non-transient codes (IOERR, FULL, CORRUPT, CANTOPEN, READONLY)
 * are the database's trouble, not the statement's: they stay a non-retryable StoreUnavailableError.
 */
const SQLITE_STATEMENT = /^SQLITE_(ERROR|CONSTRAINT|MISMATCH|RANGE|TOOBIG|AUTH)/

/**
 * A driver error as the library's: {@link StatementError} when the database refused a statement (but
 * not the fence's own abort, which `fencedWrite` and `flush` turn into `StaleFencingTokenError`), else
 * {@link StoreUnavailableError}, retryable when the same request may succeed later. Library errors
 * pass through unchanged. `what` names the store in the message (`'object store'`).
 */
export function toStoreError(error: unknown, what = 'lock store'): LockError {
  if (error instanceof LockError) return error
  const codes = sqliteCodesOf(error)
  if (codes.length > 0 && !codes.some((code) => SQLITE_TRANSIENT.test(code)) && !mentionsStaleToken(error)) {
    const code = codes.find((c) => SQLITE_STATEMENT.test(c))
    if (code !== undefined) return new StatementError(databaseWords(error), { sqliteCode: code, cause: error })
  }
  const text = errorText(error)
  return new StoreUnavailableError(`${what} request failed: ${text}`, { cause: error, retryable: isTransient(text) })
}

/**
 * The SQLite codes an error carries, most specific first: libSQL sets `code` on the error and its
 * cause (e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`); D1 puts it at the end of the message.
 */
function sqliteCodesOf(error: unknown): string[] {
  const codes: string[] = []
  let e: unknown = error
  for (let depth = 0; depth < 4 && e instanceof Error; depth++, e = e.cause) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^SQLITE_[A-Z_]+$/.test(code)) codes.push(code)
    codes.push(...(e.message.match(SQLITE_CODE) ?? []))
  }
  if (!(error instanceof Error)) codes.push(...(String(error).match(SQLITE_CODE) ?? []))
  return [...new Set(codes)]
}

/** The database's own words, said once: the innermost message without `D1_ERROR:` / `SQLITE_*:` decorations. */
function databaseWords(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error)
  let e: unknown = error instanceof Error ? error.cause : undefined
  for (let depth = 0; depth < 4 && e instanceof Error && e.message !== ''; depth++, e = e.cause) message = e.message
  const words = message
    .replace(/^(?:(?:D1_ERROR|SQLITE_[A-Z_]+|Error):\s*)+/, '')
    .replace(/(?::\s*SQLITE_[A-Z_]+)+\s*$/, '')
    .trim()
  return words === '' ? message : words
}

/**
 * Whether retrying the same request may succeed. A SQLite code other than BUSY/LOCKED/PROTOCOL names
 * the statement's own failure (constraint, syntax, missing table), which a retry would only repeat, and
 * its message quotes table and column names, so the transport words are not looked for in it.
 */
export function isTransient(text: string): boolean {
  const codes = text.match(SQLITE_CODE) ?? []
  if (codes.length > 0) return codes.some((code) => SQLITE_TRANSIENT.test(code))
  return TRANSIENT_TEXT.test(text) || D1_TRANSIENT_TEXT.test(text)
}

/** Whether a driver error (or a StoreUnavailableError's cause) is the fence's abort: the lease did not hold. */
export function mentionsStaleToken(error: unknown): boolean {
  return errorText(error).includes(STALE_TOKEN_MESSAGE)
}

/** An error's code, message and its cause's message, as one string to search; nothing said twice. */
export function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { code?: unknown }).code
  const prefix = typeof code === 'string' && !error.message.includes(code) ? `${code}: ` : ''
  const cause =
    error.cause instanceof Error && !error.message.includes(error.cause.message) ? ` (${error.cause.message})` : ''
  return `${prefix}${error.message}${cause}`
}
