/**
 * The activations of one node: which objects it serves right now, and the one way in for a turn.
 *
 * @module
 */
import { systemClock, type Clock } from '../clock.js'
import { InvalidArgumentError, LockContendedError } from '../errors.js'
import type { ConsistencyGuard, Lock, LockHolder } from '../guard/types.js'
import { assertPrefetch } from '../store/requests.js'
import { assertDoId, assertNonNegativeInteger, assertPositiveMs } from '../validate.js'
import { Activation } from './activation.js'
import { ActivationEndedError, TurnTimeoutError, type ActivationEndReason } from './errors.js'
import type { Flusher } from './output-gate.js'
import type { TurnOptions } from './turn-queue.js'

/** The storage of one activation, as the registry builds it for a lease: a {@link Flusher} that can be discarded. */
export interface ActivationFlusher extends Flusher {
  /** See {@link ActivationOptions.discard}: drops the cache and unflushed writes; later use must fail. */
  discard(): void
  /**
   * The committed cache at a graceful end, for the object's next lease on this node (handed back as
   * {@link FlusherContext.resume} when that lease's token is this one's + 1); `undefined` when there is
   * nothing trustworthy to keep. Optional: without it nothing is kept.
   */
  snapshot?(): unknown
}

/** What {@link ActivationsOptions.createFlusher} gets besides the lock. */
export interface FlusherContext {
  /**
   * Call when a flush's answer says another node asked for the object: the activation finishes its
   * queue, flushes and releases (docs/design.md invariant 14).
   */
  requestHandover(): void
  /**
   * The previous activation's `snapshot()` of this object, given only when this lease's token is that
   * activation's + 1: nobody held the object in between, so its cache is still the committed state
   * (invariant 11). `undefined` otherwise.
   */
  resume: unknown
}

/** Options of {@link Activations}. */
export interface ActivationsOptions<F extends ActivationFlusher = ActivationFlusher> {
  /**
   * The node's guard. `nodeId` (a `HybridConsistencyGuard` has it) lets the registry recognise its
   * own lease still being given back, and wait for it instead of calling its own object held.
   */
  guard: Pick<ConsistencyGuard, 'acquire' | 'release'> & { readonly nodeId?: string }
  /**
   * Builds the object's storage for a lease just taken. If it throws, the lease is given back and the
   * turns that waited for it reject with its error.
   */
  createFlusher: (lock: Lock, context: FlusherContext) => F | PromiseLike<F>
  /**
   * Asks the node holding `doId` to let go (the lock store's `requestHandover`, one request): sent once
   * per holder's token, by a turn that found the object held elsewhere, before it waits `waitMs`. Its
   * errors are ignored (the turn just waits). Without it, contenders wait for the holder to go idle.
   */
  requestHandover?: (doId: string) => Promise<unknown>
  /**
   * How many ended activations' caches are kept for a re-acquire with the next token. 0 keeps none.
   * @default 64
   */
  maxKeptCaches?: number
  /**
   * How long a turn waits for an object another node holds, ms; past it, it rejects with
   * `LockContendedError` (503 `locked`, with the holder's `retryAfterMs`). 0 tries once.
   * @default 0
   */
  waitMs?: number
  /** The lease length to acquire with, ms. @default the guard's */
  ttlMs?: number
  /**
   * Storage rows to read with each cold start's acquire (the guard's `AcquireOptions.prefetch`), which
   * `createFlusher` finds as `lock.prefetched`: 0 to `MAX_PREFETCH_ROWS`; 0 asks for none.
   * @default 0
   */
  prefetch?: number
  /** See {@link ActivationOptions.idleMs}. @default 10_000 */
  idleMs?: number
  /** See {@link TurnQueueOptions.maxQueued}. @default 1000 */
  maxQueued?: number
  /**
   * See {@link TurnQueueOptions.maxWaitMs}; also bounds the wait for this node's own activation of the
   * object to end (or for its own lease to be given back) before a new one can start.
   * @default 10_000
   */
  maxWaitMs?: number
  /** See {@link TurnQueueOptions.retryAfterMs}. @default 1000 */
  retryAfterMs?: number
  /** The guard's clock (deadlines, lease validity). @default systemClock */
  clock?: Clock
  /**
   * Runs in `blockConcurrencyWhile` when an activation starts, before its first turn (the Durable
   * Object `onStart`); if it throws, that activation ends (`reset`) and its waiting turns fail.
   */
  onStart?: (activation: Activation<F>) => unknown
  /** Called when an activation has ended, with why (for logs and metrics); hook errors are swallowed. */
  onEnd?: (activation: Activation<F>, reason: ActivationEndReason, error: unknown) => void
}

