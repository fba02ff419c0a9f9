/**
 * Chaos: real node processes sharing one libSQL file while they are killed, frozen, given wrong clocks,
 * cut off from the store and handed corrupt lock rows, judged afterwards by a checker over what they
 * recorded and what the database holds (test/chaos/checker.ts).
 *
 * The short run here has every fault kind once; `npm run chaos` runs the long, random one.
 */
import { createClient } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildEntry, ProcessGroup, type BuiltEntry } from '../support/processes.js'
import { checkChaos, type ChaosObservation, type LogRow, type ViolationRule } from './checker.js'
import { shortChaos } from './configs.js'
import { LibSQLLockStore, fencedWrite } from '../../src/index.js'
import { FAULT_KINDS, runChaos, runZombieScenario, toAuditRow } from './harness.js'
import { APP_SCHEMA, APPEND_LOG, WRITE_COUNTER } from './protocol.js'
import { HistoryWriter, readHistories, type Operation } from './history.js'
import { recordHandoffs } from './recorded-handoffs.js'

describe('chaos', () => {
  const group = new ProcessGroup()
  let entry: BuiltEntry | undefined
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stateless-do-chaos-'))
    entry = await buildEntry(new URL('./node.ts', import.meta.url))
  })
  // The harness cleans up after itself; this is for a harness that threw halfway.
  afterEach(() => group.killAll())
  afterAll(() => {
    entry?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  it('keeps every invariant with kills, pauses, skewed clocks, store outages and corrupt rows', async () => {
    const runDir = mkdtempSync(join(dir, 'run-'))
    const report = await runChaos(entry!.file, group, shortChaos(Date.now() % 100_000), { dir: runDir })
    console.info(report.summary)

    expect(report.violations).toEqual([])
    for (const kind of FAULT_KINDS) expect(report.faults[kind], `${kind} faults injected`).toBeGreaterThanOrEqual(1)
    // The faults were felt, and lived with: the outage turned into typed, retried errors, the corrupt
    // token into CorruptLockRowError for whoever wanted the hot id, and no node crashed (a crash is a violation).
    expect(report.stats.errors.StoreUnavailableError ?? 0).toBeGreaterThan(0)
    expect(report.stats.errors.CorruptLockRowError ?? 0).toBeGreaterThan(0)
    // Leases of the killed node were not lost for good: others took them over once the TTL ran out.
    for (const ms of report.stats.killRecoveryMs) expect(ms).toBeLessThan(Infinity)
    // All nodes wanted the hot id at once: acquires had to wait and retry.
    expect(report.stats.hotRetries).toBeGreaterThan(0)
    // And the run recovered: every node had increments acknowledged after the last fault healed
    // (a node whose connection an outage left stuck would not).
    expect(report.stats.nodesRecovered).toBe(report.stats.nodes)
    expect(report.stats.increments.ok).toBeGreaterThan(100)
  }, 60_000)

  describe('a zombie frozen between its counter read and its fenced write, past the TTL, while another node increments', () => {
    it('is fenced out: its write is refused and the checker finds nothing wrong', async () => {
      const report = await runZombieScenario(entry!.file, group, { dir, plantBug: false })
      console.info(report.summary)
      expect(report.writeSentAfterTakeover).toBe(true)

      expect(report.successorToken).toBeGreaterThan(report.zombieToken)
      expect(report.zombieWrite).toMatchObject({
        outcome: 'failed',
        error: expect.stringMatching(/^StaleFencingTokenError/),
      })
      expect(report.counter).toBe(2)
      expect(report.violations).toEqual([])
    }, 30_000)

    it('loses an update the checker reports, once the fence check is planted out of the store', async () => {
      const report = await runZombieScenario(entry!.file, group, { dir, plantBug: true })
      console.info(report.summary)
      expect(report.writeSentAfterTakeover).toBe(true)

      // Same processes, same timing; only the trigger differs. The zombie's `read + 1` overwrote two increments.
      expect(report.zombieWrite.outcome).toBe('ok')
      expect(report.counter).toBe(1)
      expect(Object.keys(report.verdict.counts).sort()).toEqual(
        ['counter', 'fence-witness', 'linearizability', 'lost-update', 'stale-write', 'token-order'].sort(),
      )
    }, 30_000)
  })
})

