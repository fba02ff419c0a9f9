/**
 * Many callers of one process waiting for ONE DO id (issue 13, "fair under contention"): handoffs per
 * second and how evenly the callers are served.
 *
 * Run: `npm run bench:fairness` (local `file:` database, SQLite's default `synchronous=FULL`). Options:
 * `--waiters N` (default 8), `--ms MS` per round (default 2000), `--rounds N` (default 3), `--sync
 * off|normal|full|extra`, `--rtt MS` (an artificial round trip per request), `--group-commit` (the
 * store's group commit), `--hold-ms MS` (each holder waits that long before releasing; default 0),
 * `--local` (the local engine: the store opens the file itself, instead of an `@libsql/client` client),
 * `--quick`.
 *
 * Each caller loops `acquire(id, { waitMs })` -> `release` (awaited) -> `acquire` again, with no pause.
 * Three variants, in interleaved rounds on the same database:
 *
 * - `one guard`: the N callers share one `HybridConsistencyGuard`, as the callers of one node do. With
 *   fair local waiting they are served in arrival order, and a release hands the lease to the next in
 *   line in one request (`LockStore.handoff`: one commit per handoff).
 * - `one guard, 2 commits`: the same over the store with `handoff` hidden, as before it existed: the
 *   release wakes the next in line, which acquires (a release and an acquire, two commits per handoff).
 * - `N guards`: each caller has its own guard (its own node id), so nothing is local and every waiter
 *   polls the store with backoff: the behaviour one guard had before fair local waiting (and what
 *   callers on N nodes still see). Run this script in a worktree of a commit before it to see
 *   `one guard` there match it.
 *
 * Printed per variant: handoffs/s (acquisitions that changed caller), acquisitions/s, the least- and
 * most-served caller's share of acquisitions, store requests that could grant a lease (acquire and
 * handoff) per acquisition (1.00 = no losing try), and the checks every run makes: tokens strictly
 * increase and no two callers ever hold at once. Always exits 0 unless a check fails.
 */
import { createClient } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { HybridConsistencyGuard, LibSQLLockStore, type LockStore } from '../src/index.js'
import { ARGV as argv, numberOption, QUICK, RTT_MS, SYNC } from './options.js'
import { rttClient } from './rtt-client.js'

const WAITERS = numberOption('--waiters', 8)
const ROUND_MS = numberOption('--ms', QUICK ? 400 : 2000)
const ROUNDS = numberOption('--rounds', QUICK ? 1 : 3)
const HOLD_MS = numberOption('--hold-ms', 0)
const GROUP_COMMIT = argv.includes('--group-commit')
const LOCAL = argv.includes('--local')
const DO_ID = 'hot-object'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-fairness-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const raw = createClient({ url: `file:${join(dir, 'locks.db')}` })
await raw.execute('PRAGMA journal_mode=WAL')
await raw.execute('PRAGMA busy_timeout=5000')
if (SYNC) await raw.execute(`PRAGMA synchronous=${SYNC}`)
const synchronous = (await raw.execute('PRAGMA synchronous')).rows[0]?.synchronous
const client = rttClient(raw, RTT_MS).client
if (LOCAL && RTT_MS) throw new Error('--local has no artificial round trip: use one of --local and --rtt')
const options = GROUP_COMMIT ? { groupCommit: true } : {}
const inner = LOCAL
  ? new LibSQLLockStore(`file:${join(dir, 'locks.db')}`, {
      ...options,
      pragmas: ['journal_mode = WAL', ...(SYNC ? [`synchronous = ${SYNC}`] : [])],
    })
  : new LibSQLLockStore(client, options)
await inner.ensureSchema()