/** Options of one {@link Activations.run} call. */
export interface RunOptions extends TurnOptions {
  /** How long this turn waits for an object another node holds, ms. @default the registry's `waitMs` */
  waitMs?: number
  /**
   * The lease length, ms, if this turn is the one that takes the lease (a cold start); a warm
   * activation keeps the lease it has. @default the registry's `ttlMs`, else the guard's
   */
  ttlMs?: number
}

/** How often a turn that asked for a hand-over tries the object again, ms (jittered by ±50%). */
export const HANDOVER_POLL_MS = 50
/** How long a node that handed an object over leaves it to the node that asked, ms. */
export const HANDOVER_GRACE_MS = 150

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

type Acquired = { acquired: true } | { acquired: false; holder?: LockHolder | undefined; retryAfterMs: number }

const ignore = () => {}

/**
 * The per-node registry of activations: `run(doId, turn)` enqueues the turn on the object's
 * activation, creating it (one lease acquire) when there is none. Concurrent first turns for one
 * object share one acquire: a node never holds two leases for one object, and never answers its own
 * object "locked" (docs/design.md invariant 9).
 *
 * @example
 * ```ts
 * const activations = new Activations({ guard, createFlusher: (lock) => new ObjectStorage(store, lock) })
 * const response = await activations.run(doId, (a) => handler(request, a.flusher), { signal: request.signal })
 * ```
 */
export class Activations<F extends ActivationFlusher = ActivationFlusher> {
  /** How long a turn waits for an object held elsewhere, ms. */
  readonly waitMs: number
  /** How long a turn waits for its start, or for this node's own ending activation, ms. */
  readonly maxWaitMs: number
  readonly #guard: ActivationsOptions<F>['guard']
  readonly #createFlusher: ActivationsOptions<F>['createFlusher']
  readonly #options: ActivationsOptions<F>
  /** `prefetch`, as validated. */
  readonly #prefetch: number
  readonly #clock: Clock
  readonly #activations = new Map<string, Activation<F>>()
  /** The acquire in flight per object, shared by every turn that arrives meanwhile. */
  readonly #acquiring = new Map<string, Promise<Acquired>>()
  /** Caches of ended activations (oldest first), for a re-acquire with the next token. */
  readonly #kept = new Map<string, { fencingToken: number; snapshot: unknown }>()
  readonly #maxKept: number
  /** The holder's token each object's hand-over was last asked of: asked once per holder. */
  readonly #asked = new Map<string, number>()
  /** Ended activations whose last turn may still be running (after an abrupt end), until it returned. */
  readonly #settling = new Map<string, Promise<void>>()
  /** Objects this node handed over, and until when (monotonic) it leaves them to the node that asked. */
  readonly #handedOver = new Map<string, number>()
  #closed = false

