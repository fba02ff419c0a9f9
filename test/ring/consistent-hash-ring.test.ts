import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { seededRandom } from '../support/random.js'
import { DuplicateNodeError, EmptyRingError, InvalidArgumentError, UnknownNodeError } from '../../src/errors.js'
import { ConsistentHashRing, DEFAULT_VNODES } from '../../src/ring/index.js'
import { assertNodeId } from '../../src/validate.js'

const keys = (count: number, prefix = 'do-'): string[] => Array.from({ length: count }, (_, i) => `${prefix}${i}`)

function owners(ring: ConsistentHashRing, keyList: readonly string[]): string[] {
  return keyList.map((key) => ring.getNode(key))
}

/** Deterministic Fisher-Yates shuffle (mulberry32), so a failure reproduces. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items]
  const random = seededRandom(seed)
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

function expectInvalidArgument(run: () => unknown, argument: string): void {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(InvalidArgumentError)
  expect((caught as InvalidArgumentError).argument).toBe(argument)
}

describe('ConsistentHashRing', () => {
  describe('membership', () => {
    it('reports its nodes sorted, with has, size and weightOf', () => {
      const ring = new ConsistentHashRing({ vnodes: 8 })
      expect(ring.size).toBe(0)
      expect(ring.nodes).toEqual([])
      ring.addNode('gamma').addNode('alpha', { weight: 2 }).addNode('beta')
      expect(ring.size).toBe(3)
      expect(ring.nodes).toEqual(['alpha', 'beta', 'gamma'])
      expect(ring.has('alpha')).toBe(true)
      expect(ring.has('delta')).toBe(false)
      expect(ring.weightOf('alpha')).toBe(2)
      expect(ring.weightOf('beta')).toBe(1)
      ring.removeNode('alpha')
      expect(ring.nodes).toEqual(['beta', 'gamma'])
      expect(ring.has('alpha')).toBe(false)
    })

    it('accepts initial nodes as ids or { id, weight } in the constructor', () => {
      const ring = new ConsistentHashRing({ nodes: ['a', { id: 'b', weight: 3 }] })
      expect(ring.nodes).toEqual(['a', 'b'])
      expect(ring.weightOf('b')).toBe(3)
      expect(ring.vnodes).toBe(DEFAULT_VNODES)
    })

    it('changes version on every membership change and only then', () => {
      const ring = new ConsistentHashRing({ vnodes: 4 })
      const v0 = ring.version
      ring.addNode('a')
      const v1 = ring.version
      ring.getNode('k')
      expect(ring.version).toBe(v1)
      ring.removeNode('a')
      expect(new Set([v0, v1, ring.version]).size).toBe(3)
    })

    it('lists the nodes as a copy that callers cannot use to change the ring', () => {
      const ring = new ConsistentHashRing({ vnodes: 4, nodes: ['a'] })
      ring.nodes.push('b')
      expect(ring.nodes).toEqual(['a'])
    })
  })

  describe('errors', () => {
    it('throws EmptyRingError when looking up a key on an empty ring', () => {
      const ring = new ConsistentHashRing()
      expect(() => ring.getNode('k')).toThrow(EmptyRingError)
      expect(() => ring.getNodes('k', 2)).toThrow(EmptyRingError)
      expect(() => ring.findNode('k', () => true)).toThrow(EmptyRingError)
      expect(() => ring.getNodeBounded('k', { loads: new Map() })).toThrow(EmptyRingError)
      ring.addNode('a').removeNode('a')
      expect(() => ring.getNode('k')).toThrow(EmptyRingError)
    })

    it('throws DuplicateNodeError when a node is added twice, leaving the ring unchanged', () => {
      const ring = new ConsistentHashRing({ vnodes: 16, nodes: ['a', 'b'] })
      const before = owners(ring, keys(200))
      expect(() => ring.addNode('a', { weight: 5 })).toThrow(DuplicateNodeError)
      expect(() => new ConsistentHashRing({ nodes: ['x', 'x'] })).toThrow(DuplicateNodeError)
      expect(ring.weightOf('a')).toBe(1)
      expect(owners(ring, keys(200))).toEqual(before)
    })

    it('throws UnknownNodeError for a node that is not on the ring', () => {
      const ring = new ConsistentHashRing({ vnodes: 4, nodes: ['a'] })
      expect(() => ring.removeNode('b')).toThrow(UnknownNodeError)
      expect(() => ring.weightOf('b')).toThrow(UnknownNodeError)
      try {
        ring.removeNode('b')
      } catch (error) {
        expect((error as UnknownNodeError).nodeId).toBe('b')
      }
    })

    it('rejects keys that are not non-empty strings with InvalidArgumentError("key")', () => {
      const ring = new ConsistentHashRing({ vnodes: 4, nodes: ['a'] })
      for (const bad of [42, undefined, null, {}, '', Symbol('k')]) {
        expectInvalidArgument(() => ring.getNode(bad as string), 'key')
        expectInvalidArgument(() => ring.getNodes(bad as string, 1), 'key')
        expectInvalidArgument(() => ring.findNode(bad as string, () => true), 'key')
        expectInvalidArgument(() => ring.getNodeBounded(bad as string, { loads: new Map() }), 'key')
      }
      // Validation comes before the emptiness check: a bad key is a caller bug even on an empty ring.
      expectInvalidArgument(() => new ConsistentHashRing().getNode(7 as unknown as string), 'key')
    })

    it('checks node ids exactly as the guard does: 1 to 256 UTF-16 units, no NUL, no lone surrogate', () => {
      const ring = new ConsistentHashRing({ vnodes: 4 })
      for (const bad of ['x'.repeat(257), 'node\0a', 'node-\uD800', '\uDC00-node', null, undefined]) {
        expectInvalidArgument(() => ring.addNode(bad as string), 'nodeId')
        expectInvalidArgument(() => new ConsistentHashRing({ nodes: [bad as string] }), 'nodeId')
        expectInvalidArgument(() => new ConsistentHashRing({ nodes: [{ id: bad as string }] }), 'nodeId')
        expectInvalidArgument(() => assertNodeId(bad), 'nodeId') // the guard's own check
      }
      expect(ring.size).toBe(0)
      for (const good of ['x'.repeat(256), 'node-\uD83D\uDE00', crypto.randomUUID()]) {
        assertNodeId(good)
        ring.addNode(good)
      }
      expect(ring.size).toBe(3)
    })

    it('rejects bad node ids, weights, vnode counts and preference-list lengths', () => {
      const ring = new ConsistentHashRing({ vnodes: 4 })
      expectInvalidArgument(() => ring.addNode(''), 'nodeId')
      expectInvalidArgument(() => ring.addNode(3 as unknown as string), 'nodeId')
      for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '2' as unknown as number]) {
        expectInvalidArgument(() => ring.addNode('a', { weight }), 'weight')
      }
      expectInvalidArgument(() => new ConsistentHashRing({ vnodes: 1 }).addNode('a', { weight: 5_000_000 }), 'weight')
      for (const vnodes of [0, -5, 1.5, Number.NaN, 65_537]) {
        expectInvalidArgument(() => new ConsistentHashRing({ vnodes }), 'vnodes')
      }
      ring.addNode('a')
      for (const n of [0, -1, 1.5, Number.NaN]) expectInvalidArgument(() => ring.getNodes('k', n), 'n')
      expect(ring.size).toBe(1)
    })
  })

  describe('determinism', () => {
    it('gives every key the same owner regardless of node insertion order', () => {
      const ids = Array.from({ length: 25 }, (_, i) => `worker-${i}`)
      const keyList = keys(20_000)
      const reference = owners(new ConsistentHashRing({ nodes: ids }), keyList)
      for (const seed of [1, 2, 3]) {
        const ring = new ConsistentHashRing()
        for (const id of shuffled(ids, seed)) ring.addNode(id)
        expect(owners(ring, keyList)).toEqual(reference)
      }
    })

    it('gives the same owners after any sequence of changes that ends with the same nodes', () => {
      const keyList = keys(5_000)
      const direct = new ConsistentHashRing({ nodes: ['a', 'b', 'c'] })
      const winding = new ConsistentHashRing({ nodes: ['c', 'x', 'a'] })
      winding.getNode('warm-up') // builds the index, so the changes below must rebuild it
      winding.addNode('b').removeNode('x').addNode('y').removeNode('y')
      expect(owners(winding, keyList)).toEqual(owners(direct, keyList))
      expect(winding.getNodes('do-1', 3)).toEqual(direct.getNodes('do-1', 3))
    })

    it('pins the placement of a few keys, which every version and runtime must reproduce', () => {
      // Cluster members on different versions must agree: changing these values is a breaking change.
      const ring = new ConsistentHashRing({ nodes: ['alpha', 'beta', 'gamma', 'delta'] })
      expect({
        'do-0': ring.getNode('do-0'),
        'do-1': ring.getNode('do-1'),
        'do-2': ring.getNode('do-2'),
        'do-3': ring.getNode('do-3'),
        'do-4': ring.getNode('do-4'),
        'do-5': ring.getNode('do-5'),
        'user:ключ': ring.getNode('user:ключ'),
        '🔑': ring.getNode('🔑'),
      }).toEqual({
        'do-0': 'delta',
        'do-1': 'beta',
        'do-2': 'alpha',
        'do-3': 'delta',
        'do-4': 'alpha',
        'do-5': 'gamma',
        'user:ключ': 'beta',
        '🔑': 'beta',
      })
      expect(ring.getNodes('do-0', 4)).toEqual(['delta', 'alpha', 'gamma', 'beta'])
    })

    it('breaks ties between nodes whose points coincide by node id, not by insertion order', () => {
      // With one vnode each, a node sits at murmurHash3(id, 0); these two ids collide there.
      const [low, high] = ['node-53119', 'node-70603']
      const first = new ConsistentHashRing({ vnodes: 1, nodes: [low, high] })
      const second = new ConsistentHashRing({ vnodes: 1, nodes: [high, low] })
      for (const key of keys(50)) {
        expect(first.getNode(key)).toBe(low)
        expect(second.getNode(key)).toBe(low)
        expect(second.getNodes(key, 2)).toEqual([low, high])
      }
    })

    it('uses no Node built-ins, so Node and workerd compute the same owners', () => {
      const dir = join(import.meta.dirname, '../../src/ring')
      const files = readdirSync(dir).filter((file) => file.endsWith('.ts'))
      expect(files.length).toBeGreaterThan(0)
      for (const file of files) {
        const source = readFileSync(join(dir, file), 'utf8')
        const specifiers = [...source.matchAll(/from\s+'([^']+)'/g)].map((match) => match[1]!)
        for (const specifier of specifiers) expect(specifier, `${file} imports ${specifier}`).toMatch(/^\.\.?\//)
        expect(source, file).not.toMatch(/\b(require|process|Buffer)\s*[.(]/)
      }
    })
  })

  describe('getNodes', () => {
    const ring = new ConsistentHashRing({ nodes: Array.from({ length: 8 }, (_, i) => `n${i}`) })

    it('starts with the owner and lists distinct nodes', () => {
      for (const key of keys(500)) {
        const list = ring.getNodes(key, 5)
        expect(list).toHaveLength(5)
        expect(new Set(list).size).toBe(5)
        expect(list[0]).toBe(ring.getNode(key))
      }
    })

    it('returns every node once when asked for more nodes than the ring has', () => {
      const list = ring.getNodes('do-7', 100)
      expect([...list].sort()).toEqual(ring.nodes)
    })

    it('lists as second choice the node that takes over the key when the owner is removed', () => {
      for (const key of keys(120)) {
        const [owner, fallback] = ring.getNodes(key, 2)
        const without = new ConsistentHashRing({ nodes: ring.nodes.filter((id) => id !== owner) })
        expect(without.getNode(key)).toBe(fallback)
        expect(without.getNodes(key, 6)).toEqual(ring.getNodes(key, 7).slice(1))
      }
    })
  })

  describe('findNode', () => {
    const ring = new ConsistentHashRing({ nodes: ['a', 'b', 'c', 'd'] })

    it('returns the first node of the preference list that the predicate accepts, asking each node once', () => {
      for (const key of keys(200)) {
        const preference = ring.getNodes(key, 4)
        const asked: string[] = []
        const found = ring.findNode(key, (id) => {
          asked.push(id)
          return id === preference[2]
        })
        expect(found).toBe(preference[2])
        expect(asked).toEqual(preference.slice(0, 3))
      }
    })

    it('returns undefined when no node is accepted', () => {
      expect(ring.findNode('do-1', () => false)).toBeUndefined()
    })

    it('stays correct when the predicate itself looks up the same ring', () => {
      const preference = ring.getNodes('do-9', 4)
      const found = ring.findNode('do-9', (id) => {
        expect(ring.getNodes('do-9', 4)).toEqual(preference)
        return id === preference[3]
      })
      expect(found).toBe(preference[3])
    })
  })

  describe('weights', () => {
    it('gives nodes keys in proportion to their weights', () => {
      const ring = new ConsistentHashRing({
        nodes: [
          { id: 'small', weight: 1 },
          { id: 'big', weight: 3 },
        ],
      })
      const counts = new Map<string, number>()
      for (const owner of owners(ring, keys(100_000))) counts.set(owner, (counts.get(owner) ?? 0) + 1)
      expect((counts.get('big') ?? 0) / 100_000).toBeGreaterThan(0.72)
      expect((counts.get('big') ?? 0) / 100_000).toBeLessThan(0.78)
    })

    it('moves keys only onto a node whose weight grows', () => {
      const keyList = keys(50_000)
      const before = owners(new ConsistentHashRing({ nodes: ['a', 'b', 'c'] }), keyList)
      const after = owners(new ConsistentHashRing({ nodes: ['a', { id: 'b', weight: 2 }, 'c'] }), keyList)
      let moved = 0
      for (let i = 0; i < keyList.length; i++) {
        if (before[i] !== after[i]) {
          moved++
          expect(after[i]).toBe('b')
        }
      }
      expect(moved).toBeGreaterThan(0)
    })

    it('gives a tiny weight at least one virtual node', () => {
      const ring = new ConsistentHashRing({ vnodes: 4, nodes: [{ id: 'tiny', weight: 0.001 }] })
      expect(ring.getNode('anything')).toBe('tiny')
    })
  })

  it('handles a single node, a single vnode and keys that hash past the last point', () => {
    const ring = new ConsistentHashRing({ vnodes: 1, nodes: ['only'] })
    for (const key of keys(1000)) expect(ring.getNode(key)).toBe('only')
    const two = new ConsistentHashRing({ vnodes: 1, nodes: ['a', 'b'] })
    const seen = new Set(owners(two, keys(1000)))
    expect(seen).toEqual(new Set(['a', 'b']))
  })
})
