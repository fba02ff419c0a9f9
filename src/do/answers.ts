/**
 * How StatelessDO answers a request it could not serve: the one table from an error (and where it
 * happened) to a Response. The errors know their HTTP form ({@link LockError.toResponse}); what
 * depends on where it happened is decided here.
 *
 * @module
 */
import {
  InvalidArgumentError,
  LockContendedError,
  LockError,
  LockLostError,
  StaleFencingTokenError,
  type LockErrorBody,
} from '../errors.js'
import type { LockResult } from '../guard/types.js'
import { lockedRetryAfterSeconds } from './retry-after.js'

/** Where in `StatelessDO.fetch` an error was reported (see {@link StatelessDOPhase}). */
export type Phase = 'doId' | 'acquireOptions' | 'acquire' | 'handler' | 'flush' | 'release'

/** Everything {@link answerError} needs to know of the request. */
export interface FailedRequest {
  /** The object. */
  doId: string
  /** The incoming request (its signal tells a client that went away). */
  request: Request
  /** Where it failed. */
  phase: Phase
  /** The lease's token when the lease ended under the request (answered lease_lost). */
  lostToken?: number | undefined
  /** The class's failure report (`onError`). */
  report: (error: unknown, phase: Phase, doId: string) => void
}

/**
 * The answer to an error that ended a request; rethrows anything that is not a library error (a bug
 * in the handler is the handler's to surface).
 */
export function answerError(error: unknown, failed: FailedRequest): Response {
  const { doId, request, phase, report } = failed
  if (request.signal?.aborted && error === request.signal.reason) {
    // The client went away (at acquire, the guard gave back any lease it got). Nothing failed:
    // no report, and an answer nobody will read.
    return json(499, { error: 'client_closed_request', doId })
  }
  if (failed.lostToken !== undefined) {
    // The lease went away under the request; its writes were refused, so nothing half-done is
    // visible. Another node may serve the retry.
    report(error, phase, doId)
    return (
      isLeaseEnd(error) ? error : new LockLostError(doId, failed.lostToken, 'the lease ended under the request')
    ).toResponse(doId)
  }
  if (phase === 'acquireOptions' || (phase === 'acquire' && error instanceof InvalidArgumentError)) {
    // The id was checked before the acquire, so what the guard refused is this server's own
    // acquireOptions(): a 500 that does not show the client the internal message.
    report(error, 'acquireOptions', doId)
    return json(500, { error: 'internal_error', doId })
  }
  // Another node holds the object: not a failure, no report.
  if (error instanceof LockContendedError) return error.toResponse(doId)
  // Every other library error answers as it says (a store outage is a 503; a refused statement, or a
  // store failure a retry would only repeat, is a 500). Anything else is a bug: let it through.
  if (!(error instanceof LockError)) throw error
  report(error, phase, doId)
  return error.toResponse(doId)
}

/** Errors that mean the lease ended under the request: answered 503 lease_lost. */
export function isLeaseEnd(error: unknown): error is LockLostError | StaleFencingTokenError {
  return error instanceof LockLostError || error instanceof StaleFencingTokenError
}

/**
 * 503 `locked`: `retryAfterMs` in the body is the time left on the holder's lease (an upper bound);
 * `Retry-After` is when the object can most likely be had ({@link lockedRetryAfterSeconds}).
 */
export function lockedResponse(
  doId: string,
  result: Extract<LockResult, { acquired: false }>,
  leaseMs: number | undefined,
): Response {
  const holder = result.holder && { nodeId: result.holder.nodeId, fencingToken: result.holder.fencingToken }
  const retryAfterSeconds = lockedRetryAfterSeconds({
    holder: result.holder,
    retryAfterMs: result.retryAfterMs,
    leaseMs,
  })
  return new LockContendedError(doId, result.retryAfterMs, holder, { retryAfterSeconds }).toResponse()
}

/** A JSON answer. */
export function json(status: number, body: LockErrorBody): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}
