/**
 * How late an interval timer runs: the measure of an event loop held by synchronous work (a blocking
 * busy wait, a long native call) that the local-engine tests and their child processes take.
 */
export interface TimerLateness {
  /** The worst lateness so far, ms: how much longer than `periodMs` one interval took. */
  readonly worstMs: number
  /** Stops the timer and returns the worst lateness seen. */
  stop(): number
}

/** Starts a `periodMs` interval timer that records how late each tick runs. */
export function watchTimerLateness(periodMs: number): TimerLateness {
  let worstMs = 0
  let last = performance.now()
  const timer = setInterval(() => {
    const now = performance.now()
    worstMs = Math.max(worstMs, now - last - periodMs)
    last = now
  }, periodMs)
  return {
    get worstMs() {
      return worstMs
    },
    stop() {
      clearInterval(timer)
      return worstMs
    },
  }
}
