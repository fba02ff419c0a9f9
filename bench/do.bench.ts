/**
 * StatelessDO with activations against today's lease per request, side by side in one run (issue 15).
 *
 * Run: `npm run bench:do` (local `file:` database), `npm run bench:do -- --rtt 5` (every request to the
 * database waits 5 ms, like a remote Turso primary). Options: `--rtt MS`, `--quick` (small counts, a few
 * seconds: a smoke test), `--engine native` (the statements run on the local engine instead of
 * `@libsql/client`'s local client). One `file:` database (WAL, busy_timeout 5000, as bench/lock.bench.ts sets it
 * up), one `@libsql/client` client per node, every request to the database counted on the client.
 *
 * One StatelessDO subclass, a counter kept in `this.storage` (GET reads it, POST increments it), driven
 * the way the tests drive it: `new Counter(ctx, env).fetch(request)` with `ctx = { id }` (Durable Object
 * mode) and no `waitUntil`, in two modes:
 *
 * - per request: `activationOptions()` returns `false` (acquire, handler, flush, release per request;
 *   without `waitUntil` the release is awaited before the response, as today in Node);
 * - activations (the default), `idleMs` long enough never to expire during a measurement.
 *
 * Measured:
 *
 * - latency p50/p99 and store requests per request, by type: cold (the first request of an object
 *   another node wrote last: a GET), warm read (GET), warm write (POST); sequential, interleaved one
 *   request at a time with the order rotating, so background load hits every variant alike; beside
 *   each, its floor: the very batch it sent, sent again bare on the same client in the same rounds;
 * - one hot object with 1 / 16 / 64 concurrent clients on one node: acknowledged (200) write turns/s.
 *   Per request, clients wait for the lease (`acquireOptions` `waitMs`, the guard's default backoff);
 * - 64 objects with one client each: acknowledged writes/s;
 * - two nodes (two guards, two clients of the same database, one process) on one object, one client
 *   each: acknowledged writes/s, the split between the nodes, 503s and leases taken; activations with
 *   a long idleMs and hand-over on and off, and with idleMs 5 ms;
 * - plain-Worker mode: 4 isolates (nodes) on one object, 16 clients, each request to a random isolate:
 *   per request (today's default there) against activations with idleMs 1 ms (the README's setting for
 *   plain Workers if activations are turned on) and 10 s (the default), hand-over on and off;
 * - a Node cluster: 4 processes (nodes in this process, a connection each), 64 objects, one client
 *   each, random routing (a plain load balancer) and sticky routing (each object to one process);
 * - afterwards, every object's counter read back: it must hold every acknowledged write.
 *
 * Throughput windows are fixed in time; each request starts as a task of its own (setImmediate), as a
 * request from the network would; at the end of a window the requests still waiting (for the lease, or
 * their turn) are aborted through `request.signal` (499, not counted); a 503 is retried after a short
 * pause. Medians over interleaved rounds. Then the targets of issue 15, met / NOT met. Always
 * exits 0.
 */
import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  StatelessDO,
  type AcquireOptions,
  type ConsistencyGuard,
  type LibSQLClientLike,
  type StatelessDOActivationOptions,
  type StatelessDOContext,
} from '../src/index.js'
import { activationsFor, DEFAULT_IDLE_MS } from '../src/do/node-activations.js'
import { LocalEngine, type NativeDatabaseConstructor } from '../src/store/local-engine.js'
import Database from 'libsql'
import { countingClient } from '../test/support/counting-client.js'
import { ARGV as argv, RTT_MS, QUICK } from './options.js'
import { probeRtt, rttClient } from './rtt-client.js'

// --- options ----------------------------------------------------------------------------------

const remote = RTT_MS > 0
/**
 * `--engine client|native`: what runs the statements behind the artificial network. `client` (default,
 * as in every recorded run): `@libsql/client`'s local client, which adds its own per-statement cost (a
 * fresh prepared statement per call); `native`: the local engine, native statements as a database
 * server runs them. Both share the disk's commit cost, which is what bounds the write floors.
 */
const engineIndex = argv.indexOf('--engine')
const ENGINE = engineIndex < 0 ? 'client' : String(argv[engineIndex + 1])
if (ENGINE !== 'native' && ENGINE !== 'client') throw new Error(`--engine expects native|client, got ${ENGINE}`)
/** The store sees the native engine's adapter as a remote client: the engine defends against SQLITE_BUSY itself. */
const STORE_OPTIONS = ENGINE === 'native' ? { local: false } : {}
/** Sequential latency: samples per (mode, request type). */
const ROUNDS = QUICK ? 15 : remote ? 150 : 300
/**
 * Unmeasured rounds of every variant first: V8 runs a function's first few hundred calls as slower
 * code, and a node that has served a while runs the compiled one (measured here with --rtt 5 after 10
 * rounds: ~1 ms of CPU around a warm write's flush that a warm process does not spend).
 */
const WARMUP = QUICK ? 3 : remote ? 100 : 200
/**
 * Unmeasured warm reads of the activations' warm object before the latency rounds (no store request:
 * a second or so), so that the JIT has compiled the turn path as it has in a node that has served a
 * while; without them the first ~2,000 turns of a process run slower code (measured: 0.2-0.4 ms per
 * warm read over the first thousands, 0.03-0.07 ms after).
 */
const JIT_WARMUP = QUICK ? 100 : 3000
/** Throughput: window per (scenario, mode), and interleaved rounds (medians). */
const TP_MS = QUICK ? 400 : 2000
const TP_ROUNDS = QUICK ? 1 : 3
const HOT_CLIENTS = [1, 16, 64] as const
const OBJECTS = 64
/**
 * A lease long enough that no heartbeat lands inside a measured request (heartbeat ttl/3 = 100 s);
 * every flush extends it anyway. The guard's default is 30 s; only the heartbeat's timing differs.
 */
const TTL_MS = 300_000
/** Per request, how long a request waits for the lease (the only way to serve a busy object in turn). */
const WAIT_MS = 10_000
/** Durable Object mode: idle long enough never to end an activation during a measurement. */
const IDLE_MS = 600_000
/** Two nodes, second activation variant: let go after 5 ms without a turn, so the other node gets in. */
const SHORT_IDLE_MS = 5
/** A client answered 503 tries again after this pause (Retry-After is seconds: a real client's pause). */
const RETRY_PAUSE_MS = 2

// --- setup ------------------------------------------------------------------------------------