describe('chaos checker', () => {
  // A hand-made history: node a holds token 1 and increments twice, node b takes over with token 2.
  let seq = 0
  const acquire = (node: string, token: number, at: number): Operation => ({
    op: `${node}/0/${++seq}`,
    node,
    kind: 'acquire',
    doId: 'x',
    invokedAt: at,
    completedAt: at + 1,
    outcome: 'ok',
    acquired: true,
    token,
  })
  const increment = (
    node: string,
    token: number,
    read: number,
    at: number,
    outcome: Operation['outcome'] = 'ok',
  ): Operation => ({
    op: `${node}/0/${++seq}`,
    node,
    kind: 'increment',
    doId: 'x',
    invokedAt: at,
    writeAt: at + 1,
    completedAt: outcome === 'unknown' ? undefined : at + 2,
    outcome,
    token,
    read,
  })
  // What the database saw in the write's transaction: by default the writer's own unexpired lease.
  const row = (
    id: number,
    op: Operation,
    witness: Partial<Pick<LogRow, 'lockToken' | 'lockExpires' | 'at'>> = {},
  ): LogRow => ({
    id,
    doId: 'x',
    token: op.token!,
    node: op.node,
    op: op.op,
    read: op.read!,
    lockToken: op.token!,
    lockExpires: op.writeAt! + 30_000,
    at: op.writeAt!,
    ...witness,
  })

  function consistent() {
    const grantA = acquire('a', 1, 100)
    const a1 = increment('a', 1, 0, 110)
    const a2 = increment('a', 1, 1, 120)
    const grantB = acquire('b', 2, 200)
    const b1 = increment('b', 2, 2, 210)
    const observation: ChaosObservation = {
      operations: [grantA, a1, a2, grantB, b1],
      log: [row(1, a1), row(2, a2), row(3, b1)],
      counters: { x: 3 },
      lockTokens: { x: 2 },
      audit: [
        { seq: 1, doId: 'x', at: 101, newNode: 'a', newToken: 1, newExpires: 30_101 },
        {
          seq: 2,
          doId: 'x',
          at: 150,
          oldNode: 'a',
          oldToken: 1,
          oldExpires: 30_101,
          newNode: 'a',
          newToken: 1,
          newExpires: 30_150,
        },
        {
          seq: 3,
          doId: 'x',
          at: 190,
          oldNode: 'a',
          oldToken: 1,
          oldExpires: 30_150,
          newNode: 'a',
          newToken: 1,
          newExpires: 0,
        },
        {
          seq: 4,
          doId: 'x',
          at: 201,
          oldNode: 'a',
          oldToken: 1,
          oldExpires: 0,
          newNode: 'b',
          newToken: 2,
          newExpires: 30_201,
        },
      ],
    }
    return { observation, grantA, a1, a2, grantB, b1 }
  }
  const rules = (observation: ChaosObservation): ViolationRule[] =>
    Object.keys(checkChaos(observation).counts).sort() as ViolationRule[]

  it('passes a consistent history, including an indeterminate increment that did or did not happen', () => {
    const { observation } = consistent()
    expect(checkChaos(observation).violations).toEqual([])

    // b was killed after sending a write: it may have committed (in the log) or not.
    const killed = increment('b', 2, 3, 220, 'unknown')
    const applied = {
      ...observation,
      operations: [...observation.operations, killed],
      log: [...observation.log, row(4, killed)],
      counters: { x: 4 },
    }
    expect(checkChaos(applied).violations).toEqual([])
    const notApplied = { ...observation, operations: [...observation.operations, killed] }
    expect(checkChaos(notApplied).violations).toEqual([])
  })

  it('reports a lower token writing after a higher one, and the update that write lost', () => {
    const { observation } = consistent()
    // a, paused with token 1 after reading 1, resumes after b wrote and gets through: a zombie write.
    const zombie = increment('a', 1, 1, 130)
    zombie.writeAt = 250
    zombie.completedAt = 251
    // The database saw b's lease (token 2) in the zombie's transaction.
    const broken = {
      ...observation,
      operations: [...observation.operations, zombie],
      log: [...observation.log, row(4, zombie, { lockToken: 2 })],
      counters: { x: 2 },
    }
    const verdict = checkChaos(broken)
    expect(Object.keys(verdict.counts).sort()).toEqual([
      'counter',
      'fence-witness',
      'linearizability',
      'lost-update',
      'stale-write',
      'token-order',
    ])
    expect(verdict.violations.map((v) => v.message).join('\n')).toMatch(
      /with token 1 committed \(log id 4\) after .* with token 2/,
    )
  })

  it('reports a stale write accepted after a newer lease was granted, before the new holder wrote', () => {
    const { observation, grantB, b1 } = consistent()
    // Same history without b's write: only real time shows that a's second write came too late.
    const late = increment('a', 1, 2, 130)
    late.writeAt = grantB.completedAt! + 5
    late.completedAt = late.writeAt + 1
    const broken = {
      ...observation,
      operations: observation.operations.filter((o) => o !== b1).concat(late),
      log: [...observation.log.slice(0, 2), row(3, late, { lockToken: 2 })],
    }
    expect(rules(broken)).toEqual(['fence-witness', 'stale-write'])
  })

  it('reports a counter that lost an acknowledged increment, or holds one nobody made', () => {
    const { observation } = consistent()
    expect(rules({ ...observation, counters: { x: 2 } })).toEqual(['counter', 'linearizability'])
    expect(rules({ ...observation, counters: { x: 4 } })).toEqual(['counter', 'linearizability'])
  })

  it('reports an acknowledged write that is missing, and a refused write that is present', () => {
    const { observation, b1 } = consistent()
    const missing = { ...observation, log: observation.log.slice(0, 2), counters: { x: 2 } }
    expect(rules(missing)).toContain('ack-missing')

    const refused = { ...b1, outcome: 'failed' as const, error: 'StaleFencingTokenError: ...' }
    const applied = { ...observation, operations: observation.operations.map((o) => (o === b1 ? refused : o)) }
    // ...and the counter then holds a step no acknowledged or indeterminate increment explains.
    expect(rules(applied)).toEqual(['counter', 'linearizability', 'rejected-applied'])
  })

  it('reports log rows no node sent, and a write applied twice', () => {
    const { observation, b1 } = consistent()
    const phantom: LogRow = {
      id: 4,
      doId: 'x',
      token: 2,
      node: 'b',
      op: 'b/0/999',
      read: 3,
      lockToken: 2,
      lockExpires: 30_500,
      at: 500,
    }
    expect(rules({ ...observation, log: [...observation.log, phantom], counters: { x: 4 } })).toContain('phantom-write')
    expect(rules({ ...observation, log: [...observation.log, row(4, b1)], counters: { x: 4 } })).toContain(
      'duplicate-write',
    )
  })

  it('reports a token granted twice, granted out of order, or used by a node it was not granted to', () => {
    const { observation } = consistent()
    const again = acquire('c', 1, 300)
    expect(rules({ ...observation, operations: [...observation.operations, again] })).toEqual(['token-reissued'])

    const stolen = increment('c', 2, 3, 220)
    expect(
      rules({
        ...observation,
        operations: [...observation.operations, stolen],
        log: [...observation.log, row(4, stolen)],
        counters: { x: 4 },
      }),
    ).toEqual(['token-owner'])
  })

  it('reports two acknowledged increments that returned the same value, even when the log was not kept', () => {
    const { observation, a2 } = consistent()
    // b read before a's second write committed; with the log table lost, only the answers show it.
    const b1 = increment('b', 2, 1, 210)
    const verdict = checkChaos({
      ...observation,
      operations: observation.operations.map((o) => (o.node === 'b' && o.kind === 'increment' ? b1 : o)),
      log: [],
      counters: { x: 2 },
    })
    expect(verdict.counts.linearizability).toBeGreaterThan(0)
    expect(verdict.violations.map((v) => v.message).join('\n')).toMatch(
      new RegExp(`${a2.op}, ${b1.op} were all acknowledged returning 1`),
    )
  })

  it('reports an order of increments that contradicts real time', () => {
    const { observation, a1 } = consistent()
    // a2 completed (t=122) before a1 was invoked (t=500), yet a1 returned the smaller value.
    const swapped = observation.operations.map((o) =>
      o === a1 ? { ...a1, invokedAt: 500, writeAt: 501, completedAt: 502 } : o,
    )
    expect(rules({ ...observation, operations: swapped })).toEqual(['linearizability', 'stale-write'])
  })

  it("reports a write accepted under an expired lease, from the database's own witness, even when nobody else wrote", () => {
    const { observation, a2 } = consistent()
    // a's second write: do_locks still had token 1, but its lease had run out 3.5 s before.
    const log = observation.log.map((r) => (r.op === a2.op ? { ...r, lockExpires: r.at - 3_500 } : r))
    expect(rules({ ...observation, log })).toEqual(['fence-witness'])
  })

  it('reports, from the audit of do_locks, a lease granted over an intact one, a token that skipped, and a late refresh', () => {
    const { observation } = consistent()
    const audit = observation.audit
    const overlap = audit.map((r) => (r.seq === 4 ? { ...r, oldExpires: 30_150 } : r)) // b took over without a release
    expect(rules({ ...observation, audit: overlap })).toEqual(['lease-overlap'])
    const skipped = audit.map((r) => (r.seq === 4 ? { ...r, newToken: 3 } : r))
    expect(rules({ ...observation, audit: skipped })).toEqual(['token-step'])
    const firstNotOne = audit.map((r) => (r.seq === 1 ? { ...r, newToken: 5 } : r))
    expect(rules({ ...observation, audit: firstNotOne })).toEqual(['token-step'])
    const late = audit.map((r) => (r.seq === 2 ? { ...r, at: 40_000 } : r)) // refreshed after it expired at 30 101
    expect(rules({ ...observation, audit: late })).toEqual(['late-refresh'])
    // The harness's corruption and repair, and taking over a corrupt expires_at, are not violations.
    const corrupt = [
      ...audit,
      {
        seq: 5,
        doId: 'x',
        at: 250,
        oldNode: 'b',
        oldToken: 2,
        oldExpires: 30_201,
        newNode: 'b',
        newToken: 2,
        newExpires: 'garbage',
      },
      {
        seq: 6,
        doId: 'x',
        at: 260,
        oldNode: 'b',
        oldToken: 2,
        oldExpires: 'garbage',
        newNode: 'c',
        newToken: 3,
        newExpires: 30_260,
      },
      {
        seq: 7,
        doId: 'x',
        at: 270,
        oldNode: 'c',
        oldToken: 3,
        oldExpires: 30_260,
        newNode: 'c',
        newToken: 'garbage',
        newExpires: 30_260,
      },
      {
        seq: 8,
        doId: 'x',
        at: 280,
        oldNode: 'c',
        oldToken: 'garbage',
        oldExpires: 30_260,
        newNode: 'c',
        newToken: 4,
        newExpires: 0,
      },
    ]
    expect(rules({ ...observation, audit: corrupt })).toEqual([])
  })

  describe('a handoff: the holder of token 1 releases it to another caller of its guard, waiting for the id, in one statement', () => {
    // a holds token 1 and increments twice; a second worker of a, waiting since t=115, is handed token 2
    // by the release at t=190 (one UPDATE: same node, token + 1, fresh expiry, over the intact lease) and
    // increments once.
    function handedOver() {
      const grantA = acquire('a', 1, 100)
      const a1 = increment('a', 1, 0, 110)
      const a2 = increment('a', 1, 1, 120)
      const release: Operation = {
        op: `a/0/${++seq}`,
        node: 'a',
        kind: 'release',
        doId: 'x',
        invokedAt: 188,
        completedAt: 192,
        outcome: 'ok',
        token: 1,
        released: true,
      }
      const handoff: Operation = {
        op: `a/0/${++seq}`,
        node: 'a',
        kind: 'handoff',
        doId: 'x',
        invokedAt: 189,
        completedAt: 191,
        outcome: 'ok',
        token: 1,
        toNode: 'a',
        nextToken: 2,
      }
      const waited = { ...acquire('a', 2, 115), completedAt: 192 }
      const a3 = increment('a', 2, 2, 210)
      const observation: ChaosObservation = {
        operations: [grantA, a1, a2, release, handoff, waited, a3],
        log: [row(1, a1), row(2, a2), row(3, a3)],
        counters: { x: 3 },
        lockTokens: { x: 2 },
        audit: [
          { seq: 1, doId: 'x', at: 101, newNode: 'a', newToken: 1, newExpires: 30_101 },
          {
            seq: 2,
            doId: 'x',
            at: 150,
            oldNode: 'a',
            oldToken: 1,
            oldExpires: 30_101,
            newNode: 'a',
            newToken: 1,
            newExpires: 30_150,
          },
          {
            seq: 3,
            doId: 'x',
            at: 190,
            oldNode: 'a',
            oldToken: 1,
            oldExpires: 30_150,
            newNode: 'a',
            newToken: 2,
            newExpires: 30_190,
          },
        ],
      }
      return { observation, handoff }
    }
    const without = (observation: ChaosObservation, op: Operation): ChaosObservation => ({
      ...observation,
      operations: observation.operations.filter((o) => o !== op),
    })
    const replaced = (observation: ChaosObservation, op: Operation, by: Operation): ChaosObservation => ({
      ...observation,
      operations: observation.operations.map((o) => (o === op ? by : o)),
    })

    it('passes when the holder of token 1 recorded that handoff, sent before the statement and answered after it', () => {
      const { observation, handoff } = handedOver()
      expect(checkChaos(observation).violations).toEqual([])
      // Killed before the answer: it may have committed, and here it did.
      const killed = { ...handoff, completedAt: undefined, outcome: 'unknown' as const, nextToken: undefined }
      expect(checkChaos(replaced(observation, handoff, killed)).violations).toEqual([])
    })

    it('reports the same audit rows as a takeover of an intact lease when no handoff was recorded', () => {
      const { observation, handoff } = handedOver()
      const verdict = checkChaos(without(observation, handoff))
      expect(Object.keys(verdict.counts)).toEqual(['lease-overlap'])
      expect(verdict.violations[0]!.message).toMatch(
        /token 2 \(a\) was granted at store time 190 while token 1 \(a\) held an intact lease until 30150 \(audit 3\), and a recorded no handoff of token 1/,
      )
    })

    it('reports them when the recorded handoff does not explain them: another node, another token, refused, failed, handed elsewhere, sent after or answered before the statement', () => {
      const { observation, handoff } = handedOver()
      const explains = (by: Partial<Operation>) => rules(replaced(observation, handoff, { ...handoff, ...by }))
      expect(explains({})).toEqual([])
      expect(explains({ node: 'b' })).toEqual(['lease-overlap'])
      expect(explains({ token: 2 })).toEqual(['lease-overlap'])
      expect(explains({ nextToken: undefined })).toEqual(['lease-overlap'])
      expect(explains({ outcome: 'failed', nextToken: undefined, error: 'InvalidArgumentError' })).toEqual([
        'lease-overlap',
      ])
      expect(explains({ toNode: 'b' })).toEqual(['lease-overlap'])
      expect(explains({ invokedAt: 195, completedAt: 197 })).toEqual(['lease-overlap'])
      expect(explains({ invokedAt: 180, completedAt: 185 })).toEqual(['lease-overlap'])
      // One handoff explains one grant: a second grant over the intact token 1 is a takeover again.
      const twice = observation.audit.flatMap((r) => (r.seq === 3 ? [r, { ...r, seq: 4 }] : [r]))
      expect(rules({ ...observation, audit: twice })).toEqual(['lease-overlap'])
    })

    it('reports a handoff that skipped a token, even one the holder recorded', () => {
      const { observation, handoff } = handedOver()
      const audit = observation.audit.map((r) => (r.seq === 3 ? { ...r, newToken: 3 } : r))
      const skipped = { ...replaced(observation, handoff, { ...handoff, nextToken: 3 }), audit }
      const verdict = checkChaos(skipped)
      expect(Object.keys(verdict.counts).sort()).toEqual(['lease-overlap', 'token-step'])
      expect(verdict.violations.map((v) => v.message).join('\n')).toMatch(
        /not a handoff: a's handoff of token 1 may only grant 2/,
      )
    })

    it("passes a real handoff on a real database, recorded by the chaos nodes' store, and reports it unrecorded", async () => {
      const client = createClient({ url: ':memory:' })
      const historyDir = mkdtempSync(join(tmpdir(), 'stateless-do-handoff-'))
      try {
        const inner = new LibSQLLockStore(client)
        await inner.ensureSchema()
        for (const sql of APP_SCHEMA) await client.execute(sql)
        const file = join(historyDir, 'history-a-0.jsonl')
        const history = new HistoryWriter(file, 'a', 0)
        const store = recordHandoffs(inner, history)
        const first = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 60_000 })
        if (!first.acquired) throw new Error('expected the lease')
        const next = await store.handoff!({ ...first.lock, toNodeId: 'a', ttlMs: 60_000 })
        expect(next?.fencingToken).toBe(first.lock.fencingToken + 1)
        expect(await store.handoff!({ ...first.lock, toNodeId: 'a', ttlMs: 60_000 })).toBeNull() // token 1 is gone
        history.close()
        const { operations } = readHistories([file])
        expect(operations.map((o) => [o.kind, o.outcome, o.token, o.toNode, o.nextToken])).toEqual([
          ['handoff', 'ok', 1, 'a', 2],
          ['handoff', 'ok', 1, 'a', undefined],
        ])
        const audit = (await client.execute('SELECT * FROM chaos_lock_audit ORDER BY seq')).rows.map((r) =>
          toAuditRow(r as unknown as Record<string, unknown>),
        )
        const observed = (ops: Operation[]) =>
          checkChaos({ operations: ops, log: [], counters: {}, lockTokens: {}, audit }).counts
        expect(observed(operations)).toEqual({})
        expect(observed([])).toEqual({ 'lease-overlap': 1 })
      } finally {
        client.close()
        rmSync(historyDir, { recursive: true, force: true })
      }
    })
  })

  it("audits do_locks through its triggers on a real database: the library's own operations pass, a takeover of an intact lease does not", async () => {
    const client = createClient({ url: ':memory:' })
    try {
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      for (const sql of APP_SCHEMA) await client.execute(sql)
      const first = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 60_000 })
      if (!first.acquired) throw new Error('expected the lease')
      expect(await store.refresh({ ...first.lock, ttlMs: 60_000 })).not.toBeNull()
      expect(await store.release(first.lock)).toBe(true)
      const second = await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 60_000 })
      expect((await store.acquire({ doId: 'x', nodeId: 'c', ttlMs: 60_000 })).acquired).toBe(false) // held: no change, no audit row
      const audited = async () =>
        checkChaos({
          operations: [],
          log: [],
          counters: {},
          lockTokens: {},
          audit: (await client.execute('SELECT * FROM chaos_lock_audit ORDER BY seq')).rows.map((r) =>
            toAuditRow(r as unknown as Record<string, unknown>),
          ),
        })
      const clean = await audited()
      expect(clean.violations).toEqual([])
      expect((await client.execute('SELECT count(*) AS n FROM chaos_lock_audit')).rows[0]!.n).toBe(4) // insert, refresh, release, takeover
      expect(second.acquired).toBe(true)
      // What a broken acquire would do: hand the row to another node while b's lease is intact.
      await client.execute("UPDATE do_locks SET node_id = 'c', fencing_token = fencing_token + 1 WHERE do_id = 'x'")
      expect(Object.keys((await audited()).counts)).toEqual(['lease-overlap'])

      // The fence witness: a fenced batch's log row carries what the fence check saw, at its time.
      await client.execute("INSERT INTO chaos_counters (id, n) VALUES ('y', 0)")
      const y = await store.acquire({ doId: 'y', nodeId: 'a', ttlMs: 60_000 })
      if (!y.acquired) throw new Error('expected the lease')
      await fencedWrite(store, y.lock, [
        { sql: APPEND_LOG, args: ['y', y.lock.fencingToken, 'a', 'a/0/1', 0] },
        { sql: WRITE_COUNTER, args: ['y', 1] },
      ])
      const logged = (await client.execute('SELECT token, lock_token, lock_expires, at FROM chaos_log')).rows
      expect(logged).toEqual([
        expect.objectContaining({
          token: y.lock.fencingToken,
          lock_token: y.lock.fencingToken,
          lock_expires: y.lock.expiresAt,
        }),
      ])
      expect(Number(logged[0]!.at)).toBeLessThan(y.lock.expiresAt)
    } finally {
      client.close()
    }
  })

  it('reports a release that freed a lease after a newer one had been granted', () => {
    const { observation } = consistent()
    const release = (released: boolean): Operation => ({
      op: `a/0/${++seq}`,
      node: 'a',
      kind: 'release',
      doId: 'x',
      invokedAt: 300,
      completedAt: 301,
      outcome: 'ok',
      token: 1,
      released,
    })
    expect(rules({ ...observation, operations: [...observation.operations, release(false)] })).toEqual([])
    expect(rules({ ...observation, operations: [...observation.operations, release(true)] })).toEqual(['stale-release'])
  })

  it('reports a lock row whose token went backwards or is not an integer', () => {
    const { observation } = consistent()
    expect(rules({ ...observation, lockTokens: { x: 1 } })).toEqual(['lock-row'])
    expect(rules({ ...observation, lockTokens: { x: 'garbage' } })).toEqual(['lock-row'])
    expect(rules({ ...observation, lockTokens: {} })).toEqual(['lock-row'])
  })
})
