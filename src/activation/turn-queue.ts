/**
 * One turn at a time per object, in arrival order (docs/design.md invariant 9): the concurrency core
 * of an activation, kept separate so that it can be tested on its own.
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import { assertNonNegativeInteger, assertPositiveMs } from '../validate.js'
import { ActivationEndedError, QueueFullError, TurnTimeoutError } from './errors.js'

/** Options of a {@link TurnQueue}. */
export interface TurnQueueOptions {
  /** The object, named in the errors the queue raises. */
  doId?: string
  /**
   * Turns that may wait behind the running one; one more is refused at once with {@link QueueFullError}.
   * @default 1000
   */
  maxQueued?: number
  /**
   * How long a turn may wait for its start, ms; past it, it is dropped with {@link TurnTimeoutError}
   * and never runs.
   * @default 10_000
   */
  maxWaitMs?: number
  /**
   * The wait suggested by overflow and timeout errors (`Retry-After`), ms.
   * @default 1000
   */
  retryAfterMs?: number
  /** Called whenever the queue falls idle: nothing runs, nothing waits. */
  onIdle?: () => void
  /**
   * Called when a {@link TurnQueue.blockConcurrencyWhile} callback rejects. The queue has closed by
   * then (Durable Objects reset the object; its owner ends the activation).
   */
  onBlockFailed?: (error: unknown) => void
}

/** Options of one turn. */
export interface TurnOptions {
  /** The caller went away: a turn still waiting is dropped without running (rejects with `signal.reason`). */
  signal?: AbortSignal | undefined
}

/** A turn waiting for its start. */
interface Waiting {
  start(): void
  fail(error: unknown): void
}

/**
 * Runs turns one at a time, first come first served, with a bounded queue and a bounded wait.
 * A turn that throws fails only itself.
 *
 * @example
 * ```ts
 * const queue = new TurnQueue({ doId: 'room-1', maxQueued: 100 })
 * const answer = await queue.run(async () => handle(request), { signal: request.signal })
 * ```
 */
export class TurnQueue {
  /** The bound on waiting turns. */
  readonly maxQueued: number
  /** The bound on a turn's wait for its start, ms. */
  readonly maxWaitMs: number
  /** The wait suggested by overflow and timeout errors, ms. */
  readonly retryAfterMs: number
  readonly #doId: string | undefined
  readonly #onIdle: (() => void) | undefined
  readonly #onBlockFailed: ((error: unknown) => void) | undefined
  /** Insertion-ordered, and an aborted or timed-out turn leaves from the middle in O(1). */
  readonly #waiting = new Set<Waiting>()
  /** What keeps the next turn from starting: the running turn and unsettled blockConcurrencyWhile calls. */
  #holds = 0
  #closed: { error: unknown } | undefined
  #idleWaiters: Array<() => void> = []