const benchStart = performance.now()
const load0 = loadavg()[0]!
const dir = mkdtempSync(join(tmpdir(), 'stateless-do-bench-do-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true })) // also when the bench throws
const url = `file:${join(dir, 'do.db')}`

const raws: Client[] = []
let requestCounters: Array<() => number> = []
/** All store requests made so far, by every node's client. */
const storeRequests = () => requestCounters.reduce((sum, count) => sum + count(), 0)

/** A batch as a store sent it, to send again bare (the floor of the same request). */
interface SentBatch {
  statements: Array<{ sql: string; args: unknown[] }>
  mode: 'write' | 'read' | 'deferred' | undefined
}
/** The last batch any node's store sent (the latency run reads it right after a request). */
let lastBatch: SentBatch | undefined

/**
 * One node's connection to the database: its own client, counted, behind the artificial network.
 * `client` (the store's) also records each batch in `lastBatch`; `bare` is the same client without that.
 */
async function connect(
  options: { groupCommit?: boolean } = {},
): Promise<{ store: LibSQLLockStore; client: LibSQLClientLike; bare: LibSQLClientLike }> {
  const raw = ENGINE === 'client' ? createClient({ url }) : engineClient()
  raws.push(raw)
  if (ENGINE === 'client') {
    await raw.execute('PRAGMA journal_mode=WAL')
    await raw.execute('PRAGMA busy_timeout=5000')
  }
  const counted = countingClient(raw)
  requestCounters = [...requestCounters, counted.requests]
  const bare = rttClient(counted.client, RTT_MS).client
  const client = new Proxy(bare, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (prop === 'batch' && typeof value === 'function') {
        return (statements: SentBatch['statements'], mode?: SentBatch['mode']) => {
          lastBatch = { statements: statements.map((s) => ({ sql: s.sql, args: [...(s.args ?? [])] })), mode }
          return (value as LibSQLClientLike['batch']).call(target, statements as never, mode)
        }
      }
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return {
    store: new LibSQLLockStore(client, { ...STORE_OPTIONS, groupCommit: options.groupCommit ?? false }),
    client,
    bare,
  }
}

/**
 * `--engine native`: the "server" behind the artificial network is the local engine (one native
 * connection, the engine `LibSQLLockStore` runs for a `file:` URL), seen through a client-shaped
 * adapter so the same RTT, counting and recording wrappers apply. The store treats it as remote
 * (`local: false`): the engine has its own SQLITE_BUSY defences.
 */
function engineClient(): Client {
  const engine = new LocalEngine(Database as unknown as NativeDatabaseConstructor, join(dir, 'do.db'), {
    pragmas: ['journal_mode = WAL'],
  })
  type Stmt = string | { sql: string; args?: unknown[] }
  const statement = (s: Stmt) => (typeof s === 'string' ? { sql: s } : s) as never
  const adapter = {
    protocol: 'file',
    execute: (s: Stmt) => engine.execute(statement(s)),
    batch: (statements: Stmt[]) => engine.batch(statements.map(statement)),
    close: () => engine.close(),
  }
  return adapter as unknown as Client
}

/** The same connection's store with hand-over hidden: its nodes' activations never ask a holder to let go. */
function withoutHandover(client: LibSQLClientLike): LibSQLLockStore {
  return Object.defineProperty(new LibSQLLockStore(client, STORE_OPTIONS), 'requestHandover', { value: undefined })
}

/** Nodes of the multi-node scenarios (one connection each), with and without hand-over. */
const NODES = 4
const connections = [await connect()]
for (let i = 1; i < NODES; i++) connections.push(await connect())
const nodeA = connections[0]!
const storeA = nodeA.store
const storeB = connections[1]!.store // the second node of the two-node scenario
const stores = connections.map((c) => c.store)
const plainStores = connections.map((c) => withoutHandover(c.client))
/** One more node-a connection whose store has group commit on: its objects' flushes share commits. */
const groupCommitStores = [(await connect({ groupCommit: true })).store]
await storeA.ensureSchema()
await nodeA.client.execute({
  sql: 'CREATE TABLE IF NOT EXISTS bench_floor (k TEXT PRIMARY KEY, v INTEGER NOT NULL)',
  args: [],
})
const synchronous = (await raws[0]!.execute('PRAGMA synchronous')).rows[0]?.synchronous

type Mode = 'perRequest' | 'activations'
const MODES: Mode[] = ['perRequest', 'activations']
const MODE_LABEL: Record<Mode, string> = { perRequest: 'per request', activations: 'activations' }

interface Env {
  /** The node's id (its guard's). */
  name: string
  guard: ConsistencyGuard
  activation: StatelessDOActivationOptions | false
  acquire: AcquireOptions
  /** What onError saw, by phase and error: contention and clients that left are not reported. */
  errors: Map<string, number>
}

/** The object of the benchmark: a counter in `this.storage`, as a Durable Object keeps one in `ctx.storage`. */
class Counter extends StatelessDO<Env> {
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override activationOptions(): StatelessDOActivationOptions | false {
    return this.env.activation
  }
  protected override acquireOptions(): AcquireOptions {
    return this.env.acquire
  }
  protected override onError(error: unknown, phase: string): void {
    const what = error instanceof Error ? `${error.name}: ${error.message.slice(0, 160)}` : String(error)
    const key = `${phase}: ${what}`
    this.env.errors.set(key, (this.env.errors.get(key) ?? 0) + 1)
  }
  protected async handleRequest(request: Request): Promise<Response> {
    const n = (await this.storage.get<number>('n')) ?? 0
    if (request.method === 'GET') return Response.json({ n })
    await this.storage.put('n', n + 1)
    return Response.json({ n: n + 1 })
  }
}

const allErrors: Array<Map<string, number>> = []
const guards: HybridConsistencyGuard[] = []
function node(nodeId: string, store: LibSQLLockStore, mode: Mode | 'admin', idleMs = IDLE_MS): Env {
  const guard = new HybridConsistencyGuard({ store, nodeId, ttlMs: TTL_MS })
  guards.push(guard)
  const env: Env = {
    name: nodeId,
    guard,
    activation: mode === 'activations' ? { idleMs } : false,
    acquire: mode === 'perRequest' ? { waitMs: WAIT_MS } : {},
    errors: new Map(),
  }
  allErrors.push(env.errors)
  // The node's registry, made now as its first request would make it (StatelessDO.fetch's settings and
  // objectStore()): the bench peeks into it (queue lengths, shutdown) before some nodes' first request.
  if (env.activation !== false) activationsFor(guard, { idleMs: DEFAULT_IDLE_MS, ...env.activation }, store.objects)
  return env
}
/** The node's activation of `doId`, if it has one (its registry exists from `node()` on). */
const activationsOf = (env: Env, doId: string) => activationsFor(env.guard, {}, undefined, 'lookup').get(doId)
/** Ends a node: its activations (queued turns run, writes flushed, leases released), then its guard. */
async function stop(env: Env): Promise<void> {
  if (env.activation !== false) await activationsFor(env.guard, {}, undefined, 'lookup').shutdown()
  await (env.guard as HybridConsistencyGuard).shutdown()
}

const contexts = new Map<string, StatelessDOContext>()
const ctxOf = (doId: string) => {
  let ctx = contexts.get(doId)
  if (!ctx) contexts.set(doId, (ctx = { id: { toString: () => doId } }))
  return ctx
}
const call = (env: Env, doId: string, method: 'GET' | 'POST', signal?: AbortSignal) =>
  new Counter(ctxOf(doId), env).fetch(new Request(`https://do/${doId}`, { method, ...(signal ? { signal } : {}) }))

/** Unmeasured reads and writes, lease per request, on a node of their own ("another node wrote it last"). */
const admin = node('node-admin', storeA, 'admin')
async function adminPost(doId: string): Promise<void> {
  const res = await call(admin, doId, 'POST')
  if (res.status !== 200) throw new Error(`bench: seeding ${doId} answered ${res.status} ${await res.text()}`)
}
async function readBack(doId: string): Promise<number> {
  const res = await call(admin, doId, 'GET')
  if (res.status !== 200) throw new Error(`bench: reading ${doId} back answered ${res.status} ${await res.text()}`)
  return ((await res.json()) as { n: number }).n
}
/** `fn` over `items`, `concurrency` at a time. */
async function inBatches<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += concurrency) await Promise.all(items.slice(i, i + concurrency).map(fn))
}

/** Every object written during the run, with the writes acknowledged to a client (checked at the end). */
const acknowledged = new Map<string, { acked: number; unknown: number }>()
const ack = (doId: string, field: 'acked' | 'unknown') => {
  const entry = acknowledged.get(doId) ?? { acked: 0, unknown: 0 }
  entry[field]++
  acknowledged.set(doId, entry)
}
const anomalies: string[] = []

// --- measurement helpers ----------------------------------------------------------------------

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}
function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const rotate = <T>(items: readonly T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length]!)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// --- sequential latency -----------------------------------------------------------------------

