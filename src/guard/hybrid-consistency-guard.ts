import { InvalidArgumentError, LockContendedError, ShutdownError, StoreUnavailableError } from '../errors.js'
import type { LockRecord, LockRef, LockStore, PrefetchedRows, StoreAcquireResult } from '../store/lock-store.js'
import { assertDoId, describe } from '../validate.js'
import { fullJitterDelay } from './backoff.js'
import { DEFAULT_DRAIN_MS, drainBeforeShutdown } from './before-shutdown.js'
import { asyncDispose, giveBack, Lease, type HandedOff, type LeaseHost } from './lease.js'
import { answeredAfterSafeWindow } from './lease-rules.js'
import {
  resolveAcquireOptions,
  resolveGuardOptions,
  resolveShutdownOptions,
  type AcquireSettings,
  type GuardSettings,
  type HybridConsistencyGuardOptions,
} from './options.js'
import { HeldLeases } from './held-leases.js'
import { PendingWork } from './pending-work.js'
import { TimedStore } from './timed-store.js'
import { LocalWaiters, type HandoffTerms, type Waiter } from './local-waiters.js'
import type { AcquireOptions, ConsistencyGuard, GuardEvent, Lock, LockHolder, LockResult } from './types.js'

export type { HybridConsistencyGuardOptions } from './options.js'

