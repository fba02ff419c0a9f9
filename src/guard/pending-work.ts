import { setLongTimeout, type LongTimeout } from './timers.js'

/** Store requests still running (acquires, releases), so that a graceful shutdown can wait for them. */
export class PendingWork {
  readonly #pending = new Set<Promise<unknown>>()

  /** Adds `promise` until it settles; returns it unchanged. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#pending.add(promise)
    // then(f, f), not finally: a rejection is the caller's to handle, not an unhandled one here.
    const forget = () => void this.#pending.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  /**
   * Resolves once nothing is pending, including work started while waiting; never rejects. With
   * `timeoutMs`, resolves after that long at the latest. Resolves `true` if it stopped waiting because
   * the time was up (the work goes on in the background).
   */
  async settled(timeoutMs?: number): Promise<boolean> {
    const drained = (async () => {
      // Settling an in-flight acquire starts its release: wait until nothing new is pending.
      while (this.#pending.size > 0) await Promise.allSettled([...this.#pending])
      return false
    })()
    if (timeoutMs === undefined) return drained
    let timer: LongTimeout | undefined
    const timeUp = new Promise<true>((resolve) => (timer = setLongTimeout(() => resolve(true), timeoutMs)))
    try {
      return await Promise.race([drained, timeUp])
    } finally {
      timer?.cancel()
    }
  }
}