type Kind = 'cold' | 'read' | 'write'
const KINDS: Kind[] = ['cold', 'read', 'write']
const KIND_LABEL: Record<Kind, string> = {
  cold: 'cold (GET, first of an object)',
  read: 'warm read (GET)',
  write: 'warm write (POST)',
}
/**
 * Lower bounds on the same client, not library paths: one request that reads nothing, the cheapest
 * write commit (a one-row upsert in a write batch, as the store sends a statement locally), and the
 * floors of the measured requests themselves: the very batch the activations' last cold read (acquire +
 * prefetch) and last warm write (the flush) sent, sent again bare on the same client, no library
 * around it. The cold one goes to an object of its own (seeded like the cold objects, taken by a node
 * of its own, never released); the flush one to an object the floor's node holds a lease on, with a
 * new value each time: SQLite skips a page whose content an UPDATE leaves as it was, so sending the
 * warm object's own value again would commit nothing and sync nothing.
 */
type Floor = 'floorRequest' | 'floorWrite' | 'floorAcquire' | 'floorFlush'
const FLOORS: Floor[] = ['floorRequest', 'floorWrite', 'floorAcquire', 'floorFlush']
const FLOOR_LABEL: Record<Floor, string> = {
  floorRequest: 'lower bound: one request, SELECT 1',
  floorWrite: 'lower bound: one write commit (1-row upsert batch)',
  floorAcquire: "floor of cold: the cold read's own batch (acquire + prefetch), sent bare",
  floorFlush: "floor of warm write: the warm write's own flush batch, sent bare",
}
/** Which request each measured floor belongs to (its "/ floor" column). */
const FLOOR_OF: Partial<Record<Kind, Floor>> = { cold: 'floorAcquire', write: 'floorFlush' }
/** The batches the activations' last cold read and last warm write sent (the latency run fills them). */
const captured: {
  acquire?: { batch: SentBatch; doId: string; nodeId: string }
  flush?: { batch: SentBatch; doId: string; nodeId: string; token: number }
} = {}
/** The flush floor's object and the lease its node holds on it (taken in the latency run's setup). */
const floorLease = { doId: 'lat-floor-flush', nodeId: 'node-floor', token: 0 }
const floorIds: string[] = []
let floorValue = 0
const sendBare = (batch: SentBatch, map: (arg: unknown) => unknown = (a) => a) =>
  nodeA.bare.batch(
    batch.statements.map((s) => ({ sql: s.sql, args: s.args.map(map) as never })),
    batch.mode,
  )
const FLOOR_RUN: Record<Floor, () => Promise<unknown> | undefined> = {
  floorRequest: () => nodeA.bare.execute({ sql: 'SELECT 1', args: [] }),
  floorAcquire: () => {
    const { acquire } = captured
    const doId = acquire && floorIds.shift()
    if (!acquire || doId === undefined) return undefined
    return sendBare(acquire.batch, (a) => (a === acquire.doId ? doId : a === acquire.nodeId ? 'node-floor' : a))
  },
  floorFlush: () => {
    const { flush } = captured
    if (!flush || floorLease.token === 0) return undefined
    // Its values are devalue's text (`[...]`): each replaced by a new one, so every send writes a page.
    return sendBare(flush.batch, (a) =>
      a === flush.doId
        ? floorLease.doId
        : a === flush.nodeId
          ? floorLease.nodeId
          : a === flush.token
            ? floorLease.token
            : typeof a === 'string' && a.startsWith('[')
              ? `[${++floorValue}]`
              : a,
    )
  },
  floorWrite: () =>
    nodeA.bare.batch(
      [
        {
          sql: 'INSERT INTO bench_floor (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
          args: ['k', ++floorValue],
        },
      ],
      'write',
    ),
}
interface LatencyStats {
  times: number[]
  requests: number[]
}

