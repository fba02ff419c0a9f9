/**
 * The output gate with group-committed flushes (docs/design.md invariant 12): a turn's result is
 * released only once every write made before the turn ended has committed, and one flush carries the
 * writes of every turn that ended while the previous flush was in flight.
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'

/**
 * What the gate drives: the object's storage (`ObjectStorage`), seen from its write buffer.
 *
 * Contract:
 * - `flush()` takes every write buffered so far **synchronously, inside the call** (the snapshot),
 *   and sends them in one fenced batch; writes made after the call go to the next flush. It resolves
 *   once that batch committed and rejects (nothing of it written) when it did not: a
 *   `LockLostError` / `StaleFencingTokenError` when the lease no longer holds, a
 *   `StoreUnavailableError` when the store could not answer.
 * - While a flush is in flight, reads still see its writes (double buffering: the snapshot stays
 *   readable until it committed, then it is the committed state).
 * - `hasPendingWrites()` says whether writes are buffered that no flush has taken yet. A turn that
 *   ends with none pending costs no flush: warm reads take 0 round trips (invariant 13).
 */
export interface Flusher {
  /** Sends every write buffered so far in one fenced batch; resolves (with anything) once it committed. */
  flush(): Promise<unknown>
  /** Whether writes are buffered that no `flush()` has taken yet. */
  hasPendingWrites(): boolean
}

/** Options of an {@link OutputGate}. */
export interface OutputGateOptions {
  /** The storage whose writes the gate flushes. */
  flusher: Flusher
  /**
   * Called once, with the error, when a flush fails: the activation must end (its cache is not known
   * to match the store). Not called for {@link OutputGate.fail}.
   */
  onFailure?: (error: unknown) => void
}

interface Deferred {
  promise: Promise<void>
  resolve(value: Promise<void>): void
  reject(error: unknown): void
}

const ignore = () => {}

/**
 * Holds turn results until the writes they may depend on are durable, and group-commits flushes:
 * at most one flush in flight; turns that end meanwhile join the next one, sent when it commits.
 *
 * If a flush fails, the turns it carried and every turn held after them reject with its error (they
 * may have read its writes), no further flush is sent, and `onFailure` is called.
 *
 * @example
 * ```ts
 * const gate = new OutputGate({ flusher: storage, onFailure: (e) => activation.end(e) })
 * const outcome = await settle(handler()) // the turn ends; the queue moves on
 * return gate.hold(outcome) // released once its writes committed
 * ```
 */
export class OutputGate {
  readonly #flusher: Flusher
  readonly #onFailure: ((error: unknown) => void) | undefined
  /** The flush in flight: settles after the gate's own bookkeeping for it. */
  #inFlight: Promise<void> | undefined
  /** The turns waiting for the flush after the one in flight (only while one is in flight). */
  #next: Deferred | undefined
  #failure: { error: unknown } | undefined
  #flushes = 0

  /** @param options - the flusher and the failure hook. */
  constructor(options: OutputGateOptions) {
    if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
    const { flusher, onFailure } = options
    if (typeof flusher?.flush !== 'function' || typeof flusher.hasPendingWrites !== 'function') {
      throw new InvalidArgumentError('flusher', 'expected a Flusher with flush() and hasPendingWrites()')
    }
    if (onFailure !== undefined && typeof onFailure !== 'function') {
      throw new InvalidArgumentError('onFailure', 'expected a function')
    }
    this.#flusher = flusher
    this.#onFailure = onFailure
  }

  /** Flushes started so far. */
  get flushes(): number {
    return this.#flushes
  }

  /** Whether a flush is in flight. */
  get flushing(): boolean {
    return this.#inFlight !== undefined
  }

  /** The error that stopped the gate (a failed flush, or {@link fail}), if any. */
  get failure(): { error: unknown } | undefined {
    return this.#failure
  }

  /**
   * Call when a turn ends, with how it ended: resolves with its value (or rejects with its error)
   * once every write made before this call has committed; rejects with the flush's error if one of
   * those writes did not. Starts a flush if writes are pending and none is in flight.
   */
  hold<T>(outcome: PromiseSettledResult<T>): Promise<T> {
    const released = this.#barrier().then(() => {
      if (outcome.status === 'rejected') throw outcome.reason
      return outcome.value
    })
    released.catch(ignore) // the caller may look later; an early rejection is not unhandled
    return released
  }

  /** Resolves once every write made before this call has committed (a flush is started if needed). */
  whenDurable(): Promise<void> {
    return this.hold({ status: 'fulfilled', value: undefined })
  }

  /** Resolves once no flush is in flight, however the last one ended. */
  async settled(): Promise<void> {
    while (this.#inFlight) await this.#inFlight.then(ignore, ignore)
  }

  /**
   * Stops the gate (the lease was lost): no further flush is sent; turns waiting for a flush not yet
   * sent, and every later {@link hold}, reject with `error`. A flush already in flight still settles,
   * and the turns it carried get its outcome: if it committed, their writes are durable (the fence
   * held) and they are released. Idempotent; the first error stays.
   */
  fail(error: unknown): void {
    if (this.#failure) return
    this.#failure = { error }
    const next = this.#next
    this.#next = undefined
    next?.reject(error)
  }

  #barrier(): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure.error)
    if (this.#flusher.hasPendingWrites()) {
      if (!this.#inFlight) return this.#startFlush()
      return (this.#next ??= deferred()).promise
    }
    // Nothing of its own to flush, but it may have read writes not yet durable: wait for those.
    return this.#next?.promise ?? this.#inFlight ?? Promise.resolve()
  }

  #startFlush(): Promise<void> {
    this.#flushes++
    let flushing: Promise<void>
    try {
      flushing = Promise.resolve(this.#flusher.flush()).then(() => undefined)
    } catch (error) {
      flushing = Promise.reject(error)
    }
    const done: Promise<void> = flushing.then(
      () => {
        this.#inFlight = undefined
        const next = this.#next
        this.#next = undefined
        // The waiters of the next flush hear back when it commits; it carries every write made so far.
        if (next && !this.#failure) next.resolve(this.#startFlush())
      },
      (error: unknown) => {
        this.#inFlight = undefined
        const first = !this.#failure
        this.fail(error)
        if (first && this.#onFailure) {
          try {
            this.#onFailure(error)
          } catch {
            // a hook must not change what the turns are told
          }
        }
        throw error
      },
    )
    done.catch(ignore)
    this.#inFlight = done
    return done
  }
}

function deferred(): Deferred {
  let resolve!: Deferred['resolve']
  let reject!: Deferred['reject']
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  promise.catch(ignore)
  return { promise, resolve, reject }
}