/** Counts requests reaching the store that could grant a lease (acquire, handoff), winning or losing. */
let storeAcquires = 0
/** The store as the guards see it; `handoff: false` hides `LockStore.handoff` (two commits per handoff). */
const counted = (handoff: boolean): LockStore =>
  new Proxy(inner, {
    get(target, key) {
      if (key === 'acquire')
        return (request: Parameters<LockStore['acquire']>[0]) => (storeAcquires++, target.acquire(request))
      if (key === 'handoff') {
        if (!handoff) return undefined
        return (request: Parameters<NonNullable<LockStore['handoff']>>[0]) => (storeAcquires++, target.handoff(request))
      }
      const value = Reflect.get(target, key, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value // private fields need the real store
    },
  })
const store = counted(true)

interface RoundResult {
  acquisitions: number
  handoffs: number
  perCaller: number[]
  storeAcquires: number
}

/** One round: `callers` loop acquire -> release on {@link DO_ID} through `guards[i % guards.length]`. */
async function round(guards: HybridConsistencyGuard[], callers: number): Promise<RoundResult> {
  const perCaller = new Array<number>(callers).fill(0)
  const stop = new AbortController()
  let holding: number | undefined
  let lastToken = -Infinity
  let lastCaller = -1
  let handoffs = 0
  let acquisitions = 0
  storeAcquires = 0
  const start = performance.now()
  const end = start + ROUND_MS
  const worker = async (i: number) => {
    const guard = guards[i % guards.length]!
    while (!stop.signal.aborted) {
      let result
      try {
        result = await guard.acquire(DO_ID, { waitMs: 60_000, heartbeat: false, signal: stop.signal })
      } catch (error) {
        if (stop.signal.aborted) return
        throw error
      }
      if (!result.acquired) throw new Error(`caller ${i} waited 60 s without the lease`)
      const { lock } = result
      if (holding !== undefined) throw new Error(`callers ${holding} and ${i} held the lease at once`)
      if (!(lock.fencingToken > lastToken)) throw new Error(`token ${lock.fencingToken} after ${lastToken}`)
      holding = i
      lastToken = lock.fencingToken
      if (performance.now() < end) {
        acquisitions++
        perCaller[i]!++
        if (lastCaller !== i && lastCaller !== -1) handoffs++
      }
      lastCaller = i
      if (HOLD_MS > 0) await new Promise((resolve) => setTimeout(resolve, HOLD_MS))
      holding = undefined
      await guard.release(lock)
      if (performance.now() >= end) stop.abort()
    }
  }
  const timer = setTimeout(() => stop.abort(), ROUND_MS)
  await Promise.all(Array.from({ length: callers }, (_, i) => worker(i)))
  clearTimeout(timer)
  return { acquisitions, handoffs, perCaller, storeAcquires }
}

const variants: [string, () => HybridConsistencyGuard[]][] = [
  ['one guard', () => [new HybridConsistencyGuard({ store, nodeId: 'node-0' })]],
  ['one guard, 2 commits', () => [new HybridConsistencyGuard({ store: counted(false), nodeId: 'node-0' })]],
  [
    `${WAITERS} guards`,
    () => Array.from({ length: WAITERS }, (_, i) => new HybridConsistencyGuard({ store, nodeId: `node-${i}` })),
  ],
]

const totals = new Map<string, RoundResult[]>()
for (let r = 0; r < ROUNDS; r++) {
  const order = r % 2 === 1 ? [...variants].reverse() : variants // interleaved: background load hits both alike
  for (const [name, make] of order) {
    const guards = make()
    const result = await round(guards, WAITERS)
    await Promise.all(guards.map((g) => g.shutdown()))
    totals.set(name, [...(totals.get(name) ?? []), result])
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const pct = (x: number) => `${(100 * x).toFixed(1)}%`
console.log(
  `fairness: ${WAITERS} callers on one id, ${ROUNDS} rounds x ${ROUND_MS} ms, synchronous=${synchronous}` +
    `${LOCAL ? ', local engine' : ', client engine'}${GROUP_COMMIT ? ', group commit' : ''}${RTT_MS ? `, rtt ${RTT_MS} ms` : ''}` +
    `${HOLD_MS ? `, hold ${HOLD_MS} ms` : ''}; ` +
    `${cpus().length} cpus, load ${loadavg()[0]!.toFixed(2)}; command: ${['bench:fairness', ...argv].join(' ')}`,
)
console.log(
  'variant'.padEnd(21),
  'handoffs/s'.padStart(11),
  'acquires/s'.padStart(11),
  'least'.padStart(7),
  'most'.padStart(7),
  'req/acq'.padStart(8),
  '  per round handoffs/s, least-served',
)
for (const [name, results] of totals) {
  const perSecond = (n: number) => n / (ROUND_MS / 1000)
  const shares = results.map((r) => Math.min(...r.perCaller) / Math.max(1, r.acquisitions))
  const mosts = results.map((r) => Math.max(...r.perCaller) / Math.max(1, r.acquisitions))
  console.log(
    name.padEnd(21),
    perSecond(median(results.map((r) => r.handoffs)))
      .toFixed(0)
      .padStart(11),
    perSecond(median(results.map((r) => r.acquisitions)))
      .toFixed(0)
      .padStart(11),
    pct(median(shares)).padStart(7),
    pct(median(mosts)).padStart(7),
    median(results.map((r) => r.storeAcquires / Math.max(1, r.acquisitions)))
      .toFixed(2)
      .padStart(8),
    '  ' + results.map((r, i) => `${perSecond(r.handoffs).toFixed(0)} ${pct(shares[i]!)}`).join(', '),
  )
}
console.log('checks: tokens strictly increased and no two callers held the lease at once, in every round')
const fair = totals.get('one guard')!
const leastServed = Math.min(...fair.map((r) => Math.min(...r.perCaller) / Math.max(1, r.acquisitions)))
console.log(
  `target (issue 13): every caller of one guard served, least-served >= 8% in every round: ` +
    `${leastServed >= 0.08 ? 'PASS' : 'FAIL'} (${pct(leastServed)})`,
)