async function latencies(): Promise<Map<string, LatencyStats>> {
  const envs: Record<Mode, Env> = {
    perRequest: node('node-lat', storeA, 'perRequest'),
    activations: node('node-lat-act', storeA, 'activations'),
  }
  // Cold objects: written last by the admin node, so a cold request must take the lease from it and
  // read the store (no cache of this node's could be kept).
  const coldIds: Record<Mode, string[]> = { perRequest: [], activations: [] }
  for (const mode of MODES) {
    coldIds[mode] = Array.from({ length: WARMUP + ROUNDS }, (_, i) => `lat-cold-${mode}-${i}`)
    await inBatches(coldIds[mode], 32, adminPost)
  }
  // The cold floor's objects: seeded the same way, taken by the floor's own node (no integrity check).
  floorIds.push(...Array.from({ length: WARMUP + ROUNDS }, (_, i) => `lat-floor-${i}`))
  await inBatches(floorIds, 32, adminPost)
  const taken = await storeA.acquire({ doId: floorLease.doId, nodeId: floorLease.nodeId, ttlMs: TTL_MS })
  if (taken.acquired) floorLease.token = taken.lock.fencingToken
  else anomalies.push(`the flush floor's lease on ${floorLease.doId} was not taken`)
  const warmId: Record<Mode, string> = { perRequest: 'lat-warm-perRequest', activations: 'lat-warm-activations' }
  const count: Record<Mode, number> = { perRequest: 0, activations: 0 }
  const stats = new Map<string, LatencyStats>()
  for (const mode of MODES) for (const kind of KINDS) stats.set(`${mode}:${kind}`, { times: [], requests: [] })
  for (const floor of FLOORS) stats.set(floor, { times: [], requests: [] })

  const coldNext: Record<Mode, number> = { perRequest: 0, activations: 0 }
  const one = async (mode: Mode, kind: Kind, record: boolean): Promise<void> => {
    const env = envs[mode]
    const doId = kind === 'cold' ? coldIds[mode][coldNext[mode]++]! : warmId[mode]
    const method = kind === 'write' ? 'POST' : 'GET'
    const ctx = ctxOf(doId)
    const request = new Request(`https://do/${doId}`, { method })
    const r0 = storeRequests()
    lastBatch = undefined
    const t0 = performance.now()
    const res = await new Counter(ctx, env).fetch(request)
    const t = performance.now() - t0
    const sent = storeRequests() - r0
    if (mode === 'activations' && sent === 1 && lastBatch) {
      if (kind === 'write') {
        captured.flush = {
          batch: lastBatch,
          doId,
          nodeId: env.name,
          token: activationsOf(env, doId)?.lock.fencingToken ?? 0,
        }
      }
      if (kind === 'cold') captured.acquire = { batch: lastBatch, doId, nodeId: env.name }
    }
    const expected = kind === 'cold' ? 1 : kind === 'write' ? count[mode] + 1 : count[mode]
    const body = res.status === 200 ? ((await res.json()) as { n: number }) : undefined
    if (body?.n !== expected) {
      anomalies.push(
        `latency ${mode} ${kind} on ${doId}: ${res.status} ${body ? JSON.stringify(body) : await res.text()}, expected n = ${expected}`,
      )
    }
    if (kind === 'write' && res.status === 200) {
      count[mode]++
      ack(doId, 'acked')
    }
    if (record) {
      const s = stats.get(`${mode}:${kind}`)!
      s.times.push(t)
      s.requests.push(sent)
    }
    // Unmeasured: end the cold object's activation here, so its release is not counted in the next request.
    if (kind === 'cold' && mode === 'activations')
      await activationsFor(env.guard, {}, undefined, 'lookup').get(doId)?.shutdown()
  }
  const floor = async (which: Floor, record: boolean): Promise<void> => {
    const r0 = storeRequests()
    const t0 = performance.now()
    const sending = FLOOR_RUN[which]()
    if (sending === undefined) return // nothing captured yet (warm-up)
    await sending
    const t = performance.now() - t0
    if (record) {
      stats.get(which)!.times.push(t)
      stats.get(which)!.requests.push(storeRequests() - r0)
    }
  }
  const variants: Array<(record: boolean) => Promise<void>> = [
    ...MODES.flatMap((mode) => KINDS.map((kind) => (record: boolean) => one(mode, kind, record))),
    ...FLOORS.map((which) => (record: boolean) => floor(which, record)),
  ]
  // The warm objects' first write (a cold start of their own), then warm-up turns of every variant.
  for (const mode of MODES) await one(mode, 'write', false)
  for (let i = 0; i < WARMUP; i++) for (const v of variants) await v(false)
  for (let i = 0; i < JIT_WARMUP; i++) {
    const res = await new Counter(ctxOf(warmId.activations), envs.activations).fetch(
      new Request(`https://do/${warmId.activations}`),
    )
    if (res.status !== 200) anomalies.push(`JIT warm-up read answered ${res.status}`)
    await res.arrayBuffer()
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of rotate(variants, round)) await v(true)
  }
  for (const s of stats.values()) s.times.sort((a, b) => a - b)
  for (const mode of MODES) await stop(envs[mode])
  return stats
}

// --- throughput -------------------------------------------------------------------------------

interface ClientSpec {
  /** The node(s) its requests go to: one, or one picked at random per request (no routing). */
  envs: readonly Env[]
  doId: string
}
interface LoadResult {
  /** 200s received within the window, per second of window. */
  writesPerSec: number
  acked: number
  refused: number
  /** Why the 503s were answered (`error` in the body). */
  refusedBy: Map<string, number>
  /** `retryAfterMs` of the 503 `locked` answers. */
  retryAfterMs: number[]
  /** The `Retry-After` header (seconds) of the 503 `locked` answers. */
  retryAfterSeconds: number[]
  /** Answers other than 200, 503, and 499 at the window's end. */
  other: Map<string, number>
  /** Store requests per acknowledged write (all requests of the window and its stragglers). */
  requestsPerAck: number
  latencyP50: number
  latencyP99: number
  ackedByNode: Map<string, number>
  /** The most turns seen waiting in one activation's queue when a request arrived (activations). */
  maxQueued: number
  /** Leases taken during the window on the scenario's objects (their fencing tokens' rise). */
  leases: number
}

