/**
 * Chaos for the object layer: real StatelessDO node processes (test/chaos/do-node.ts) serving objects
 * with activations and `this.storage` while they are killed, frozen, skewed and cut off from the store,
 * judged by the linearizability checker (test/chaos/linearizability.ts) over the requests they recorded
 * and the final `do_storage` rows. The checker is specified first on histories written by hand, then
 * shown to catch the planted bug (a flush without the fence) in a real run.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildEntry, ProcessGroup, type BuiltEntry } from '../support/processes.js'
import { shortStorageChaos } from './configs.js'
import { FAULT_KINDS, runChaos } from './harness.js'
import type { Operation } from './history.js'
import { checkStorage, type FinalStorage } from './linearizability.js'
import { runRevokedLeaseScenario } from './storage-revoked-lease.js'
import { runStorageZombieScenario } from './storage-zombie.js'

let seq = 0
/** A request as a node records it: `write` returns the value it produced, `read` the value it saw. */
function op(kind: 'write' | 'read', invokedAt: number, completedAt: number | undefined, value?: number): Operation {
  const outcome = completedAt === undefined || value === undefined ? (kind === 'write' ? 'unknown' : 'failed') : 'ok'
  return {
    op: `n/0/${++seq}`,
    node: 'n',
    kind,
    doId: 'x',
    invokedAt,
    completedAt,
    outcome,
    ...(value === undefined ? {} : { value, status: 200 }),
  }
}
/** Final storage as the writes `committed` (op -> value) and `n` left it. */
function stored(committed: Array<[Operation, number]>, n = committed.length): FinalStorage {
  return { x: new Map<string, unknown>([['n', n], ...committed.map(([o, v]): [string, unknown] => [`w:${o.op}`, v])]) }
}

