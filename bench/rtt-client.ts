/**
 * An artificial network for benchmarks: wraps a libSQL client so that every `execute`/`batch` call
 * waits half the round trip before it reaches the database and half after, like a remote primary.
 *
 * Node timers fire up to ~1 ms late, which would be a 20% error on a 5 ms RTT, so waits end on a
 * setImmediate spin over their last millisecond. Every wait has the same length, so deadlines come due
 * in the order they were set: one FIFO and one pending timer (or immediate) serve all callers.
 */
import type { LibSQLClientLike } from '../src/index.js'

class FifoDelay {
  readonly #ms: number
  readonly #queue: Array<{ at: number; resolve: () => void }> = []
  #armed = false

  constructor(ms: number) {
    this.#ms = ms
  }

  wait(): Promise<void> {
    if (this.#ms <= 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      this.#queue.push({ at: performance.now() + this.#ms, resolve })
      this.#arm()
    })
  }

  #arm(): void {
    if (this.#armed || this.#queue.length === 0) return
    this.#armed = true
    const remaining = this.#queue[0]!.at - performance.now()
    const tick = () => {
      this.#armed = false
      const now = performance.now()
      while (this.#queue.length > 0 && this.#queue[0]!.at <= now) this.#queue.shift()!.resolve()
      this.#arm()
    }
    if (remaining > 1.5) setTimeout(tick, remaining - 1.2)
    else setImmediate(tick)
  }
}

export interface RttClient<C extends LibSQLClientLike> {
  client: C
  /** execute/batch calls made through the wrapper (requests that crossed the "network"). */
  requests: () => number
}

/** Wraps `client`; with `rttMs` 0 it only counts requests. `protocol` is passed through unchanged. */
export function rttClient<C extends LibSQLClientLike>(client: C, rttMs: number): RttClient<C> {
  const half = new FifoDelay(rttMs / 2)
  let count = 0
  const wrapped = new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'execute' || prop === 'batch') {
        return async (...args: unknown[]) => {
          count++
          await half.wait()
          const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args)
          await half.wait()
          return result
        }
      }
      return value.bind(target)
    },
  })
  return { client: wrapped, requests: () => count }
}

/**
 * How exact the artificial network is: 60 empty round trips through the same delay, no database.
 * Resolves their durations, ms, sorted.
 */
export async function probeRtt(rttMs: number): Promise<number[]> {
  const empty: LibSQLClientLike = {
    execute: async (_statement) => ({ rows: [], rowsAffected: 0 }),
    batch: async (_statements, _mode) => [],
  }
  const probe = rttClient(empty, rttMs)
  const trips: number[] = []
  for (let i = 0; i < 60; i++) {
    const t0 = performance.now()
    await probe.client.execute({ sql: '', args: [] })
    trips.push(performance.now() - t0)
  }
  return trips.sort((a, b) => a - b)
}
