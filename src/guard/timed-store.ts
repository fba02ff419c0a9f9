/**
 * The guard's side of its store: every request bounded by `requestTimeoutMs`. A store call can stay
 * pending for good (in workerd, the I/O promise of a cancelled request may never settle); unbounded,
 * it would hold an acquire past its `waitMs`, freeze a lease's heartbeats, and keep `shutdown()`
 * waiting forever.
 */
import { StoreUnavailableError } from '../errors.js'
import type {
  AcquireRequest,
  HandoffRequest,
  LockInfo,
  LockRecord,
  LockRef,
  LockStore,
  RefreshRequest,
  StoreAcquireResult,
} from '../store/lock-store.js'
import { setLongTimeout } from './timers.js'

/** A {@link LockStore}'s lease operations, each failing with a retryable error when unanswered in time. */
export class TimedStore {
  readonly #store: LockStore
  readonly #timeoutMs: number
  readonly #onLateGrant: (lease: LockRecord) => void

  /**
   * @param timeoutMs - how long a request may go unanswered before it counts as failed
   * @param onLateGrant - receives a lease granted by an acquire (or handoff) answered after its
   *   timeout: nobody holds it locally, so it must be given back
   */
  constructor(store: LockStore, timeoutMs: number, onLateGrant: (lease: LockRecord) => void) {
    this.#store = store
    this.#timeoutMs = timeoutMs
    this.#onLateGrant = onLateGrant
  }

  /** `store.acquire`, bounded; a lease granted after the timeout goes to `onLateGrant`. */
  acquire(request: AcquireRequest): Promise<StoreAcquireResult> {
    return this.#bounded(this.#store.acquire(request), `acquire of "${request.doId}"`, (late) => {
      if (late.acquired) this.#onLateGrant(late.lock)
    })
  }

  /** `store.refresh`, bounded. A late answer is ignored: the lease's local validity never counted on it. */
  refresh(request: RefreshRequest): Promise<LockRecord | null> {
    return this.#bounded(this.#store.refresh(request), `refresh of "${request.doId}"`)
  }

  /** `store.release`, bounded. A late answer is ignored: the lease runs out by its TTL at worst. */
  release(ref: LockRef): Promise<boolean> {
    return this.#bounded(this.#store.release(ref), `release of "${ref.doId}"`)
  }

  /** Whether the store can pass a lease to its next holder in one request (`LockStore.handoff`). */
  get canHandoff(): boolean {
    return typeof this.#store.handoff === 'function'
  }

  /**
   * `store.handoff`, bounded; a lease handed over after the timeout goes to `onLateGrant` (nobody holds
   * it locally: the waiter it was for asked the store itself meanwhile).
   */
  handoff(request: HandoffRequest): Promise<LockRecord | null> {
    const store = this.#store
    const sent = typeof store.handoff === 'function' ? store.handoff(request) : Promise.resolve(null)
    return this.#bounded(sent, `handoff of "${request.doId}"`, (late) => {
      if (late) this.#onLateGrant(late)
    })
  }

  /** `store.get`, bounded. */
  get(doId: string): Promise<LockInfo | null> {
    return this.#bounded(this.#store.get(doId), `read of "${doId}"`)
  }

  #bounded<T>(request: Promise<T>, what: string, onLate?: (answer: T) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timedOut = false
      const timer = setLongTimeout(() => {
        timedOut = true
        const message = `${what}: the store did not answer within ${this.#timeoutMs} ms (requestTimeoutMs)`
        reject(new StoreUnavailableError(message, { retryable: true }))
      }, this.#timeoutMs)
      Promise.resolve(request).then(
        (answer) => {
          if (!timedOut) {
            timer.cancel()
            resolve(answer)
          } else onLate?.(answer)
        },
        (error: unknown) => {
          timer.cancel()
          if (!timedOut) reject(error)
        },
      )
    })
  }
}
