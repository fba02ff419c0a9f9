/**
 * What a {@link ConsistentHashRing} accepts: its options and their defaults, the limits that bound its
 * memory, and the checks that refuse anything else by argument name before the ring changes.
 */
import { InvalidArgumentError } from '../errors.js'
import { describe } from '../validate.js'

/**
 * Virtual nodes per unit of weight when {@link ConsistentHashRingOptions.vnodes} is not given.
 *
 * A node's share of the ring is a sum of `vnodes` random arcs, so its relative error is about
 * `sqrt((N - 1) / (N * vnodes))`. 1024 keeps the most loaded of 10 nodes within 10% of the mean
 * for more than 99% of random node-id sets (256 fails about 40% of them, 512 about 10%), and keeps
 * keys moved on a membership change within 15% of the ideal. The cost is about 8.5 bytes per
 * point (position, owner and lookup index), so about 8.5 KiB per node of weight 1. Lookups stay
 * O(1) whatever the count.
 */
export const DEFAULT_VNODES = 1024

/** The largest accepted {@link ConsistentHashRingOptions.vnodes}. */
export const MAX_VNODES = 65_536

/** The most points one node may have (`weight x vnodes`, rounded), which bounds memory per node. */
export const MAX_POINTS_PER_NODE = 1 << 22

/** The most nodes a ring holds: owner ranks must fit its index arrays; far above any real cluster. */
export const MAX_RING_NODES = 1 << 21

/** The weight of a node added without one. */
export const DEFAULT_NODE_WEIGHT = 1

/** A node to place on the ring: an id, optionally with a weight. */
export interface RingNode {
  /**
   * The node id, e.g. a host name or a Worker instance id: checked as the guard checks its own
   * `nodeId` (1 to 256 UTF-16 code units, no NUL, no lone surrogate), so a guard's id is always a
   * valid ring node.
   */
  readonly id: string
  /**
   * Relative capacity. See {@link AddNodeOptions.weight}.
   * @default 1 ({@link DEFAULT_NODE_WEIGHT})
   */
  readonly weight?: number
}

/** Options for {@link ConsistentHashRing.addNode}. */
export interface AddNodeOptions {
  /**
   * Relative capacity, a finite number > 0. The node gets
   * `max(1, round(weight * vnodes))` virtual nodes, so a node of weight 2 receives about twice the
   * keys of a node of weight 1. Its points are a superset of those it would have with a smaller
   * weight, so changing a weight moves only the keys that must move.
   * @default 1 ({@link DEFAULT_NODE_WEIGHT})
   */
  readonly weight?: number
}

/** Options for {@link ConsistentHashRing}; every field is optional. */
export interface ConsistentHashRingOptions {
  /**
   * Virtual nodes (points on the ring) per unit of weight, an integer in 1..{@link MAX_VNODES}.
   * Fewer points build faster and use less memory but balance worse: the load of a node varies by
   * about `1 / sqrt(vnodes)`.
   * @default 1024 ({@link DEFAULT_VNODES})
   */
  readonly vnodes?: number
  /** Nodes to add right away, as ids or {@link RingNode}s; duplicates throw {@link DuplicateNodeError}. */
  readonly nodes?: Iterable<string | RingNode>
}

/**
 * Current load of each node for {@link ConsistentHashRing.getNodeBounded}: a map (absent ids
 * count as 0) or a function. Loads are finite numbers >= 0 in any unit (requests, sessions).
 */
export type LoadSource = ReadonlyMap<string, number> | ((nodeId: string) => number)

/** Options for {@link ConsistentHashRing.getNodeBounded}. */
export interface BoundedLoadOptions {
  /** The load of every node now, before this key is placed. */
  readonly loads: LoadSource
  /**
   * Load factor c, a finite number >= 1: no node is given a key that would take it above
   * `ceil(c * (totalLoad + 1) * weight / totalWeight)`.
   * @default 1.25 ({@link DEFAULT_LOAD_FACTOR})
   */
  readonly c?: number
}

/** Returns `vnodes` if it is a valid {@link ConsistentHashRingOptions.vnodes}, else throws {@link InvalidArgumentError}. */
export function validateVnodes(vnodes: number): number {
  if (!Number.isInteger(vnodes) || vnodes < 1 || vnodes > MAX_VNODES) {
    throw new InvalidArgumentError('vnodes', `must be an integer between 1 and ${MAX_VNODES}, got ${describe(vnodes)}`)
  }
  return vnodes
}

/**
 * The number of points a node of `weight` gets on a ring of `vnodes` per unit of weight,
 * `max(1, round(weight * vnodes))`, or throws {@link InvalidArgumentError} if the weight is invalid or
 * the count exceeds {@link MAX_POINTS_PER_NODE}.
 */
export function pointCount(weight: unknown, vnodes: number): number {
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new InvalidArgumentError('weight', `must be a finite number > 0, got ${describe(weight)}`)
  }
  const count = Math.max(1, Math.round(weight * vnodes))
  if (count > MAX_POINTS_PER_NODE) {
    throw new InvalidArgumentError('weight', `weight x vnodes must be at most ${MAX_POINTS_PER_NODE}, got ${count}`)
  }
  return count
}

/** The error for a key that is not a non-empty string (the caller tests, so the hot path stays inline). */
export function invalidKey(key: unknown): InvalidArgumentError {
  return new InvalidArgumentError('key', `must be a non-empty string, got ${describe(key)}`)
}
