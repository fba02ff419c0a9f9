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
  createFlusher: (lock: Lock) => F | PromiseLike<F>
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
    for (const name of ['onStart', 'onEnd'] as const) {
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
      const result = await abortable(
        this.#acquire(doId, Math.max(0, (ownLease ? ownDeadline : deadline) - now), ttlMs),
        signal,
      )
      if (result.acquired) continue // the loop finds the new activation
      const after = this.#clock.monotonic()
      if (this.#guard.nodeId !== undefined && result.holder?.nodeId === this.#guard.nodeId) {
        // Our own lease, not yet given back (lost locally; the guard's release is in flight): it is
        // not "locked", it is ours to wait for, within the bound on a turn's wait.
        ownLease = true
        if (after < ownDeadline) continue
        throw this.#timeout(doId)
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
    const result = await this.#guard.acquire(doId, {
      waitMs,
      ...(ttlMs === undefined ? {} : { ttlMs }),
      ...(prefetch > 0 ? { prefetch } : {}),
    })
    if (!result.acquired) return result
    const { lock } = result
    let activation: Activation<F>
    try {
      if (this.#closed) throw this.#shutdownError(doId)
      // Keeping the previous activation's cache when lock.fencingToken is its token + 1 (nobody held
      // the object in between, docs/design.md invariant 11) is the factory's call, not made here.
      const flusher = await this.#createFlusher(lock)
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
        onEnd: onEnd && ((reason, error) => onEnd(activation, reason, error)),
      })
    } catch (error) {
      await Promise.resolve(this.#guard.release(lock)).catch(ignore)
      throw error
    }
    this.#activations.set(doId, activation)
    void activation.ended.then(() => {
      if (this.#activations.get(doId) === activation) this.#activations.delete(doId)
    })
    const { onStart } = this.#options
    if (onStart) activation.blockConcurrencyWhile(() => onStart(activation)).catch(ignore)
    return { acquired: true }
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
