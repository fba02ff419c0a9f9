/**
 * Typed errors. Every error the library throws is a {@link LockError}; callers branch on the class
 * (or on `code`, which survives structured cloning and `instanceof` across bundles).
 *
 * Each error also knows its HTTP form (the model is hono's `HTTPException.getResponse()`): a `status`
 * and {@link LockError.toResponse}, which is what {@link StatelessDO} answers when the error ends a
 * request. A handler that wants other answers catches the error and answers itself.
 *
 * @example
 * ```ts
 * try { await fencedWrite(store, lock, stmts) }
 * catch (e) { if (e instanceof StaleFencingTokenError) return new Response('lease lost', { status: 409 }) }
 * ```
 */

/** Every `code` a {@link LockError} can carry; each subclass has exactly one. Add a code here with its class. */
export type LockErrorCode =
  | 'INVALID_ARGUMENT'
  | 'STALE_FENCING_TOKEN'
  | 'STORE_UNAVAILABLE'
  | 'STATEMENT_FAILED'
  | 'CORRUPT_LOCK_ROW'
  | 'LOCK_LOST'
  | 'SHUTDOWN'
  | 'EMPTY_RING'
  | 'DUPLICATE_NODE'
  | 'UNKNOWN_NODE'
  | 'LOCK_CONTENDED'
  // The object layer's, defined in src/activation/errors.ts:
  | 'QUEUE_FULL'
  | 'TURN_TIMEOUT'
  | 'ACTIVATION_ENDED'

/**
 * The JSON body of {@link LockError.toResponse}: `error` is a stable snake_case word (`lease_lost`,
 * `store_unavailable`, ...), `doId` the object the request was for, plus the fields a client can use
 * (`holder`, `retryAfterMs`, `column`). Never the error's message: that is for the server's logs.
 */
export interface LockErrorBody {
  /** What went wrong, e.g. `'locked'`, `'store_unavailable'`, `'internal_error'`. */
  readonly error: string
  /** The object the request was for, when known. */
  readonly doId?: string
  /** Fields particular to the error, e.g. `holder` and `retryAfterMs` of `locked`. */
  readonly [field: string]: unknown
}

/** Options of the {@link LockError} constructor. */
export interface LockErrorOptions {
  /** The underlying error (a driver's, a signal's reason). */
  readonly cause?: unknown
  /**
   * HTTP status the error maps to when it ends a request.
   * @default 500
   */
  readonly status?: number
  /** Seconds to put in `Retry-After`, when retrying later can succeed; none by default. */
  readonly retryAfterSeconds?: number
}

/**
 * The base of every error the library throws.
 *
 * @example
 * ```ts
 * catch (e) { if (e instanceof LockError) return e.toResponse(doId) } // the answer StatelessDO would give
 * ```
 */
export class LockError extends Error {
  /** Stable machine-readable code, e.g. `INVALID_ARGUMENT`; subclasses narrow it to their own. */
  readonly code: LockErrorCode
  /**
   * HTTP status this error maps to when it ends a request (what {@link StatelessDO} answers when it
   * escapes a handler): 503 when retrying later can succeed, 500 for a fault of the server's own.
   */
  readonly status: number
  /** Seconds for a `Retry-After` header when retrying later can succeed, else `undefined`. */
  readonly retryAfterSeconds: number | undefined

  /**
   * @param code - the subclass's code.
   * @param message - for logs; never sent to clients.
   * @param options - cause, HTTP status (default 500) and `Retry-After`.
   */
  constructor(code: LockErrorCode, message: string, options: LockErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.status = options.status ?? 500
    this.retryAfterSeconds = options.retryAfterSeconds
  }

  /**
   * The JSON body of {@link toResponse}. The base answers `{ error: 'internal_error', doId }`:
   * the library was used in a way that cannot work, which is the server's fault, and its details
   * stay in the server's logs.
   *
   * @param doId - the object the request was for.
   */
  toBody(doId?: string): LockErrorBody {
    return withDoId('internal_error', doId)
  }

