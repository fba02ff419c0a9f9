/**
 * Errors about the store: it could not answer, it refused a statement, or a row holds values the
 * library did not write.
 *
 * @module
 */
import { LockError, withDoId, type LockErrorBody } from './lock-error.js'

/**
 * The lock store could not answer; nothing was decided.
 *
 * HTTP: 503 `store_unavailable` with `Retry-After: 1` when {@link retryable}; otherwise 500
 * `store_failed` (the same request would fail the same way: no point telling clients to retry).
 */
export class StoreUnavailableError extends LockError {
  /** Always `'STORE_UNAVAILABLE'`. */
  declare readonly code: 'STORE_UNAVAILABLE'
  /** True when retrying the same call may succeed (busy database, network blip). */
  readonly retryable: boolean

  /**
   * @param message - for logs.
   * @param options - `cause` (the driver's error) and `retryable` (default true).
   */
  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    const retryable = options.retryable ?? true
    super('STORE_UNAVAILABLE', message, {
      cause: options.cause,
      status: retryable ? 503 : 500,
      retryAfterSeconds: retryable ? 1 : undefined,
    })
    this.retryable = retryable
  }

  /** `{ error: 'store_unavailable', doId }`, or `store_failed` when not {@link retryable}. */
  override toBody(doId?: string): LockErrorBody {
    return withDoId(this.retryable ? 'store_unavailable' : 'store_failed', doId)
  }
}

/**
 * The database refused a statement: a constraint, a missing table, a syntax error. Deterministic,
 * so never retryable: the same statement fails the same way. In a fenced write the transaction rolled
 * back, so none of its statements were applied.
 *
 * HTTP: 500 `statement_failed` (a fault of the application's own SQL or schema, reported through
 * `StatelessDO.onError`); the SQLite code and message stay in the server's logs.
 *
 * @example
 * ```ts
 * try { await fencedWrite(store, lock, [{ sql: 'INSERT INTO rooms (name) VALUES (?)', args: [name] }]) }
 * catch (e) {
 *   const taken = e instanceof StatementError && e.sqliteCode?.startsWith('SQLITE_CONSTRAINT')
 *   if (taken) return new Response('name taken', { status: 409 })
 *   throw e
 * }
 * ```
 */
export class StatementError extends LockError {
  /** Always `'STATEMENT_FAILED'`. */
  declare readonly code: 'STATEMENT_FAILED'
  /**
   * The SQLite result code the database gave, e.g. `SQLITE_CONSTRAINT`, `SQLITE_ERROR`, or an
   * extended one such as `SQLITE_CONSTRAINT_UNIQUE`; `undefined` if the driver did not say.
   */
  readonly sqliteCode: string | undefined
  /** Index of the refused statement in the caller's list, when the driver said which one. */
  readonly statementIndex: number | undefined

  /**
   * @param detail - the database's own words, e.g. `UNIQUE constraint failed: rooms.name`.
   * @param options - the SQLite code, the statement's index and the driver's error.
   */
  constructor(detail: string, options: { sqliteCode?: string; statementIndex?: number; cause?: unknown } = {}) {
    const which = options.statementIndex === undefined ? 'statement' : `statements[${options.statementIndex}]`
    const code = options.sqliteCode === undefined ? '' : ` (${options.sqliteCode})`
    super('STATEMENT_FAILED', `${which} failed${code}: ${detail}`, { cause: options.cause, status: 500 })
    this.sqliteCode = options.sqliteCode
    this.statementIndex = options.statementIndex
  }

  /** `{ error: 'statement_failed', doId }`. */
  override toBody(doId?: string): LockErrorBody {
    return withDoId('statement_failed', doId)
  }
}

/**
 * A `do_locks` row holds values the library did not write (wrong types, broken JSON).
 * HTTP: 503 `corrupt_lock_row` with the column, `Retry-After: 1` (an operator must repair the row).
 */
export class CorruptLockRowError extends LockError {
  /** Always `'CORRUPT_LOCK_ROW'`. */
  declare readonly code: 'CORRUPT_LOCK_ROW'
  /** The row's id. */
  readonly doId: string
  /** The first column found corrupt, e.g. `fencing_token`. */
  readonly column: string

  /**
   * @param doId - the row's id.
   * @param column - the corrupt column.
   * @param problem - what is wrong with it, e.g. `is not an integer`.
   */
  constructor(doId: string, column: string, problem: string) {
    super('CORRUPT_LOCK_ROW', `lock row "${doId}" is corrupt: ${column} ${problem}`, {
      status: 503,
      retryAfterSeconds: 1,
    })
    this.doId = doId
    this.column = column
  }

  /** `{ error: 'corrupt_lock_row', doId, column }`. */
  override toBody(doId: string = this.doId): LockErrorBody {
    return { ...withDoId('corrupt_lock_row', doId), column: this.column }
  }
}
