import { systemClock, type Clock } from '../clock.js'
import {
  InvalidArgumentError,
  LockContendedError,
  LockError,
  LockLostError,
  ShutdownError,
  StoreUnavailableError,
} from '../errors.js'
import type { LockRecord, LockStore } from '../store/lock-store.js'
import { assertDoId, assertNodeId, assertPositiveMs, describe } from '../validate.js'
import { fullJitterDelay, resolveBackoff, type Backoff } from './backoff.js'
import type {
  AcquireOptions,
  AffinityRing,
  ConsistencyGuard,
  GuardEvent,
  GuardOperation,
  Lock,
  LockHolder,
  LockResult,
} from './types.js'

export interface HybridConsistencyGuardOptions {
  /** Where leases live. */
  store: LockStore
  /** This node's id, as recorded in `do_locks.node_id`. */
  nodeId: string
  /** Routing affinity; without one, `getAffinityNode` answers this node. */
  ring?: AffinityRing
  /** Lease length, ms. Default 30 000 (seed). */
  ttlMs?: number
  /** Heartbeat period, ms; must be < ttlMs. Default ttlMs / 3 (seed: 10 s for 30 s). */
  heartbeatMs?: number
  /**
   * Safety margin subtracted from the lease when computing `validUntil`, for clock-rate drift and
   * timer lateness. Default 1% of the TTL + 2 ms (as Redlock), at least 2 ms.
   */
  driftMs?: number
  /** Default backoff for waiting acquires and refresh retries. */
  retry?: AcquireOptions['retry']
  /** Time seam (monotonic time for lease validity). Default: the system clock. */
  clock?: Clock
  /** Observability hook; exceptions it throws are swallowed. */
  onEvent?: (event: GuardEvent) => void
  /** Randomness for jitter (tests make it deterministic). Default Math.random. */
  random?: () => number
}

/** The lease state behind a {@link Lock} handed to callers. */
interface Lease {
  lock: MutableLock
  ttlMs: number
  heartbeatMs: number
  driftMs: number
  /** Created on first access to `lock.signal`: most callers never look, and aborting costs. */
  controller: AbortController | undefined
  /** Why the lease ended, built only if someone reads the signal. */
  endReason: (() => LockError) | undefined
  heartbeat: boolean
  heartbeatTimer: ReturnType<typeof setTimeout> | undefined
  validityTimer: ReturnType<typeof setTimeout> | undefined
  refreshing: Promise<boolean> | undefined
  done: boolean
}

type MutableLock = { -readonly [K in keyof Lock]: Lock[K] }

const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for('Symbol.asyncDispose') as typeof Symbol.asyncDispose)

/**
 * Coordinates who serves a DO id: a TTL lease in a {@link LockStore} (one round trip per operation),
 * kept alive by heartbeats, with a fencing token for storage-side rejection of stale holders, and a
 * consistent-hash ring for routing hints.
 *
 * @example
 * ```ts
 * const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
 * const answer = await guard.withLock('room-1', async (lock, signal) => {
 *   await db.fencedWrite(lock, [{ sql: 'UPDATE rooms SET n = n + 1 WHERE id = ?', args: ['room-1'] }])
 * })
 * ```
 */
export class HybridConsistencyGuard implements ConsistencyGuard {
  readonly nodeId: string
  readonly ttlMs: number
  readonly heartbeatMs: number
  readonly driftMs: number
  readonly #store: LockStore
  readonly #ring: AffinityRing | undefined
  readonly #clock: Clock
  readonly #backoff: Backoff
  readonly #onEvent: ((event: GuardEvent) => void) | undefined
  readonly #random: () => number
  /** What the caller set explicitly: a per-acquire ttl scales these; unset ones follow the defaults. */
  readonly #explicit: { heartbeatMs: boolean; driftMs: boolean }
  readonly #leases = new Map<Lock, Lease>()
  readonly #pending = new Set<Promise<unknown>>()
  /**
   * No held lease's validity ends before this: a lower bound (refreshes only move ends later), so
   * {@link #prune} scans the leases only once it has passed, not on every acquire.
   */
  #validityFloor = Infinity
  #closed = false
  /**
   * Sleepers to wake on shutdown. Not an AbortController: workerd binds a signal to the request or
   * Durable Object that created it, and a guard is shared by every request of an isolate.
   */
  readonly #wakers = new Set<(reason: ShutdownError) => void>()

