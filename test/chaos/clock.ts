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

  constructor(setting: ClockSetting = TRUE_CLOCK) {
    this.#offsetMs = setting.nowOffsetMs
    this.#rate = setting.rate
    this.#realBase = performance.now()
    this.#base = this.#realBase
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
    this.#offsetMs = setting.nowOffsetMs
    this.#rate = setting.rate
  }
}
