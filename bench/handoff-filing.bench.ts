/**
 * Issue 13's "8 waiters on one id in one process" against the library AS IT WAS when the issue was
 * filed, not an emulation of it: the commit before the issue's first change (462e437, the parent of
 * a1dcf61) is checked out into a temporary git worktree, built with tsup, and run side by side with
 * today's source, interleaved round by round, on one `file:` database each (WAL, synchronous FULL).
 *
 *   npm run bench:handoff-filing [-- --rounds 5 --ms 2000]
 *
 * Each variant: one guard, 8 callers looping `acquire(id, { waitMs })` -> `release` with no pause.
 * Printed: acquisitions/s and the least-served caller's share per round, medians, and the ratio of
 * today's (the local engine, a URL, as the README opens a file) to the filing-time store (an
 * `@libsql/client` client with WAL and busy_timeout 5000, as its README said). After each round, the
 * native handoff floor on a database of its own (bench/native-handoff.ts): the most a handoff
 * committed on its own reaches on this disk, so 5x the filing-time rate can be set against it. Needs
 * git and the repository's history (a clone, not a tarball).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { loadavg, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createClient } from '@libsql/client'
import Database from 'libsql'
import { HybridConsistencyGuard, LibSQLLockStore } from '../src/index.js'
import { nativeHandoffRate } from './native-handoff.js'
import { ARGV as argv } from './options.js'

const FILING_COMMIT = '462e437'
const option = (name: string, fallback: number) => {
  const i = argv.indexOf(name)
  return i < 0 ? fallback : Number(argv[i + 1])
}
const ROUNDS = option('--rounds', 3)
const MS = option('--ms', 1_000)
const WAITERS = 8

const root = resolve(import.meta.dirname, '..')
const work = mkdtempSync(join(tmpdir(), 'stateless-do-filing-'))
const tree = join(work, 'tree')
process.on('exit', () => {
  try {
    execFileSync('git', ['worktree', 'remove', '--force', tree], { cwd: root, stdio: 'ignore' })
  } catch {
    // Not added, or already gone.
  }
  rmSync(work, { recursive: true, force: true })
})
execFileSync('git', ['worktree', 'add', '--detach', tree, FILING_COMMIT], { cwd: root, stdio: 'ignore' })
symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'))
// The core entry only, CommonJS, no declarations: all the comparison needs. `--no-config`: that
// commit's tsup.config.ts builds several entries into one folder with rollup's tree-shaking, which
// leaves the CommonJS file with a class private field out of its class; the flags give what its config
// gives the core (ES2022, the clients external). Built inside the worktree, so that its require() of a
// dependency (devalue) finds node_modules through the worktree's link.
execFileSync(
  join(root, 'node_modules', '.bin', 'tsup'),
  [
    'src/index.ts',
    '--no-config',
    '--format',
    'cjs',
    '--target',
    'es2022',
    '--external',
    '@libsql/client',
    '--external',
    'libsql',
    '--out-dir',
    join(tree, '.bench-dist'),
  ],
  { cwd: tree, stdio: 'ignore' },
)
const built = join(tree, '.bench-dist', 'index.cjs')
if (!existsSync(built)) throw new Error(`building ${FILING_COMMIT} produced no ${built}`)
const filing = createRequire(import.meta.url)(built) as {
  LibSQLLockStore: new (client: unknown) => { ensureSchema(): Promise<void> }
  HybridConsistencyGuard: new (options: object) => GuardLike
}

interface GuardLike {
  acquire(id: string, options: { waitMs: number }): Promise<{ acquired: boolean; lock?: unknown }>
  release(lock: unknown): Promise<unknown>
}

let dbNo = 0
async function freshDb(): Promise<string> {
  const url = `file:${join(work, `db-${dbNo++}.sqlite`)}`
  const c = createClient({ url })
  await c.execute('PRAGMA journal_mode=WAL')
  c.close()
  return url
}

/** 8 callers of one guard on one id for `ms`: acquisitions/s and the least-served caller's share. */
async function round(guard: GuardLike, ms: number): Promise<{ perSec: number; least: number }> {
  const served = new Array<number>(WAITERS).fill(0)
  const start = performance.now()
  const deadline = start + ms
  await Promise.all(
    served.map(async (_, w) => {
      while (performance.now() < deadline) {
        const r = await guard.acquire('hot', { waitMs: 5_000 })
        if (!r.acquired) continue
        served[w]!++
        await guard.release(r.lock)
      }
    }),
  )
  const total = served.reduce((a, b) => a + b, 0)
  return { perSec: (total * 1000) / (performance.now() - start), least: total ? Math.min(...served) / total : 0 }
}

