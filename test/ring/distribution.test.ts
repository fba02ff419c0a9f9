import { beforeAll, describe, expect, it } from 'vitest'
import { ConsistentHashRing } from '../../src/ring/index.js'

// Properties measured on a million keys, as a cluster routing Durable Object ids would see them.
const KEY_COUNT = 1_000_000
let keys: string[] = []

beforeAll(() => {
  keys = Array.from({ length: KEY_COUNT }, (_, i) => `do-${i}`)
})

/** Owner of every key, as an index into `ids` (a fresh Int32Array per call). */
function assign(ring: ConsistentHashRing, ids: readonly string[]): Int32Array {
  const indexOf = new Map(ids.map((id, i) => [id, i]))
  const out = new Int32Array(keys.length)
  for (let i = 0; i < keys.length; i++) out[i] = indexOf.get(ring.getNode(keys[i]!)) ?? -1
  return out
}

function maxOverMean(owners: Int32Array, nodeCount: number): number {
  const counts = new Array<number>(nodeCount).fill(0)
  for (const owner of owners) counts[owner] = (counts[owner] ?? 0) + 1
  return Math.max(...counts) / (owners.length / nodeCount)
}

const nodeIds = (count: number, prefix: string): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

describe('ConsistentHashRing on 1,000,000 keys with the default virtual nodes', () => {
  it.each([
    [10, 'worker-', 1.1],
    [10, '10.0.0.', 1.1],
    [100, 'worker-', 1.25],
  ])('keeps the most loaded of %i nodes (ids %s<n>) within %f x the mean', (count, prefix, bound) => {
    const ids = nodeIds(count, prefix)
    const owners = assign(new ConsistentHashRing({ nodes: ids }), ids)
    expect(owners.includes(-1)).toBe(false)
    expect(maxOverMean(owners, count)).toBeLessThanOrEqual(bound)
  })

  it.each([10, 100])(
    'moves at most 1.15 x 1/(N+1) of the keys, all onto the new node, when one joins %i nodes',
    (count) => {
      const ids = [...nodeIds(count, 'worker-'), 'newcomer']
      const ring = new ConsistentHashRing({ nodes: ids.slice(0, count) })
      const before = assign(ring, ids)
      const after = assign(ring.addNode('newcomer'), ids)
      let moved = 0
      for (let i = 0; i < before.length; i++) {
        if (before[i] !== after[i]) {
          moved++
          if (after[i] !== count) expect.fail(`key ${keys[i]} moved between two old nodes`)
        }
      }
      expect(moved / KEY_COUNT).toBeLessThanOrEqual((1.15 * 1) / (count + 1))
      expect(moved / KEY_COUNT).toBeGreaterThan(0.85 / (count + 1))
    },
  )

  it.each([10, 100])('moves only the keys of a node that leaves %i nodes, at most 1.15 x 1/N of them', (count) => {
    const ids = nodeIds(count, 'worker-')
    const leaving = Math.floor(count / 2)
    const ring = new ConsistentHashRing({ nodes: ids })
    const before = assign(ring, ids)
    const after = assign(ring.removeNode(ids[leaving]!), ids)
    let moved = 0
    for (let i = 0; i < before.length; i++) {
      if (before[i] !== after[i]) {
        moved++
        if (before[i] !== leaving) expect.fail(`key ${keys[i]} moved off a node that stayed`)
      }
    }
    expect(moved / KEY_COUNT).toBeLessThanOrEqual(1.15 / count)
    expect(moved / KEY_COUNT).toBeGreaterThan(0.85 / count)
  })
})