  /**
   * The HTTP answer for a request this error ended: {@link status}, {@link toBody} as JSON, and
   * `Retry-After` when {@link retryAfterSeconds} is set.
   *
   * @param doId - the object the request was for (errors that carry a `doId` use theirs by default).
   *
   * @example
   * ```ts
   * new LockLostError('room-1', 7, 'released').toResponse()
   * // 503 {"error":"lease_lost","doId":"room-1"}, Retry-After: 1
   * ```
   */
  toResponse(doId?: string): Response {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (this.retryAfterSeconds !== undefined) headers['Retry-After'] = String(this.retryAfterSeconds)
    return new Response(JSON.stringify(this.toBody(doId)), { status: this.status, headers })
  }
}

/**
 * An argument was rejected before any I/O. `argument` names it (docs/design.md invariant 8).
 *
 * When it ends a request it is the server's fault (the library was called wrong): 500
 * `internal_error`, without the message. {@link StatelessDO} answers a request whose own id is
 * invalid with a 400 itself.
 */
export class InvalidArgumentError extends LockError {
  /** Always `'INVALID_ARGUMENT'`. */
  declare readonly code: 'INVALID_ARGUMENT'
  /** The argument's name as the caller wrote it, e.g. `doId`, `options.waitMs`, `statements[1].args[0]`. */
  readonly argument: string

  /**
   * @param argument - the argument's name.
   * @param problem - what is wrong with it; the message reads `invalid <argument>: <problem>`.
   */
  constructor(argument: string, problem: string) {
    super('INVALID_ARGUMENT', `invalid ${argument}: ${problem}`)
    this.argument = argument
  }
}

/**
 * A write or validation carried a fencing token that is no longer the current holder's:
 * the lease expired, was released, or someone newer acquired it. Nothing was written.
 * HTTP: 503 `lease_lost`, `Retry-After: 1` (another node may serve the object now).
 */
export class StaleFencingTokenError extends LockError {
  /** Always `'STALE_FENCING_TOKEN'`. */
  declare readonly code: 'STALE_FENCING_TOKEN'
  /** The object whose lease the token was for. */
  readonly doId: string
  /** The stale token. */
  readonly token: number
  /** The newest token known for this id when the check failed, if known. */
  readonly currentToken: number | undefined

  /**
   * @param doId - the object.
   * @param token - the token that was refused.
   * @param currentToken - the newest token, if the check learned it.
   */
  constructor(doId: string, token: number, currentToken?: number) {
    const known = currentToken === undefined ? '' : ` (current token ${currentToken})`
    super('STALE_FENCING_TOKEN', `fencing token ${token} for "${doId}" is stale${known}`, {
      status: 503,
      retryAfterSeconds: 1,
    })
    this.doId = doId
    this.token = token
    this.currentToken = currentToken
  }

  /** `{ error: 'lease_lost', doId }`. */
  override toBody(doId: string = this.doId): LockErrorBody {
    return withDoId('lease_lost', doId)
  }
}

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

/**
 * The lease behind an operation was lost (refresh failed, validity ran out, released).
 * HTTP: 503 `lease_lost`, `Retry-After: 1` (another node may serve the object now).
 */
export class LockLostError extends LockError {
  /** Always `'LOCK_LOST'`. */
  declare readonly code: 'LOCK_LOST'
  /** The object whose lease was lost. */
  readonly doId: string
  /** The lost lease's fencing token. */
  readonly token: number

  /**
   * @param doId - the object.
   * @param token - the lease's fencing token.
   * @param reason - how it was lost; the message reads `lease on "<doId>" (token <token>) lost: <reason>`.
   * @param options - `cause`.
   */
  constructor(doId: string, token: number, reason: string, options?: { cause?: unknown }) {
    super('LOCK_LOST', `lease on "${doId}" (token ${token}) lost: ${reason}`, {
      cause: options?.cause,
      status: 503,
      retryAfterSeconds: 1,
    })
    this.doId = doId
    this.token = token
  }

  /** `{ error: 'lease_lost', doId }`. */
  override toBody(doId: string = this.doId): LockErrorBody {
    return withDoId('lease_lost', doId)
  }
}

/**
 * The guard is shutting down and accepts no new acquisitions.
 * HTTP: 503 `store_unavailable`, `Retry-After: 1` (another instance can serve the retry).
 */
