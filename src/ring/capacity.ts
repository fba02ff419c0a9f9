import { InvalidArgumentError } from '../errors.js'
import { describe } from '../validate.js'

/** Load factor c used by bounded-load placement when none is given. */
export const DEFAULT_LOAD_FACTOR = 1.25

/**
 * Per-node capacity under consistent hashing with bounded loads:
 * `ceil(c * (totalLoad + 1) * weight / totalWeight)`.
 *
 * The `+ 1` counts the key being placed, which is what guarantees that the capacities add up to
 * more than the current total, so some node always has room.
 *
 * @param c - load factor >= 1.
 * @param totalLoad - sum of the current loads of all nodes, before this placement.
 * @param weight - this node's weight.
 * @param totalWeight - sum of all nodes' weights.
 */
export function boundedCapacity(c: number, totalLoad: number, weight: number, totalWeight: number): number {
  const exact = (c * (totalLoad + 1) * weight) / totalWeight
  // Without the tolerance, 1.1 * 1000 / 10 = 110.00000000000001 would round up to 111.
  return Math.ceil(exact - exact * 1e-12)
}

/** Returns `c` if it is a valid load factor, else throws {@link InvalidArgumentError}. */
export function validateLoadFactor(c: unknown): number {
  if (typeof c !== 'number' || !Number.isFinite(c) || c < 1) {
    throw new InvalidArgumentError('c', `must be a finite number >= 1, got ${describe(c)}`)
  }
  return c
}
