/**
 * Mutual exclusion between real OS processes sharing one SQLite file (docs/design.md invariants 1 and 2).
 * In-process tests cannot show this: one Node process has one event loop and, with the local libSQL
 * client, one connection per client, so SQLite's file locking and WAL are never really contended.
 */
import { createClient } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LibSQLLockStore } from '../../src/index.js'
import { buildEntry, configArg, ProcessGroup, type BuiltEntry } from '../support/processes.js'
import { checkLeaseHistory, emptyHammerStats, type LeaseHistory, type LeaseRecord } from './fixtures/lease-history.js'
import type { HammerConfig, HammerResult, HammerStats } from './fixtures/lock-hammer.js'

const CHILDREN = 4
const IDS = Array.from({ length: 8 }, (_, i) => `room-${i}`)
/**
 * Half the children wait patiently for SQLite's write lock, half give up after 20 ms: the patient ones
 * keep the throughput up, the impatient ones make SQLITE_BUSY actually happen, so its handling is tested.
 */
const busyTimeoutMs = (child: number) => (child % 2 === 0 ? 5_000 : 20)

describe('LibSQLLockStore across processes', () => {
  const group = new ProcessGroup()
  let hammer: BuiltEntry | undefined
  let dir: string
  let runs = 0

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stateless-do-multiprocess-'))
    hammer = await buildEntry(new URL('./fixtures/lock-hammer.ts', import.meta.url))
  })
  // A failed or timed-out test must not leave children writing to the database.
  afterEach(() => group.killAll())
  afterAll(() => {
    hammer?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Creates a fresh database, runs the children together, and returns what they and the database say. */
  async function hammerDatabase(
    options: Pick<HammerConfig, 'durationMs' | 'thinkMs' | 'lock' | 'engine'> & { stallsAt?: number[] },
  ) {
    const url = `file:${join(dir, `run-${runs++}.db`)}`
    const setup = createClient({ url })
    await setup.execute('PRAGMA journal_mode=WAL')
    await new LibSQLLockStore(setup).ensureSchema()
    await setup.execute('CREATE TABLE counters (id TEXT PRIMARY KEY, value INTEGER NOT NULL)')
    for (const id of IDS) await setup.execute({ sql: 'INSERT INTO counters VALUES (?1, 0)', args: [id] })
    setup.close()

    const children = Array.from({ length: CHILDREN }, (_, i) => {
      const { durationMs, thinkMs, lock, engine } = options
      const config: HammerConfig = {
        url,
        name: `node-${i}`,
        ids: IDS,
        ttlMs: 10_000,
        busyTimeoutMs: busyTimeoutMs(i),
        durationMs,
        thinkMs,
        lock,
        engine,
      }
      return group.spawn(hammer!.file, {
        name: config.name,
        args: configArg(config),
        timeoutMs: options.durationMs + 20_000,
      })
    })
    // Start the clock only once every child has loaded libSQL and opened the file, so the runs overlap.
    await Promise.all(children.map((c) => c.waitFor('ready', 15_000)))
    const started = performance.now()
    group.broadcast({ type: 'go' })
    await Promise.all([
      group.waitForAll({ timeoutMs: options.durationMs + 15_000 }),
      stallWrites(url, options.stallsAt ?? []),
    ])
    const wallMs = Math.round(performance.now() - started)
    const results = await Promise.all(children.map((c) => c.waitFor<HammerResult>('result', 0)))

    const check = createClient({ url })
    const counters = await check.execute('SELECT id, value FROM counters')
    const tokens = await check.execute('SELECT do_id, fencing_token FROM do_locks')
    check.close()
    const history: LeaseHistory = {
      leases: results.flatMap(({ name, leases }) =>
        leases.map(([index, fencingToken, acquiredAt, endAt, acknowledged]) => ({
          doId: IDS[index]!,
          holder: name,
          fencingToken,
          acquiredAt,
          endAt,
          acknowledged: acknowledged === 1,
        })),
      ),
      counters: Object.fromEntries(counters.rows.map((r) => [String(r.id), Number(r.value)])),
      finalTokens: Object.fromEntries(tokens.rows.map((r) => [String(r.do_id), Number(r.fencing_token)])),
    }
    return { results, history, wallMs }
  }

  for (const engine of ['client', 'native'] as const) {
    it(`never lets two processes hold one id at once and loses no increment (${engine} engine)`, async () => {
      const { results, history, wallMs } = await hammerDatabase({
        durationMs: 3_000,
        thinkMs: 1,
        lock: 'store',
        engine,
        stallsAt: [1_000, 2_000],
      })
      const verdict = checkLeaseHistory(history)
      const total = sum(results.map((r) => r.stats))
      console.info(
        `${engine} engine: ${CHILDREN} processes x ${IDS.length} ids for ${wallMs} ms: ${total.acquired} leases (${results
          .map((r) => r.stats.acquired)
          .join('/')} per child), ${total.contended} contended acquires, ${total.acknowledged} acknowledged and ` +
          `${total.failedUpdates} failed increments, busy retries ${JSON.stringify(total.busyRetries)}, busy errors ${JSON.stringify(total.busyCodes)}`,
      )

      expect(verdict.violations).toEqual([])
      for (const id of IDS) expect(verdict.acknowledged[id], `acknowledged increments of ${id}`).toBeGreaterThan(0)
      // Without real contention the run proves nothing: children must have been turned away, many times.
      expect(total.contended).toBeGreaterThanOrEqual(50)
      // The stalls made the impatient children see SQLITE_BUSY; they retried, and nothing above broke.
      expect(total.failedUpdates + sumValues(total.busyRetries)).toBeGreaterThan(0)
      // With a 10 s TTL no lease may run out under its holder, so every release must find it still held.
      expect(total.releaseRejected).toBe(0)
    }, 25_000)
  }

  it('has a check that reports overlapping leases, reissued tokens and lost increments', () => {
    const lease = (holder: string, fencingToken: number, acquiredAt: number, endAt: number): LeaseRecord => ({
      doId: 'room-0',
      holder,
      fencingToken,
      acquiredAt,
      endAt,
      acknowledged: true,
    })
    const consistent: LeaseHistory = {
      leases: [lease('a', 1, 100, 110), lease('b', 2, 110, 120), lease('a', 3, 125, 125)],
      counters: { 'room-0': 3 },
      finalTokens: { 'room-0': 3 },
    }
    expect(checkLeaseHistory(consistent).violations).toEqual([])

    // b acquired while a still held the id, both read 1 and wrote 2: one increment lost.
    const overlap: LeaseHistory = {
      leases: [lease('a', 1, 100, 110), lease('a', 2, 111, 130), lease('b', 3, 120, 125)],
      counters: { 'room-0': 2 },
      finalTokens: { 'room-0': 3 },
    }
    const violations = checkLeaseHistory(overlap).violations
    expect(violations).toEqual([
      expect.stringMatching(/overlap: #2 by a \[111, 130\] was still held when #3 by b \[120, 125\] started/),
      expect.stringMatching(/counter is 2 but 3 increments were acknowledged/),
    ])

    const reissued: LeaseHistory = {
      leases: [lease('a', 1, 100, 110), lease('b', 1, 110, 120)],
      counters: { 'room-0': 2 },
      finalTokens: { 'room-0': 1 },
    }
    expect(checkLeaseHistory(reissued).violations.join('\n')).toMatch(/token did not increase/)

    // A lease the store granted that no holder knew about (its token never showed up).
    const phantom: LeaseHistory = { ...consistent, finalTokens: { 'room-0': 4 } }
    expect(checkLeaseHistory(phantom).violations.join('\n')).toMatch(/issued tokens 1\.\.4 but holders saw 3 leases/)

    // An increment applied although its holder was told it failed is as wrong as a lost one.
    const unacknowledged: LeaseHistory = { ...consistent, counters: { 'room-0': 4 } }
    expect(checkLeaseHistory(unacknowledged).violations.join('\n')).toMatch(
      /counter is 4 but only 3 increments were acknowledged/,
    )
  })

  it('catches a lock that lets a second process in, with the same processes and check', async () => {
    const { history } = await hammerDatabase({ durationMs: 1_000, thinkMs: 2, lock: 'ignores-holder' })
    const violations = checkLeaseHistory(history).violations.join('\n')
    expect(violations).toMatch(/leases overlap/)
    expect(violations).toMatch(/increments were acknowledged \(\d+ lost\)/)
  }, 20_000)
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const sumValues = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0)

/**
 * Holds SQLite's write lock for a while at each offset (ms after the start), as a migration or a long
 * transaction outside the lock protocol would: children with a short busy timeout get SQLITE_BUSY for
 * certain, not just when contention happens to line up.
 */
async function stallWrites(url: string, offsets: number[], holdMs = 150): Promise<void> {
  if (offsets.length === 0) return
  const client = createClient({ url })
  try {
    await client.execute('PRAGMA busy_timeout = 5000')
    const start = performance.now()
    for (const offset of offsets) {
      await sleep(start + offset - performance.now())
      // A transaction object, not BEGIN/COMMIT through execute: @libsql/client 0.18 pools its local
      // connections and rolls back what a call leaves open.
      const tx = await client.transaction('write')
      await sleep(holdMs)
      await tx.commit()
    }
  } finally {
    client.close()
  }
}

function sum(stats: HammerStats[]): HammerStats {
  const total = emptyHammerStats()
  for (const s of stats) {
    total.acquired += s.acquired
    total.contended += s.contended
    total.acknowledged += s.acknowledged
    total.failedUpdates += s.failedUpdates
    total.releaseRejected += s.releaseRejected
    total.elapsedMs = Math.max(total.elapsedMs, s.elapsedMs)
    for (const key of Object.keys(total.busyRetries) as Array<keyof HammerStats['busyRetries']>) {
      total.busyRetries[key] += s.busyRetries[key]
    }
    for (const [code, n] of Object.entries(s.busyCodes)) total.busyCodes[code] = (total.busyCodes[code] ?? 0) + n
  }
  return total
}
