/**
 * Errors about a lease: stale, lost, held by someone else, or the guard shutting down.
 *
 * @module
 */
import { LockError, withDoId, type LockErrorBody } from './lock-error.js'

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
