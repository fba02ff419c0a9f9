/**
 * Time seam. `now()` is wall-clock milliseconds since the epoch (used only by in-memory stores, where
 * the process IS the store); `monotonic()` is a clock that never jumps backwards, used to decide how
 * long a lease is still safe to trust locally (docs/design.md invariant 4).
 *
 * Tests and chaos runs inject a skewed or fake clock here.
 *
 * @example
 * ```ts
 * let t = 0
 * const clock: Clock = { now: () => 1_700_000_000_000 + t, monotonic: () => t } // advance t by hand
 * const store = new MemoryLockStore({ clock })
 * ```
 */
export interface Clock {
  /**
   * Wall-clock milliseconds since the epoch (`Date.now()` for {@link systemClock}). Only an in-memory
   * store, `MemoryLockStore`, decides expiry with it; SQL stores use the database's clock.
   */
  now(): number
  /**
   * Milliseconds on a clock that never goes back, from an arbitrary origin: only differences mean
   * anything. The guard measures a lease's local validity (`lock.validUntil`) with it.
   */
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