describe('the storage linearizability checker', () => {
  it('accepts overlapping writes in either order, and reads of any value current during them', () => {
    const a = op('write', 0, 10, 2) // overlaps b, yet took effect second
    const b = op('write', 1, 9, 1)
    const r = op('read', 2, 3, 1) // b may have taken effect by 3, a not yet
    const verdict = checkStorage(
      [a, b, r],
      stored([
        [a, 2],
        [b, 1],
      ]),
    )
    expect(verdict.violations).toEqual([])
    expect(verdict.objects.x).toEqual({ committed: 2, acknowledged: 2, reads: 1 })
  })

  it('accepts an indeterminate write that committed, and one that did not', () => {
    const a = op('write', 0, 5, 1)
    const lost = op('write', 6, undefined) // killed mid-flush: committed
    const refused = op('write', 7, 8) // 503: did not commit
    const r = op('read', 20, 21, 2)
    expect(
      checkStorage(
        [a, lost, refused, r],
        stored([
          [a, 1],
          [lost, 2],
        ]),
      ).violations,
    ).toEqual([])
  })

  it('reports an acknowledged write missing from storage', () => {
    const a = op('write', 0, 5, 1)
    const verdict = checkStorage([a], { x: new Map([['n', 0]]) })
    expect(verdict.counts['ack-missing']).toBe(1)
  })

  it('reports two writes that produced one value (a lost update), and the short counter', () => {
    const a = op('write', 0, 5, 1)
    const b = op('write', 6, 9, 1)
    const verdict = checkStorage(
      [a, b],
      stored(
        [
          [a, 1],
          [b, 1],
        ],
        1,
      ),
    )
    expect(verdict.counts['duplicate-value']).toBe(1)
    expect(verdict.counts['final-value']).toBe(1)
    expect(verdict.counts['not-linearizable']).toBeUndefined()
  })

  it('reports a value no write produced, and a write no request made', () => {
    const a = op('write', 0, 5, 1)
    const verdict = checkStorage([a], {
      x: new Map<string, unknown>([
        ['n', 3],
        [`w:${a.op}`, 1],
        ['w:ghost/0/1', 3],
      ]),
    })
    expect(verdict.counts['unaccounted-write']).toBe(1)
    expect(verdict.counts.gap).toBe(1)
  })

  it('reports writes whose values contradict their real-time order', () => {
    const a = op('write', 0, 5, 2) // answered before b began, yet second
    const b = op('write', 6, 9, 1)
    const verdict = checkStorage(
      [a, b],
      stored([
        [a, 2],
        [b, 1],
      ]),
    )
    expect(verdict.counts['not-linearizable']).toBe(1)
  })

  it('reports a stale read: a value older than a write answered before the read began', () => {
    const a = op('write', 0, 5, 1)
    const r = op('read', 6, 7, 0)
    const verdict = checkStorage([a, r], stored([[a, 1]]))
    expect(verdict.counts['not-linearizable']).toBe(1)
  })

  describe('a warm read outside the lease model (a lease revoked under its holder, a slow clock)', () => {
    const under = (read: Operation, fields: Partial<Operation>): Operation => Object.assign(read, fields)

    it('is exempt under a revoked token once answered after the revocation: explained, not a violation', () => {
      const a = op('write', 0, 5, 1)
      const r = under(op('read', 6, 7, 0), { token: 3 })
      const verdict = checkStorage([a, r], stored([[a, 1]]), [{ doId: 'x', token: 3, at: 1 }])
      expect(verdict.violations).toEqual([])
      expect(verdict.exempt).toEqual({ 'revoked-lease': 1 })
      expect(verdict.explained).toHaveLength(1)
      expect(verdict.explained[0]).toContain(`${r.op} (revoked-lease, token 3)`)
    })

    it('is exempt when its node recorded a slow clock', () => {
      const a = op('write', 0, 5, 1)
      const r = under(op('read', 6, 7, 0), { slowClock: true })
      const verdict = checkStorage([a, r], stored([[a, 1]]))
      expect(verdict.violations).toEqual([])
      expect(verdict.exempt).toEqual({ 'slow-clock': 1 })
      expect(verdict.explained).toHaveLength(1)
    })

    it('is still a violation under another token, another object, or answered before the revocation', () => {
      for (const revocation of [
        { doId: 'x', token: 4, at: 1 },
        { doId: 'y', token: 3, at: 1 },
        { doId: 'x', token: 3, at: 8 },
      ]) {
        const a = op('write', 0, 5, 1)
        const r = under(op('read', 6, 7, 0), { token: 3 })
        const verdict = checkStorage([a, r], stored([[a, 1]]), [revocation])
        expect(verdict.counts['not-linearizable'], JSON.stringify(revocation)).toBe(1)
        expect(verdict.explained).toEqual([])
      }
    })

    it('may still not return a value from the future, or one no write produced', () => {
      const r = under(op('read', 0, 2, 1), { slowClock: true })
      const a = op('write', 3, 5, 1)
      expect(checkStorage([r, a], stored([[a, 1]])).counts['not-linearizable']).toBe(1)
      const ghost = under(op('read', 6, 7, 2), { slowClock: true })
      expect(checkStorage([a, ghost], stored([[a, 1]])).counts['not-linearizable']).toBe(1)
    })

    it('explains nothing when the history is linearizable without the exemption', () => {
      const a = op('write', 0, 5, 1)
      const r = under(op('read', 6, 7, 1), { slowClock: true })
      const verdict = checkStorage([a, r], stored([[a, 1]]))
      expect(verdict.violations).toEqual([])
      expect(verdict.explained).toEqual([])
    })
  })

  it('reports a read from the future: a value whose write began after the read was answered', () => {
    const r = op('read', 0, 2, 1)
    const a = op('write', 3, 5, 1)
    expect(checkStorage([r, a], stored([[a, 1]])).counts['not-linearizable']).toBe(1)
  })

  it('reports reads that saw values in an order no single history allows', () => {
    const a = op('write', 0, 100, 1)
    const b = op('write', 0, 100, 2)
    const r1 = op('read', 10, 20, 2) // b (so a) took effect by 20...
    const r2 = op('read', 30, 40, 1) // ...yet 1 was current after 30
    expect(
      checkStorage(
        [a, b, r1, r2],
        stored([
          [a, 1],
          [b, 2],
        ]),
      ).counts['not-linearizable'],
    ).toBe(1)
  })
})

