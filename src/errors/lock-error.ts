/**
 * The base of every library error, and the one for bad input: the error knows its stable `code` and
 * its HTTP form. The family is re-exported by `src/errors.ts`.
 *
 * @module
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

/** `{ error, doId }`, or `{ error }` without an id. */
export function withDoId(error: string, doId: string | undefined): LockErrorBody {
  return doId === undefined ? { error } : { error, doId }
}