  /** @param options - bounds and hooks; validated here, before any turn. */
  constructor(options: TurnQueueOptions = {}) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { maxQueued = 1000, maxWaitMs = 10_000, retryAfterMs = 1000, onIdle, onBlockFailed } = options
    assertNonNegativeInteger('maxQueued', maxQueued)
    assertPositiveMs('maxWaitMs', maxWaitMs)
    assertPositiveMs('retryAfterMs', retryAfterMs)
    for (const [name, hook] of [
      ['onIdle', onIdle],
      ['onBlockFailed', onBlockFailed],
    ] as const) {
      if (hook !== undefined && typeof hook !== 'function') throw new InvalidArgumentError(name, 'expected a function')
    }
    this.#doId = options.doId
    this.maxQueued = maxQueued
    this.maxWaitMs = maxWaitMs
    this.retryAfterMs = retryAfterMs
    this.#onIdle = onIdle
    this.#onBlockFailed = onBlockFailed
  }

  /** Turns waiting for their start (not counting the running one). */
  get queued(): number {
    return this.#waiting.size
  }

  /** Whether a turn or a `blockConcurrencyWhile` callback is running. */
  get busy(): boolean {
    return this.#holds > 0
  }

  /** Whether the queue refuses new turns ({@link close} was called). */
  get closed(): boolean {
    return this.#closed !== undefined
  }

  /**
   * Runs `turn` once every turn that arrived before it has settled (at once if the queue is idle:
   * then it starts synchronously, inside this call). Resolves or rejects as `turn` does.
   *
   * Rejects without running `turn`: with {@link QueueFullError} when `maxQueued` turns already wait,
   * with {@link TurnTimeoutError} when it waited `maxWaitMs`, with `signal.reason` when the caller
   * went away first, and with the error given to {@link close} once the queue is closed.
   */
  run<T>(turn: () => T | PromiseLike<T>, options: TurnOptions = {}): Promise<T> {
    if (typeof turn !== 'function') return Promise.reject(new InvalidArgumentError('turn', 'expected a function'))
    const { signal } = options
    if (this.#closed) return Promise.reject(this.#closed.error)
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (this.#holds === 0 && this.#waiting.size === 0) return this.#start(turn)
    if (this.#waiting.size >= this.maxQueued) {
      return Promise.reject(new QueueFullError(this.maxQueued, { doId: this.#doId, retryAfterMs: this.retryAfterMs }))
    }
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#waiting.delete(entry)
      }
      const entry: Waiting = {
        start: () => {
          leave()
          this.#start(turn).then(resolve, reject)
        },
        fail: (error) => {
          leave()
          reject(error)
        },
      }
      const onAbort = () => entry.fail(signal!.reason)
      // One timer per turn, not one for the queue: in workerd a timer belongs to the request that set
      // it, and a cancelled request must not take the other turns' deadlines along.
      const timer = setTimeout(
        () => entry.fail(new TurnTimeoutError(this.maxWaitMs, { doId: this.#doId, retryAfterMs: this.retryAfterMs })),
        this.maxWaitMs,
      )
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.add(entry)
    })
  }

  /**
   * As Durable Objects have it: runs `fn` at once, and no other turn starts until it settles (even if
   * the turn that called it ends first). Called from the running turn, `fn` runs within that turn;
   * called while the queue is idle (an `onStart`), it holds back every turn that arrives meanwhile.
   *
   * If `fn` rejects, Durable Objects reset the object: here the queue closes, the turns waiting are
   * refused with {@link ActivationEndedError} (`reset`), `onBlockFailed` is called (the activation
   * then ends) and the returned promise rejects with `fn`'s error.
   */
  blockConcurrencyWhile<T>(fn: () => T | PromiseLike<T>): Promise<T> {
    if (typeof fn !== 'function') return Promise.reject(new InvalidArgumentError('fn', 'expected a function'))
    return this.#hold(fn, (error) => {
      this.close(
        new ActivationEndedError('reset', { doId: this.#doId, retryAfterMs: this.retryAfterMs, cause: error }),
        {
          dropQueued: true,
        },
      )
      if (this.#onBlockFailed) quietly(() => this.#onBlockFailed!(error))
    })
  }

  /**
   * Refuses new turns from now on (they reject with `error`). With `dropQueued`, the turns still
   * waiting are rejected with `error` too, and never run; without it, they still run in order (a
   * drain). A running turn is never interrupted. The first `close` decides what new turns get.
   */
  close(error: unknown, options: { dropQueued?: boolean } = {}): void {
    this.#closed ??= { error }
    if (options.dropQueued) for (const entry of [...this.#waiting]) entry.fail(error)
    if (this.#holds === 0 && this.#waiting.size === 0) this.#wakeIdle()
  }

  /** Resolves once nothing runs and nothing waits (at once if so already). */
  whenIdle(): Promise<void> {
    if (this.#holds === 0 && this.#waiting.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  #start<T>(turn: () => T | PromiseLike<T>): Promise<T> {
    return this.#hold(turn, undefined)
  }

  /** Runs `fn` holding the queue; the hold ends (and the next turn may start) when it settles. */
  #hold<T>(fn: () => T | PromiseLike<T>, onReject: ((error: unknown) => void) | undefined): Promise<T> {
    this.#holds++
    let result: Promise<T>
    try {
      result = Promise.resolve(fn())
    } catch (error) {
      result = Promise.reject(error)
    }
    // Registered before the caller's handlers: the next turn starts before the caller hears back.
    result.then(
      () => this.#release(),
      (error: unknown) => {
        onReject?.(error)
        this.#release()
      },
    )
    return result
  }

  #release(): void {
    this.#holds--
    if (this.#holds > 0) return
    const [next] = this.#waiting
    if (next) return next.start()
    this.#wakeIdle()
    if (this.#onIdle) quietly(this.#onIdle)
  }

  #wakeIdle(): void {
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const wake of waiters) wake()
  }
}

/** Runs a hook; what it throws is swallowed (a hook must not stop the queue). */
function quietly(hook: () => void): void {
  try {
    hook()
  } catch {
    // ignored
  }
}
