/**
 * The lease-per-request mode of StatelessDO (`activationOptions()` returning `false`): acquire, the
 * handler, one flush of its writes, release. Every request pays an acquire; concurrent requests on
 * one node contend for the lease instead of queueing. Kept for plain Workers that want no state
 * between requests, and as the baseline `npm run bench:do` compares activations with.
 *
 * @module
 */
import { LockLostError } from '../errors.js'
import type { AcquireOptions, ConsistencyGuard, Lock } from '../guard/types.js'
import { ObjectStorage } from '../storage/object-storage.js'
import type { ObjectStore } from '../store/object-store.js'
import { isLeaseEnd, lockedResponse, type Phase } from './answers.js'
import { DEFAULT_PREFETCH_ROWS } from './node-activations.js'

/** What one request in this mode needs from the StatelessDO serving it. */
export interface PerRequest {
  request: Request
  doId: string
  guard: ConsistencyGuard
  options: AcquireOptions
  /** The runtime's context (`waitUntil` keeps the handler and the release going after the client left). */
  ctx: { waitUntil?(promise: Promise<unknown>): void } | undefined
  /** Where the object's rows live, or `undefined` for an object without storage. */
  objects: ObjectStore | undefined
  /** Runs the class's handler under `lock`, with `storage` as its `this.storage` (undefined: none). */
  handle(lock: Lock, storage: ObjectStorage | undefined): Promise<Response> | Response
  /** The answer to an error that ended the request. */
  fail(error: unknown, phase: Phase, lostToken?: number): Response
  /** The class's failure report (`onError`). */
  report(error: unknown, phase: Phase): void
}

/** Serves one request under a lease of its own. */
export async function servePerRequest(r: PerRequest): Promise<Response> {
  const { request, doId, guard, options, fail } = r
  let lock: Lock
  // The acquire brings the object's first rows in its own batch (a cold start in one round trip) when
  // this.storage is the lock store's own objects; the caller's acquireOptions() may say otherwise.
  const own = r.objects !== undefined && (guard as { store?: { objects?: unknown } }).store?.objects === r.objects
  try {
    const result = await guard.acquire(doId, own ? { prefetch: DEFAULT_PREFETCH_ROWS, ...options } : options)
    if (!result.acquired) return lockedResponse(doId, result, leaseMsOf(options, guard))
    lock = result.lock
  } catch (error) {
    return fail(error, 'acquire')
  }
  // Registered before the handler runs: the runtime then keeps the handler and the release going
  // if the client leaves (a Worker cancels a request whose client went away otherwise).
  let settle!: (freed: Promise<boolean>) => void
  const released = new Promise<boolean>((resolve) => (settle = resolve))
  const waitUntil = typeof r.ctx?.waitUntil === 'function' ? r.ctx.waitUntil.bind(r.ctx) : undefined
  waitUntil?.(released)

  // The request learned the lease was gone (lost signal, or a write refused): reported as such,
  // and its release is not a second alarm.
  let lost = false
  let storage: ObjectStorage | undefined
  try {
    const { prefetched } = lock
    storage =
      r.objects &&
      new ObjectStorage({
        store: r.objects,
        lease: lock,
        // The guard keeps the lease for as long as this request needs it (docs: extendLease).
        extendLease: false,
        ...(own && prefetched ? { prefetched } : {}),
      })
    let outcome: { response: Response } | { error: unknown }
    try {
      outcome = { response: await r.handle(lock, storage) }
    } catch (error) {
      outcome = { error }
    }
    // The output gate (docs/design.md invariant 12): the handler's writes commit before anything is
    // answered, also when it threw (Durable Objects keep the writes a failed request made). A flush
    // that fails is the answer: the client never hears "done" of a write that is not durable.
    if (storage?.hasPendingWrites()) {
      try {
        await storage.flush()
      } catch (error) {
        lost = isLeaseEnd(error) || lock.signal.aborted
        return fail(error, 'flush', lost ? lock.fencingToken : undefined)
      }
    }
    if ('response' in outcome) return outcome.response
    const { error } = outcome
    lost = isLeaseEnd(error) || lock.signal.aborted
    return fail(error, 'handler', lost ? lock.fencingToken : undefined)
  } finally {
    storage?.discard()
    settle(release(r, lock, !lost && !lock.signal.aborted))
    // Off the response path when the runtime keeps it alive; otherwise finish it first.
    if (!waitUntil) await released
  }
}

/**
 * Gives the lease back. The guard's release never rejects (store trouble goes to its onEvent hook),
 * so a lease this node still trusted that the release did not free is reported here: it keeps
 * others out until its TTL.
 */
function release(r: PerRequest, lock: Lock, trusted: boolean): Promise<boolean> {
  let releasing: Promise<boolean>
  try {
    releasing = r.guard.release(lock)
  } catch (error) {
    releasing = Promise.reject(error) // a guard that throws must not leave waitUntil's promise pending
  }
  return releasing.then(
    (freed) => {
      if (!freed && trusted) {
        r.report(
          new LockLostError(
            r.doId,
            lock.fencingToken,
            'release did not free the lease (the store failed or no longer had it); it runs out by its TTL',
          ),
          'release',
        )
      }
      return freed
    },
    (error: unknown) => {
      r.report(error, 'release')
      return false
    },
  )
}

/** The lease length this request asked for: its own `ttlMs`, else the guard's (HybridConsistencyGuard has one). */
function leaseMsOf(options: AcquireOptions, guard: ConsistencyGuard): number | undefined {
  if (typeof options.ttlMs === 'number') return options.ttlMs
  const ttlMs = (guard as { ttlMs?: unknown }).ttlMs
  return typeof ttlMs === 'number' ? ttlMs : undefined
}
