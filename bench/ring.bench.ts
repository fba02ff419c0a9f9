/**
 * ConsistentHashRing vs the `hashring` npm package (v3, ketama/md5), side by side on the same keys.
 *
 * Run: `npm run bench:ring`. One run prints, for 3 / 10 / 100 nodes: lookup ns/op (median of several
 * runs over the same distinct keys for both), load balance over 1,000,000 keys, keys moved when one
 * node joins and when one leaves, bounded-load placement under a Zipf workload, and build time and
 * memory for 100 nodes; then whether each target of issue 3 is met. Always exits 0.
 */
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import v8 from 'node:v8'
import vm from 'node:vm'
import { BoundedLoadBalancer, ConsistentHashRing, DEFAULT_VNODES } from '../src/ring/index.js'
import { seededRandom as prng } from '../test/support/random.js'

/** The subset of hashring's API used here (the package ships no types). */
interface HashRingInstance {
  get(key: string): string
  add(server: string): HashRingInstance
  remove(server: string): HashRingInstance
  /** md5 of the key as a ring position; what `get` computes when its LRU cache misses. */
  hashValue(key: string): number
  /** Index in `ring` of the point that owns a position. */
  find(hash: number): number
  ring: Array<{ server: string }>
}
type HashRingConstructor = new (servers: string[]) => HashRingInstance
const HashRing = createRequire(import.meta.url)('hashring') as HashRingConstructor

const NODE_COUNTS = [3, 10, 100] as const
const KEY_COUNT = 1_000_000
/** hashring needs ~5 µs per lookup, so timing uses a slice of the keys; every key is still distinct. */
const TIMED_KEYS = 200_000
const TIMING_RUNS = 5
const ZIPF_DISTINCT = 100_000
const ZIPF_EXPONENT = 1.1
const LOAD_FACTOR = 1.25
const BUILD_RUNS = 7
const MEMORY_COPIES = 20

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const nodeIds = (count: number): string[] => Array.from({ length: count }, (_, i) => `10.0.0.${i}:8787`)

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Median ns per lookup over `keys`, interleaving the two lookups run by run so noise hits both. */
function timeLookups(lookups: Array<(key: string) => string>, keys: readonly string[]): number[] {
  const samples = lookups.map(() => [] as number[])
  let sink = 0
  for (const lookup of lookups) for (let i = 0; i < 20_000; i++) sink += lookup(keys[i]!).length // warm up the JIT
  for (let run = 0; run < TIMING_RUNS; run++) {
    lookups.forEach((lookup, which) => {
      const start = performance.now()
      for (let i = 0; i < keys.length; i++) sink += lookup(keys[i]!).length
      samples[which]!.push(((performance.now() - start) * 1e6) / keys.length)
    })
  }
  if (sink === 0) console.log('') // keeps the lookups observable
  return samples.map(median)
}

/** Owner of each key as an index into `ids`. */
function owners(lookup: (key: string) => string, keys: readonly string[], ids: readonly string[]): Uint16Array {
  const indexOf = new Map(ids.map((id, i) => [id, i]))
  const out = new Uint16Array(keys.length)
  for (let i = 0; i < keys.length; i++) out[i] = indexOf.get(lookup(keys[i]!))!
  return out
}

/**
 * hashring's owner of each key, from md5 positions computed once: the same answer as `get`
 * (which only adds an LRU cache in front), without paying md5 again for every ring compared.
 */
function theirOwners(ring: HashRingInstance, positions: Uint32Array, ids: readonly string[]): Uint16Array {
  const indexOf = new Map(ids.map((id, i) => [id, i]))
  const out = new Uint16Array(positions.length)
  for (let i = 0; i < positions.length; i++) out[i] = indexOf.get(ring.ring[ring.find(positions[i]!)]!.server)!
  return out
}

interface Balance {
  maxOverMean: number
  cv: number
}

function balance(loads: readonly number[]): Balance {
  const mean = loads.reduce((a, b) => a + b, 0) / loads.length
  const variance = loads.reduce((a, b) => a + (b - mean) ** 2, 0) / loads.length
  return { maxOverMean: Math.max(...loads) / mean, cv: Math.sqrt(variance) / mean }
}

function countLoads(owned: Uint16Array, nodeCount: number): number[] {
  const counts = new Array<number>(nodeCount).fill(0)
  for (const owner of owned) counts[owner]!++
  return counts
}

function movedFraction(before: Uint16Array, after: Uint16Array): number {
  let moved = 0
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++
  return moved / before.length
}

function zipfRequests(keys: readonly string[], count: number): string[] {
  const cumulative = new Float64Array(keys.length)
  let sum = 0
  for (let rank = 0; rank < keys.length; rank++) cumulative[rank] = sum += 1 / (rank + 1) ** ZIPF_EXPONENT
  const random = prng(42)
  const requests = new Array<string>(count)
  for (let i = 0; i < count; i++) {
    const target = random() * sum
    let low = 0
    let high = keys.length - 1
    while (low < high) {
      const mid = (low + high) >> 1
      if (cumulative[mid]! < target) low = mid + 1
      else high = mid
    }
    requests[i] = keys[low]!
  }
  return requests
}

