/**
 * Cost of the object store's calls against the raw statements they replace (issue 14).
 *
 * Run: `npm run bench:storage` (local `file:` database), `npm run bench:storage -- --rtt 5` (every
 * request to the database waits 5 ms, like a remote Turso primary). Options: `--rtt MS`, `--sync normal`
 * (PRAGMA synchronous; default SQLite's FULL), `--quick` (a smoke test). One run measures, side by side on
 * ONE database and ONE `@libsql/client` client:
 *
 * - `SqlObjectStore.flush` of 1 and of 100 keys (one batch: lease extension, fence, upserts) against
 *   `LibSQLLockStore.fencedWrite` of the same rows (fence + one upsert statement, no lease extension),
 *   against the same statements as the flush's writes (fenced, chunked the same way), against a raw
 *   fenced write that also sends the lock table's refresh (what the extension costs), and a what-if:
 *   the flush's batch with an extension that returns only the new expiry;
 * - `get` of 1 and of 100 keys, and `list` of 100 entries (one SELECT that also judges the lease)
 *   against the same SELECT without the lease check;
 * - p50/p99 per operation, interleaved op by op (the order rotates), the paired ratio to the raw
 *   variant, and the requests each operation sent (counted: must be exactly 1).
 *
 * Then PASS/FAIL for the targets of issue 14. Always exits 0.
 */
import { createClient } from '@libsql/client'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { LibSQLLockStore, type SqlStatement } from '../src/index.js'
import { STORE_NOW } from '../src/store/sql.js'
import { MAX_ROWS_PER_PUT } from '../src/store/object-sql.js'
import { SqlObjectStore } from '../src/store/sql-object-store.js'
import type { ObjectLease } from '../src/store/object-store.js'
import { libsqlDriver } from '../test/storage/support/libsql-driver.js'
import { ARGV as argv, RTT_MS, SYNC, QUICK } from './options.js'
import { rttClient } from './rtt-client.js'

// --- options ----------------------------------------------------------------------------------

const remote = RTT_MS > 0
const ROUNDS = QUICK ? 2 : 10
const OPS = QUICK ? 10 : remote ? 15 : 40
const KEYS = 100
const VALUE = JSON.stringify({ name: 'a value of about a hundred bytes', n: 12345, tags: ['x', 'y', 'z'], ok: true })

// --- setup ------------------------------------------------------------------------------------

