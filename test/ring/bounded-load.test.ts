import { describe, expect, it } from 'vitest'
import { EmptyRingError, InvalidArgumentError } from '../../src/errors.js'
import { boundedCapacity, BoundedLoadBalancer, ConsistentHashRing } from '../../src/ring/index.js'
import { seededRandom as prng } from '../support/random.js'

/** `count` requests over `distinct` keys whose popularity follows Zipf's law with exponent `s`. */
function zipfRequests(count: number, distinct: number, s: number, seed: number): string[] {
  const cumulative = new Float64Array(distinct)
  let sum = 0
  for (let rank = 0; rank < distinct; rank++) cumulative[rank] = sum += 1 / (rank + 1) ** s
  const random = prng(seed)
  const requests = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    const target = random() * sum
    let low = 0
    let high = distinct - 1
    while (low < high) {
      const mid = (low + high) >> 1
      if (cumulative[mid]! < target) low = mid + 1
      else high = mid
    }
    requests[i] = `do-${low}`
  }
  return requests
}

const nodeIds = (count: number): string[] => Array.from({ length: count }, (_, i) => `worker-${i}`)

describe('boundedCapacity', () => {
  it('is ceil(c * (totalLoad + 1) * weight / totalWeight)', () => {
    expect(boundedCapacity(1.25, 99, 1, 10)).toBe(13)
    expect(boundedCapacity(1.25, 999_999, 1, 10)).toBe(125_000)
    expect(boundedCapacity(1.5, 10, 2, 3)).toBe(11)
    expect(boundedCapacity(1, 0, 1, 3)).toBe(1)
  })

  it('does not round an exact product up because of floating-point error', () => {
    // 1.1 * 1000 / 10 is 110.00000000000001 in binary floating point.
    expect(boundedCapacity(1.1, 999, 1, 10)).toBe(110)
  })
})

describe('ConsistentHashRing.getNodeBounded', () => {
  const ring = new ConsistentHashRing({ nodes: nodeIds(4) })

  it('keeps the plain owner while it has room', () => {
    for (let i = 0; i < 200; i++) {
      const key = `do-${i}`
      expect(ring.getNodeBounded(key, { loads: new Map() })).toBe(ring.getNode(key))
      expect(ring.getNodeBounded(key, { loads: () => 10, c: 1 })).toBe(ring.getNode(key))
    }
  })

  it('skips nodes at capacity, walking the preference list', () => {
    const key = 'do-hot'
    const [first, second, third] = ring.getNodes(key, 3)
    // total 38, 4 nodes, c = 1.25: capacity ceil(1.25 * 39 / 4) = 13.
    const loads = new Map([
      [first!, 13],
      [second!, 13],
      [third!, 12],
    ])
    expect(ring.getNodeBounded(key, { loads, c: 1.25 })).toBe(third)
    loads.set(third!, 13)
    loads.set(first!, 12) // same total, same capacity: now the owner has room again
    expect(ring.getNodeBounded(key, { loads, c: 1.25 })).toBe(first)
    expect(ring.getNodeBounded(key, { loads: (id) => loads.get(id) ?? 0, c: 1.25 })).toBe(first)
  })

  it('scales capacity by weight', () => {
    const weighted = new ConsistentHashRing({ nodes: [{ id: 'big', weight: 3 }, 'small'] })
    const key = [...Array(100).keys()].map((i) => `k${i}`).find((k) => weighted.getNode(k) === 'small')!
    // total 8, c = 1: small's capacity is ceil(9 / 4) = 3, big's ceil(27 / 4) = 7.
    expect(
      weighted.getNodeBounded(key, {
        loads: new Map([
          ['small', 2],
          ['big', 6],
        ]),
        c: 1,
      }),
    ).toBe('small')
    expect(
      weighted.getNodeBounded(key, {
        loads: new Map([
          ['small', 3],
          ['big', 5],
        ]),
        c: 1,
      }),
    ).toBe('big')
  })

  it('rejects a bad load factor or bad loads', () => {
    for (const c of [0.99, 0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => ring.getNodeBounded('k', { loads: new Map(), c })).toThrow(InvalidArgumentError)
    }
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => ring.getNodeBounded('k', { loads: new Map([['worker-0', bad]]) })).toThrow(InvalidArgumentError)
    }
    expect(() => ring.getNodeBounded('k', { loads: {} as Map<string, number> })).toThrow(InvalidArgumentError)
  })
})