  /** @param options - the guard, the storage factory, bounds and hooks; validated here. */
  constructor(options: ActivationsOptions<F>) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { guard, createFlusher, waitMs = 0, maxWaitMs = 10_000, clock = systemClock } = options
    if (typeof guard?.acquire !== 'function' || typeof guard.release !== 'function') {
      throw new InvalidArgumentError('guard', 'expected a guard with acquire() and release()')
    }
    if (typeof createFlusher !== 'function') throw new InvalidArgumentError('createFlusher', 'expected a function')
    assertNonNegativeInteger('waitMs', waitMs)
    assertPositiveMs('maxWaitMs', maxWaitMs)
    if (options.ttlMs !== undefined) assertPositiveMs('ttlMs', options.ttlMs)
    const { prefetch = 0 } = options
    assertPrefetch('prefetch', prefetch, 0)
    if (options.idleMs !== undefined) assertPositiveMs('idleMs', options.idleMs)
    if (options.maxQueued !== undefined) assertNonNegativeInteger('maxQueued', options.maxQueued)
    if (options.retryAfterMs !== undefined) assertPositiveMs('retryAfterMs', options.retryAfterMs)
    if (typeof clock?.monotonic !== 'function') throw new InvalidArgumentError('clock', 'expected a Clock')
    const { maxKeptCaches = 64 } = options
    assertNonNegativeInteger('maxKeptCaches', maxKeptCaches)
    this.#maxKept = maxKeptCaches
    for (const name of ['onStart', 'onEnd', 'requestHandover'] as const) {
      const hook = options[name]
      if (hook !== undefined && typeof hook !== 'function') throw new InvalidArgumentError(name, 'expected a function')
    }
    this.waitMs = waitMs
    this.maxWaitMs = maxWaitMs
    this.#guard = guard
    this.#createFlusher = createFlusher
    this.#options = options
    this.#prefetch = prefetch
    this.#clock = clock
  }

  /**
   * Whether a turn that finds the object held elsewhere asks the holder to let go
   * ({@link ActivationsOptions.requestHandover} was given).
   */
  get asksHandover(): boolean {
    return this.#options.requestHandover !== undefined
  }

  /** Objects with an activation on this node (active or ending). */
  get size(): number {
    return this.#activations.size
  }

  /** The object's activation on this node, if any (it may be ending: see its `state`). */
  get(doId: string): Activation<F> | undefined {
    return this.#activations.get(doId)
  }

  /**
   * Runs `turn` as the object's next turn on this node and resolves with its result once the output
   * gate releases it ({@link Activation.run}). Without an active activation, takes the lease first
   * (a cold start) or waits for this node's ending activation to let go.
   *
   * Rejects with `LockContendedError` (503 `locked`) when another node holds the object past
   * `waitMs`; with `TurnTimeoutError` when this node's own ending activation or lease did not let go
   * within `maxWaitMs`; with `signal.reason` when the caller went away; with `StoreUnavailableError`
   * when the store could not answer; and with whatever {@link Activation.run} rejects with.
   */
  async run<T>(
    doId: string,
    turn: (activation: Activation<F>) => T | PromiseLike<T>,
    options: RunOptions = {},
  ): Promise<T> {
    assertDoId(doId)
    if (typeof turn !== 'function') throw new InvalidArgumentError('turn', 'expected a function')
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { signal, waitMs = this.waitMs, ttlMs } = options
    assertNonNegativeInteger('options.waitMs', waitMs)
    if (ttlMs !== undefined) assertPositiveMs('options.ttlMs', ttlMs)
    const start = this.#clock.monotonic()
    const deadline = start + waitMs
    const ownDeadline = start + this.maxWaitMs
    let ownLease = false
    let ownTries = 0
    for (;;) {
      if (this.#closed) throw this.#shutdownError(doId)
      signal?.throwIfAborted()
      const current = this.#activations.get(doId)
      if (current?.state === 'active') return current.run(() => turn(current), options)
      const now = this.#clock.monotonic()
      if (current) {
        // Ours, ending: wait until it has let go rather than contend with our own lease (invariant 9).
        if (!(await settlesWithin(current.ended, ownDeadline - now, signal))) throw this.#timeout(doId)
        continue
      }
      const settling = this.#settling.get(doId)
      if (settling) {
        // Ended abruptly (a lost lease) with a turn still running: never two turns of one object
        // (invariant 9), and on a Durable Object's one instance, never two turns using `this.storage`.
        if (!(await settlesWithin(settling, ownDeadline - now, signal))) throw this.#timeout(doId)
        continue
      }
      const result = await abortable(
        this.#acquire(doId, Math.max(0, (ownLease ? ownDeadline : deadline) - now), ttlMs),
        signal,
      )
      if (result.acquired) continue // the loop finds the new activation
      const after = this.#clock.monotonic()
      if (this.#guard.nodeId !== undefined && result.holder?.nodeId === this.#guard.nodeId) {
        // Our own lease, not yet given back (lost locally; the guard's release is in flight; or a
        // predecessor of this process with the same node id): it is not "locked", it is ours to wait
        // for, within the bound on a turn's wait. With pauses: the store answers at once, and a loop
        // of answered promises would hold the event loop (heartbeats, timers, aborts) the whole time.
        ownLease = true
        const left = ownDeadline - after
        if (left <= 0) throw this.#timeout(doId)
        const pause = Math.min(HANDOVER_POLL_MS, 2 ** ownTries++) * (0.5 + Math.random() / 2)
        await abortable(sleep(Math.min(left, pause)), signal)
        continue
      }
      // We joined an acquire another turn started with less time left than ours: try again.
      if (after < deadline) continue
      const { holder } = result
      throw new LockContendedError(
        doId,
        result.retryAfterMs,
        holder && { nodeId: holder.nodeId, fencingToken: holder.fencingToken },
      )
    }
  }

  /**
   * Ends every activation gracefully (queued turns run, pending writes are flushed, leases are
   * released) and refuses new turns with {@link ActivationEndedError} (`shutdown`). Resolves once all
   * have ended; waits for running turns, so bound it from outside if a handler may hang.
   */
  async shutdown(): Promise<void> {
    this.#closed = true
    await Promise.allSettled([...this.#acquiring.values()])
    await Promise.all([...this.#activations.values()].map((activation) => activation.shutdown()))
  }

  #acquire(doId: string, waitMs: number, ttlMs: number | undefined): Promise<Acquired> {
    let pending = this.#acquiring.get(doId)
    if (!pending) {
      pending = this.#activate(doId, waitMs, ttlMs).finally(() => this.#acquiring.delete(doId))
      this.#acquiring.set(doId, pending)
    }
    return pending
  }

  /** Takes the lease and creates the activation; the one place both happen. */
  async #activate(doId: string, waitMs: number, ttlMs = this.#options.ttlMs): Promise<Acquired> {
    // Not the caller's signal: the acquire is shared, and one caller leaving must not fail the others.
    const prefetch = this.#prefetch
    const acquire = (wait: number) =>
      this.#guard.acquire(doId, {
        waitMs: wait,
        ...(ttlMs === undefined ? {} : { ttlMs }),
        ...(prefetch > 0 ? { prefetch } : {}),
      })
    const ask = this.#options.requestHandover
    const start = this.#clock.monotonic()
    const deadline = start + waitMs
    // This node just handed the object over: give the node that asked a head start instead of taking
    // the object straight back (it polls every HANDOVER_POLL_MS, see below). Whatever this turn's
    // waitMs, even 0: the pause is this node's own doing (at most HANDOVER_GRACE_MS), not contention,
    // and without it a holder whose requests never wait takes the object back at its next request,
    // every time, and the node that asked is never served.
    const handedOver = this.#handedOver.get(doId)
    if (handedOver !== undefined) {
      this.#handedOver.delete(doId)
      const pause = Math.min(handedOver - start, HANDOVER_GRACE_MS)
      if (pause > 0) await sleep(pause)
    }
    // With hand-over, a first try alone: if another node holds the object, ask it to let go (once per
    // holder's token), then try again every HANDOVER_POLL_MS (jittered): the holder lets go at its next
    // flush or heartbeat, so the wait is short, and a new holder in between is asked in turn.
    let result = await acquire(ask ? 0 : waitMs)
    while (!result.acquired && ask && result.holder && result.holder.nodeId !== this.#guard.nodeId) {
      if (this.#asked.get(doId) !== result.holder.fencingToken) {
        this.#remember(this.#asked, doId, result.holder.fencingToken, 1000)
        await Promise.resolve()
          .then(() => ask(doId))
          .catch(ignore)
      }
      const left = deadline - this.#clock.monotonic()
      if (left <= 0) break
      await sleep(Math.min(left, HANDOVER_POLL_MS * (0.5 + Math.random())))
      result = await acquire(0)
    }
    if (!result.acquired) return result
    const { lock } = result
    this.#asked.delete(doId)
    const kept = this.#kept.get(doId)
    this.#kept.delete(doId)
    let activation: Activation<F>
    try {
      if (this.#closed) throw this.#shutdownError(doId)
      const flusher = await this.#createFlusher(lock, {
        requestHandover: () => void activation?.requestHandover(),
        // Tokens grow by one per acquire: token + 1 means nobody held the object in between.
        resume: kept && kept.fencingToken + 1 === lock.fencingToken ? kept.snapshot : undefined,
      })
      if (this.#closed) throw this.#shutdownError(doId)
      const { idleMs, maxQueued, maxWaitMs, retryAfterMs, clock, onEnd } = this.#options
      activation = new Activation({
        lock,
        guard: this.#guard,
        flusher,
        discard: () => flusher.discard(),
        idleMs,
        maxQueued,
        maxWaitMs,
        retryAfterMs,
        clock,
        onEnd: (reason, error) => {
          if (reason === 'handover') {
            this.#remember(this.#handedOver, doId, this.#clock.monotonic() + HANDOVER_GRACE_MS, 1000)
          }
          if (onEnd) onEnd(activation, reason, error)
        },
        onReleasing: () => {
          const snapshot = this.#maxKept > 0 ? flusher.snapshot?.() : undefined
          if (snapshot !== undefined) {
            this.#remember(this.#kept, doId, { fencingToken: lock.fencingToken, snapshot }, this.#maxKept)
          }
        },
      })
    } catch (error) {
      await Promise.resolve(this.#guard.release(lock)).catch(ignore)
      throw error
    }
    this.#activations.set(doId, activation)
    void activation.ended.then(() => {
      if (this.#activations.get(doId) === activation) this.#activations.delete(doId)
      this.#settling.set(doId, activation.settled)
      void activation.settled.then(() => {
        if (this.#settling.get(doId) === activation.settled) this.#settling.delete(doId)
      })
    })
    const { onStart } = this.#options
    if (onStart) activation.blockConcurrencyWhile(() => onStart(activation)).catch(ignore)
    return { acquired: true }
  }

  /** Sets `key` as the newest entry of `map`, dropping the oldest beyond `max`. */
  #remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
    map.delete(key)
    map.set(key, value)
    while (map.size > max) map.delete(map.keys().next().value!)
  }

  #shutdownError(doId: string): ActivationEndedError {
    return new ActivationEndedError('shutdown', { doId, retryAfterMs: this.#options.retryAfterMs ?? 1000 })
  }

  #timeout(doId: string): TurnTimeoutError {
    return new TurnTimeoutError(this.maxWaitMs, { doId, retryAfterMs: this.#options.retryAfterMs ?? 1000 })
  }
}

/**
 * `promise`, or `signal.reason` as soon as the caller goes away (the promise keeps running). Wrapped
 * the same way with or without a signal: the turns waiting for one shared acquire then resume, and
 * enqueue, in the order they arrived (invariant 9).
 */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal!.reason)
    if (signal?.aborted) return onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort))
  })
}

/** Whether `promise` settles within `ms` (rejects with `signal.reason` if the caller goes away first). */
function settlesWithin(promise: Promise<unknown>, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(false)
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  const settled = promise.then(
    () => true,
    () => true,
  )
  return abortable(Promise.race([settled, timeout]), signal).finally(() => clearTimeout(timer))
}