const benchStart = performance.now()
const load0 = loadavg()[0]!
const dir = mkdtempSync(join(tmpdir(), 'stateless-do-bench-storage-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
/**
 * Not a library statement: the lock table's refresh (src/store/sql.ts) returns the whole row, and over
 * a local @libsql/client every returned column costs client time. This is the extension the flush
 * would need if sql.ts offered one that returns only the new expiry (same holder condition).
 */
const LEAN_EXTEND = `UPDATE do_locks AS l SET expires_at = ${STORE_NOW} + ?4
  WHERE l.do_id = ?1 AND l.node_id = ?2 AND l.fencing_token = ?3
    AND typeof(l.expires_at) = 'integer' AND l.expires_at > ${STORE_NOW}
  RETURNING expires_at`
const TTL = 3_600_000

const raw = createClient({ url: `file:${join(dir, 'storage.db')}` })
await raw.execute('PRAGMA journal_mode=WAL')
await raw.execute('PRAGMA busy_timeout=5000')
if (SYNC) await raw.execute(`PRAGMA synchronous=${SYNC}`)
const synchronous = (await raw.execute('PRAGMA synchronous')).rows[0]?.synchronous
const net = rttClient(raw, RTT_MS)
const client = net.client

const locks = new LibSQLLockStore(client)
// The driver LibSQLLockStore will carry its SqlObjectStore with (same calls as src/store/libsql.ts).
const driver = libsqlDriver(client)
const objects = new SqlObjectStore(driver)
await locks.ensureSchema()
await objects.ensureSchema()

const DO_ID = 'bench-object'
// A long lease: nothing expires during the run (flushes extend it anyway).
const acquired = await locks.acquire({ doId: DO_ID, nodeId: 'node-0', ttlMs: TTL })
if (!acquired.acquired) throw new Error('bench: object unexpectedly held')
const lock = acquired.lock
const lease: ObjectLease = { doId: DO_ID, nodeId: lock.nodeId, fencingToken: lock.fencingToken, ttlMs: TTL }

const key = (i: number) => `key-${String(i).padStart(3, '0')}`
const keys = Array.from({ length: KEYS }, (_, i) => key(i))
// Every write stores a new value: rewriting identical bytes may leave SQLite nothing to commit, which
// would make the raw variants look cheaper than any real write.
let version = 0
const valueOf = () => `${VALUE}#${++version}`
const rows = (n: number) => new Map(keys.slice(0, n).map((k) => [k, valueOf()]))
await objects.flush(lease, { entries: rows(KEYS) })

/** The raw write a user would send: one multi-row upsert of the same rows (SQLite takes 201 parameters). */
function rawUpsert(entries: Map<string, string>): SqlStatement {
  const values = [...entries.keys()].map(() => '(?, ?, ?)').join(', ')
  return {
    sql: `INSERT INTO do_storage (do_id, key, value) VALUES ${values}
      ON CONFLICT (do_id, key) DO UPDATE SET value = excluded.value`,
    args: [...entries].flatMap(([k, v]) => [DO_ID, k, v]),
  }
}
/** The flush's own write statements (chunked under D1's 100 parameters), without the extension. */
function flushWrites(entries: Map<string, string>): SqlStatement[] {
  const pairs = [...entries]
  const statements: SqlStatement[] = []
  for (let i = 0; i < pairs.length; i += MAX_ROWS_PER_PUT) {
    const chunk = pairs.slice(i, i + MAX_ROWS_PER_PUT)
    statements.push({ sql: objects.sql.put(chunk.length), args: [DO_ID, ...chunk.flat()] })
  }
  return statements
}
const select = (n: number): SqlStatement => ({
  sql: `SELECT s.key AS key, s.value AS value FROM do_storage AS s
    WHERE s.do_id = ?1 AND s.key IN (SELECT j.value FROM json_each(?2) AS j)`,
  args: [DO_ID, JSON.stringify(keys.slice(0, n))],
})
const selectRange: SqlStatement = {
  sql: 'SELECT s.key AS key, s.value AS value FROM do_storage AS s WHERE s.do_id = ?1 ORDER BY s.key LIMIT ?2',
  args: [DO_ID, KEYS],
}

// --- variants ---------------------------------------------------------------------------------

interface Variant {
  key: string
  label: string
  /** The variant this one is compared with (itself for a baseline). */
  base: string
  /** Builds one operation's input (untimed) and returns the operation (timed). */
  prepare: () => () => Promise<unknown>
}
const VARIANTS: Variant[] = [
  {
    key: 'raw1',
    label: 'raw: fencedWrite([upsert 1 row])',
    base: 'raw1',
    prepare: () => {
      const statements = [rawUpsert(rows(1))]
      return () => locks.fencedWrite(lock, statements)
    },
  },
  {
    key: 'flush1',
    label: 'flush of 1 key',
    base: 'raw1',
    prepare: () => {
      const entries = rows(1)
      return () => objects.flush(lease, { entries })
    },
  },
  {
    key: 'rawRefresh1',
    label: "raw: fencedWrite([upsert 1 row, the lock table's refresh])",
    base: 'raw1',
    prepare: () => {
      const statements = [
        rawUpsert(rows(1)),
        { sql: locks.sql.refresh, args: [DO_ID, lock.nodeId, lock.fencingToken, TTL] },
      ]
      return () => locks.fencedWrite(lock, statements)
    },
  },
  {
    key: 'leanFlush1',
    label: 'what-if: the flush batch of 1 key with a lean extension (RETURNING expires_at only)',
    base: 'raw1',
    prepare: () => {
      const statements = [
        { sql: LEAN_EXTEND, args: [DO_ID, lock.nodeId, lock.fencingToken, TTL] },
        { sql: objects.sql.extendedFence, args: [DO_ID, lock.nodeId, lock.fencingToken] },
        ...flushWrites(rows(1)),
      ]
      return () => driver.batch(statements)
    },
  },
  {
    key: 'raw100',
    label: 'raw: fencedWrite([upsert 100 rows, one statement])',
    base: 'raw100',
    prepare: () => {
      const statements = [rawUpsert(rows(KEYS))]
      return () => locks.fencedWrite(lock, statements)
    },
  },
  {
    key: 'rawChunked100',
    label: "raw: fencedWrite(the flush's 3 upsert statements)",
    base: 'raw100',
    prepare: () => {
      const statements = flushWrites(rows(KEYS))
      return () => locks.fencedWrite(lock, statements)
    },
  },
  {
    key: 'flush100',
    label: 'flush of 100 keys',
    base: 'raw100',
    prepare: () => {
      const entries = rows(KEYS)
      return () => objects.flush(lease, { entries })
    },
  },
  {
    key: 'select1',
    label: 'raw: SELECT 1 key, no lease check',
    base: 'select1',
    prepare: () => () => driver.execute(select(1)),
  },
  { key: 'get1', label: 'get of 1 key', base: 'select1', prepare: () => () => objects.get(lease, [key(0)]) },
  {
    key: 'select100',
    label: 'raw: SELECT 100 keys, no lease check',
    base: 'select100',
    prepare: () => () => driver.execute(select(KEYS)),
  },
  { key: 'get100', label: 'get of 100 keys', base: 'select100', prepare: () => () => objects.get(lease, keys) },
  {
    key: 'selectRange',
    label: 'raw: SELECT 100 entries in key order, no lease check',
    base: 'selectRange',
    prepare: () => () => driver.execute(selectRange),
  },
  {
    key: 'list100',
    label: 'list of 100 entries',
    base: 'selectRange',
    prepare: () => () => objects.list(lease, { limit: KEYS }),
  },
]

// --- measurement ------------------------------------------------------------------------------

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}
function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const rotate = <T>(items: readonly T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length]!)

