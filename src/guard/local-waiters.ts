/**
 * The callers of one guard that want the same DO id, in arrival order (issue 13; docs/design.md, "Fair
 * local waiting"). Only the first in line asks the store; the others wait here without a request. A
 * release by this guard (as soon as it is sent), or a lease of it on the id lost or given back, wakes
 * the first at once instead of at its next poll. Without the line, the caller that just released took
 * the lease straight back (its next acquire beat requests sleeping out their backoff) and the others
 * starved.
 *
 * With a store that can pass a lease on in one request (`LockStore.handoff`), a release while a caller
 * waits first in line does not wake it to ask: the release itself asks the store to hand the lease
 * over, and the waiter is handed the lease the store granted (one commit per handoff instead of two).
 * It is {@link Waiter.promised} meanwhile, so it sends nothing of its own.
 */
import type { LockRecord } from '../store/lock-store.js'
import { setLongTimeout, type LongTimeout } from './timers.js'
import type { Lock, LockHolder } from './types.js'

/** What a waiter would take a lease handed over on: what the release asks the store for on its behalf. */
export interface HandoffTerms {
  /** The lease length it asked for, ms. */
  readonly ttlMs: number
  /** The metadata it asked to store with its lease (a JSON copy), or `undefined`. */
  readonly metadata: unknown
  /** Local monotonic time when its wait ends: no handoff is started for it at or after this. */
  readonly deadline: number
  /** Its abort signal: no handoff is started for it once this fired. */
  readonly signal: AbortSignal | undefined
}

/** A lease the store handed over to a waiter, and when the request for it was sent (local monotonic). */
export interface Handoff {
  /** The new lease, as the store granted it. */
  readonly record: LockRecord
  /** When the handoff request was sent: the lease's validity counts from then. */
  readonly sentAt: number
}

/** What this guard knows of the id's current holder without asking the store. */
export interface LocalHolderView {
  /** A lease of this guard on the id, held or its release not yet answered (the newest). */
  readonly ownLock: Lock | undefined
  /** The holder the first in line was last told of, and when (local monotonic), if any. */
  readonly lastSeen: { holder: LockHolder; retryAfterMs: number; at: number } | undefined
}

/** One id's line: its waiters in arrival order and this guard's leases on it that have not settled. */
/**
 * Whether one caller may resume another's waiting promise directly. Not in Cloudflare Workers, where
 * the woken caller would continue in the waker's request context (see {@link Waiter.wait}).
 */
const WAKE_ACROSS_REQUESTS = !(
  typeof navigator !== 'undefined' && (navigator as { userAgent?: string }).userAgent === 'Cloudflare-Workers'
)

export class Line {
  /** The DO id. */
  readonly doId: string
  /** Waiters in arrival order; a Set also removes from the middle (an aborted waiter) in O(1). */
  readonly waiters = new Set<Waiter>()
  /** This guard's leases on the id, from grant until they end (normally at most one). */
  readonly ownLocks = new Set<Lock>()
  /** This guard's leases on the id whose release was sent and not yet answered. */
  readonly releasing = new Set<Lock>()
  /** The holder the first in line was last told of. */
  lastSeen: LocalHolderView['lastSeen']

  /** An empty line for `doId`. */
  constructor(doId: string) {
    this.doId = doId
  }

  /** The waiter that may ask the store. */
  get first(): Waiter | undefined {
    for (const waiter of this.waiters) return waiter
    return undefined
  }

  /** Nobody waits and no lease of the guard is on the id: the line can go. */
  get idle(): boolean {
    return this.waiters.size === 0 && this.ownLocks.size === 0 && this.releasing.size === 0
  }
}

/** One caller's place in an id's line, from `join` until `leave`. */
export class Waiter {
  readonly #line: Line
  readonly #owner: LocalWaiters
  /** Whether, and on what terms, a release of this guard may hand this caller the lease. */
  readonly #terms: HandoffTerms | undefined
  /** A wake that came while not waiting (during a store request): the next wait returns at once. */
  #woken = false
  #resolveWait: (() => void) | undefined
  #left = false
  /** A handoff for this waiter is in flight: it must not ask the store itself meanwhile. */
  #promised = false
  /** The lease handed over, until this waiter's own code takes it ({@link take}). */
  #handed: Handoff | undefined
  /** This waiter's request to the store is in flight (set by the guard around each attempt). */
  asking = false

