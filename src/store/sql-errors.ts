/**
 * How the SQL stores turn a driver's error into the library's: one mapper for every SQLite-dialect
 * backend (libSQL puts the SQLite code in `code`, D1 at the end of its message).
 */
import { LockError, StoreUnavailableError } from '../errors.js'
import { STALE_TOKEN_MESSAGE } from './sql.js'

/** SQLite result codes, wherever the driver put them. */
const SQLITE_CODE = /\bSQLITE_[A-Z_]+/g
/** The ones that mean "another connection is writing" (PROTOCOL: a WAL lock race): the same statement may succeed later. */
const SQLITE_TRANSIENT = /^SQLITE_(BUSY|LOCKED|PROTOCOL)/
/** Transport trouble, for errors that carry no SQLite code. */
const TRANSIENT_TEXT =
  /database is locked|database table is locked|timeout|timed out|ECONNRESET|ECONNREFUSED|EPIPE|fetch failed|network|socket|HRANA_WEBSOCKET|SERVER_ERROR|D1_ERROR.*(reset|overloaded|unavailable)/i

/**
 * A driver error as a {@link StoreUnavailableError} (library errors pass through unchanged), retryable
 * when the same request may succeed later. `what` names the store in the message (`'object store'`).
 */
export function toStoreError(error: unknown, what = 'lock store'): LockError {
  if (error instanceof LockError) return error
  const text = errorText(error)
  return new StoreUnavailableError(`${what} request failed: ${text}`, { cause: error, retryable: isTransient(text) })
}

/**
 * Whether retrying the same request may succeed. A SQLite code other than BUSY/LOCKED/PROTOCOL names
 * the statement's own failure (constraint, syntax, missing table), which a retry would only repeat, and
 * its message quotes table and column names, so the transport words are not looked for in it.
 */
export function isTransient(text: string): boolean {
  const codes = text.match(SQLITE_CODE) ?? []
  if (codes.length > 0) return codes.some((code) => SQLITE_TRANSIENT.test(code))
  return TRANSIENT_TEXT.test(text)
}

/** Whether a driver error (or a StoreUnavailableError's cause) is the fence's abort: the lease did not hold. */
export function mentionsStaleToken(error: unknown): boolean {
  return errorText(error).includes(STALE_TOKEN_MESSAGE)
}

/** An error's code, message and its cause's message, as one string to search. */
export function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    const causeText = error.cause instanceof Error ? ` (${error.cause.message})` : ''
    return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}${causeText}`
  }
  return String(error)
}