describe('BoundedLoadBalancer', () => {
  it.each([3, 10, 100])(
    'keeps every one of %i nodes within ceil(1.25 x mean) over 1,000,000 Zipf-distributed requests',
    (count) => {
      const requests = zipfRequests(1_000_000, 50_000, 1.1, count)
      const ring = new ConsistentHashRing({ nodes: nodeIds(count) })
      const balancer = new BoundedLoadBalancer(ring, { c: 1.25 })
      const plain = new Map<string, number>()
      for (const key of requests) {
        balancer.assign(key)
        const owner = ring.getNode(key)
        plain.set(owner, (plain.get(owner) ?? 0) + 1)
      }
      const bound = Math.ceil(1.25 * (requests.length / count))
      // The skew is real: without bounded loads the hottest node would be above the bound.
      expect(Math.max(...plain.values())).toBeGreaterThan(bound)
      expect(balancer.totalLoad).toBe(requests.length)
      expect(Math.max(...balancer.loads.values())).toBeLessThanOrEqual(bound)
    },
  )

  it('never lets a node exceed its capacity at any point of a skewed sequence', () => {
    const ring = new ConsistentHashRing({ nodes: nodeIds(7) })
    const balancer = new BoundedLoadBalancer(ring, { c: 1.1 })
    for (const key of zipfRequests(20_000, 500, 1.3, 99)) {
      const capacity = boundedCapacity(1.1, balancer.totalLoad, 1, 7)
      const node = balancer.assign(key)
      expect(balancer.loadOf(node)).toBeLessThanOrEqual(capacity)
    }
  })

  it('places a request exactly where getNodeBounded would, and peek does not record it', () => {
    const ring = new ConsistentHashRing({ nodes: nodeIds(5) })
    const balancer = new BoundedLoadBalancer(ring, { c: 1.2 })
    for (const key of zipfRequests(5_000, 100, 1.2, 5)) {
      const expected = ring.getNodeBounded(key, { loads: balancer.loads, c: 1.2 })
      expect(balancer.peek(key)).toBe(expected)
      expect(balancer.assign(key)).toBe(expected)
    }
    expect(balancer.totalLoad).toBe(5_000)
  })

  it('frees capacity on release and forgets everything on reset', () => {
    const ring = new ConsistentHashRing({ nodes: ['a', 'b'] })
    const balancer = new BoundedLoadBalancer(ring)
    const node = balancer.assign('do-1')
    balancer.assign('do-1')
    expect(balancer.loadOf(node)).toBe(2)
    balancer.release(node)
    expect(balancer.loadOf(node)).toBe(1)
    expect(balancer.totalLoad).toBe(1)
    expect(() => balancer.release(node, 2)).toThrow(InvalidArgumentError)
    expect(() => balancer.release(node, 0)).toThrow(InvalidArgumentError)
    balancer.reset()
    expect(balancer.totalLoad).toBe(0)
    expect(balancer.loads).toEqual(
      new Map([
        ['a', 0],
        ['b', 0],
      ]),
    )
  })

  it('drops the load of nodes that leave the ring and lets new nodes take load', () => {
    const ring = new ConsistentHashRing({ nodes: ['a', 'b'] })
    const balancer = new BoundedLoadBalancer(ring)
    for (let i = 0; i < 100; i++) balancer.assign(`do-${i}`)
    const leftBehind = balancer.loadOf('a')
    expect(leftBehind).toBeGreaterThan(0)
    ring.removeNode('a').addNode('c')
    expect(balancer.totalLoad).toBe(100 - leftBehind)
    expect(balancer.loadOf('a')).toBe(0)
    balancer.release('a') // a request that ends on a departed node is not an error
    for (let i = 0; i < 100; i++) balancer.assign(`do-${i}`)
    expect(balancer.loadOf('c')).toBeGreaterThan(0)
  })

  it('throws EmptyRingError on an empty ring and rejects a bad load factor', () => {
    expect(() => new BoundedLoadBalancer(new ConsistentHashRing()).assign('k')).toThrow(EmptyRingError)
    expect(() => new BoundedLoadBalancer(new ConsistentHashRing(), { c: 0.5 })).toThrow(InvalidArgumentError)
  })
})
