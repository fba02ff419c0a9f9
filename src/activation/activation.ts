/**
 * An activation: one object served by this node while it holds the object's lease. It owns the
 * lease, the turn queue, the output gate and the idle timer; the storage is injected (a
 * {@link Flusher} and a `discard` hook), so this file knows nothing of how state is stored.
 *
 * @module
 */
import { systemClock, type Clock } from '../clock.js'
import { InvalidArgumentError, LockLostError, StaleFencingTokenError } from '../errors.js'
import type { ConsistencyGuard, Lock } from '../guard/types.js'
import { assertPositiveMs } from '../validate.js'
import { ActivationEndedError, type ActivationEndReason } from './errors.js'
import { OutputGate, type Flusher } from './output-gate.js'
import { TurnQueue, type TurnOptions, type TurnQueueOptions } from './turn-queue.js'

/** `active`: takes turns. `draining`: takes none, finishes what it must, then releases. `ended`: released. */
export type ActivationState = 'active' | 'draining' | 'ended'

/** Options of an {@link Activation}. */
export interface ActivationOptions<F extends Flusher = Flusher> extends Pick<
  TurnQueueOptions,
  'maxQueued' | 'maxWaitMs' | 'retryAfterMs'
> {
  /** The object's lease; the activation releases it when it ends. */
  lock: Lock
  /** The guard that handed out `lock` (only `release` is used). */
  guard: Pick<ConsistencyGuard, 'release'>
  /** The object's storage, as the output gate drives it. */
  flusher: F
  /**
   * Drops the cache and every write no flush has taken yet; called once, when the lease is lost, a
   * flush failed, or a `blockConcurrencyWhile` callback threw. Reads and writes after it must fail
   * (a turn still running may try). A flush already in flight is left to settle.
   */
  discard: () => void
  /**
   * How long the activation stays without a turn before it ends (flush, release), ms.
   * @default 10_000
   */
  idleMs?: number
  /** The guard's clock: `lock.validUntil` is in its `monotonic()` units. @default systemClock */
  clock?: Clock
  /** Called once the activation has ended (lease released or lost), with why; hook errors are swallowed. */
  onEnd?: (reason: ActivationEndReason, error: unknown) => void
  /**
   * Called once at a graceful end (idle, hand-over, shutdown), after every write committed and just
   * before the lease is released: the last moment the storage's cache is known good (the release fires
   * the lease's signal). Hook errors are swallowed.
   */
  onReleasing?: () => void
}

const ignore = () => {}

/**
 * One object served by this node under one lease (docs/design.md invariants 9-12): turns run one at
 * a time in arrival order; results are released by the output gate once their writes (and every
 * write before them) committed.
 *
 * It ends gracefully on idle, {@link requestHandover} and {@link shutdown} (queued turns still run,
 * pending writes are flushed, then the lease is released, off every response path), and abruptly when
 * the lease is lost, a flush fails or a `blockConcurrencyWhile` callback throws: queued turns then
 * fail with the cause (a lost lease: `LockLostError`, 503 `lease_lost`), unflushed writes and the
 * cache are dropped (`discard`), and no turn whose writes were dropped is told it succeeded.
 *
 * @example
 * ```ts
 * const activation = new Activation({ lock, guard, flusher: storage, discard: () => storage.discard() })
 * const response = await activation.run(() => handler(request, storage), { signal: request.signal })
 * ```
 */
export class Activation<F extends Flusher = Flusher> {
  /** The object. */
  readonly doId: string
  /** The lease it runs under. */
  readonly lock: Lock
  /** The object's storage, as given. */
  readonly flusher: F
  /** Idle time before it ends, ms. */
  readonly idleMs: number
  /** Resolves once the activation has ended: lease released (or lost) and no flush in flight. */
  readonly ended: Promise<void>
  /**
   * Resolves once it has ended and no turn of it runs any more. After an abrupt end (a lost lease) the
   * running turn is not waited for: its result is refused, but its handler may run on; until it
   * returns, the object's next activation on this node must not start a turn beside it (invariant 9:
   * one turn at a time, and one `this.storage` for the instance's one running turn).
   */
  readonly settled: Promise<void>
  readonly #guard: Pick<ConsistencyGuard, 'release'>
  readonly #discard: () => void
  readonly #clock: Clock
  readonly #onEnd: ((reason: ActivationEndReason, error: unknown) => void) | undefined
  readonly #onReleasing: (() => void) | undefined
  readonly #onHandover: () => void
  readonly #queue: TurnQueue
  readonly #gate: OutputGate
  readonly #onLeaseEnd: () => void
  #state: ActivationState = 'active'
  #endReason: ActivationEndReason | undefined
  #endError: unknown
  /** The end is abrupt (lease lost, flush failed, reset): queued turns dropped, writes discarded. */
  #abrupt = false
  #wakeAbrupt: () => void = ignore
  readonly #abrupted = new Promise<void>((resolve) => (this.#wakeAbrupt = resolve))
  #markEnded: () => void = ignore
  #finishing: Promise<void> | undefined
  #idleTimer: ReturnType<typeof setTimeout> | undefined