/**
 * Coordinates who serves a DO id: a TTL lease in a `LockStore` (one round trip per operation),
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
  /** This node's id, as recorded in `do_locks.node_id`. */
  readonly nodeId: string
  /** Lease length of an acquire without its own `ttlMs`, ms. */
  readonly ttlMs: number
  /** Heartbeat period of a lease of {@link ttlMs}, ms. */
  readonly heartbeatMs: number
  /** Drift margin of a lease of {@link ttlMs}, ms: `validUntil` is `ttlMs - driftMs` after the request. */
  readonly driftMs: number
  readonly #settings: GuardSettings
  readonly #store: TimedStore
  readonly #host: LeaseHost
  readonly #leases = new HeldLeases()
  /** Store requests shutdown waits for: acquires in flight and releases. */
  readonly #pending = new PendingWork()
  /** Callers waiting for an id, in arrival order: only the first asks the store (local-waiters.ts). */
  readonly #waiters = new LocalWaiters((record) => this.#giveBackUnused(record))
  /** The lease `release()` is ending right now: release() tells its line itself, not `forget`. */
  #releasing: Lease | undefined
  #closed = false

  /** Validates `options` (throwing {@link InvalidArgumentError} naming the first bad one); no I/O. */
  constructor(options: HybridConsistencyGuardOptions) {
    const settings = resolveGuardOptions(options)
    this.#settings = settings
    this.nodeId = settings.nodeId
    this.ttlMs = settings.timings.ttlMs
    this.heartbeatMs = settings.timings.heartbeatMs
    this.driftMs = settings.timings.driftMs
    this.#store = new TimedStore(settings.store, settings.requestTimeoutMs, (lease) => this.#giveBackUnused(lease))
    this.#host = {
      store: this.#store,
      nodeId: settings.nodeId,
      clock: settings.clock,
      backoff: settings.backoff,
      random: settings.random,
      emit: (event) => this.#emit(event),
      track: (promise) => this.#pending.track(promise),
      forget: (lease) => {
        this.#leases.delete(lease)
        // Lost: the store said it is free. Ran out: given back in the background, so the first in line
        // may still find it ours and polls until then. Released: release() wakes it once it is sent.
        if (lease !== this.#releasing) this.#waiters.settled(lease.lock.doId, lease.lock)
      },
      release: (lock) => this.release(lock),
      observeStoreTime: (storeTime, answeredAt, lease) =>
        this.#leases.observeStoreOffset(storeTime - answeredAt, lease),
    }
  }

  /**
   * The lock store this guard takes its leases from, as passed in `options.store` (not the guard's
   * internal timed wrapper). A `StatelessDO` finds the object storage of its leases here
   * (`store.objects`: the same database).
   */
  get store(): LockStore {
    return this.#settings.store
  }

  /** Locks this guard holds right now. */
  get heldLocks(): Lock[] {
    this.#prune()
    return this.#leases.all().map((lease) => lease.lock)
  }

  /** True once {@link shutdown} was called. */
  get isShuttingDown(): boolean {
    return this.#closed
  }

  /**
   * Tries to take the lease on `doId`: once by default, or until `waitMs` runs out. Resolves
   * `{ acquired: false, holder, retryAfterMs }` when someone else holds it; rejects with
   * `StoreUnavailableError` when the store cannot answer, and with `signal.reason` when aborted. An
   * attempt unanswered for `requestTimeoutMs` is a retryable store failure (retried within `waitMs`).
   *
   * Callers of one guard wanting the same id are served in arrival order, a caller that just released
   * included: only the first in line sends requests (with backoff, while another node holds the id);
   * the others wait without any, and a release by this guard wakes the first as soon as it is sent
   * (should its acquire reach the store first, the release's answer wakes it again). With a store that
   * has `handoff`, the release instead passes the lease to the first in line in one request (the next
   * token, one commit instead of two), unless that caller asked for a `prefetch`. A caller whose wait
   * ends before its turn resolves `acquired: false` with `attempts: 0` and the holder this guard knows
   * of; so does a try-once acquire while others of the guard wait for the id (it does not jump the line).
   */
  async acquire(doId: string, options: AcquireOptions = {}): Promise<LockResult> {
    assertDoId(doId)
    const opts = resolveAcquireOptions(options, this.#settings)
    this.#throwIfClosing()
    opts.signal?.throwIfAborted()
    this.#prune()
    // A caller that waits may be handed the lease by a release; a prefetch needs its own acquire.
    const terms: HandoffTerms | undefined =
      opts.waitMs > 0 && opts.prefetch === 0
        ? {
            ttlMs: opts.timings.ttlMs,
            metadata: opts.metadata,
            deadline: this.#settings.clock.monotonic() + opts.waitMs,
            signal: opts.signal,
          }
        : undefined
    const waiter = this.#waiters.join(doId, terms)
    try {
      return await this.#acquireInTurn(doId, opts, waiter)
    } finally {
      waiter.leave() // whatever happened, the next in line takes its turn
    }
  }

  /** `acquire` from a place in `doId`'s line: waits its turn, then asks the store. */
  async #acquireInTurn(doId: string, opts: AcquireSettings, waiter: Waiter): Promise<LockResult> {
    const { signal } = opts
    const { clock } = this.#settings
    const began = clock.monotonic()
    const deadline = began + opts.waitMs
    let attempts = 0
    for (;;) {
      // Handed the lease by a release of this guard (one request on this caller's behalf): adopted here,
      // in this caller's own context, so its timers and heartbeats are its own.
      const handed = waiter.take()
      if (handed) {
        attempts++
        const adopted = this.#adopt(handed.record, handed.sentAt, opts)
        if ('lock' in adopted) return this.#acquired(adopted.lock, began, attempts)
        continue // answered too late to trust and given back: ask the store as usual
      }
      // Behind others of this guard, promised a handoff, or (when waiting at all) behind this guard's
      // own lease: no request could win, so wait here to be woken instead of polling the store.
      if (!waiter.isFirst || waiter.promised || (opts.waitMs > 0 && waiter.heldHere)) {
        const now = clock.monotonic()
        if (now >= deadline) return notYourTurn(waiter, attempts, now)
        await waiter.wait(deadline - now, signal)
        this.#throwIfClosing()
        signal?.throwIfAborted()
        continue
      }
      attempts++
      waiter.clearWake() // a wake before this request is seen by it
      waiter.asking = true // no handoff is started for a caller whose own request is in flight
      let outcome: Attempt
      try {
        outcome = await this.#attempt(doId, opts)
      } finally {
        waiter.asking = false
      }
      if ('lock' in outcome) return this.#acquired(outcome.lock, began, attempts)
      this.#throwIfClosing()
      signal?.throwIfAborted()

      const now = clock.monotonic()
      let retryAfterMs: number
      let holder: LockHolder | undefined
      if ('held' in outcome) {
        holder = toHolder(outcome.held.holder)
        retryAfterMs = Math.max(1, outcome.held.holder.expiresAt - outcome.held.storeNow)
        waiter.saw(holder, retryAfterMs, now)
        const durationMs = now - began
        this.#emit({ type: 'contended', doId, nodeId: this.nodeId, holder, retryAfterMs, durationMs, attempts })
      } else {
        const { failure } = outcome
        const retryable = failure instanceof StoreUnavailableError && failure.retryable
        if (!retryable || now >= deadline) {
          this.#emit({ type: 'error', doId, nodeId: this.nodeId, operation: 'acquire', error: failure })
          throw failure
        }
        retryAfterMs = 1
      }
      if (now >= deadline) return { acquired: false, holder, retryAfterMs, attempts }
      if (holder && waiter.releaseInFlight(holder, this.nodeId)) {
        // Asked before our own release arrived: its answer wakes us, no need to poll.
        await waiter.wait(deadline - now, signal)
        this.#throwIfClosing()
        signal?.throwIfAborted()
        continue
      }

      // Never sleep past the deadline; a held lease cannot free up before its expiry unless released,
      // so jitter (not the full retryAfter) keeps latency low when the holder releases early. A lease
      // of this guard on the id settling wakes it sooner.
      const delay = Math.min(fullJitterDelay(opts.backoff, attempts - 1, this.#settings.random), deadline - now)
      await waiter.wait(delay, signal)
      this.#throwIfClosing()
      signal?.throwIfAborted()
    }
  }

  /**
   * Gives the lease back. Never rejects on store trouble (that is reported through `onEvent` and
   * the lease then runs out by TTL); resolves `true` if the store freed it, or handed it to the next
   * caller of this guard waiting for the id (see {@link acquire}). Stops the heartbeat at
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
    const { lock: own } = lease
    // The first in line for the id is handed the lease in the release's own request if the store can
    // (one commit); otherwise it asks as soon as the release is sent (see LocalWaiters.releasing), and
    // again when it was answered if it asked too soon.
    const settle = () => this.#waiters.settled(own.doId, own)
    const next = this.#store.canHandoff
      ? this.#waiters.handoffTo(own.doId, this.#settings.clock.monotonic())
      : undefined
    const send = next && ((ref: LockRef) => this.#handOff(ref, next.waiter, next.terms))
    let ended: Promise<boolean>
    this.#releasing = lease
    try {
      ended = lease.end(send ? { how: 'released', send } : { how: 'released' })
      this.#waiters.releasing(own)
    } catch (error) {
      next?.waiter.deliver(undefined)
      settle()
      return Promise.reject(error)
    } finally {
      this.#releasing = undefined
    }
    return this.#pending.track(ended.finally(settle))
  }

  /**
   * Extends the lease now (heartbeats do this on their own). Resolves the same lock with later
   * `expiresAt`/`validUntil`, or `null` if the lease was lost (then `lock.signal` has fired).
   * Rejects with `StoreUnavailableError` if the store could not answer (within `requestTimeoutMs`); the
   * lease is then unchanged.
   */
  async refresh(lock: Lock): Promise<Lock | null> {
    const lease = this.#leaseOf(lock)
    if (!lease) return null
    return (await lease.refresh()) ? lease.lock : null
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
    const ring = this.#settings.ring
    return ring ? ring.getNode(doId) : this.nodeId
  }

  /**
   * Whether `lock` is still this node's current lease: locally valid AND the store agrees (same node,
   * same token, unexpired). Advisory: to make a write safe, use a fenced write.
   */
  async validateLock(lock: Lock): Promise<boolean> {
    const lease = this.#leaseOf(lock)
    if (!lease || lease.lock.signal.aborted || this.#settings.clock.monotonic() >= lease.validUntil) return false
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
    const awaitRelease = options?.awaitRelease
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
      if (awaitRelease) await released
    }
  }

  /**
   * Graceful shutdown: refuses new acquires, stops every heartbeat, releases every held lease and
   * waits for releases and acquires already in flight. Resolves with how many leases this call freed
   * and how many it could not (store trouble, or not finished within `timeoutMs`). With `timeoutMs`
   * it never waits longer than that for the store (say, inside a SIGTERM grace period): whatever has
   * not finished by then keeps running in the background, and its leases run out by their TTL at worst.
   * Without it, the wait is still bounded: each store request counts as failed after `requestTimeoutMs`.
   *
   * First, the objects StatelessDO keeps active on this guard drain: their queued turns run, their
   * writes flush and they release their leases, within `timeoutMs` (10 s without it); an activation
   * still running then ends with its lease (its turns refused 503 `lease_lost`, nothing of theirs
   * acknowledged).
   */
  async shutdown(
    options: { timeoutMs?: number } = {},
  ): Promise<{ released: number; failed: number; timedOut: boolean }> {
    const { timeoutMs } = resolveShutdownOptions(options)
    const started = this.#settings.clock.monotonic()
    // Before closing: draining turns may still take leases (a turn queued behind a cold start) and
    // release them through this guard.
    const drained = this.#closed || (await drainBeforeShutdown(this, timeoutMs ?? DEFAULT_DRAIN_MS))
    this.#closed = true
    this.#waiters.close()
    let released = 0
    const releases = this.#leases.all().map((lease) =>
      this.#pending.track(lease.end({ how: 'shutdown' })).then((ok) => {
        if (ok) released++
      }),
    )
    const left =
      timeoutMs === undefined ? undefined : Math.max(1, timeoutMs - (this.#settings.clock.monotonic() - started))
    const timedOut = (await this.#pending.settled(left)) || (timeoutMs !== undefined && !drained)
    return { released, failed: releases.length - released, timedOut }
  }

  /** Same as {@link shutdown} without a deadline: `await using guard = new HybridConsistencyGuard(...)`. */
  async [asyncDispose](): Promise<void> {
    await this.shutdown()
  }

  /** One acquire request: the lease handed out, the store's word that it is held, or why it failed. */
  async #attempt(doId: string, opts: AcquireSettings): Promise<Attempt> {
    const { signal, timings, metadata, prefetch } = opts
    const { clock } = this.#settings
    const sentAt = clock.monotonic()
    let outcome: StoreAcquireResult
    try {
      // Tracked, so that shutdown() also waits for a lease being taken right now.
      const request = { doId, nodeId: this.nodeId, ttlMs: timings.ttlMs, metadata, ...(prefetch ? { prefetch } : {}) }
      outcome = await this.#pending.track(this.#store.acquire(request))
    } catch (failure) {
      return { failure }
    }
    // Every acquire answer carries the store's clock: it may show a step that shortens other leases.
    const storeTime = outcome.acquired ? outcome.lock.acquiredAt : outcome.storeNow
    this.#leases.observeStoreOffset(storeTime - clock.monotonic())
    if (!outcome.acquired) return { held: outcome }
    // The lock copies the record it is given: the prefetched rows go along (lock.prefetched).
    return this.#adopt(
      outcome.prefetched ? { ...outcome.lock, prefetched: outcome.prefetched } : outcome.lock,
      sentAt,
      opts,
    )
  }

  /**
   * Hands out a lease the store granted to a request sent at `sentAt` (an acquire, or a handoff on the
   * caller's behalf), with its own timers and heartbeat; or gives it back when the caller can no longer
   * take it (shut down, aborted: thrown) or the answer came too late to trust (a retryable failure).
   */
  #adopt(
    record: LockRecord & { prefetched?: PrefetchedRows },
    sentAt: number,
    opts: AcquireSettings,
  ): { lock: Lock } | { failure: unknown } {
    const { signal, timings } = opts
    const { clock } = this.#settings
    const doId = record.doId
    if (this.isShuttingDown || signal?.aborted) {
      // Shutdown began, or the caller gave up, while the request was in flight: hand nothing out, give
      // the lease back (shutdown waits for that release).
      this.#giveBackUnused(record)
      throw this.isShuttingDown ? new ShutdownError() : signal!.reason
    }
    if (answeredAfterSafeWindow(sentAt, clock.monotonic(), timings)) {
      // By our own conservative clock the lease may already have run out, so it is not handed out as
      // held (invariant 4). A slow store is a store failure: retried within waitMs like one.
      this.#giveBackUnused(record)
      const window = timings.ttlMs - timings.driftMs
      return {
        failure: new StoreUnavailableError(
          `acquire of "${doId}" took longer than the lease's safe window (${window} ms); the lease was given back`,
          { retryable: true },
        ),
      }
    }
    const lease = new Lease(this.#host, record, timings, sentAt, opts.heartbeat)
    this.#leases.add(lease)
    this.#waiters.taken(lease.lock)
    return { lock: lease.lock }
  }

  /** Reports a lease handed out to the caller of an acquire that began at `began`. */
  #acquired(lock: Lock, began: number, attempts: number): LockResult {
    const durationMs = this.#settings.clock.monotonic() - began
    const { doId, fencingToken } = lock
    this.#emit({ type: 'acquire', doId, nodeId: this.nodeId, fencingToken, durationMs, attempts })
    return { acquired: true, lock }
  }

  /**
   * A release's request when `waiter` (first in line, promised) takes the lease over: one handoff, the
   * next token, in one commit. Refused (`null`: the lease was no longer ours) or failed, it falls back
   * to what a release without a waiter does: a plain release, reported as such, while the waiter asks
   * the store itself. A waiter is never handed a lease the store did not grant.
   */
  async #handOff(ref: LockRef, waiter: Waiter, terms: HandoffTerms): Promise<boolean | HandedOff> {
    const { clock } = this.#settings
    const sentAt = clock.monotonic()
    let record: LockRecord | null
    try {
      const { ttlMs, metadata } = terms
      record = await this.#store.handoff({ ...ref, toNodeId: this.nodeId, ttlMs, metadata })
    } catch (error) {
      // Whether it committed is unknown; a grant answered late is given back by the timed store.
      this.#emit({ type: 'error', ...ref, operation: 'release', error })
      record = null
    }
    if (!record) {
      waiter.deliver(undefined) // woken to ask, after the release below was sent (in order, it wins)
      return this.#store.release(ref)
    }
    this.#leases.observeStoreOffset(record.acquiredAt - clock.monotonic())
    if (!waiter.deliver({ record, sentAt })) this.#giveBackUnused(record) // it left meanwhile
    return { nextToken: record.fencingToken }
  }

  #prune(): void {
    this.#leases.prune(this.#settings.clock.monotonic())
  }

  /** Gives back a lease the store granted but the guard will not hand out; shutdown waits for it. */
  #giveBackUnused(record: LockRecord): void {
    // Once given back the id may be free: the first in line for it asks again at once.
    void this.#pending.track(giveBack(this.#host, record, 'release')).then(() => this.#waiters.settled(record.doId))
  }

  #leaseOf(lock: Lock): Lease | undefined {
    if (lock === null || typeof lock !== 'object' || typeof lock.doId !== 'string') {
      throw new InvalidArgumentError('lock', `expected a Lock returned by acquire, got ${describe(lock)}`)
    }
    return this.#leases.get(lock)
  }

  #throwIfClosing(): void {
    if (this.isShuttingDown) throw new ShutdownError()
  }

  #emit(event: GuardEvent): void {
    const onEvent = this.#settings.onEvent
    if (!onEvent) return
    try {
      onEvent(event)
    } catch {
      // A broken metrics hook must not break locking.
    }
  }
}

