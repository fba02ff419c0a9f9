import { DuplicateNodeError, EmptyRingError, InvalidArgumentError, UnknownNodeError } from '../errors.js'
import { assertNodeId, describe } from '../validate.js'
import { boundedCapacity, DEFAULT_LOAD_FACTOR, validateLoadFactor } from './capacity.js'
import { murmurHash3 } from './hash.js'
import {
  DEFAULT_NODE_WEIGHT,
  DEFAULT_VNODES,
  invalidKey,
  MAX_RING_NODES,
  pointCount,
  validateVnodes,
  type AddNodeOptions,
  type BoundedLoadOptions,
  type ConsistentHashRingOptions,
} from './options.js'
import { compareIds, PointTable, type NodeEntry } from './point-table.js'

/**
 * A consistent-hash ring mapping string keys (e.g. Durable Object ids) to node ids.
 *
 * - **Same answer everywhere**: the owner of a key depends only on the set of (node id, weight)
 *   and `vnodes`, never on insertion order or on the runtime. Keys and node ids are hashed with
 *   {@link murmurHash3} over their UTF-8 bytes; virtual node `i` of node `id` sits at
 *   `murmurHash3(id, i)`; a key belongs to the first point at or after `murmurHash3(key)`
 *   (wrapping to the first point), and equal points are ordered by node id (UTF-16 code unit
 *   order, as `<` compares strings).
 * - **Minimal movement**: adding a node moves only keys onto it, removing one moves only its keys.
 * - **Fast**: a lookup is one hash and, on average, a couple of comparisons in a bucket index over
 *   the sorted points; the index is rebuilt lazily on the first lookup after a membership change,
 *   so adding many nodes in a row costs one build.
 *
 * @example
 * ```ts
 * const ring = new ConsistentHashRing({ nodes: ['worker-a', 'worker-b', 'worker-c'] })
 * ring.getNode('do-42')        // e.g. 'worker-b', the same on every node of the cluster
 * ring.getNodes('do-42', 2)    // ['worker-b', 'worker-a']: fall back to the second if the first is down
 * ring.addNode('worker-d', { weight: 2 })
 * ```
 */
export class ConsistentHashRing {
  /** Virtual nodes per unit of weight, as validated by the constructor. */
  readonly vnodes: number

  readonly #entries = new Map<string, NodeEntry>()
  #mutations = 0
  #builtAt = -1

  /** The points of the membership as of `#builtAt`: rebuilt lazily, so adding many nodes costs one build. */
  #table = new PointTable([])
  // Per rank, the walk that last offered that node (see #walk); sized with the table.
  #stamps: Uint32Array = new Uint32Array(0)
  #stamp = 0
  #walking = false

  /**
   * @param options - see {@link ConsistentHashRingOptions}.
   * @throws {@link InvalidArgumentError} if `vnodes` or a node in `nodes` is invalid.
   * @throws {@link DuplicateNodeError} if `nodes` repeats an id.
   */
  constructor(options: ConsistentHashRingOptions = {}) {
    this.vnodes = validateVnodes(options.vnodes ?? DEFAULT_VNODES)
    if (options.nodes !== undefined) {
      for (const node of options.nodes) {
        // Anything but a RingNode object is taken as an id, so that a bad one is refused by name.
        if (node !== null && typeof node === 'object') this.addNode(node.id, { weight: node.weight })
        else this.addNode(node)
      }
    }
  }

  /** Number of nodes on the ring. */
  get size(): number {
    return this.#entries.size
  }