/** Every client loops POST on its object for `ms`; requests still waiting at the end are aborted. */
async function load(clients: readonly ClientSpec[], ms: number): Promise<LoadResult> {
  // One controller per request: undici's Request keeps a listener on the signal it was given until it
  // is garbage-collected, so one signal shared by a window's thousands of requests would pile them up.
  const outstanding = new Set<AbortController>()
  let ended = false
  const result: LoadResult = {
    writesPerSec: 0,
    acked: 0,
    refused: 0,
    refusedBy: new Map(),
    retryAfterMs: [],
    retryAfterSeconds: [],
    other: new Map(),
    requestsPerAck: 0,
    latencyP50: 0,
    latencyP99: 0,
    ackedByNode: new Map(),
    maxQueued: 0,
    leases: 0,
  }
  const times: number[] = []
  let ackedAll = 0
  const r0 = storeRequests()
  const start = performance.now()
  const deadline = start + ms
  const timer = setTimeout(() => {
    ended = true
    for (const controller of outstanding) controller.abort(new Error('the window ended'))
  }, ms)
  await Promise.all(
    clients.map(async (c) => {
      while (performance.now() < deadline && !ended) {
        // Each request arrives as a new task, as from the network: the local libSQL client answers in
        // microtasks, so a loop of awaits alone would keep timers (backoff, idle, the other node's
        // retry) from ever firing.
        await new Promise<void>((resolve) => setImmediate(resolve))
        const controller = new AbortController()
        outstanding.add(controller)
        const env = c.envs.length === 1 ? c.envs[0]! : c.envs[Math.floor(Math.random() * c.envs.length)]!
        if (env.activation !== false) {
          const queued = activationsFor(env.guard, {}, undefined, 'lookup').get(c.doId)?.queued ?? 0
          if (queued > result.maxQueued) result.maxQueued = queued
        }
        const t0 = performance.now()
        const res = await call(env, c.doId, 'POST', controller.signal)
        const t1 = performance.now()
        outstanding.delete(controller)
        if (res.status === 200) {
          ackedAll++
          ack(c.doId, 'acked')
          if (t1 <= deadline) {
            result.acked++
            result.ackedByNode.set(env.name, (result.ackedByNode.get(env.name) ?? 0) + 1)
            times.push(t1 - t0)
          }
        } else if (res.status === 503) {
          result.refused++
          const body = (await res.json()) as { error?: string; retryAfterMs?: number }
          const why = String(body.error)
          result.refusedBy.set(why, (result.refusedBy.get(why) ?? 0) + 1)
          if (why === 'locked') {
            if (typeof body.retryAfterMs === 'number') result.retryAfterMs.push(body.retryAfterMs)
            result.retryAfterSeconds.push(Number(res.headers.get('Retry-After')))
          }
          if (why !== 'locked') ack(c.doId, 'unknown') // e.g. a failed flush: the write may or may not be there
          await sleep(RETRY_PAUSE_MS)
        } else if (res.status === 499 && controller.signal.aborted) {
          break // waited past the window's end: never ran
        } else {
          const key = `${res.status} ${(await res.text()).slice(0, 200)}`
          result.other.set(key, (result.other.get(key) ?? 0) + 1)
          ack(c.doId, 'unknown')
        }
      }
    }),
  )
  clearTimeout(timer)
  times.sort((a, b) => a - b)
  result.writesPerSec = (result.acked * 1000) / ms
  result.requestsPerAck = (storeRequests() - r0) / Math.max(1, ackedAll)
  result.latencyP50 = quantile(times, 0.5)
  result.latencyP99 = quantile(times, 0.99)
  return result
}

interface Scenario {
  key: string
  /** The table it belongs to and its row there. */
  group: 'hot' | 'many' | 'two' | 'worker' | 'cluster'
  label: string
  mode: string
  run: (round: number) => Promise<LoadResult>
}

/** How a node's activations are set up in a scenario. */
interface NodeSetup {
  mode: Mode
  /** idleMs of its activations. @default IDLE_MS */
  idleMs?: number
  /** Whether a node that finds the object held elsewhere asks the holder to let go. @default true */
  handover?: boolean
  /** One node only: its store has `groupCommit` on (flushes of different objects share a commit). */
  groupCommit?: boolean
}

/**
 * `clients` clients on `objects` objects (spread over them) served by `nodes` nodes, each a guard on
 * a connection of its own. `routing`: `'fixed'`, client i always to node i % nodes (a Durable Object:
 * the platform routes an object's requests to one place; with one node, every request there);
 * `'sticky'`, every request for object j to node j % nodes (a ring); `'random'`, each request to a
 * random node (plain Workers: any isolate; a cluster behind a plain load balancer). `warm`: the node
 * that first writes each object (untimed, its cold start): node 0, or by the routing.
 */
function scenario(
  setup: NodeSetup,
  shape: { nodes: number; clients: number; objects: number; routing: 'fixed' | 'sticky' | 'random' },
  tag: string,
): (round: number) => Promise<LoadResult> {
  return async (round) => {
    const { mode, idleMs = IDLE_MS, handover = true, groupCommit = false } = setup
    const envs = Array.from({ length: shape.nodes }, (_, i) =>
      node(
        `node-${String.fromCharCode(97 + i)}`,
        (groupCommit ? groupCommitStores : handover ? stores : plainStores)[i]!,
        mode,
        idleMs,
      ),
    )
    const ids = Array.from({ length: shape.objects }, (_, i) => `${tag}-r${round}-${i}`)
    const home = (j: number) => envs[shape.routing === 'sticky' ? j % envs.length : 0]!
    // Untimed first write of each object: its cold start (activations), the row's creation (both).
    for (const [j, doId] of ids.entries()) {
      const res = await call(home(j), doId, 'POST')
      if (res.status === 200) ack(doId, 'acked')
      else anomalies.push(`${tag}: warm-up POST on ${doId} answered ${res.status}`)
    }
    const tokens = async () => {
      let sum = 0
      for (const doId of ids) sum += (await storeA.get(doId))?.fencingToken ?? 0
      return sum
    }
    const before = await tokens()
    const specs: ClientSpec[] = Array.from({ length: shape.clients }, (_, i) => {
      const j = i % shape.objects
      const envsOf =
        shape.routing === 'random' ? envs : shape.routing === 'sticky' ? [home(j)] : [envs[i % envs.length]!]
      return { envs: envsOf, doId: ids[j]! }
    })
    const result = await load(specs, TP_MS)
    for (const env of envs) await stop(env)
    result.leases = (await tokens()) - before
    return result
  }
}

