/**
 * The callers of one guard that want the same DO id, in arrival order (issue 13; docs/design.md, "Fair
 * local waiting"). Only the first in line asks the store; the others wait here without a request. A
 * release by this guard (as soon as it is sent), or a lease of it on the id lost or given back, wakes
 * the first at once instead of at its next poll. Without the line, the caller that just released took
 * the lease straight back (its next acquire beat requests sleeping out their backoff) and the others
 * starved.
 */
import { setLongTimeout, type LongTimeout } from './timers.js'
import type { Lock, LockHolder } from './types.js'

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
  /** A wake that came while not waiting (during a store request): the next wait returns at once. */
  #woken = false
  #resolveWait: (() => void) | undefined
  #left = false

  /** A place at the end of `line`; made by {@link LocalWaiters.join}. */
  constructor(line: Line, owner: LocalWaiters) {
    this.#line = line
    this.#owner = owner
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
    const wasFirst = this.isFirst
    this.#line.waiters.delete(this)
    if (wasFirst) this.#line.first?.wake()
    this.#owner.tidy(this.#line)
  }
}

/** The lines of one guard, by DO id. */
export class LocalWaiters {
  readonly #lines = new Map<string, Line>()
  #closed = false

  /** True once {@link close} was called: every wait returns at once. */
  get closed(): boolean {
    return this.#closed
  }

  /** Puts a caller at the end of `doId`'s line. */
  join(doId: string): Waiter {
    const line = this.#line(doId)
    const waiter = new Waiter(line, this)
    line.waiters.add(waiter)
    return waiter
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
    line.first?.wake()
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
    for (const line of this.#lines.values()) for (const waiter of line.waiters) waiter.wake()
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
