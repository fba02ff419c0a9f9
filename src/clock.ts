/**
 * Time seam. `now()` is wall-clock milliseconds since the epoch (used only by in-memory stores, where
 * the process IS the store); `monotonic()` is a clock that never jumps backwards, used to decide how
 * long a lease is still safe to trust locally (docs/design.md invariant 4).
 *
 * Tests and chaos runs inject a skewed or fake clock here.
 */
export interface Clock {
  now(): number
  monotonic(): number
}

let lastMonotonic = 0

/**
 * The runtime's clocks: `Date.now()`, and `performance.now()` held so it never goes back. In Node
 * `performance.now()` is monotonic already; in workerd it returns what `Date.now()` does (advancing
 * only across I/O), which a wall-clock step could move backwards: a lease's local validity must not
 * grow because of that.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => (lastMonotonic = Math.max(lastMonotonic, performance.now())),
}
