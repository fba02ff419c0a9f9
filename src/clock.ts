/**
 * Time seam. `now()` is wall-clock milliseconds since the epoch (used only by in-memory stores, where
 * the process IS the store); `monotonic()` is a clock that never jumps backwards, used to decide how
 * long a lease is still safe to trust locally (design.md invariant 4).
 *
 * Tests and chaos runs inject a skewed or fake clock here.
 */
export interface Clock {
  now(): number
  monotonic(): number
}

/** The runtime's clocks: `Date.now()` and `performance.now()` (both exist in Node and workerd). */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
}