interface Stats {
  times: number[]
  requests: number[]
  roundMeans: number[]
}
const stats = new Map<string, Stats>(VARIANTS.map((v) => [v.key, { times: [], requests: [], roundMeans: [] }]))
for (const v of VARIANTS) for (let i = 0; i < 5; i++) await v.prepare()() // warm up
for (let round = 0; round < ROUNDS; round++) {
  const sums = new Map<string, number>()
  for (let i = 0; i < OPS; i++) {
    for (const v of rotate(VARIANTS, round * OPS + i)) {
      const s = stats.get(v.key)!
      const op = v.prepare()
      const r0 = net.requests()
      const t0 = performance.now()
      await op()
      const t = performance.now() - t0
      s.requests.push(net.requests() - r0)
      s.times.push(t)
      sums.set(v.key, (sums.get(v.key) ?? 0) + t)
    }
  }
  for (const v of VARIANTS) stats.get(v.key)!.roundMeans.push(sums.get(v.key)! / OPS)
}
for (const s of stats.values()) s.times.sort((a, b) => a - b)

// --- report -----------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-'
const us = (ms: number) => fmt(ms * 1000)
const x = (r: number) => `${fmt(r, 2)}x`
const p50 = (k: string) => quantile(stats.get(k)!.times, 0.5)
const paired = (k: string, base: string) =>
  median(stats.get(k)!.roundMeans.map((m, i) => m / stats.get(base)!.roundMeans[i]!))
const requestsPerOp = (k: string) => {
  const r = stats.get(k)!.requests
  return { min: Math.min(...r), max: Math.max(...r) }
}

const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?'
console.log('# Object store cost vs raw statements (issue 14)\n')
console.log(`machine: ${cpus().length} cores (nproc), ${cpuModel}; Node ${process.version}`)
console.log(
  `database: file: in ${tmpdir()} (WAL, busy_timeout 5000, synchronous=${String(synchronous)}${SYNC ? '' : ' (default FULL)'}); one client; RTT ${remote ? `${RTT_MS} ms (artificial, half before and half after each call)` : 'none (local)'}`,
)
console.log(`command: npm run bench:storage${argv.length ? ` -- ${argv.join(' ')}` : ''}`)
console.log(
  `${ROUNDS * OPS} ops per variant, interleaved op by op; ${KEYS} keys of ${VALUE.length} characters; load average at start: ${fmt(load0, 2)}\n`,
)
console.log('| operation | p50 µs | p99 µs | requests/op | p50 vs raw | paired mean vs raw |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const v of VARIANTS) {
  const s = stats.get(v.key)!
  const r = requestsPerOp(v.key)
  const isBase = v.base === v.key
  console.log(
    `| ${isBase ? v.label : `**${v.label}**`} | ${us(quantile(s.times, 0.5))} | ${us(quantile(s.times, 0.99))} | ${r.min === r.max ? r.min : `${r.min}-${r.max}`} | ${isBase ? '1.00x' : x(p50(v.key) / p50(v.base))} | ${isBase ? '1.00x' : x(paired(v.key, v.base))} |`,
  )
}

const checks: Array<{ name: string; pass: boolean; value: string }> = []
for (const [k, base] of [
  ['flush1', 'raw1'],
  ['flush100', 'raw100'],
] as const) {
  // p50, like bench:lock's targets; the paired mean (per-round means, same rounds) is shown beside it.
  const ratio = p50(k) / p50(base)
  checks.push({
    name: `${VARIANTS.find((v) => v.key === k)!.label} <= 1.2x ${VARIANTS.find((v) => v.key === base)!.label} (p50)`,
    pass: ratio <= 1.2,
    value: `${x(ratio)} (${us(p50(k))} vs ${us(p50(base))} µs; paired mean ${x(paired(k, base))})`,
  })
}
for (const k of ['flush1', 'flush100', 'get1', 'get100', 'list100']) {
  const r = requestsPerOp(k)
  checks.push({
    name: `${VARIANTS.find((v) => v.key === k)!.label}: exactly 1 request per operation`,
    pass: r.min === 1 && r.max === 1,
    value: r.min === r.max ? `${r.min}` : `${r.min}-${r.max}`,
  })
}
console.log('\n## Targets\n')
for (const c of checks) console.log(`- ${c.pass ? 'PASS' : 'FAIL'} ${c.name}: ${c.value}`)
console.log(
  `\nload average at end: ${fmt(loadavg()[0]!, 2)}; bench took ${fmt((performance.now() - benchStart) / 1000, 1)} s`,
)

raw.close()
rmSync(dir, { recursive: true, force: true })
