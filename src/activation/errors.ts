/**
 * Errors of the object layer's turns and activations. Each knows its HTTP form (the base
 * {@link LockError}'s `status`, `retryAfterSeconds`, `toBody()`, `toResponse()`), and carries
 * `retryAfterMs` for callers that compute their own `Retry-After`.
 *
 * A turn can also fail with errors of the layers below, unchanged: the flush's `LockLostError` or
 * `StaleFencingTokenError` (503 `lease_lost`), `StoreUnavailableError` (503 `store_unavailable`), and
 * `LockContendedError` (503 `locked`) when another node holds the object.
 *
 * @module
 */
import { LockError, type LockErrorBody, type LockErrorCode } from '../errors.js'

/** Why an activation ended, or is ending. */
export type ActivationEndReason =
  /** `idleMs` passed without a turn. */
  | 'idle'
  /** `requestHandover()`: another node asked for the object. */
  | 'handover'
  /** The node is shutting down. */
  | 'shutdown'
  /** The lease was lost (its signal fired, a flush was fenced off, or its local validity ran out). */
  | 'lease_lost'
  /** A flush failed for another reason (store unreachable): what it carried is not known to be durable. */
  | 'flush_failed'
  /** A `blockConcurrencyWhile` callback threw: Durable Objects reset the object; here its activation ends. */
  | 'reset'

// The codes below are not (yet) members of LockErrorCode in src/errors.ts: the cast keeps this file
// compiling until they are added there.
const code = (value: string) => value as LockErrorCode

/** Options shared by the errors here. */
interface RetryHint {
  /** The object, when known. */
  doId?: string | undefined
  /** Suggested wait before retrying, ms (`Retry-After` is its ceiling in seconds, at least 1). */
  retryAfterMs: number
  /** The underlying error. */
  cause?: unknown
}

function http(retryAfterMs: number, cause?: unknown) {
  return { cause, status: 503, retryAfterSeconds: Math.max(1, Math.ceil(retryAfterMs / 1000)) }
}

/**
 * The object's turn queue on this node is full (`maxQueued` turns wait already): refused at once.
 * HTTP: 503 `{ error: 'queue_full', doId, retryAfterMs }` with `Retry-After`.
 */
export class QueueFullError extends LockError {
  /** The object, when the queue knows it. */
  readonly doId: string | undefined
  /** The bound that was hit. */
  readonly maxQueued: number
  /** Suggested wait before retrying, ms. */
  readonly retryAfterMs: number

  /**
   * @param maxQueued - the queue's bound.
   * @param hint - the object and the suggested wait.
   */
  constructor(maxQueued: number, hint: RetryHint) {
    super(
      code('QUEUE_FULL'),
      `${describeObject(hint.doId)}: ${maxQueued} turns already queued`,
      http(hint.retryAfterMs),
    )
    this.doId = hint.doId
    this.maxQueued = maxQueued
    this.retryAfterMs = hint.retryAfterMs
  }

  /** `{ error: 'queue_full', doId, retryAfterMs }`. */
  override toBody(doId: string | undefined = this.doId): LockErrorBody {
    return body('queue_full', doId, this.retryAfterMs)
  }
}

/**
 * A turn waited `maxWaitMs` without starting; it was dropped and never runs.
 * HTTP: 503 `{ error: 'turn_timeout', doId, retryAfterMs }` with `Retry-After`.
 */
export class TurnTimeoutError extends LockError {
  /** The object, when known. */
  readonly doId: string | undefined
  /** How long the turn waited, ms. */
  readonly waitedMs: number
  /** Suggested wait before retrying, ms. */
  readonly retryAfterMs: number

  /**
   * @param waitedMs - how long the turn waited.
   * @param hint - the object and the suggested wait.
   */
  constructor(waitedMs: number, hint: RetryHint) {
    super(
      code('TURN_TIMEOUT'),
      `${describeObject(hint.doId)}: turn did not start within ${waitedMs} ms`,
      http(hint.retryAfterMs, hint.cause),
    )
    this.doId = hint.doId
    this.waitedMs = waitedMs
    this.retryAfterMs = hint.retryAfterMs
  }

  /** `{ error: 'turn_timeout', doId, retryAfterMs }`. */
  override toBody(doId: string | undefined = this.doId): LockErrorBody {
    return body('turn_timeout', doId, this.retryAfterMs)
  }
}

/**
 * The activation (or the queue) no longer takes turns: it is ending or ended for `reason`. A turn
 * refused with it never ran. HTTP: 503 `{ error: 'activation_ended', doId, reason }` with `Retry-After`
 * (the retry finds a new activation, here or on another node).
 */
export class ActivationEndedError extends LockError {
  /** The object, when known. */
  readonly doId: string | undefined
  /** Why the activation ended. */
  readonly reason: ActivationEndReason
  /** Suggested wait before retrying, ms. */
  readonly retryAfterMs: number

  /**
   * @param reason - why the activation ended.
   * @param hint - the object, the suggested wait and the cause (a `blockConcurrencyWhile` callback's error).
   */
  constructor(reason: ActivationEndReason, hint: RetryHint) {
    super(
      code('ACTIVATION_ENDED'),
      `${describeObject(hint.doId)}: activation ended (${reason})`,
      http(hint.retryAfterMs, hint.cause),
    )
    this.doId = hint.doId
    this.reason = reason
    this.retryAfterMs = hint.retryAfterMs
  }

  /** `{ error: 'activation_ended', doId, reason }`. */
  override toBody(doId: string | undefined = this.doId): LockErrorBody {
    const base: LockErrorBody = doId === undefined ? { error: 'activation_ended' } : { error: 'activation_ended', doId }
    return { ...base, reason: this.reason }
  }
}

function describeObject(doId: string | undefined): string {
  return doId === undefined ? 'object' : `"${doId}"`
}

function body(error: string, doId: string | undefined, retryAfterMs: number): LockErrorBody {
  return doId === undefined ? { error, retryAfterMs } : { error, doId, retryAfterMs }
}