  /** @param options - the lease, the guard, the storage hooks and the bounds; validated here. */
  constructor(options: ActivationOptions<F>) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { lock, guard, flusher, discard, idleMs = 10_000, clock = systemClock, onEnd } = options
    if (lock === null || typeof lock !== 'object' || typeof lock.doId !== 'string' || !lock.signal) {
      throw new InvalidArgumentError('lock', 'expected a Lock returned by acquire')
    }
    if (typeof guard?.release !== 'function') throw new InvalidArgumentError('guard', 'expected a guard with release()')
    if (typeof discard !== 'function') throw new InvalidArgumentError('discard', 'expected a function')
    assertPositiveMs('idleMs', idleMs)
    if (typeof clock?.monotonic !== 'function') throw new InvalidArgumentError('clock', 'expected a Clock')
    if (onEnd !== undefined && typeof onEnd !== 'function')
      throw new InvalidArgumentError('onEnd', 'expected a function')
    const { onReleasing } = options
    if (onReleasing !== undefined && typeof onReleasing !== 'function')
      throw new InvalidArgumentError('onReleasing', 'expected a function')
    this.doId = lock.doId
    this.lock = lock
    this.flusher = flusher
    this.idleMs = idleMs
    this.#guard = guard
    this.#discard = discard
    this.#clock = clock
    this.#onEnd = onEnd
    this.#onReleasing = onReleasing
    this.#gate = new OutputGate({ flusher, onFailure: (error) => this.#end(endReasonOf(error), error, true) })
    this.#queue = new TurnQueue({
      doId: lock.doId,
      maxQueued: options.maxQueued,
      maxWaitMs: options.maxWaitMs,
      retryAfterMs: options.retryAfterMs,
      onIdle: () => this.#armIdle(),
      onBlockFailed: (error) =>
        this.#end(
          'reset',
          new ActivationEndedError('reset', { doId: this.doId, retryAfterMs: this.#queue.retryAfterMs, cause: error }),
          true,
        ),
    })
    this.ended = new Promise<void>((resolve) => (this.#markEnded = resolve))
    this.settled = this.ended.then(() => this.#queue.whenIdle())
    this.#onLeaseEnd = () => this.#end('lease_lost', leaseLost(lock, lock.signal.reason), true)
    lock.signal.addEventListener('abort', this.#onLeaseEnd, { once: true })
    // Another node asked for the object, as a heartbeat's answer said (a flush's answer comes through
    // the storage's hook): finish the queue and let go (docs/design.md invariant 14).
    this.#onHandover = () => void this.requestHandover()
    const handover: AbortSignal | undefined = lock.handover
    handover?.addEventListener('abort', this.#onHandover, { once: true })
    if (lock.signal.aborted) this.#onLeaseEnd()
    else if (handover?.aborted) this.#onHandover()
    else this.#armIdle()
  }

  /** Where it is in its life. */
  get state(): ActivationState {
    return this.#state
  }

  /** Why it ended (or is ending); `undefined` while active. */
  get endReason(): ActivationEndReason | undefined {
    return this.#endReason
  }

  /** Turns waiting for their start. */
  get queued(): number {
    return this.#queue.queued
  }

  /** Flushes started so far. */
  get flushes(): number {
    return this.#gate.flushes
  }

  /**
   * Runs `turn` in its turn (FIFO, one at a time) and resolves with its result once every write made
   * before the turn ended has committed (the output gate); a turn that throws rejects with its error,
   * held the same way. Rejects with the flush's error if that flush failed, with the turn queue's
   * errors (`QueueFullError`, `TurnTimeoutError`, `signal.reason`), with {@link ActivationEndedError}
   * once the activation is no longer active, and with `LockLostError` when the lease was lost first.
   */
  run<T>(turn: () => T | PromiseLike<T>, options?: TurnOptions): Promise<T> {
    if (this.#state !== 'active') return Promise.reject(this.#refusal())
    clearTimeout(this.#idleTimer)
    return this.#queue.run(() => this.#turn(turn), options).then((gated) => gated.released)
  }

  /**
   * `blockConcurrencyWhile` as Durable Objects have it ({@link TurnQueue.blockConcurrencyWhile}): no
   * other turn starts until `fn` settles. If `fn` throws, the activation ends (`reset`): Durable
   * Objects reset the object; here its queued turns fail, unflushed writes are dropped and the lease
   * is released, so the next request starts a fresh activation.
   */
  blockConcurrencyWhile<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    if (this.#state === 'ended') return Promise.reject(this.#refusal())
    return this.#queue.blockConcurrencyWhile(fn)
  }

  /**
   * Another node asked for the object: take no new turns, finish the queued ones, flush, release.
   * Resolves once ended.
   */
  requestHandover(): Promise<void> {
    this.#end('handover', undefined, false)
    return this.ended
  }

  /** The node is shutting down: as {@link requestHandover}. Resolves once ended. */
  shutdown(): Promise<void> {
    this.#end('shutdown', undefined, false)
    return this.ended
  }

  /** One turn; boxes the gated result so that the queue moves on without waiting for the flush. */
  async #turn<T>(turn: () => T | PromiseLike<T>): Promise<{ released: Promise<T> }> {
    // docs/design.md invariant 11: the cache is the truth only while the lease is locally valid. Past
    // validUntil the guard's timer may simply not have fired yet (a busy event loop).
    if (!this.#abrupt && this.#clock.monotonic() >= this.lock.validUntil) {
      const error = new LockLostError(
        this.doId,
        this.lock.fencingToken,
        'local validity ran out before the turn started',
      )
      this.#end('lease_lost', error, true)
    }
    if (this.#abrupt) throw this.#endError
    let outcome: PromiseSettledResult<T>
    try {
      outcome = { status: 'fulfilled', value: await turn() }
    } catch (reason) {
      outcome = { status: 'rejected', reason }
    }
    // Called before this turn settles in the queue, so a flush it needs starts before the next turn.
    return { released: this.#gate.hold(outcome) }
  }

  #armIdle(): void {
    if (this.#state !== 'active') return
    clearTimeout(this.#idleTimer)
    this.#idleTimer = setTimeout(() => {
      if (this.#queue.busy || this.#queue.queued > 0) return
      // Idle counts from when the last turn's answer went out, not from when its handler returned:
      // with a flush still in flight, a short idleMs would end the activation after every write.
      if (this.#gate.flushing) {
        void this.#gate.settled().then(() => this.#armIdle())
        return
      }
      this.#end('idle', undefined, false)
    }, this.idleMs)
  }

  #end(reason: ActivationEndReason, error: unknown, abrupt: boolean): void {
    if (this.#state === 'ended') return
    if (abrupt) {
      if (this.#abrupt) return
      this.#abrupt = true
      this.#endReason = reason
      this.#endError = error
      this.#gate.fail(error) // no flush is sent after this one: the writes left are dropped, not sent
      this.#queue.close(error, { dropQueued: true })
      try {
        this.#discard()
      } catch {
        // the storage could not tidy up; it is unreachable from here on anyway
      }
      this.#wakeAbrupt()
    } else {
      if (this.#state !== 'active') return
      this.#endReason = reason
      this.#queue.close(new ActivationEndedError(reason, { doId: this.doId, retryAfterMs: this.#queue.retryAfterMs }))
    }
    this.#state = 'draining'
    clearTimeout(this.#idleTimer)
    this.#finishing ??= this.#finish()
  }

  async #finish(): Promise<void> {
    // A drain lets the queued turns run; an abrupt end dropped them and does not wait for a running
    // turn (the gate fails its result).
    await Promise.race([this.#queue.whenIdle(), this.#abrupted])
    // A failure here makes the end abrupt (the gate's onFailure); nothing to do but release.
    if (!this.#abrupt) await this.#gate.whenDurable().catch(ignore)
    // The lease stays held while a flush is in flight: releasing it would fence off writes that
    // may be about to commit (and whose turns would then be told they failed).
    await this.#gate.settled()
    this.lock.signal.removeEventListener('abort', this.#onLeaseEnd)
    this.lock.handover?.removeEventListener('abort', this.#onHandover)
    if (!this.#abrupt && !this.lock.signal.aborted) {
      try {
        this.#onReleasing?.()
      } catch {
        // a hook must not keep the lease from being released
      }
    }
    // Every result this activation could release has been released: the release is off their path.
    await Promise.resolve(this.#guard.release(this.lock)).catch(ignore)
    this.#state = 'ended'
    this.#markEnded()
    try {
      this.#onEnd?.(this.#endReason!, this.#endError)
    } catch {
      // a reporting hook must not change the activation's end
    }
  }

  #refusal(): unknown {
    if (this.#abrupt) return this.#endError
    return new ActivationEndedError(this.#endReason ?? 'shutdown', {
      doId: this.doId,
      retryAfterMs: this.#queue.retryAfterMs,
    })
  }
}

/** The error queued turns get when the lease's signal fired (its reason may be a `ShutdownError`). */
function leaseLost(lock: Lock, reason: unknown): LockLostError {
  if (reason instanceof LockLostError) return reason
  const why = reason instanceof Error ? reason.message : 'the lease ended'
  return new LockLostError(lock.doId, lock.fencingToken, why, { cause: reason })
}

function endReasonOf(flushError: unknown): ActivationEndReason {
  return flushError instanceof LockLostError || flushError instanceof StaleFencingTokenError
    ? 'lease_lost'
    : 'flush_failed'
}
