/**
 * The clock a chaos node hands to the library through its Clock seam: wall time shifted by an offset
 * (minutes, to show that expiry is never judged by a node's wall clock, docs/design.md invariant 4) and a
 * monotonic clock running at a chosen rate. A rate below 1 makes the node believe less time has passed
 * than really has, so it overestimates how long its lease stays valid: only fencing can then stop its
 * writes.
 */
import type { Clock } from '../../src/index.js'

export interface ClockSetting {
  /** Added to `Date.now()`. */
  nowOffsetMs: number
  /** Speed of `monotonic()` relative to real time (1 = true, 0.5 = half speed). */
  rate: number
}

export const TRUE_CLOCK: ClockSetting = { nowOffsetMs: 0, rate: 1 }

export class ChaosClock implements Clock {
  #offsetMs: number
  #rate: number
  /** The monotonic reading and the real `performance.now()` at the last rate change. */
  #base: number
  #realBase: number
  /** The slowest rate below 1 this clock has run at, and when (real time) its last slow spell ended. */
  #slowestRate = 1
  #slowEndedAt = -Infinity

  constructor(setting: ClockSetting = TRUE_CLOCK) {
    this.#offsetMs = setting.nowOffsetMs
    this.#rate = setting.rate
    this.#realBase = performance.now()
    this.#base = this.#realBase
    if (setting.rate < 1) this.#slowestRate = setting.rate
  }

  /**
   * Whether a lease's local validity, judged by this clock now, may be later than its real end: the
   * clock ran slow within the last `ttlMs / slowest rate` real ms, so a deadline taken then has not yet
   * been overtaken by real time. Such a node's warm reads (served from its cache under the lease, with
   * no store round trip) are outside the library's clock model (drift within `driftMs`); its writes are
   * not, since they are fenced in the store.
   */
  mayOverestimateValidity(ttlMs: number): boolean {
    if (this.#rate < 1) return true
    return performance.now() - this.#slowEndedAt < ttlMs / this.#slowestRate
  }

  now(): number {
    return Date.now() + this.#offsetMs
  }

  monotonic(): number {
    return this.#base + (performance.now() - this.#realBase) * this.#rate
  }

  /** Changes skew and rate from now on; monotonic time continues from where it is, never jumping back. */
  set(setting: ClockSetting): void {
    this.#base = this.monotonic()
    this.#realBase = performance.now()
    if (this.#rate < 1 && setting.rate >= 1) this.#slowEndedAt = this.#realBase
    if (setting.rate < 1) this.#slowestRate = Math.min(this.#slowestRate, setting.rate)
    this.#offsetMs = setting.nowOffsetMs
    this.#rate = setting.rate
  }
}