export class ShutdownError extends LockError {
  /** Always `'SHUTDOWN'`. */
  declare readonly code: 'SHUTDOWN'

  /** No arguments: the message is always the same. */
  constructor() {
    super('SHUTDOWN', 'the consistency guard is shutting down', { status: 503, retryAfterSeconds: 1 })
  }

  /** `{ error: 'store_unavailable', doId }`. */
  override toBody(doId?: string): LockErrorBody {
    return withDoId('store_unavailable', doId)
  }
}

/** A consistent-hash ring operation needs at least one node. HTTP: 500 `internal_error`. */
export class EmptyRingError extends LockError {
  /** Always `'EMPTY_RING'`. */
  declare readonly code: 'EMPTY_RING'

  /** No arguments: the message is always the same. */
  constructor() {
    super('EMPTY_RING', 'the hash ring has no nodes')
  }
}

/** A node id was added twice to a ring. HTTP: 500 `internal_error`. */
export class DuplicateNodeError extends LockError {
  /** Always `'DUPLICATE_NODE'`. */
  declare readonly code: 'DUPLICATE_NODE'
  /** The id added twice. */
  readonly nodeId: string

  /** @param nodeId - the id added twice. */
  constructor(nodeId: string) {
    super('DUPLICATE_NODE', `node "${nodeId}" is already in the ring`)
    this.nodeId = nodeId
  }
}

/** A node id is not part of the ring. HTTP: 500 `internal_error`. */
export class UnknownNodeError extends LockError {
  /** Always `'UNKNOWN_NODE'`. */
  declare readonly code: 'UNKNOWN_NODE'
  /** The id asked for. */
  readonly nodeId: string

  /** @param nodeId - the id asked for. */
  constructor(nodeId: string) {
    super('UNKNOWN_NODE', `node "${nodeId}" is not in the ring`)
    this.nodeId = nodeId
  }
}

/**
 * Someone else holds the lease (`withLock` throws it; `StatelessDO` answers with it).
 *
 * HTTP: 503 `{ error: 'locked', doId, holder, retryAfterMs }` with `Retry-After`: by default
 * `ceil(retryAfterMs / 1000)`, the time left on the holder's lease, which is an upper bound (a holder
 * that releases early frees it sooner); pass `retryAfterSeconds` for a better estimate.
 */
export class LockContendedError extends LockError {
  /** Always `'LOCK_CONTENDED'`. */
  declare readonly code: 'LOCK_CONTENDED'
  /** The object held elsewhere. */
  readonly doId: string
  /** Who holds the lease, when the store said so. */
  readonly holder: { nodeId: string; fencingToken: number } | undefined
  /** How long until the holder's lease runs out unless it is refreshed (>= 1): an upper bound on the wait. */
  readonly retryAfterMs: number

  /**
   * @param doId - the object.
   * @param retryAfterMs - time left on the holder's lease, ms.
   * @param holder - the holder, if known.
   * @param options - `retryAfterSeconds`: the `Retry-After` to send (default `ceil(retryAfterMs / 1000)`, at least 1).
   */
  constructor(
    doId: string,
    retryAfterMs: number,
    holder?: { nodeId: string; fencingToken: number },
    options: { retryAfterSeconds?: number } = {},
  ) {
    super('LOCK_CONTENDED', `"${doId}" is held${holder ? ` by ${holder.nodeId}` : ''}; retry in ${retryAfterMs} ms`, {
      status: 503,
      retryAfterSeconds: options.retryAfterSeconds ?? Math.max(1, Math.ceil(retryAfterMs / 1000)),
    })
    this.doId = doId
    this.holder = holder
    this.retryAfterMs = retryAfterMs
  }

  /** `{ error: 'locked', doId, holder, retryAfterMs }`; `holder` is the node id, or `null` if unknown. */
  override toBody(doId: string = this.doId): LockErrorBody {
    return { ...withDoId('locked', doId), holder: this.holder?.nodeId ?? null, retryAfterMs: this.retryAfterMs }
  }
}

function withDoId(error: string, doId: string | undefined): LockErrorBody {
  return doId === undefined ? { error } : { error, doId }
}