const idleLabel = (ms: number) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`)
const setupLabel = (setup: NodeSetup) =>
  setup.mode === 'perRequest'
    ? `per request (waitMs ${WAIT_MS})`
    : `activations, idleMs ${idleLabel(setup.idleMs ?? IDLE_MS)}, hand-over ${setup.handover === false ? 'off' : 'on'}`

/** The setting the README recommends where any isolate may serve an object (plain Workers) if activations are on. */
const WORKER_IDLE_MS = 1
/** The Durable Object default (DEFAULT_IDLE_MS). */
const DO_IDLE_MS = 10_000
const PER_REQUEST: NodeSetup = { mode: 'perRequest' }
const oneNode = (clients: number, objects: number) => ({ nodes: 1, clients, objects, routing: 'fixed' as const })

const SCENARIOS: Scenario[] = [
  ...HOT_CLIENTS.flatMap((n) =>
    MODES.map((mode) => ({
      key: `hot${n}:${mode}`,
      group: 'hot' as const,
      label: `hot x${n}`,
      mode: MODE_LABEL[mode],
      run: scenario({ mode }, oneNode(n, 1), `hot${n}-${mode}`),
    })),
  ),
  ...MODES.map((mode) => ({
    key: `many:${mode}`,
    group: 'many' as const,
    label: `${OBJECTS} objects`,
    mode: MODE_LABEL[mode],
    run: scenario({ mode }, oneNode(OBJECTS, OBJECTS), `many-${mode}`),
  })),
  {
    key: 'many:activations-gc',
    group: 'many' as const,
    label: `${OBJECTS} objects`,
    mode: 'activations, groupCommit store',
    run: scenario({ mode: 'activations', groupCommit: true }, oneNode(OBJECTS, OBJECTS), 'many-gc'),
  },
  // Two nodes, one client each, on one object; node a warm on it first.
  ...[
    PER_REQUEST,
    { mode: 'activations', handover: true },
    { mode: 'activations', handover: false },
    { mode: 'activations', idleMs: SHORT_IDLE_MS, handover: true },
  ].map((setup, i) => ({
    key: `two:${i}`,
    group: 'two' as const,
    label: 'two nodes',
    mode: setupLabel(setup as NodeSetup),
    run: scenario(setup as NodeSetup, { nodes: 2, clients: 2, objects: 1, routing: 'fixed' }, `two-${i}`),
  })),
  // Plain Workers: every isolate is a node, and a request lands on any of them.
  ...[
    PER_REQUEST,
    { mode: 'activations', idleMs: WORKER_IDLE_MS, handover: true },
    { mode: 'activations', idleMs: DO_IDLE_MS, handover: true },
    { mode: 'activations', idleMs: DO_IDLE_MS, handover: false },
  ].map((setup, i) => ({
    key: `worker:${i}`,
    group: 'worker' as const,
    label: `${NODES} isolates, 1 object`,
    mode: setupLabel(setup as NodeSetup),
    run: scenario(setup as NodeSetup, { nodes: NODES, clients: 16, objects: 1, routing: 'random' }, `worker-${i}`),
  })),
  // A cluster of Node processes (here: nodes with their own connections in this one process), 64 objects.
  ...[
    { setup: PER_REQUEST, routing: 'random' as const },
    { setup: { mode: 'activations', idleMs: DO_IDLE_MS, handover: true }, routing: 'random' as const },
    { setup: { mode: 'activations', idleMs: DO_IDLE_MS, handover: true }, routing: 'sticky' as const },
    { setup: { mode: 'activations', idleMs: WORKER_IDLE_MS, handover: true }, routing: 'random' as const },
  ].map(({ setup, routing }, i) => ({
    key: `cluster:${i}`,
    group: 'cluster' as const,
    label: `${NODES} processes, ${OBJECTS} objects, ${routing === 'random' ? 'random' : 'sticky'} routing`,
    mode: setupLabel(setup as NodeSetup),
    run: scenario(setup as NodeSetup, { nodes: NODES, clients: OBJECTS, objects: OBJECTS, routing }, `cluster-${i}`),
  })),
]

async function throughputAll(): Promise<Map<string, LoadResult[]>> {
  const samples = new Map<string, LoadResult[]>()
  for (let round = 0; round < TP_ROUNDS; round++) {
    for (const s of rotate(SCENARIOS, round)) samples.set(s.key, [...(samples.get(s.key) ?? []), await s.run(round)])
  }
  return samples
}

// --- report helpers ---------------------------------------------------------------------------

/** The installed version of a package whose `exports` hide its package.json. */
function packageVersion(name: string): string {
  let path = dirname(createRequire(import.meta.url).resolve(name))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')) as { name?: string; version?: string }
      if (pkg.name === name) return pkg.version ?? '?'
    } catch {
      // no package.json here; keep climbing
    }
    const parent = dirname(path)
    if (parent === path) return '?'
    path = parent
  }
}
const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-'
const ms3 = (ms: number) => fmt(ms, 3)
const x = (r: number) => `${fmt(r, 2)}x`
const rtt = (ms: number) => (remote ? `${fmt(ms / RTT_MS, 3)} RTT` : '-')
function range(values: readonly number[]): string {
  if (values.length === 0) return '-'
  const min = Math.min(...values)
  const max = Math.max(...values)
  const mean = values.reduce((a, b) => a + b, 0) / values.length
  return min === max ? `${min}` : `${fmt(mean, 2)} (${min}-${max})`
}
const mapText = (m: Map<string, number>) =>
  m.size === 0
    ? 'none'
    : [...m]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${v} x ${k}`)
        .join('; ')
const mergeCounts = (maps: readonly Map<string, number>[]) => {
  const merged = new Map<string, number>()
  for (const m of maps) for (const [k, v] of m) merged.set(k, (merged.get(k) ?? 0) + v)
  return merged
}

// --- run --------------------------------------------------------------------------------------

const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?'
console.log('# StatelessDO: activations vs a lease per request (issue 15)\n')
console.log(
  `machine: ${cpus().length} cores (nproc), ${cpuModel}; Node ${process.version}; @libsql/client ${packageVersion('@libsql/client')}`,
)
console.log(
  `database: file: in ${tmpdir()} (WAL, busy_timeout 5000, synchronous=${String(synchronous)} (default FULL)); one ${ENGINE === 'native' ? 'local-engine connection (native statements; --engine client for @libsql/client)' : '@libsql/client client'} per node; RTT ${remote ? `${RTT_MS} ms (artificial, half before and half after each call)` : 'none (local)'}`,
)
console.log(`command: npm run bench:do${argv.length ? ` -- ${argv.join(' ')}` : ''}`)
console.log(
  `modes: per request = activationOptions() false, acquireOptions { waitMs: ${WAIT_MS} } in the throughput runs (release awaited: no ctx.waitUntil); activations = default, ctx with id (Durable Object mode), idleMs ${IDLE_MS} unless a row says otherwise; hand-over off = the node's store without requestHandover (its activations never ask a holder to let go); multi-node rows: one guard and one connection per node, in this process; lease ttl ${TTL_MS / 1000} s for both (no heartbeat inside a measurement); no group commit, except the row "activations, groupCommit store" (its node's store has groupCommit on: flushes of different objects, heartbeats and acquires share commits)`,
)
console.log(
  `latency: ${ROUNDS} requests per (mode, type), interleaved one at a time, after ${WARMUP} unmeasured rounds and ${JIT_WARMUP} unmeasured warm reads (JIT warm-up, no I/O); throughput: ${TP_ROUNDS} interleaved round(s) of ${TP_MS} ms windows, medians; a 503 is retried after ${RETRY_PAUSE_MS} ms`,
)
console.log(`load average at start: ${fmt(load0, 2)}\n`)