describe('storage chaos', () => {
  const group = new ProcessGroup()
  let entry: BuiltEntry | undefined
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stateless-do-storage-chaos-'))
    entry = await buildEntry(new URL('./do-node.ts', import.meta.url))
  })
  afterEach(() => group.killAll())
  afterAll(() => {
    entry?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  describe('a zombie frozen in a write turn, between its get and its put, past the TTL, while another node writes', () => {
    it('is fenced out: its flush is refused, every acknowledged write is there, the history is linearizable', async () => {
      const report = await runStorageZombieScenario(entry!.file, group, { dir, plantUnfencedFlush: false })
      console.info(report.summary)
      expect(report.successor.map((a) => [a.status, a.value])).toEqual([
        [200, 1],
        [200, 2],
      ])
      expect(report.zombie.status).toBe(503)
      expect(report.n).toBe(2)
      expect(report.violations).toEqual([])
    }, 30_000)

    it('loses an update the checker reports, once the flush skips the fence (planted bug)', async () => {
      const report = await runStorageZombieScenario(entry!.file, group, { dir, plantUnfencedFlush: true })
      console.info(report.summary)
      expect(report.successor.map((a) => [a.status, a.value])).toEqual([
        [200, 1],
        [200, 2],
      ])
      // The stale `0 + 1` overwrote the successor's 2: two writes produced n = 1.
      expect(report.n).toBe(1)
      expect(report.verdict.counts['duplicate-value']).toBe(1)
      expect(report.verdict.counts['final-value']).toBe(1)
    }, 30_000)
  })

  describe('a holder whose lease is ended under it (a corrupt expires_at) while another node takes the object', () => {
    it('answers warm reads from its cache, stale, until it learns; its write is fenced out; then it reads the new state', async () => {
      const report = await runRevokedLeaseScenario(entry!.file, group, { dir })
      expect(report.crashed).toEqual([])
      const answers = report.holder.map((a) => [a.status, a.value, a.code])
      const [, read, stale, fenced, fresh] = report.holder
      expect(answers).toEqual([
        [200, 1, undefined],
        [200, 1, undefined],
        [200, 1, undefined], // stale: the successor's n = 2 was answered before this read was sent
        [503, undefined, 'lease_lost'],
        [200, 2, undefined],
      ])
      // Both warm reads ran under the lease whose expiry was corrupted; the fresh one under a later lease.
      expect(report.revokedToken).toBeTypeOf('number')
      expect([read!.token, stale!.token]).toEqual([report.revokedToken, report.revokedToken])
      expect(fresh!.token).toBeGreaterThan(report.revokedToken! + 1)
      expect(fenced!.code).toBe('lease_lost')
      expect([report.successor.status, report.successor.value]).toEqual([200, 2])
      expect(report.n).toBe(2)
      // The stale read is the one the strict judge rejects, and the only one the revocation explains.
      expect(report.strict.counts['not-linearizable']).toBe(1)
      expect(report.verdict.violations).toEqual([])
      expect(report.verdict.exempt).toEqual({ 'revoked-lease': 1 })
      expect(report.verdict.explained).toHaveLength(1)
    }, 30_000)
  })

  it('keeps every acknowledged write and a linearizable history per object under every fault kind', async () => {
    const runDir = mkdtempSync(join(dir, 'run-'))
    const report = await runChaos(entry!.file, group, shortStorageChaos(Date.now() % 100_000), { dir: runDir })
    console.info(report.summary)
    for (const line of report.storage!.verdict.explained) console.info(`explained: ${line}`)

    expect(report.violations).toEqual([])
    for (const kind of FAULT_KINDS) expect(report.faults[kind], `${kind} faults injected`).toBeGreaterThanOrEqual(1)
    const { stats, verdict } = report.storage!
    // Work was done and judged: writes acknowledged, reads answered, on every object. (Measured on a
    // loaded 2-core machine: 35-165 writes acknowledged per run, most refusals from the faults.)
    expect(stats.writes.ok).toBeGreaterThan(20)
    expect(stats.reads.ok).toBeGreaterThan(5)
    expect(Object.keys(verdict.objects).sort()).toEqual(['hot', 'room-a', 'room-b', 'room-c'])
    // The faults were felt: some requests were refused (outage, corrupt token, lost leases)...
    expect(stats.writes.unknown + stats.reads.failed).toBeGreaterThan(0)
    // ...and the run recovered: writes were acknowledged after the last fault healed, on more than one
    // node (the last fault may be a pause that ends just before the run does).
    expect(stats.okAfterFaults).toBeGreaterThan(0)
    expect(stats.nodesRecovered).toBeGreaterThanOrEqual(2)
  }, 60_000)
})