  constructor(options: HybridConsistencyGuardOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { store, ring } = options
    if (store === null || typeof store !== 'object' || typeof store.acquire !== 'function') {
      throw new InvalidArgumentError('store', 'expected a LockStore')
    }
    if (ring !== undefined && typeof ring?.getNode !== 'function') {
      throw new InvalidArgumentError('ring', 'expected a ring with getNode(key)')
    }
    assertNodeId(options.nodeId)
    const ttlMs = options.ttlMs ?? 30_000
    assertPositiveMs('ttlMs', ttlMs)
    const heartbeatMs = options.heartbeatMs ?? defaultHeartbeatMs(ttlMs)
    assertPositiveMs('heartbeatMs', heartbeatMs)
    if (heartbeatMs >= ttlMs) {
      throw new InvalidArgumentError('heartbeatMs', `must be less than ttlMs (${ttlMs}), got ${heartbeatMs}`)
    }
    const driftMs = options.driftMs ?? defaultDriftMs(ttlMs)
    if (typeof driftMs !== 'number' || !Number.isFinite(driftMs) || driftMs < 0 || driftMs >= ttlMs) {
      throw new InvalidArgumentError(
        'driftMs',
        `must be a number from 0 to below ttlMs (${ttlMs}), got ${describe(driftMs)}`,
      )
    }
    if (options.heartbeatMs !== undefined && heartbeatMs >= ttlMs - driftMs) {
      // The first heartbeat would come after the lease's local validity ends: every lease would be lost.
      throw new InvalidArgumentError(
        'heartbeatMs',
        `must be less than ttlMs - driftMs (${ttlMs} - ${driftMs} = ${ttlMs - driftMs}), when local validity ends; got ${heartbeatMs}`,
      )
    }
    const clock = options.clock ?? systemClock
    if (typeof clock?.monotonic !== 'function')
      throw new InvalidArgumentError('clock', 'expected a Clock with monotonic()')
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
      throw new InvalidArgumentError('onEvent', 'expected a function')
    }
    if (options.random !== undefined && typeof options.random !== 'function') {
      throw new InvalidArgumentError('random', 'expected a function returning a number in [0, 1)')
    }
    this.nodeId = options.nodeId
    this.ttlMs = ttlMs
    this.heartbeatMs = heartbeatMs
    this.driftMs = driftMs
    this.#store = store
    this.#ring = ring
    this.#clock = clock
    this.#backoff = resolveBackoff(options.retry)
    this.#onEvent = options.onEvent
    this.#random = options.random ?? Math.random
    this.#explicit = { heartbeatMs: options.heartbeatMs !== undefined, driftMs: options.driftMs !== undefined }
  }

  /** Locks this guard holds right now. */
  get heldLocks(): Lock[] {
    this.#prune()
    return [...this.#leases.keys()]
  }

  /** True once {@link shutdown} was called. */
  get isShuttingDown(): boolean {
    return this.#closed
  }

  /**
   * Tries to take the lease on `doId`: once by default, or until `waitMs` runs out. Resolves
   * `{ acquired: false, holder, retryAfterMs }` when someone else holds it; rejects with
   * `StoreUnavailableError` when the store cannot answer, and with `signal.reason` when aborted.
   */
  async acquire(doId: string, options: AcquireOptions = {}): Promise<LockResult> {
    assertDoId(doId)
    const opts = checkAcquireOptions(options, this.ttlMs)
    const backoff = options.retry ? resolveBackoff(options.retry, 'options.retry') : this.#backoff
    this.#throwIfClosing()
    options.signal?.throwIfAborted()
    this.#prune()

    const began = this.#clock.monotonic()
    const deadline = began + opts.waitMs
    let attempts = 0
    for (;;) {
      attempts++
      const start = this.#clock.monotonic()
      let outcome: Awaited<ReturnType<LockStore['acquire']>> | undefined
      let failure: unknown
      try {
        // Tracked, so that shutdown() also waits for a lease being taken right now.
        outcome = await this.#track(
          this.#store.acquire({ doId, nodeId: this.nodeId, ttlMs: opts.ttlMs, metadata: options.metadata }),
        )
      } catch (error) {
        failure = error
      }
      if (outcome?.acquired) {
        const timings = this.#timings(opts.ttlMs)
        if (this.isShuttingDown || options.signal?.aborted) {
          // Shutdown began, or the caller gave up, while the request was in flight: hand nothing
          // out, give the lease back (shutdown waits for that release).
          this.#releaseAbandoned(outcome.lock)
          throw this.isShuttingDown ? new ShutdownError() : options.signal!.reason
        }
        if (this.#clock.monotonic() >= start + opts.ttlMs - timings.driftMs) {
          // The answer came back after the lease's safe window: by our own conservative clock it may
          // already have run out, so it is not handed out as held (invariant 4). A slow store is a
          // store failure: retried within waitMs like one.
          this.#releaseAbandoned(outcome.lock)
          outcome = undefined
          failure = new StoreUnavailableError(
            `acquire of "${doId}" took longer than the lease's safe window (${opts.ttlMs - timings.driftMs} ms); the lease was given back`,
            { retryable: true },
          )
        } else {
          const lock = this.#adopt(outcome.lock, opts.ttlMs, start, opts.heartbeat, timings)
          this.#emit({
            type: 'acquire',
            doId,
            nodeId: this.nodeId,
            fencingToken: lock.fencingToken,
            durationMs: this.#clock.monotonic() - began,
            attempts,
          })
          return { acquired: true, lock }
        }
      }
      this.#throwIfClosing()
      options.signal?.throwIfAborted()

      const now = this.#clock.monotonic()
      let retryAfterMs: number
      let holder: LockHolder | undefined
      if (outcome) {
        holder = toHolder(outcome.holder)
        retryAfterMs = Math.max(1, outcome.holder.expiresAt - outcome.storeNow)
        this.#emit({
          type: 'contended',
          doId,
          nodeId: this.nodeId,
          holder,
          retryAfterMs,
          durationMs: now - began,
          attempts,
        })
      } else {
        const retryable = failure instanceof StoreUnavailableError && failure.retryable
        if (!retryable || now >= deadline) {
          this.#emit({ type: 'error', doId, nodeId: this.nodeId, operation: 'acquire', error: failure })
          throw failure
        }
        retryAfterMs = 1
      }
      if (now >= deadline) return { acquired: false, holder, retryAfterMs, attempts }

      // Never sleep past the deadline; a held lease cannot free up before its expiry unless released,
      // so jitter (not the full retryAfter) keeps latency low when the holder releases early.
      const delay = Math.min(fullJitterDelay(backoff, attempts - 1, this.#random), deadline - now)
      await this.#sleep(delay, options.signal)
    }
  }

  /**
   * Gives the lease back. Never rejects on store trouble (that is reported through `onEvent` and
   * the lease then runs out by TTL); resolves `true` if the store freed it. Stops the heartbeat at
   * once and fires `lock.signal`. Call without `await` to keep it off the request path; `shutdown`
   * waits for such releases.
   */
  release(lock: Lock): Promise<boolean> {
    let lease: Lease | undefined
    try {
      lease = this.#leaseOf(lock)
    } catch (error) {
      return Promise.reject(error) // a promise-returning method rejects; it does not throw
    }
    if (!lease) return Promise.resolve(false)
    return this.#track(
      this.#finish(lease, () => new LockLostError(lock.doId, lock.fencingToken, 'released'), 'release'),
    )
  }

  /**
   * Extends the lease now (heartbeats do this on their own). Resolves the same lock with later
   * `expiresAt`/`validUntil`, or `null` if the lease was lost (then `lock.signal` has fired).
   * Rejects with `StoreUnavailableError` if the store could not answer; the lease is then unchanged.
   */
  async refresh(lock: Lock): Promise<Lock | null> {
    const lease = this.#leaseOf(lock)
    if (!lease) return null
    const ok = await this.#refresh(lease, true)
    return ok ? lease.lock : null
  }

  /** Whether nobody holds `doId` right now, per the store. One round trip. */
  async isAvailable(doId: string): Promise<boolean> {
    assertDoId(doId)
    const info = await this.#store.get(doId)
    return !info?.held
  }

  /** The node that should serve `doId` (a routing hint, not a guarantee). No I/O. */
  getAffinityNode(doId: string): string {
    assertDoId(doId)
    return this.#ring ? this.#ring.getNode(doId) : this.nodeId
  }

  /**
   * Whether `lock` is still this node's current lease: locally valid AND the store agrees (same node,
   * same token, unexpired). Advisory: to make a write safe, use a fenced write.
   */
  async validateLock(lock: Lock): Promise<boolean> {
    const lease = this.#leaseOf(lock)
    if (!lease || lease.lock.signal.aborted || this.#clock.monotonic() >= lease.lock.validUntil) return false
    const info = await this.#store.get(lock.doId)
    return !!info && info.held && info.nodeId === this.nodeId && info.fencingToken === lock.fencingToken
  }

  /**
   * acquire -> heartbeat -> `fn(lock, signal)` -> release. Rejects with {@link LockContendedError}
   * when the lease is held elsewhere (after `waitMs`, if given). The release runs in the background
   * unless `awaitRelease` is set.
   */
  async withLock<T>(
    doId: string,
    fn: (lock: Lock, signal: AbortSignal) => Promise<T> | T,
    options: AcquireOptions & { awaitRelease?: boolean } = {},
  ): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'expected a function')
    const result = await this.acquire(doId, options)
    if (!result.acquired) {
      const holder = result.holder && { nodeId: result.holder.nodeId, fencingToken: result.holder.fencingToken }
      throw new LockContendedError(doId, result.retryAfterMs, holder)
    }
    const { lock } = result
    try {
      return await fn(lock, lock.signal)
    } finally {
      const released = this.release(lock)
      if (options.awaitRelease) await released
    }
  }

  /**
   * Graceful shutdown: refuses new acquires, stops every heartbeat, releases every held lease and
   * waits for releases and acquires already in flight. Resolves with how many leases this call freed
   * and how many it could not (store trouble, or not finished within `timeoutMs`). With `timeoutMs`
   * it never waits longer than that for the store (say, inside a SIGTERM grace period): whatever has
   * not finished by then keeps running in the background, and its leases run out by their TTL at worst.
   */
  async shutdown(
    options: { timeoutMs?: number } = {},
  ): Promise<{ released: number; failed: number; timedOut: boolean }> {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { timeoutMs } = options
    if (timeoutMs !== undefined) assertPositiveMs('options.timeoutMs', timeoutMs, Number.MAX_SAFE_INTEGER)
    if (!this.#closed) {
      this.#closed = true
      for (const wake of [...this.#wakers]) wake(new ShutdownError())
    }
    let released = 0
    const releases = [...this.#leases.values()].map((lease) =>
      this.#track(this.#finish(lease, () => new ShutdownError(), 'shutdown')).then((ok) => {
        if (ok) released++
      }),
    )
    const settled = (async () => {
      await Promise.all(releases)
      // Settling an in-flight acquire starts its release: wait until nothing new is pending.
      while (this.#pending.size > 0) await Promise.allSettled([...this.#pending])
      return false
    })()
    let timer: ReturnType<typeof setTimeout> | undefined
    const timedOut =
      timeoutMs === undefined
        ? await settled
        : await Promise.race([
            settled,
            new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
          ])
    clearTimeout(timer)
    return { released, failed: releases.length - released, timedOut }
  }

  async [asyncDispose](): Promise<void> {
    await this.shutdown()
  }

  // --- leases -------------------------------------------------------------------------------

  /**
   * Heartbeat period and drift margin for a lease of `ttlMs`. A per-acquire ttl keeps the guard's
   * settings in proportion: values the caller set are scaled with the lease, defaults are recomputed
   * for it (so a day-long lease gets a day-long lease's drift margin, not a 30 s one's). An explicit
   * heartbeat keeps its place within the validity window (ttl - drift), not within the ttl: the
   * drift is not proportional (its default has a fixed 2 ms), and a heartbeat past the window's end
   * would lose every lease.
   */
  #timings(ttlMs: number): { heartbeatMs: number; driftMs: number } {
    if (ttlMs === this.ttlMs) return { heartbeatMs: this.heartbeatMs, driftMs: this.driftMs }
    const driftMs = this.#explicit.driftMs
      ? Math.min(Math.ceil(this.driftMs * (ttlMs / this.ttlMs)), Math.floor(ttlMs / 2))
      : defaultDriftMs(ttlMs)
    const heartbeatMs = this.#explicit.heartbeatMs
      ? Math.max(1, Math.floor(this.heartbeatMs * ((ttlMs - driftMs) / (this.ttlMs - this.driftMs))))
      : defaultHeartbeatMs(ttlMs)
    return { heartbeatMs, driftMs }
  }

  #adopt(
    record: LockRecord,
    ttlMs: number,
    start: number,
    heartbeat: boolean,
    timings: { heartbeatMs: number; driftMs: number },
  ): Lock {
    const { heartbeatMs, driftMs } = timings
    const lock = {
      ...record,
      ttlMs,
      validUntil: start + ttlMs - driftMs,
    } as MutableLock
    lock[asyncDispose] = () => this.release(lock).then(() => undefined)
    const lease: Lease = {
      lock,
      ttlMs,
      heartbeatMs,
      driftMs,
      controller: undefined,
      endReason: undefined,
      heartbeat,
      heartbeatTimer: undefined,
      validityTimer: undefined,
      refreshing: undefined,
      done: false,
    }
    Object.defineProperty(lock, 'signal', {
      enumerable: true,
      get: () => {
        if (!lease.controller) {
          lease.controller = new AbortController()
          if (lease.endReason) lease.controller.abort(lease.endReason())
        }
        return lease.controller.signal
      },
    })
    this.#leases.set(lock, lease)
    this.#validityFloor = Math.min(this.#validityFloor, lock.validUntil)
    this.#armValidity(lease)
    if (heartbeat) this.#scheduleHeartbeat(lease, heartbeatMs)
    return lock
  }

  /** Fires the signal when local validity runs out before a refresh moved it (invariant 7). */
  #armValidity(lease: Lease): void {
    clearTimeout(lease.validityTimer)
    const remaining = lease.lock.validUntil - this.#clock.monotonic()
    lease.validityTimer = setTimeout(
      () => {
        if (lease.done) return
        if (this.#clock.monotonic() >= lease.lock.validUntil) {
          this.#lose(lease, 'validity ran out before a refresh succeeded')
          // We stopped trusting the lease, but the store may still count it as ours (the refreshes
          // failed, not necessarily the lease): hand it back so others need not wait for its expiry.
          // A release never frees anyone else's lease (same node AND token, unexpired), so this is safe.
          this.#releaseAbandoned(lease.lock)
        } else {
          this.#armValidity(lease)
        }
      },
      Math.max(0, remaining),
    )
  }

  /**
   * Ends leases whose validity ran out without their timer firing. In workerd, timers belong to the
   * request that set them, and a request cancelled because its client went away takes them along:
   * its leases would otherwise stay in this (isolate-wide) guard for good.
   */
  #prune(): void {
    const now = this.#clock.monotonic()
    if (now < this.#validityFloor) return
    let floor = Infinity
    for (const lease of [...this.#leases.values()]) {
      if (lease.done) continue
      if (now >= lease.lock.validUntil) {
        this.#lose(lease, 'validity ran out before a refresh succeeded')
        this.#releaseAbandoned(lease.lock)
      } else {
        floor = Math.min(floor, lease.lock.validUntil)
      }
    }
    this.#validityFloor = floor
  }

  #scheduleHeartbeat(lease: Lease, delayMs: number): void {
    clearTimeout(lease.heartbeatTimer)
    lease.heartbeatTimer = setTimeout(() => void this.#heartbeat(lease), Math.max(0, delayMs))
  }

  /** One heartbeat; on a store error retries within the remaining validity, then gives up. */
  async #heartbeat(lease: Lease): Promise<void> {
    let attempt = 0
    while (!lease.done) {
      let ok: boolean
      try {
        ok = await this.#refresh(lease, false)
      } catch {
        const remaining = lease.lock.validUntil - this.#clock.monotonic()
        if (remaining <= 0 || lease.done) return // the validity timer fires the signal
        await this.#sleep(
          Math.min(fullJitterDelay(this.#backoff, attempt++, this.#random) + 1, remaining / 2),
          undefined,
        ).catch(() => {})
        continue
      }
      if (ok && !lease.done) this.#scheduleHeartbeat(lease, lease.heartbeatMs)
      return
    }
  }

  /** Refresh in the store. `false` = lease lost (signal fired); throws on store failure. */
  #refresh(lease: Lease, rethrow: boolean): Promise<boolean> {
    // Heartbeats never overlap: a manual refresh during one joins it.
    if (lease.refreshing) return lease.refreshing
    const run = async (): Promise<boolean> => {
      const { lock } = lease
      const start = this.#clock.monotonic()
      let record: LockRecord | null
      try {
        record = await this.#store.refresh({
          doId: lock.doId,
          nodeId: this.nodeId,
          fencingToken: lock.fencingToken,
          ttlMs: lease.ttlMs,
        })
      } catch (error) {
        this.#emit({
          type: 'error',
          doId: lock.doId,
          nodeId: this.nodeId,
          fencingToken: lock.fencingToken,
          operation: 'refresh',
          error,
        })
        throw error
      }
      if (lease.done) return false
      if (!record) {
        this.#lose(lease, 'the store no longer has this lease (expired or taken over)')
        return false
      }
      lock.expiresAt = record.expiresAt
      lock.validUntil = Math.max(lock.validUntil, start + lease.ttlMs - lease.driftMs)
      this.#armValidity(lease)
      // A manual refresh may come after the heartbeat loop gave up on a failing store: restart it.
      if (rethrow && lease.heartbeat) this.#scheduleHeartbeat(lease, lease.heartbeatMs)
      this.#emit({
        type: 'refresh',
        doId: lock.doId,
        nodeId: this.nodeId,
        fencingToken: lock.fencingToken,
        durationMs: this.#clock.monotonic() - start,
      })
      return true
    }
    const promise = run().finally(() => {
      if (lease.refreshing === promise) lease.refreshing = undefined
    })
    lease.refreshing = promise
    if (!rethrow) promise.catch(() => {})
    return promise
  }

  #releaseAbandoned(lock: LockRecord): void {
    const ref = { doId: lock.doId, nodeId: this.nodeId, fencingToken: lock.fencingToken }
    void this.#track(
      this.#store.release(ref).then(
        (released) => {
          this.#emit({ type: 'release', ...ref, durationMs: 0, released })
          return released
        },
        (error: unknown) => {
          this.#emit({ type: 'error', ...ref, operation: 'release', error })
          return false
        },
      ),
    )
  }

  #lose(lease: Lease, reason: string): void {
    if (lease.done) return
    const { lock } = lease
    this.#stop(lease, () => new LockLostError(lock.doId, lock.fencingToken, reason))
    this.#emit({ type: 'lost', doId: lock.doId, nodeId: this.nodeId, fencingToken: lock.fencingToken, reason })
  }

  /** Stops timers, fires the signal, forgets the lease. Idempotent. */
  #stop(lease: Lease, reason: () => LockError): void {
    lease.done = true
    clearTimeout(lease.heartbeatTimer)
    clearTimeout(lease.validityTimer)
    this.#leases.delete(lease.lock)
    lease.endReason = reason
    if (lease.controller && !lease.controller.signal.aborted) lease.controller.abort(reason())
  }

  /** Ends a lease and releases it in the store; never rejects. */
  async #finish(lease: Lease, reason: () => LockError, operation: GuardOperation): Promise<boolean> {
    if (lease.done) return false
    this.#stop(lease, reason)
    const { lock } = lease
    const start = this.#clock.monotonic()
    try {
      const released = await this.#store.release({
        doId: lock.doId,
        nodeId: this.nodeId,
        fencingToken: lock.fencingToken,
      })
      this.#emit({
        type: 'release',
        doId: lock.doId,
        nodeId: this.nodeId,
        fencingToken: lock.fencingToken,
        durationMs: this.#clock.monotonic() - start,
        released,
      })
      return released
    } catch (error) {
      this.#emit({
        type: 'error',
        doId: lock.doId,
        nodeId: this.nodeId,
        fencingToken: lock.fencingToken,
        operation,
        error,
      })
      return false
    }
  }

  #leaseOf(lock: Lock): Lease | undefined {
    if (lock === null || typeof lock !== 'object' || typeof lock.doId !== 'string') {
      throw new InvalidArgumentError('lock', `expected a Lock returned by acquire, got ${describe(lock)}`)
    }
    return this.#leases.get(lock)
  }

  // --- plumbing -----------------------------------------------------------------------------

  #track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise)
    // then(f, f), not finally: a rejection is the caller's to handle, not an unhandled one here.
    const forget = () => void this.#pending.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  #throwIfClosing(): void {
    if (this.isShuttingDown) throw new ShutdownError()
  }

  /** Sleeps, waking early (rejecting) on the caller's signal or on shutdown. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer)
        this.#wakers.delete(stop)
        signal?.removeEventListener('abort', onAbort)
      }
      const stop = (reason: unknown) => {
        done()
        reject(reason)
      }
      const onAbort = () => stop(signal!.reason)
      const timer = setTimeout(
        () => {
          done()
          resolve()
        },
        Math.max(0, ms),
      )
      if (this.#closed) return stop(new ShutdownError())
      if (signal?.aborted) return stop(signal.reason)
      this.#wakers.add(stop)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  #emit(event: GuardEvent): void {
    if (!this.#onEvent) return
    try {
      this.#onEvent(event)
    } catch {
      // A broken metrics hook must not break locking.
    }
  }
}

function defaultHeartbeatMs(ttlMs: number): number {
  return Math.max(1, Math.floor(ttlMs / 3))
}

/** Redlock-style: 1% of the lease + 2 ms, at least 2 ms, but never more than half a (very short) lease. */
function defaultDriftMs(ttlMs: number): number {
  return Math.min(Math.max(2, Math.ceil(ttlMs * 0.01) + 2), Math.floor(ttlMs / 2))
}

function checkAcquireOptions(
  options: AcquireOptions,
  defaultTtl: number,
): { waitMs: number; ttlMs: number; heartbeat: boolean } {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const waitMs = options.waitMs ?? 0
  if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0) {
    throw new InvalidArgumentError('options.waitMs', `must be a finite number >= 0, got ${describe(waitMs)}`)
  }
  const ttlMs = options.ttlMs ?? defaultTtl
  assertPositiveMs('options.ttlMs', ttlMs)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('options.signal', 'expected an AbortSignal')
  }
  if (options.heartbeat !== undefined && typeof options.heartbeat !== 'boolean') {
    throw new InvalidArgumentError('options.heartbeat', 'expected a boolean')
  }
  return { waitMs, ttlMs, heartbeat: options.heartbeat ?? true }
}

function toHolder(record: LockRecord): LockHolder {
  const holder: LockHolder = { nodeId: record.nodeId, fencingToken: record.fencingToken, expiresAt: record.expiresAt }
  if (record.metadata !== undefined) holder.metadata = record.metadata
  return holder
}