  /** A place at the end of `line`; made by {@link LocalWaiters.join}. */
  constructor(line: Line, owner: LocalWaiters, terms: HandoffTerms | undefined) {
    this.#line = line
    this.#owner = owner
    this.#terms = terms
  }

  /** Whether a handoff for this waiter is in flight or was delivered and not yet taken. */
  get promised(): boolean {
    return this.#promised || this.#handed !== undefined
  }

  /**
   * The terms to hand this waiter the lease on, now (local monotonic `now`), if that may be done: it is
   * first in line, accepts handoffs, is not asking the store itself, has no handoff coming, and is
   * still waiting (not aborted, its wait not over). `undefined` otherwise: the release wakes it to ask.
   */
  handoffTerms(now: number): HandoffTerms | undefined {
    const terms = this.#terms
    if (!terms || this.#left || this.asking || this.promised || !this.isFirst) return undefined
    if (now >= terms.deadline || terms.signal?.aborted || this.#owner.closed) return undefined
    return terms
  }

  /** A release started handing this waiter the lease: it waits for that instead of asking the store. */
  promise(): void {
    this.#promised = true
  }

  /**
   * Ends a handoff started for this waiter: `handoff` is the lease the store granted, `undefined` if it
   * granted none (the waiter then asks the store itself). Delivered as any wake is (in Workers, a flag
   * the waiter's own timer reads), so the waiter adopts the lease in its own context. `false` when the
   * waiter has left meanwhile: the caller gives the lease back.
   */
  deliver(handoff: Handoff | undefined): boolean {
    this.#promised = false
    if (this.#left) return false
    this.#handed = handoff
    this.wake()
    return true
  }

  /** The lease handed over to this waiter, once: its own code adopts it (timers, heartbeat, events). */
  take(): Handoff | undefined {
    const handed = this.#handed
    this.#handed = undefined
    return handed
  }

  /** Whether this caller is first in line: the one that may ask the store. */
  get isFirst(): boolean {
    return this.#line.first === this
  }

  /** Whether this guard holds the id itself: no request can win until that lease ends. */
  get heldHere(): boolean {
    return this.#line.ownLocks.size > 0
  }

  /**
   * Whether `holder`, as a store answer named it, is a lease of this guard whose release is on its
   * way: the answer to that release wakes this waiter, so it need not poll.
   */
  releaseInFlight(holder: { nodeId: string; fencingToken: number }, nodeId: string): boolean {
    if (holder.nodeId !== nodeId) return false
    for (const lock of this.#line.releasing) if (lock.fencingToken === holder.fencingToken) return true
    return false
  }

  /** What is known of the holder without a request, for an answer given without one. */
  get holderView(): LocalHolderView {
    let ownLock: Lock | undefined
    for (const lock of this.#line.releasing) ownLock = lock
    for (const lock of this.#line.ownLocks) ownLock = lock // held beats releasing; the newest
    return { ownLock, lastSeen: this.#line.lastSeen }
  }

  /** Records the holder an attempt of this (first) waiter was told of. */
  saw(holder: LockHolder, retryAfterMs: number, at: number): void {
    this.#line.lastSeen = { holder, retryAfterMs, at }
  }

  /** Forgets a wake that came before the request about to be sent: that request sees its effect. */
  clearWake(): void {
    this.#woken = false
  }

  /**
   * Resolves after `ms`, or sooner when woken (moved to the front, a lease of this guard on the id
   * released or ended), when `signal` fires, or when the guard closes; never rejects. The caller
   * checks which.
   */
  wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#woken || this.#owner.closed || signal?.aborted) {
      this.#woken = false
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      let timer: LongTimeout | undefined = undefined
      let tick: ReturnType<typeof setTimeout> | undefined = undefined
      const done = () => {
        this.#resolveWait = undefined
        timer?.cancel()
        clearTimeout(tick)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      signal?.addEventListener('abort', done, { once: true })
      timer = setLongTimeout(done, ms)
      if (!WAKE_ACROSS_REQUESTS) {
        // Workers: a promise resolved from another request's handler runs its continuation in that
        // request's I/O context, and this caller's next I/O there fails ("Cannot perform I/O on behalf
        // of a different request"). So the wake only sets a flag, and a timer of this caller's own
        // (its own context) looks at it every millisecond: no store request, a millisecond at most.
        const look = () => {
          if (!this.#woken && !this.#owner.closed) return void (tick = setTimeout(look, 1))
          this.#woken = false
          done()
        }
        tick = setTimeout(look, 1)
        return
      }
      this.#resolveWait = done
    })
  }

  /** Ends a wait now, or makes the next one return at once. */
  wake(): void {
    if (this.#resolveWait) this.#resolveWait()
    else this.#woken = true
  }

  /**
   * Leaves the line, whatever the outcome (lease taken, wait over, aborted, failed, shut down); the
   * next in line, if this was first, is woken to take its turn. Idempotent.
   */
  leave(): void {
    if (this.#left) return
    this.#left = true
    // Handed a lease it will not use (its wait ended, it was aborted, the guard shut down): back it goes.
    const unclaimed = this.take()
    if (unclaimed) this.#owner.unclaimed(unclaimed.record)
    const wasFirst = this.isFirst
    this.#line.waiters.delete(this)
    if (wasFirst) this.#line.first?.wake()
    this.#owner.tidy(this.#line)
  }
}

/** The lines of one guard, by DO id. */
export class LocalWaiters {
  readonly #lines = new Map<string, Line>()
  readonly #unclaimed: (record: LockRecord) => void
  #closed = false

  /** @param unclaimed - gives back a lease handed over to a waiter that left before taking it */
  constructor(unclaimed: (record: LockRecord) => void) {
    this.#unclaimed = unclaimed
  }

  /** A lease handed over to a waiter that left without it: given back (see the constructor). */
  unclaimed(record: LockRecord): void {
    this.#unclaimed(record)
  }

  /** True once {@link close} was called: every wait returns at once. */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * Puts a caller at the end of `doId`'s line; with `terms`, a release of this guard may hand it the
   * lease ({@link handoffTo}).
   */
  join(doId: string, terms?: HandoffTerms): Waiter {
    const line = this.#line(doId)
    const waiter = new Waiter(line, this, terms)
    line.waiters.add(waiter)
    return waiter
  }

  /**
   * The first in `doId`'s line, promised the lease (see {@link Waiter.promise}), if a release at `now`
   * may hand it over: see {@link Waiter.handoffTerms}. `undefined`: release as without a handoff.
   */
  handoffTo(doId: string, now: number): { waiter: Waiter; terms: HandoffTerms } | undefined {
    const waiter = this.#lines.get(doId)?.first
    const terms = waiter?.handoffTerms(now)
    if (!waiter || !terms) return undefined
    waiter.promise()
    return { waiter, terms }
  }

  /** This guard was granted `lock` and handed it out: the first in line waits for it to end. */
  taken(lock: Lock): void {
    this.#line(lock.doId).ownLocks.add(lock)
  }

  /**
   * The release of `lock` was sent. The first in line asks at once rather than after the answer: a
   * store that applies requests in the order sent (a local database, one connection) grants it, and
   * over a network the two requests overlap instead of costing two round trips. Asked too soon, the
   * store names `lock` as holder ({@link Waiter.releaseInFlight}) and the waiter waits for the answer.
   */
  releasing(lock: Lock): void {
    const line = this.#lines.get(lock.doId)
    if (!line) return
    line.ownLocks.delete(lock)
    line.releasing.add(lock)
    // Promised a handoff by this release: it waits for that, and a wake would only make it wait again.
    if (!line.first?.promised) line.first?.wake()
  }

  /**
   * `lock` ended and the store answered (released, lost, or given back in the background), or a lease
   * granted but never handed out was given back (`lock` undefined): the id may be free, so the first in
   * line asks now.
   */
  settled(doId: string, lock?: Lock): void {
    const line = this.#lines.get(doId)
    if (!line) return
    if (lock) {
      line.ownLocks.delete(lock)
      line.releasing.delete(lock)
    }
    line.first?.wake()
    this.tidy(line)
  }

  /** Wakes every waiter for good (the guard shut down); they find it closed and give up. */
  close(): void {
    this.#closed = true
    for (const line of this.#lines.values()) {
      for (const waiter of line.waiters) {
        // A lease handed over and not yet taken goes back now, where shutdown can wait for it.
        const unclaimed = waiter.take()
        if (unclaimed) this.#unclaimed(unclaimed.record)
        waiter.wake()
      }
    }
  }

  /** Drops `line` if nobody waits in it and no lease of this guard is on its id. */
  tidy(line: Line): void {
    if (line.idle && this.#lines.get(line.doId) === line) this.#lines.delete(line.doId)
  }

  #line(doId: string): Line {
    let line = this.#lines.get(doId)
    if (!line) {
      line = new Line(doId)
      this.#lines.set(doId, line)
    }
    return line
  }
}
