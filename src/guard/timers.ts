/**
 * Timers the guard sleeps on. A guard is shared by every request of a workerd isolate, so waking its
 * sleepers on shutdown uses plain callbacks, not an AbortController (workerd binds a signal to the
 * request or Durable Object that created it).
 */
import { ShutdownError } from '../errors.js'

/** The longest delay `setTimeout` honours: longer ones (2^31 ms and up) fire at once, in Node and browsers. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1

/** A timer from {@link setLongTimeout}. */
export interface LongTimeout {
  /** Stops the timer; the callback will not run. Idempotent. */
  cancel(): void
}

/**
 * `setTimeout` for any delay: one longer than {@link MAX_TIMER_DELAY_MS} is chained from shorter
 * timers instead of overflowing into an immediate callback (a 30-day shutdown deadline would give up
 * after 1 ms, a huge backoff would poll the store every millisecond). Negative and NaN delays mean 0.
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimeout {
  let remaining = delayMs > 0 ? delayMs : 0
  let handle: ReturnType<typeof setTimeout> | undefined
  const arm = () => {
    const step = Math.min(remaining, MAX_TIMER_DELAY_MS)
    remaining -= step
    handle = setTimeout(() => (remaining > 0 ? arm() : callback()), step)
  }
  arm()
  return { cancel: () => clearTimeout(handle) }
}

/** Sleeps that a shutdown can cut short. */
export class Sleepers {
  readonly #wakers = new Set<(reason: unknown) => void>()
  #closed = false

  /**
   * Resolves after `ms`; rejects early with `signal.reason` when the signal fires, and with a
   * `ShutdownError` on {@link wakeAll} (at once if that already happened).
   */
  sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        timer.cancel()
        this.#wakers.delete(stop)
        signal?.removeEventListener('abort', onAbort)
      }
      const stop = (reason: unknown) => {
        done()
        reject(reason)
      }
      const onAbort = () => stop(signal!.reason)
      const timer = setLongTimeout(() => {
        done()
        resolve()
      }, ms)
      if (this.#closed) return stop(new ShutdownError())
      if (signal?.aborted) return stop(signal.reason)
      this.#wakers.add(stop)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Wakes every sleeper with a `ShutdownError`; later sleeps reject at once. */
  wakeAll(): void {
    this.#closed = true
    for (const wake of [...this.#wakers]) wake(new ShutdownError())
  }
}
