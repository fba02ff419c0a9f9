/**
 * The ring's built state: every node's virtual nodes sorted into one array, the rank of each point's
 * owner beside it, and a bucket index over the top bits of the hash so that finding a key's point costs
 * a couple of comparisons. Built whole on the first lookup after a membership change, then only read.
 */
import { murmurHash3 } from './hash.js'

/** A node on the ring, as `addNode` validated it. */
export interface NodeEntry {
  readonly id: string
  readonly weight: number
  /** Number of virtual nodes: `max(1, round(weight * vnodes))`. */
  readonly vnodes: number
}

/** The points of one membership of the ring, and the lookup over them. */
export class PointTable {
  /** Node ids in UTF-16 code unit order; a node's rank is its index here. */
  readonly ids: string[]
  /** Each node's weight, by rank. */
  readonly weights: Float64Array
  /** The sum of `weights`. */
  readonly totalWeight: number
  /** Every point's position, ascending; equal positions stay in node id order. */
  readonly points: Uint32Array
  /** The rank of each point's owner, by point index. */
  readonly owners: Uint16Array | Uint32Array
  /** For each bucket of hashes (their top bits), the index in `points` of its first point. */
  readonly #index: Uint32Array
  /** How far a hash shifts right to leave its bucket: `32 - bits`. */
  readonly #shift: number

  /** Sorts every node's points into one array and indexes it by the top bits of the hash. */
  constructor(nodes: Iterable<NodeEntry>) {
    const entries = [...nodes].sort((a, b) => compareIds(a.id, b.id))
    const nodeCount = entries.length
    let count = 0
    let totalWeight = 0
    const weights = new Float64Array(nodeCount)
    for (let r = 0; r < nodeCount; r++) {
      const entry = entries[r]!
      count += entry.vnodes
      weights[r] = entry.weight
      totalWeight += entry.weight
    }

    // Points are recomputed rather than kept per node: a rebuild is rare and hashing is cheap,
    // while keeping them would cost another 4 bytes per point for the ring's lifetime.
    let points: Uint32Array = new Uint32Array(count)
    let owners: Uint16Array | Uint32Array = nodeCount <= 0x10000 ? new Uint16Array(count) : new Uint32Array(count)
    let k = 0
    for (let r = 0; r < nodeCount; r++) {
      const { id, vnodes } = entries[r]!
      for (let i = 0; i < vnodes; i++) {
        points[k] = murmurHash3(id, i)
        owners[k++] = r
      }
    }
    // Laid out in id order, then sorted stably: equal points stay ordered by node id everywhere.
    ;[points, owners] = radixSort(points, owners)

    // About two points per bucket: O(1) lookups for an index no larger than the points themselves.
    let bits = 1
    while (bits < 24 && 2 ** (bits + 1) < count) bits++
    const buckets = 2 ** bits
    const width = 2 ** (32 - bits)
    const index = new Uint32Array(buckets + 1)
    let i = 0
    for (let b = 0; b < buckets; b++) {
      const start = b * width
      while (i < count && points[i]! < start) i++
      index[b] = i
    }
    index[buckets] = count

    this.ids = entries.map((entry) => entry.id)
    this.weights = weights
    this.totalWeight = totalWeight
    this.points = points
    this.owners = owners
    this.#index = index
    this.#shift = 32 - bits
  }

  /**
   * Where a key of hash `h` lands: the index in `points` of the first point at or after `h`, wrapping
   * past the last one; `owners` at that index owns the key. The table must have points.
   */
  locate(h: number): number {
    const points = this.points
    const count = points.length
    const bucket = h >>> this.#shift
    let i = this.#index[bucket]!
    const end = this.#index[bucket + 1]!
    while (i < end && points[i]! < h) i++
    return i === count ? 0 : i
  }
}

/**
 * Stable LSD radix sort of `points` (11, 11 and 10 bits), carrying `owners` along: linear time,
 * several times faster than a comparison sort for the 10^4..10^6 points of a ring.
 */
function radixSort<O extends Uint16Array | Uint32Array>(points: Uint32Array, owners: O): [Uint32Array, O] {
  const count = points.length
  let srcPoints = points
  let srcOwners = owners
  let dstPoints: Uint32Array = new Uint32Array(count)
  let dstOwners = (owners instanceof Uint16Array ? new Uint16Array(count) : new Uint32Array(count)) as O
  const offsets = new Uint32Array(2048)
  for (let shift = 0; shift < 32; shift += 11) {
    offsets.fill(0)
    for (let i = 0; i < count; i++) offsets[(srcPoints[i]! >>> shift) & 0x7ff]!++
    let sum = 0
    for (let d = 0; d < 2048; d++) {
      const c = offsets[d]!
      offsets[d] = sum
      sum += c
    }
    for (let i = 0; i < count; i++) {
      const point = srcPoints[i]!
      const at = offsets[(point >>> shift) & 0x7ff]!++
      dstPoints[at] = point
      dstOwners[at] = srcOwners[i]!
    }
    ;[srcPoints, dstPoints] = [dstPoints, srcPoints]
    ;[srcOwners, dstOwners] = [dstOwners, srcOwners]
  }
  return [srcPoints, srcOwners]
}

/** UTF-16 code unit order, as `<` compares strings: the order of ranks, and of `ConsistentHashRing.nodes`. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