/** One acquire request's outcome: the lease handed out, the store's word that it is held, or why it failed. */
type Attempt = { lock: Lock } | { held: StoreAcquireResult & { acquired: false } } | { failure: unknown }

function toHolder(record: LockRecord): LockHolder {
  const holder: LockHolder = { nodeId: record.nodeId, fencingToken: record.fencingToken, expiresAt: record.expiresAt }
  if (record.metadata !== undefined) holder.metadata = record.metadata
  return holder
}

/**
 * The answer to a caller whose wait ended before its turn (or a try-once behind others of the guard),
 * given without a request: the holder this guard knows of, its own lease first.
 */
function notYourTurn(waiter: Waiter, attempts: number, now: number): LockResult {
  const { ownLock, lastSeen } = waiter.holderView
  if (ownLock) {
    const retryAfterMs = Math.max(1, Math.ceil(ownLock.validUntil - now))
    return { acquired: false, holder: toHolder(ownLock), retryAfterMs, attempts }
  }
  if (lastSeen) {
    const retryAfterMs = Math.max(1, Math.ceil(lastSeen.retryAfterMs - (now - lastSeen.at)))
    return { acquired: false, holder: { ...lastSeen.holder }, retryAfterMs, attempts }
  }
  return { acquired: false, retryAfterMs: 1, attempts }
}