if (remote) {
  const trips = await probeRtt(RTT_MS)
  console.log(
    `artificial RTT, measured on empty calls: p50 ${fmt(quantile(trips, 0.5), 3)} ms, p99 ${fmt(quantile(trips, 0.99), 3)} ms\n`,
  )
}

const lat = await latencies()
const latOf = (mode: Mode, kind: Kind) => lat.get(`${mode}:${kind}`)!
const p50 = (mode: Mode, kind: Kind) => quantile(latOf(mode, kind).times, 0.5)
const floorP50 = (which: Floor) => quantile(lat.get(which)!.times, 0.5)

console.log('## Request latency by type (sequential), ms\n')
/** p50 of `kind` (activations) over the p50 of its own batch sent bare: what is ours, not the disk's. */
const overFloor = (kind: Kind): number | undefined => {
  const which = FLOOR_OF[kind]
  return which === undefined ? undefined : p50('activations', kind) / floorP50(which)
}
console.log(
  '| request | mode | p50 | p99 | p50 / RTT | p50 / floor (its own batch sent bare) | store requests per request: mean (min-max) | p50 activations / per request |',
)
console.log('|---|---|---:|---:|---:|---:|---:|---:|')
for (const kind of KINDS) {
  for (const mode of MODES) {
    const s = latOf(mode, kind)
    const ratio = mode === 'activations' ? x(p50('activations', kind) / p50('perRequest', kind)) : ''
    const floor = mode === 'activations' ? overFloor(kind) : undefined
    console.log(
      `| ${KIND_LABEL[kind]} | ${MODE_LABEL[mode]} | ${ms3(quantile(s.times, 0.5))} | ${ms3(quantile(s.times, 0.99))} | ${rtt(quantile(s.times, 0.5))} | ${floor === undefined ? '' : x(floor)} | ${range(s.requests)} | ${ratio} |`,
    )
  }
}
for (const which of FLOORS) {
  const s = lat.get(which)!
  console.log(
    `| ${FLOOR_LABEL[which]} | - | ${ms3(quantile(s.times, 0.5))} | ${ms3(quantile(s.times, 0.99))} | ${rtt(quantile(s.times, 0.5))} | | ${range(s.requests)} | |`,
  )
}
const flushSql = captured.flush?.batch.statements.map((st) => st.sql.trim().split(/\s+/).slice(0, 3).join(' ')) ?? []
console.log(
  `\nthe warm write's flush batch (${flushSql.length} statements): ${flushSql.join('; ') || 'not captured'}; the cold read's batch: ${captured.acquire?.batch.statements.length ?? 0} statements`,
)

const tp = await throughputAll()
const med = (key: string, f: (r: LoadResult) => number) => median(tp.get(key)!.map(f))
const wps = (key: string) => med(key, (r) => r.writesPerSec)

console.log(`\n## One hot object, N concurrent clients on one node: acknowledged write turns/s\n`)
console.log('| clients | per request | activations | activations / per request |')
console.log('|---:|---:|---:|---:|')
for (const n of HOT_CLIENTS) {
  console.log(
    `| ${n} | ${fmt(wps(`hot${n}:perRequest`))} | ${fmt(wps(`hot${n}:activations`))} | ${x(wps(`hot${n}:activations`) / wps(`hot${n}:perRequest`))} |`,
  )
}

console.log(`\n## ${OBJECTS} objects, one client each, one node: acknowledged writes/s (all objects)\n`)
console.log(
  '| per request | activations | activations / per request | activations, groupCommit store (flushes of different objects share a commit) | vs activations | vs per request |',
)
console.log('|---:|---:|---:|---:|---:|---:|')
console.log(
  `| ${fmt(wps('many:perRequest'))} | ${fmt(wps('many:activations'))} | ${x(wps('many:activations') / wps('many:perRequest'))} | ${fmt(wps('many:activations-gc'))} | ${x(wps('many:activations-gc') / wps('many:activations'))} | ${x(wps('many:activations-gc') / wps('many:perRequest'))} |`,
)

const scenariosOf = (group: Scenario['group']) => SCENARIOS.filter((s) => s.group === group)
const nodeNames = (n: number) => Array.from({ length: n }, (_, i) => `node-${String.fromCharCode(97 + i)}`)
/** Rows of a multi-node table: writes/s, per-node split, 503s, leases, vs the first row (per request). */
function nodesTable(group: Scenario['group'], nodes: number): void {
  const rows = scenariosOf(group)
  const base = rows[0]!.key
  console.log(
    `| mode | acknowledged writes/s | acknowledged per node (${nodeNames(nodes).join(' / ')}) | 503 answers per window | leases taken per window | leases per acknowledged write | write p50 / p99 ms | vs per request |`,
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const s of rows) {
    const runs = tp.get(s.key)!
    const split = nodeNames(nodes)
      .map((n) => fmt(median(runs.map((r) => r.ackedByNode.get(n) ?? 0))))
      .join(' / ')
    const leases = med(s.key, (r) => r.leases)
    const perAck = med(s.key, (r) => r.leases / Math.max(1, r.acked))
    console.log(
      `| ${s.mode} | ${fmt(wps(s.key))} | ${split} | ${fmt(med(s.key, (r) => r.refused))} | ${fmt(leases)} | ${fmt(perAck, 2)} | ${ms3(med(s.key, (r) => r.latencyP50))} / ${ms3(med(s.key, (r) => r.latencyP99))} | ${s.key === base ? '' : x(wps(s.key) / wps(base))} |`,
    )
  }
}
console.log(`\n## Two nodes on one object, one client each (node a warm on it first)\n`)
nodesTable('two', 2)
console.log(
  `\n## Plain-Worker mode: ${NODES} isolates (nodes), 16 clients on one object, each request to a random isolate\n`,
)
nodesTable('worker', NODES)
console.log(
  `\n## Node cluster: ${NODES} processes (simulated: ${NODES} guards with a connection each, one event loop), ${OBJECTS} objects, one client each\n`,
)
console.log(
  'Random routing: a plain load balancer; sticky: every request for an object to the same process (a ring).\n',
)
console.log(
  '| routing | mode | acknowledged writes/s | 503 answers per window | leases taken per window | leases per acknowledged write | write p50 / p99 ms | vs per request |',
)
console.log('|---|---|---:|---:|---:|---:|---:|---:|')
for (const s of scenariosOf('cluster')) {
  const base = scenariosOf('cluster')[0]!.key
  console.log(
    `| ${s.label.includes('random') ? 'random' : 'sticky'} | ${s.mode} | ${fmt(wps(s.key))} | ${fmt(med(s.key, (r) => r.refused))} | ${fmt(med(s.key, (r) => r.leases))} | ${fmt(
      med(s.key, (r) => r.leases / Math.max(1, r.acked)),
      2,
    )} | ${ms3(med(s.key, (r) => r.latencyP50))} / ${ms3(med(s.key, (r) => r.latencyP99))} | ${s.key === base ? '' : x(wps(s.key) / wps(base))} |`,
  )
}