  /**
   * Node ids on the ring, sorted (UTF-16 code unit order) so that every instance lists them alike.
   * A fresh array each call.
   */
  get nodes(): string[] {
    return [...this.#entries.keys()].sort(compareIds)
  }

  /**
   * A counter that changes whenever nodes are added or removed, so callers can cache derived data
   * (e.g. per-node capacities) and notice when it goes stale.
   */
  get version(): number {
    return this.#mutations
  }

  /** Whether `nodeId` is on the ring. */
  has(nodeId: string): boolean {
    return this.#entries.has(nodeId)
  }

  /**
   * The weight `nodeId` was added with.
   *
   * @throws {@link UnknownNodeError} if the node is not on the ring.
   */
  weightOf(nodeId: string): number {
    const entry = this.#entries.get(nodeId)
    if (entry === undefined) throw new UnknownNodeError(nodeId)
    return entry.weight
  }

  /**
   * Adds a node.
   *
   * @param nodeId - unique on this ring; 1 to 256 UTF-16 code units, no NUL, no lone surrogate (the
   *   guard's rule for node ids).
   * @param options - see {@link AddNodeOptions}.
   * @returns this ring, for chaining.
   * @throws {@link InvalidArgumentError} if `nodeId` or the weight is invalid.
   * @throws {@link DuplicateNodeError} if `nodeId` is already on the ring.
   */
  addNode(nodeId: string, options: AddNodeOptions = {}): this {
    assertNodeId(nodeId)
    const weight = options.weight ?? DEFAULT_NODE_WEIGHT
    const count = pointCount(weight, this.vnodes)
    if (this.#entries.has(nodeId)) throw new DuplicateNodeError(nodeId)
    if (this.#entries.size >= MAX_RING_NODES) {
      throw new InvalidArgumentError('nodeId', `the ring holds at most ${MAX_RING_NODES} nodes`)
    }
    this.#entries.set(nodeId, { id: nodeId, weight, vnodes: count })
    this.#mutations++
    return this
  }

  /**
   * Removes a node; only the keys it owned move, each to the next node of its preference list.
   *
   * @returns this ring, for chaining.
   * @throws {@link UnknownNodeError} if the node is not on the ring.
   */
  removeNode(nodeId: string): this {
    if (!this.#entries.delete(nodeId)) throw new UnknownNodeError(nodeId)
    this.#mutations++
    return this
  }

  /**
   * The node that owns `key`.
   *
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   *
   * @example
   * ```ts
   * const owner = ring.getNode(doId)
   * if (owner !== selfId) return forward(owner, request)
   * ```
   */
  getNode(key: string): string {
    const i = this.#locate(key) // first: it may rebuild the table
    const table = this.#table
    return table.ids[table.owners[i]!]!
  }

  /**
   * The preference list of `key`: up to `n` distinct nodes in the order they own it, i.e. the
   * owner first, then the node that would own it if the owner were removed, and so on. Use it to
   * fail over when the owner is down, or to place replicas.
   *
   * @param n - an integer >= 1; when the ring has fewer nodes, all of them are returned.
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string or `n` is not an integer >= 1.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   *
   * @example
   * ```ts
   * for (const node of ring.getNodes(doId, 3)) if (healthy(node)) return node
   * ```
   */
  getNodes(key: string, n: number): string[] {
    if (!Number.isInteger(n) || n < 1) {
      throw new InvalidArgumentError('n', `must be an integer >= 1, got ${describe(n)}`)
    }
    if (this.#builtAt !== this.#mutations) this.#build()
    const result: string[] = []
    const ids = this.#table.ids
    this.#walk(key, (rank) => result.push(ids[rank]!) >= n)
    return result
  }

  /**
   * The first node in `key`'s preference list (see {@link getNodes}) that `accept` approves, or
   * `undefined` if it approves none. `accept` is called at most once per node, in preference order,
   * and the walk stops at the first approval, so this is cheaper than `getNodes(key, size)`.
   *
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   *
   * @example
   * ```ts
   * const node = ring.findNode(doId, (id) => !down.has(id))
   * ```
   */
  findNode(key: string, accept: (nodeId: string) => boolean): string | undefined {
    if (this.#builtAt !== this.#mutations) this.#build()
    const ids = this.#table.ids
    const rank = this.#walk(key, (r) => accept(ids[r]!))
    return rank < 0 ? undefined : ids[rank]
  }

  /**
   * The owner of `key` under consistent hashing with bounded loads (Mirrokni, Thorup and
   * Zadimoghaddam, 2018): given the current load of every node, the key goes to the first node of
   * its preference list whose load is below its capacity
   *
   * `capacity(node) = ceil(c * (totalLoad + 1) * weight(node) / totalWeight)`
   *
   * which, with equal weights, is `ceil(c * (totalLoad + 1) / size)`. `totalLoad` is the sum of the
   * loads of the nodes on the ring. Because the capacities add up to more than `totalLoad`, some
   * node always has room, so a key is always placed; if every placement follows this rule, no node
   * ever holds more than `ceil(c * average)` (weighted), even when a few keys are very hot. Keys
   * keep their plain owner while it is not overloaded, so affinity is lost only under skew.
   *
   * This call is stateless and reads every node's load (O(size)); to assign many requests, a
   * {@link BoundedLoadBalancer} keeps the loads for you.
   *
   * @throws {@link InvalidArgumentError} if `key` is not a non-empty string, `c` is not a finite
   *   number >= 1, or a load is not a finite number >= 0.
   * @throws {@link EmptyRingError} if the ring has no nodes.
   *
   * @example
   * ```ts
   * const node = ring.getNodeBounded(doId, { loads: activeRequests, c: 1.25 })
   * activeRequests.set(node, (activeRequests.get(node) ?? 0) + 1)
   * ```
   */
  getNodeBounded(key: string, options: BoundedLoadOptions): string {
    if (typeof key !== 'string' || key.length === 0) throw invalidKey(key)
    const c = validateLoadFactor(options.c ?? DEFAULT_LOAD_FACTOR)
    const source = options.loads
    if (typeof source !== 'function' && !(source instanceof Map)) {
      throw new InvalidArgumentError('loads', 'must be a Map or a function of the node id')
    }
    if (this.#builtAt !== this.#mutations) this.#build()
    const ids = this.#table.ids
    if (ids.length === 0) throw new EmptyRingError()
    const loads = new Float64Array(ids.length)
    let total = 0
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r]!
      const load = typeof source === 'function' ? source(id) : (source.get(id) ?? 0)
      if (typeof load !== 'number' || !Number.isFinite(load) || load < 0) {
        throw new InvalidArgumentError('loads', `load of "${id}" must be a finite number >= 0, got ${describe(load)}`)
      }
      loads[r] = load
      total += load
    }
    const { weights, totalWeight } = this.#table
    const rank = this.#walk(key, (r) => loads[r]! < boundedCapacity(c, total, weights[r]!, totalWeight))
    // Unreachable by the capacity argument above; kept so rounding can never leave a key unplaced.
    return rank < 0 ? this.getNode(key) : ids[rank]!
  }

  /**
   * Walks the distinct owners of `key` in preference order, returning the rank of the first one
   * `accept` approves, or -1.
   */
  #walk(key: string, accept: (rank: number) => boolean): number {
    let i = this.#locate(key)
    // Locals: a callback may add or remove nodes, which replaces the table under us.
    const { owners, ids, points } = this.#table
    const nodeCount = ids.length
    const count = points.length

    // Stamps mark the owners already offered without clearing an array per call; a re-entrant
    // call (a callback that looks up the same ring) gets its own array.
    const reentrant = this.#walking
    let stamps: Uint32Array
    let stamp: number
    if (reentrant) {
      stamps = new Uint32Array(nodeCount)
      stamp = 1
    } else {
      stamps = this.#stamps
      if (this.#stamp >= 0xfffffffe) {
        stamps.fill(0)
        this.#stamp = 0
      }
      stamp = ++this.#stamp
    }
    this.#walking = true
    try {
      let seen = 0
      for (let step = 0; step < count; step++) {
        const rank = owners[i]!
        if (stamps[rank] !== stamp) {
          stamps[rank] = stamp
          if (accept(rank)) return rank
          if (++seen === nodeCount) break
        }
        i = i + 1 === count ? 0 : i + 1
      }
      return -1
    } finally {
      this.#walking = reentrant
    }
  }

  /**
   * Where `key` lands: the index in the table's `points` of the first point at or after its hash (see
   * {@link PointTable.locate}). Validates the key and builds the table if stale.
   */
  #locate(key: string): number {
    if (typeof key !== 'string' || key.length === 0) throw invalidKey(key)
    if (this.#builtAt !== this.#mutations) this.#build()
    const table = this.#table
    if (table.points.length === 0) throw new EmptyRingError()
    return table.locate(murmurHash3(key))
  }

  /** Builds the table of the current membership. */
  #build(): void {
    const table = new PointTable(this.#entries.values())
    this.#table = table
    this.#stamps = new Uint32Array(table.ids.length)
    this.#stamp = 0
    this.#builtAt = this.#mutations
  }
}
