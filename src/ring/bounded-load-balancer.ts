import { InvalidArgumentError } from '../errors.js'
import { describe } from '../validate.js'
import { boundedCapacity, DEFAULT_LOAD_FACTOR, validateLoadFactor } from './capacity.js'
import type { ConsistentHashRing } from './consistent-hash-ring.js'

/** Options for {@link BoundedLoadBalancer}. */
export interface BoundedLoadBalancerOptions {
  /**
   * Load factor c, a finite number >= 1. No node is ever above `ceil(c * average load)` (weighted),
   * where the average counts the request being placed. Smaller values balance harder and move more
   * requests away from their owner under skew.
   * @default 1.25 ({@link DEFAULT_LOAD_FACTOR})
   */
  readonly c?: number
}

/**
 * Places requests on a {@link ConsistentHashRing} with bounded loads (Mirrokni, Thorup and
 * Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018), keeping the count of open
 * requests per node itself.
 *
 * Each {@link assign} is one unit of load: it goes to the first node of the key's preference
 * list whose load is below `ceil(c * (totalLoad + 1) * weight / totalWeight)` (with equal weights,
 * `ceil(c * (totalLoad + 1) / size)`), and {@link release} gives it back when the request ends.
 * A key keeps its usual owner unless that owner is full, so affinity survives except for hot
 * keys, whose overflow spills to the next nodes of their preference list instead of piling up.
 *
 * When nodes leave the ring, the load recorded on them is dropped (those requests went with the
 * node); nodes that join start at 0.
 *
 * @example
 * ```ts
 * const balancer = new BoundedLoadBalancer(ring, { c: 1.25 })
 * const node = balancer.assign(doId)
 * try { return await forward(node, request) } finally { balancer.release(node) }
 * ```
 */
export class BoundedLoadBalancer {
  /** The ring whose membership and weights decide placement. */
  readonly ring: ConsistentHashRing
  /** Load factor, as validated by the constructor. */
  readonly c: number

  readonly #loadById = new Map<string, number>()
  #total = 0
  #weightById = new Map<string, number>()
  #totalWeight = 0
  #syncedAt = -1

  /**
   * @param ring - the ring to place on; membership changes are picked up at the next call.
   * @param options - see {@link BoundedLoadBalancerOptions}.
   * @throws {@link InvalidArgumentError} if `c` is not a finite number >= 1.
   */
  constructor(ring: ConsistentHashRing, options: BoundedLoadBalancerOptions = {}) {
    this.ring = ring
    this.c = validateLoadFactor(options.c ?? DEFAULT_LOAD_FACTOR)
  }

  /** Sum of the loads of the nodes on the ring. */
  get totalLoad(): number {
    this.#sync()
    return this.#total
  }

  /** Load of every node on the ring (0 for nodes without requests), by node id. A fresh map. */
  get loads(): Map<string, number> {
    this.#sync()
    const loads = new Map<string, number>()
    for (const id of this.#weightById.keys()) loads.set(id, this.#loadById.get(id) ?? 0)
    return loads
  }

  /** Current load of `nodeId`; 0 for a node without requests or not on the ring. */
  loadOf(nodeId: string): number {
    this.#sync()
    return this.#loadById.get(nodeId) ?? 0
  }

  /**
   * The node {@link assign} would pick for `key` now, without recording anything.
   *
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   */
  peek(key: string): string {
    this.#sync()
    const c = this.c
    const total = this.#total
    const totalWeight = this.#totalWeight
    const loads = this.#loadById
    const weights = this.#weightById
    const node = this.ring.findNode(
      key,
      (id) => (loads.get(id) ?? 0) < boundedCapacity(c, total, weights.get(id) ?? 0, totalWeight),
    )
    // Unreachable: the capacities add up to more than the total load. Kept against rounding.
    return node ?? this.ring.getNode(key)
  }

  /**
   * Places one request for `key` and counts it against the chosen node until {@link release}.
   *
   * @returns the node id the request should go to.
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   */
  assign(key: string): string {
    const node = this.peek(key)
    this.#loadById.set(node, (this.#loadById.get(node) ?? 0) + 1)
    this.#total++
    return node
  }

  /**
   * Gives back `amount` units of load (default 1) from `nodeId`, e.g. when a request ends.
   * A node that has left the ring is ignored: its load was dropped when it left.
   *
   * @throws {@link InvalidArgumentError} if `amount` is not a finite number > 0 or exceeds the node's load.
   */
  release(nodeId: string, amount = 1): void {
    if (typeof amount !== 'number' || !Number.isFinite(amount) || amount <= 0) {
      throw new InvalidArgumentError('amount', `must be a finite number > 0, got ${describe(amount)}`)
    }
    this.#sync()
    if (!this.#weightById.has(nodeId)) return
    const load = this.#loadById.get(nodeId) ?? 0
    if (amount > load) {
      throw new InvalidArgumentError('amount', `${amount} exceeds the load of "${nodeId}" (${load})`)
    }
    if (load === amount) this.#loadById.delete(nodeId)
    else this.#loadById.set(nodeId, load - amount)
    this.#total -= amount
  }

  /** Forgets every recorded load. */
  reset(): void {
    this.#loadById.clear()
    this.#total = 0
  }

  /** Catches up with membership changes of the ring: new weights, loads of departed nodes dropped. */
  #sync(): void {
    const version = this.ring.version
    if (version === this.#syncedAt) return
    const weights = new Map<string, number>()
    let totalWeight = 0
    for (const id of this.ring.nodes) {
      const weight = this.ring.weightOf(id)
      weights.set(id, weight)
      totalWeight += weight
    }
    let total = 0
    for (const [id, load] of this.#loadById) {
      if (weights.has(id)) total += load
      else this.#loadById.delete(id)
    }
    this.#weightById = weights
    this.#totalWeight = totalWeight
    this.#total = total
    this.#syncedAt = version
  }
}