console.log('\n## Details per throughput run (medians over rounds)\n')
console.log(
  '| scenario | mode | writes/s | write latency p50 / p99 ms | store requests per acknowledged write | most turns queued in one activation (max over rounds) | 503s per window (why, all rounds) | locked: retryAfterMs / Retry-After s (medians) | other answers |',
)
console.log('|---|---|---:|---:|---:|---:|---:|---:|---|')
for (const s of SCENARIOS) {
  const runs = tp.get(s.key)!
  console.log(
    `| ${s.label} | ${s.mode} | ${fmt(wps(s.key))} | ${ms3(med(s.key, (r) => r.latencyP50))} / ${ms3(med(s.key, (r) => r.latencyP99))} | ${fmt(
      med(s.key, (r) => r.requestsPerAck),
      2,
    )} | ${s.key.endsWith(':perRequest') || s.mode.startsWith('per request') ? '-' : fmt(Math.max(...runs.map((r) => r.maxQueued)))} | ${fmt(med(s.key, (r) => r.refused))} (${mapText(mergeCounts(runs.map((r) => r.refusedBy)))}) | ${fmt(median(runs.flatMap((r) => r.retryAfterMs)))} / ${fmt(median(runs.flatMap((r) => r.retryAfterSeconds)))} | ${mapText(mergeCounts(runs.map((r) => r.other)))} |`,
  )
}

// --- integrity --------------------------------------------------------------------------------

let lost = 0
let extra = 0
const checked = [...acknowledged]
await inBatches(checked, 16, async ([doId, { acked, unknown }]) => {
  // The latency run's cold objects got one admin write each before the run (not in `acked`).
  const seeded = doId.startsWith('lat-cold-') ? 1 : 0
  const n = await readBack(doId)
  if (n < acked + seeded) {
    lost++
    anomalies.push(`${doId}: counter ${n}, but ${acked} writes were acknowledged (+${seeded} seeded)`)
  } else if (n > acked + seeded + unknown) {
    extra++
    anomalies.push(`${doId}: counter ${n}, more than the ${acked} acknowledged + ${unknown} unknown writes`)
  }
})
await stop(admin)

console.log('\n## Integrity\n')
console.log(
  `- counters read back: ${checked.length} objects; acknowledged writes missing: ${lost} objects; writes beyond acknowledged + unknown: ${extra} objects`,
)
const errors = mergeCounts(allErrors)
console.log(`- onError reports (phase: error): ${mapText(errors)}`)
console.log(`- anomalies: ${anomalies.length === 0 ? 'none' : ''}`)
for (const a of anomalies.slice(0, 20)) console.log(`  - ${a}`)
if (anomalies.length > 20) console.log(`  - ... and ${anomalies.length - 20} more`)

// --- targets ----------------------------------------------------------------------------------

/** `met` undefined: not applicable in this run (a target in RTTs, without an RTT). */
const checks: Array<{ name: string; met: boolean | undefined; value: string }> = []
const latencyTarget = (name: string, kind: Kind, bound: number) => {
  const v = p50('activations', kind)
  checks.push({
    name: `${name} <= ${bound} RTT`,
    met: remote ? v <= bound * RTT_MS : undefined,
    value: remote
      ? `${fmt(v / RTT_MS, 3)} RTT (${ms3(v)} ms; per request ${fmt(p50('perRequest', kind) / RTT_MS, 3)} RTT; lower bounds here: one request ${fmt(floorP50('floorRequest') / RTT_MS, 3)} RTT, one write commit ${fmt(floorP50('floorWrite') / RTT_MS, 3)} RTT${FLOOR_OF[kind] ? `, its own batch sent bare ${fmt(floorP50(FLOOR_OF[kind]!) / RTT_MS, 3)} RTT, so ${x(overFloor(kind)!)} its floor` : ''})`
      : `${ms3(v)} ms (no RTT: defined with --rtt 5)`,
  })
}
latencyTarget('warm read p50', 'read', 0.05)
latencyTarget('warm write p50', 'write', 1.15)
latencyTarget('cold read p50', 'cold', 1.25)
checks.push({
  name: 'one hot object, 64 concurrent clients >= 1,000 acknowledged write turns/s',
  met: wps('hot64:activations') >= 1000,
  value: `${fmt(wps('hot64:activations'))}/s (per request ${fmt(wps('hot64:perRequest'))}/s)`,
})
checks.push({
  name: `${OBJECTS} objects x 1 client >= 3x the per-request throughput`,
  met: wps('many:perRequest') > 0 && wps('many:activations') >= 3 * wps('many:perRequest'),
  value:
    wps('many:perRequest') > 0
      ? `${x(wps('many:activations') / wps('many:perRequest'))} (${fmt(wps('many:activations'))} vs ${fmt(wps('many:perRequest'))} writes/s)`
      : `not measured: per request acknowledged no write within the ${TP_MS} ms window (activations ${fmt(wps('many:activations'))}/s)`,
})
checks.push({
  name: `${OBJECTS} objects x 1 client >= 3x the per-request throughput, activations over a groupCommit store`,
  met: wps('many:perRequest') > 0 && wps('many:activations-gc') >= 3 * wps('many:perRequest'),
  value: `${x(wps('many:activations-gc') / Math.max(1e-9, wps('many:perRequest')))} (${fmt(wps('many:activations-gc'))} vs ${fmt(wps('many:perRequest'))} writes/s)`,
})
console.log(`\n## Targets${remote ? '' : ' (defined with --rtt 5; local figures for reference)'}\n`)
for (const c of checks)
  console.log(`- ${c.met === undefined ? 'n/a' : c.met ? 'met' : 'NOT met'}: ${c.name}: ${c.value}`)
console.log(
  `\nload average at end: ${fmt(loadavg()[0]!, 2)}; bench took ${fmt((performance.now() - benchStart) / 1000, 1)} s`,
)

await Promise.all(guards.map((g) => g.shutdown()))
for (const raw of raws) raw.close()
rmSync(dir, { recursive: true, force: true })