const variants: Array<{ label: string; make: () => Promise<GuardLike> }> = [
  {
    label: `at filing (${FILING_COMMIT}, built from git): @libsql/client, WAL, busy_timeout 5000`,
    make: async () => {
      const client = createClient({ url: await freshDb() })
      await client.execute('PRAGMA busy_timeout=5000')
      const store = new filing.LibSQLLockStore(client)
      await store.ensureSchema()
      return new filing.HybridConsistencyGuard({ store, nodeId: 'n', ttlMs: 30_000 })
    },
  },
  {
    label: "today: the local engine (a URL), one-statement handoff to the guard's next caller",
    make: async () => {
      const store = new LibSQLLockStore(await freshDb())
      await store.ensureSchema()
      return new HybridConsistencyGuard({ store, nodeId: 'n', ttlMs: 30_000 }) as unknown as GuardLike
    },
  },
]

console.log('# 8 waiters on one id: today against the library at the filing of issue 13\n')
console.log(`command: npm run bench:handoff-filing${argv.length ? ` -- ${argv.join(' ')}` : ''}`)
console.log(`${ROUNDS} interleaved rounds of ${MS} ms per variant; load average at start ${loadavg()[0]!.toFixed(2)}\n`)
const guards = await Promise.all(variants.map((v) => v.make()))
for (const g of guards) await round(g, 200) // warm-up
const results = variants.map(() => [] as Array<{ perSec: number; least: number }>)
// The native floor's database: today's store creates the table and takes the lease once.
const floorUrl = await freshDb()
const floorStore = new LibSQLLockStore(floorUrl)
await floorStore.ensureSchema()
const taken = await floorStore.acquire({ doId: 'hot', nodeId: 'n', ttlMs: 30_000 })
if (!taken.acquired) throw new Error('native floor: the lease was not taken')
const floorDb = new Database(floorUrl.slice('file:'.length))
let floorLease = { doId: 'hot', nodeId: 'n', token: taken.lock.fencingToken }
const floors: number[] = []
for (let r = 0; r < ROUNDS; r++) {
  for (const [i, g] of guards.entries()) results[i]!.push(await round(g, MS))
  const floor = nativeHandoffRate(floorDb, floorStore.sql.handoff, floorLease, 30_000, MS / 4)
  floors.push(floor.perSec)
  floorLease = { ...floorLease, token: floor.token }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log('| variant | acquisitions/s (median) | per round | least-served (worst round) |')
console.log('|---|---:|---:|---:|')
for (const [i, v] of variants.entries()) {
  const rs = results[i]!
  console.log(
    `| ${v.label} | ${median(rs.map((x) => x.perSec)).toFixed(0)} | ${rs.map((x) => x.perSec.toFixed(0)).join(', ')} | ${(Math.min(...rs.map((x) => x.least)) * 100).toFixed(1)}% |`,
  )
}
const ratios = results[1]!.map((x, r) => x.perSec / results[0]![r]!.perSec)
console.log(
  `\ntoday / at filing: ${median(ratios).toFixed(2)}x (per round ${ratios.map((x) => x.toFixed(2)).join(', ')}); issue 13's target: >= 5x`,
)
const floor = median(floors)
const atFiling = median(results[0]!.map((x) => x.perSec))
console.log(
  `native handoff floor (the store's handoff UPDATE in its own BEGIN IMMEDIATE ... COMMIT on a native connection, in a loop, nothing else): ${floor.toFixed(0)}/s (per round ${floors.map((x) => x.toFixed(0)).join(', ')}) = ${(floor / atFiling).toFixed(2)}x at filing; today reaches ${((100 * median(results[1]!.map((x) => x.perSec))) / floor).toFixed(0)}% of it, and 5x at filing would be ${((100 * 5 * atFiling) / floor).toFixed(0)}% of it`,
)
console.log(`load average at end ${loadavg()[0]!.toFixed(2)}`)
process.exit(0)
