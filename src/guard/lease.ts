/**
 * One held lease: the {@link Lock} handed to the caller, its heartbeat and validity timers, its
 * `AbortSignal`, and how it ends. The guard owns the set of leases; each lease owns its own timing
 * (as etcd's `concurrency.Session` owns the keepalive beside the mutex that uses it).
 */
import type { Clock } from '../clock.js'
import { LockLostError, ShutdownError, type LockError } from '../errors.js'
import type { LockRecord, LockRef, RefreshedLock } from '../store/lock-store.js'
import { fullJitterDelay, type Backoff } from './backoff.js'
import { nextHeartbeatDelay, validityAfterStoreClockStep, validityEnd, type LeaseTimings } from './lease-rules.js'
import type { TimedStore } from './timed-store.js'
import { setLongTimeout, type LongTimeout } from './timers.js'
import type { GuardEvent, GuardOperation, Lock } from './types.js'

/** What a lease needs from the guard that holds it. */
export interface LeaseHost {
  /** Where the lease lives; every request bounded by the guard's `requestTimeoutMs`. */
  readonly store: Pick<TimedStore, 'refresh' | 'release'>
  /** The guard's node, named in every refresh and release. */
  readonly nodeId: string
  /** Local monotonic time, for validity and heartbeat timing. */
  readonly clock: Clock
  /** Backoff between refresh retries. */
  readonly backoff: Backoff
  /** Randomness for the backoff's jitter. */
  readonly random: () => number
  /** Reports to `onEvent`; never throws. */
  emit(event: GuardEvent): void
  /** Keeps `shutdown()` waiting for `promise`. */
  track<T>(promise: Promise<T>): Promise<T>
  /** The lease ended (whichever way): stop listing it. Called once. */
  forget(lease: Lease): void
  /** The guard's `release`, for `lock[Symbol.asyncDispose]`. */
  release(lock: Lock): Promise<boolean>
  /**
   * A refresh of `lease` answered at `answeredAt` (local monotonic) with the store's clock at
   * `storeTime`: lets the guard check its other leases against the store's clock.
   */
  observeStoreTime(storeTime: number, answeredAt: number, lease: Lease): void
}

/**
 * How a lease ends: `released` by its holder, `shutdown` of the guard (both give it back and wait for
 * the store), `lost` when the store said it is gone, `ran-out` when its local validity ended before a
 * refresh moved it (reported lost, and given back in the background: the store may still count it ours).
 */
export type LeaseEnd =
  | {
      /** The holder released it. */
      how: 'released'
      /**
       * How the store is told, when not by a plain `release`: the guard's handoff to the next of its
       * callers waiting for the id. Resolves whether the store took the lease from this holder, or the
       * next token when it did so by handing the lease over.
       */
      send?: (ref: LockRef) => Promise<boolean | HandedOff>
    }
  | {
      /** The guard shut down. */
      how: 'shutdown'
    }
  | {
      /** The store said the lease is gone. */
      how: 'lost'
      /** Why, for the `LockLostError` and the `lost` event. */
      reason: string
    }
  | {
      /** Its local validity ended before a refresh moved it. */
      how: 'ran-out'
      /** Why, when not the usual "validity ran out before a refresh succeeded". */
      reason?: string
    }

type MutableLock = { -readonly [K in keyof Lock]: Lock[K] }

/** `Symbol.asyncDispose`, or the well-known stand-in runtimes without it use (`await using` polyfills). */
export const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for('Symbol.asyncDispose') as typeof Symbol.asyncDispose)

/** The reason given for a lease whose local validity ended before a refresh succeeded. */
const RAN_OUT = 'validity ran out before a refresh succeeded'