/** Collects garbage until it settles: V8 frees ArrayBuffer backing stores concurrently, after gc(). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

async function retainedBytes(build: () => unknown): Promise<number> {
  const held: unknown[] = []
  await settle()
  const before = process.memoryUsage()
  for (let i = 0; i < MEMORY_COPIES; i++) held.push(build())
  await settle()
  const after = process.memoryUsage()
  const bytes = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers)
  if (held.length !== MEMORY_COPIES) throw new Error('unreachable')
  return bytes / MEMORY_COPIES
}

const fmt = (value: number, digits = 1): string => value.toFixed(digits)
const pct = (value: number): string => `${(value * 100).toFixed(2)}%`

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)))
  const line = (row: string[]): string =>
    row.map((cell, col) => (col === 0 ? cell.padEnd(widths[col]!) : cell.padStart(widths[col]!))).join('  ')
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n')
}

interface Check {
  name: string
  value: string
  pass: boolean
}

const benchStart = performance.now()
const checks: Check[] = []
const keys = Array.from({ length: KEY_COUNT }, () => `do-${randomUUID()}`)
const timedKeys = keys.slice(0, TIMED_KEYS)
const zipf = zipfRequests(keys.slice(0, ZIPF_DISTINCT), KEY_COUNT)
const md5Ring = new HashRing(['x'])
const md5Positions = Uint32Array.from(keys, (key) => md5Ring.hashValue(key))

console.log(
  `ConsistentHashRing (vnodes ${DEFAULT_VNODES}, MurmurHash3) vs hashring 3.2.0 (ketama md5, 160 points per node)`,
)
console.log(
  `${KEY_COUNT.toLocaleString('en-US')} keys do-<uuid>; lookups timed over ${TIMED_KEYS.toLocaleString('en-US')} distinct keys, median of ${TIMING_RUNS} runs; Node ${process.version}\n`,
)

for (const count of NODE_COUNTS) {
  const ids = nodeIds(count)
  const joining = `10.0.1.0:8787`
  const leaving = ids[Math.floor(count / 2)]!
  const allIds = [...ids, joining]

  const ours = new ConsistentHashRing({ nodes: ids })
  const theirs = new HashRing(ids)
  const [oursNs, theirsNs] = timeLookups([(key) => ours.getNode(key), (key) => theirs.get(key)], timedKeys) as [
    number,
    number,
  ]

  const oursBase = owners((key) => ours.getNode(key), keys, allIds)
  const theirsBase = theirOwners(theirs, md5Positions, allIds)
  for (let i = 0; i < 1000; i++) {
    if (allIds[theirsBase[i]!] !== theirs.get(keys[i]!)) throw new Error('hashring owner mismatch')
  }
  const oursBalance = balance(countLoads(oursBase, count))
  const theirsBalance = balance(countLoads(theirsBase, count))

  ours.addNode(joining)
  const oursAddMoved = movedFraction(
    oursBase,
    owners((key) => ours.getNode(key), keys, allIds),
  )
  ours.removeNode(joining).removeNode(leaving)
  const oursRemoveMoved = movedFraction(
    oursBase,
    owners((key) => ours.getNode(key), keys, allIds),
  )
  ours.addNode(leaving)
  const theirsAddMoved = movedFraction(theirsBase, theirOwners(new HashRing(ids).add(joining), md5Positions, allIds))
  const theirsRemoveMoved = movedFraction(
    theirsBase,
    theirOwners(new HashRing(ids).remove(leaving), md5Positions, allIds),
  )

  // Bounded loads: every Zipf request is placed by the rule; compare with plain consistent hashing.
  const balancer = new BoundedLoadBalancer(ours, { c: LOAD_FACTOR })
  const plainLoads = new Map<string, number>()
  let displaced = 0
  const boundedStart = performance.now()
  for (const key of zipf) {
    const node = balancer.assign(key)
    const owner = ours.getNode(key)
    if (node !== owner) displaced++
    plainLoads.set(owner, (plainLoads.get(owner) ?? 0) + 1)
  }
  const boundedNs = ((performance.now() - boundedStart) * 1e6) / zipf.length
  const zipfMean = zipf.length / count
  const boundedMax = Math.max(...balancer.loads.values())
  const plainMax = Math.max(...plainLoads.values())
  const zipfBound = Math.ceil(LOAD_FACTOR * zipfMean)

  const idealAdd = 1 / (count + 1)
  const idealRemove = 1 / count
  console.log(`== ${count} nodes ==`)
  console.log(
    table([
      ['metric', 'ours', 'hashring', 'ours/hashring'],
      [
        'lookup ns/op (median)',
        fmt(oursNs),
        fmt(theirsNs),
        `${fmt(oursNs / theirsNs, 3)} (${fmt(theirsNs / oursNs)}x faster)`,
      ],
      ['max/mean load, 1M keys', fmt(oursBalance.maxOverMean, 4), fmt(theirsBalance.maxOverMean, 4), ''],
      ['coefficient of variation', fmt(oursBalance.cv, 4), fmt(theirsBalance.cv, 4), ''],
      [
        `moved on add (ideal ${pct(idealAdd)})`,
        `${pct(oursAddMoved)} = ${fmt(oursAddMoved / idealAdd, 3)}x`,
        `${pct(theirsAddMoved)} = ${fmt(theirsAddMoved / idealAdd, 3)}x`,
        '',
      ],
      [
        `moved on remove (ideal ${pct(idealRemove)})`,
        `${pct(oursRemoveMoved)} = ${fmt(oursRemoveMoved / idealRemove, 3)}x`,
        `${pct(theirsRemoveMoved)} = ${fmt(theirsRemoveMoved / idealRemove, 3)}x`,
        '',
      ],
    ]),
  )
  console.log(
    `bounded loads, c=${LOAD_FACTOR}, ${zipf.length.toLocaleString('en-US')} Zipf(s=${ZIPF_EXPONENT}) requests over ${ZIPF_DISTINCT.toLocaleString('en-US')} keys: ` +
      `max/mean ${fmt(boundedMax / zipfMean, 4)} (max ${boundedMax}, ceil(1.25 x mean) = ${zipfBound}); ` +
      `plain ring max/mean ${fmt(plainMax / zipfMean, 4)}; ${pct(displaced / zipf.length)} of requests off their owner; ${fmt(boundedNs)} ns/assign\n`,
  )

  checks.push({
    name: `lookup >= 3x faster than hashring at ${count} nodes`,
    value: `${fmt(theirsNs / oursNs)}x`,
    pass: theirsNs / oursNs >= 3,
  })
  if (count === 10)
    checks.push({
      name: 'max/mean <= 1.10 at 10 nodes',
      value: fmt(oursBalance.maxOverMean, 4),
      pass: oursBalance.maxOverMean <= 1.1,
    })
  if (count === 100)
    checks.push({
      name: 'max/mean <= 1.25 at 100 nodes',
      value: fmt(oursBalance.maxOverMean, 4),
      pass: oursBalance.maxOverMean <= 1.25,
    })
  checks.push({
    name: `moved on add <= 1.15 x ideal at ${count} nodes`,
    value: `${fmt(oursAddMoved / idealAdd, 3)}x`,
    pass: oursAddMoved <= 1.15 * idealAdd,
  })
  checks.push({
    name: `moved on remove <= 1.15 x ideal at ${count} nodes`,
    value: `${fmt(oursRemoveMoved / idealRemove, 3)}x`,
    pass: oursRemoveMoved <= 1.15 * idealRemove,
  })
  checks.push({
    name: `bounded loads (c=1.25, Zipf): max <= ceil(1.25 x mean) at ${count} nodes`,
    value: `${boundedMax} <= ${zipfBound} (max/mean ${fmt(boundedMax / zipfMean, 4)})`,
    pass: boundedMax <= zipfBound,
  })
}

// Build time and memory for 100 nodes: ours adds nodes one by one and builds on the first lookup.
const ids100 = nodeIds(100)
const buildOurs = (): ConsistentHashRing => {
  const ring = new ConsistentHashRing()
  for (const id of ids100) ring.addNode(id)
  ring.getNode('warm')
  return ring
}
const buildTheirs = (): HashRingInstance => new HashRing(ids100)
const buildMs = [buildOurs, buildTheirs].map((build) => {
  for (let warm = 0; warm < 3; warm++) build()
  const samples: number[] = []
  for (let run = 0; run < BUILD_RUNS; run++) {
    const start = performance.now()
    build()
    samples.push(performance.now() - start)
  }
  return median(samples)
}) as [number, number]
const memory = [await retainedBytes(buildOurs), await retainedBytes(buildTheirs)] as [number, number]
console.log('== 100 nodes: build ==')
console.log(
  table([
    ['metric', 'ours', 'hashring'],
    [`build ms (median of ${BUILD_RUNS})`, fmt(buildMs[0], 2), fmt(buildMs[1], 2)],
    ['retained memory KiB', fmt(memory[0] / 1024), fmt(memory[1] / 1024)],
    ['points on the ring', String(100 * DEFAULT_VNODES), '16000'],
  ]),
)

console.log('\n== targets ==')
for (const check of checks) console.log(`${check.pass ? 'PASS' : 'FAIL'}  ${check.name}: ${check.value}`)
console.log(
  `\n${checks.filter((check) => check.pass).length}/${checks.length} targets met; bench took ${fmt((performance.now() - benchStart) / 1000)} s`,
)
process.exitCode = 0
