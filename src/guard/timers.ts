/**
 * Timers the guard sleeps on. A guard is shared by every request of a workerd isolate, so waking its
 * sleepers on shutdown uses plain callbacks, not an AbortController (workerd binds a signal to the
 * request or Durable Object that created it).
 */
import { ShutdownError } from '../errors.js'

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
        clearTimeout(timer)
        this.#wakers.delete(stop)
        signal?.removeEventListener('abort', onAbort)
      }
      const stop = (reason: unknown) => {
        done()
        reject(reason)
      }
      const onAbort = () => stop(signal!.reason)
      const timer = setTimeout(
        () => {
          done()
          resolve()
        },
        Math.max(0, ms),
      )
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