/** A held lease and its timers; created by the guard for each successful acquire. */
export class Lease {
  /** The lock handed to the caller; the lease keeps its `expiresAt` and `validUntil` current. */
  readonly lock: Lock
  /** Heartbeat period and drift margin of this lease. */
  readonly timings: LeaseTimings
  readonly #lock: MutableLock
  readonly #host: LeaseHost
  readonly #heartbeat: boolean
  /** Created on first access to `lock.signal`: most callers never look, and aborting costs. */
  #controller: AbortController | undefined
  /** Created on first access to `lock.handover`, or when a refresh reports a hand-over request. */
  #handover: AbortController | undefined
  /** Why the lease ended, built only if someone reads the signal. */
  #endReason: (() => LockError) | undefined
  #heartbeatTimer: LongTimeout | undefined
  #validityTimer: LongTimeout | undefined
  /** The refresh in flight: heartbeats and manual refreshes join it, so they never overlap. */
  #refreshing: Promise<boolean> | undefined
  #ended = false
  /** When the request behind the current validity was sent (local monotonic). */
  #renewedAt: number
  /** How far ahead of local time the store's clock was at most, at its last answer for this lease. */
  #storeOffsetCeiling: number

  /**
   * Adopts `record`, granted by an acquire sent at `sentAt` (local monotonic), and starts its timers.
   * @param heartbeat - whether heartbeats keep it alive until it ends
   */
  constructor(host: LeaseHost, record: LockRecord, timings: LeaseTimings, sentAt: number, heartbeat: boolean) {
    this.#host = host
    this.timings = timings
    this.#heartbeat = heartbeat
    const lock = { ...record, ttlMs: timings.ttlMs, validUntil: validityEnd(sentAt, timings) } as MutableLock
    lock[asyncDispose] = () => host.release(lock).then(() => undefined)
    Object.defineProperty(lock, 'signal', { enumerable: true, get: () => this.#signal() })
    Object.defineProperty(lock, 'handover', {
      enumerable: true,
      get: () => (this.#handover ??= new AbortController()).signal,
    })
    this.#lock = lock
    this.lock = lock
    this.#renewedAt = sentAt
    this.#storeOffsetCeiling = storeOffset(record.acquiredAt, sentAt)
    this.#armValidityTimer()
    if (heartbeat) this.#scheduleHeartbeatAfter(sentAt)
  }

  /** True once the lease ended, whichever way. */
  get ended(): boolean {
    return this.#ended
  }

  /** The lease's local validity deadline (`lock.validUntil`). */
  get validUntil(): number {
    return this.#lock.validUntil
  }

  /**
   * How far ahead of local monotonic time the store's wall clock was at most when it last answered for
   * this lease (its store time minus when the request was sent); `Infinity` if the store gave no time.
   */
  get storeOffsetCeiling(): number {
    return this.#storeOffsetCeiling
  }

  /**
   * A later store answer shows the store's clock at least `storeOffsetFloor` ahead of local time. If
   * that is more than the drift margin past {@link storeOffsetCeiling}, the store's clock stepped
   * forward since this lease's last answer and expires it sooner: `validUntil` shrinks to match, the
   * lease ends at once if nothing is left, and the next heartbeat is brought forward.
   */
  storeClockAhead(storeOffsetFloor: number): void {
    if (this.#ended) return
    const lock = this.#lock
    const storeExpiresAt = lock.expiresAt
    const { driftMs } = this.timings
    const validUntil = validityAfterStoreClockStep(
      { validUntil: lock.validUntil, storeExpiresAt, storeOffsetCeiling: this.#storeOffsetCeiling, driftMs },
      storeOffsetFloor,
    )
    if (validUntil >= lock.validUntil) return
    lock.validUntil = validUntil
    if (this.#host.clock.monotonic() >= validUntil) {
      const ahead = Math.round(storeOffsetFloor - this.#storeOffsetCeiling)
      void this.end({ how: 'ran-out', reason: `the store's clock jumped ${ahead} ms ahead: by it the lease expired` })
      return
    }
    this.#armValidityTimer()
    if (this.#heartbeat && !this.#refreshing) this.#scheduleHeartbeatAfter(this.#renewedAt)
  }

  /**
   * Extends the lease now, counting the next heartbeat from it. `true` if extended; `false` if the store
   * says the lease is gone (the lease has then ended); rejects when the store cannot answer.
   */
  refresh(): Promise<boolean> {
    return this.#refresh(true)
  }

  /**
   * Ends the lease, once: stops its timers, fires its signal, tells the guard, and for every way but
   * `lost` gives it back to the store. Resolves whether the store freed it; never rejects.
   */
  end(end: LeaseEnd): Promise<boolean> {
    if (this.#ended) return Promise.resolve(false)
    this.#ended = true
    this.#heartbeatTimer?.cancel()
    this.#validityTimer?.cancel()
    this.#host.forget(this)
    const { doId, fencingToken } = this.#lock
    const reason = end.how === 'lost' ? end.reason : end.how === 'ran-out' ? (end.reason ?? RAN_OUT) : 'released'
    this.#endReason =
      end.how === 'shutdown' ? () => new ShutdownError() : () => new LockLostError(doId, fencingToken, reason)
    if (this.#controller && !this.#controller.signal.aborted) this.#controller.abort(this.#endReason())
    if (end.how === 'lost' || end.how === 'ran-out') {
      this.#host.emit({ type: 'lost', doId, nodeId: this.#host.nodeId, fencingToken, reason })
    }
    switch (end.how) {
      case 'lost':
        return Promise.resolve(false)
      case 'ran-out':
        // We stopped trusting the lease, but the store may still count it ours (the refreshes failed,
        // not necessarily the lease): hand it back so others need not wait for its expiry. A release
        // never frees anyone else's lease (same node AND token, unexpired), so this is safe.
        return this.#host.track(giveBack(this.#host, this.#lock, 'release'))
      case 'released':
        return giveBack(this.#host, this.#lock, 'release', end.send)
      default:
        return giveBack(this.#host, this.#lock, 'shutdown')
    }
  }

  #signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#endReason) this.#controller.abort(this.#endReason())
    }
    return this.#controller.signal
  }

  /** Ends the lease when its local validity runs out before a refresh moved it (invariant 7). */
  #armValidityTimer(): void {
    this.#validityTimer?.cancel()
    const remaining = this.#lock.validUntil - this.#host.clock.monotonic()
    this.#validityTimer = setLongTimeout(() => {
      if (this.#ended) return
      if (this.#host.clock.monotonic() >= this.#lock.validUntil) void this.end({ how: 'ran-out' })
      else this.#armValidityTimer()
    }, remaining)
  }

  /** Schedules the next heartbeat after a request, sent at `sentAt`, that made the lease valid. */
  #scheduleHeartbeatAfter(sentAt: number): void {
    const now = this.#host.clock.monotonic()
    this.#scheduleHeartbeat(nextHeartbeatDelay(this.timings, sentAt, now, this.#lock.validUntil))
  }

  #scheduleHeartbeat(delayMs: number, failures = 0): void {
    this.#heartbeatTimer?.cancel()
    this.#heartbeatTimer = setLongTimeout(() => void this.#beat(failures), delayMs)
  }

  /** One heartbeat; on a store error it is tried again with backoff within the remaining validity. */
  async #beat(failures: number): Promise<void> {
    if (this.#ended) return
    try {
      await this.#refresh(false) // a successful refresh schedules the next heartbeat
    } catch {
      const remaining = this.#lock.validUntil - this.#host.clock.monotonic()
      if (remaining <= 0 || this.#ended) return // the validity timer ends the lease
      const { backoff, random } = this.#host
      this.#scheduleHeartbeat(Math.min(fullJitterDelay(backoff, failures, random) + 1, remaining / 2), failures + 1)
    }
  }

  /**
   * Refreshes in the store: `true` if extended, `false` if the lease is gone (then it has ended);
   * rejects on store failure (a heartbeat's rejection is handled here, a `manual` one's by its caller). Success
   * schedules the next heartbeat, so a manual refresh also restarts a heartbeat loop that gave up.
   */
  #refresh(manual: boolean): Promise<boolean> {
    if (this.#refreshing) return this.#refreshing
    const settle = () => {
      if (this.#refreshing === promise) this.#refreshing = undefined
    }
    const promise = this.#sendRefresh().then(
      (sentAt) => {
        settle()
        // Scheduled only now that this refresh is over: a heartbeat due at once must not join it.
        if (sentAt !== undefined && this.#heartbeat && !this.#ended) this.#scheduleHeartbeatAfter(sentAt)
        return sentAt !== undefined
      },
      (error: unknown) => {
        settle()
        throw error
      },
    )
    this.#refreshing = promise
    if (!manual) promise.catch(() => {})
    return promise
  }

  /** One refresh request; resolves when it was sent if it extended the lease, `undefined` if lost. */
  async #sendRefresh(): Promise<number | undefined> {
    const host = this.#host
    const lock = this.#lock
    const sentAt = host.clock.monotonic()
    const ref = { doId: lock.doId, nodeId: host.nodeId, fencingToken: lock.fencingToken }
    let record: RefreshedLock | null
    try {
      record = await host.store.refresh({ ...ref, ttlMs: this.timings.ttlMs })
    } catch (error) {
      host.emit({ type: 'error', ...ref, operation: 'refresh', error })
      throw error
    }
    if (this.#ended) return undefined
    if (!record) {
      void this.end({ how: 'lost', reason: 'the store no longer has this lease (expired or taken over)' })
      return undefined
    }
    const answeredAt = host.clock.monotonic()
    lock.expiresAt = record.expiresAt
    lock.validUntil = Math.max(lock.validUntil, validityEnd(sentAt, this.timings))
    this.#renewedAt = sentAt
    // The store renewed the lease by its clock as it is now: a step before this answer is harmless to
    // this lease, but other leases of the guard may have been renewed by the clock before the step.
    const storeTime = record.expiresAt - this.timings.ttlMs
    this.#storeOffsetCeiling = storeOffset(storeTime, sentAt)
    this.#armValidityTimer()
    host.emit({ type: 'refresh', ...ref, durationMs: answeredAt - sentAt })
    host.observeStoreTime(storeTime, answeredAt, this)
    // Another node asked for the object: say so to whoever holds the lock (an activation drains and
    // lets go); the lease itself stays held until released.
    if (record.handoverRequested) (this.#handover ??= new AbortController()).abort()
    return sentAt
  }
}

/** A release that the store carried out by handing the lease to the guard's next waiter. */
export interface HandedOff {
  /** The token the waiter was given (the released one + 1). */
  nextToken: number
}

/** The store's clock minus ours, at most, for an answer carrying `storeTime` to a request sent at `sentAt`. */
function storeOffset(storeTime: number, sentAt: number): number {
  return Number.isFinite(storeTime) ? storeTime - sentAt : Infinity
}

/**
 * Gives a lease back to the store and reports how that went; never rejects (a lease the store could
 * not free runs out by its TTL). Also used for leases granted but never handed out. `send` replaces the
 * plain release (a handoff to the next waiter); the `release` event reports either.
 */
export async function giveBack(
  host: LeaseHost,
  lease: LockRef,
  operation: GuardOperation,
  send: (ref: LockRef) => Promise<boolean | HandedOff> = (ref) => host.store.release(ref),
): Promise<boolean> {
  const ref = { doId: lease.doId, nodeId: host.nodeId, fencingToken: lease.fencingToken }
  const sentAt = host.clock.monotonic()
  try {
    const answer = await send(ref)
    const durationMs = host.clock.monotonic() - sentAt
    if (typeof answer === 'object') {
      host.emit({ type: 'release', ...ref, durationMs, released: true, handedOffToken: answer.nextToken })
      return true
    }
    host.emit({ type: 'release', ...ref, durationMs, released: answer })
    return answer
  } catch (error) {
    host.emit({ type: 'error', ...ref, operation, error })
    return false
  }
}
