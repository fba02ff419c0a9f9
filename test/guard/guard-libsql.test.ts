/**
 * The guard and fenced writes over a real libSQL database (file: in WAL, shared by several clients as
 * separate nodes would share it), in real time.
 */
import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  LockLostError,
  StaleFencingTokenError,
  fencedWrite,
  type Lock,
} from '../../src/index.js'
import { held } from './support/leases.js'
import { countingClient, sleep } from '../support/counting-client.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-guard-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

describe('HybridConsistencyGuard on libSQL', () => {
  let url: string
  const clients: Client[] = []
  const guards: HybridConsistencyGuard[] = []

  async function node(nodeId: string, options: { ttlMs?: number; heartbeatMs?: number } = {}) {
    const raw = createClient({ url })
    clients.push(raw)
    await raw.execute('PRAGMA busy_timeout = 5000')
    const counted = countingClient(raw)
    const store = new LibSQLLockStore(counted.client)
    const guard = new HybridConsistencyGuard({
      store,
      nodeId,
      ttlMs: options.ttlMs ?? 10_000,
      heartbeatMs: options.heartbeatMs,
    })
    guards.push(guard)
    return { raw, store, guard, requests: counted.requests }
  }

  beforeEach(async () => {
    url = `file:${join(dir, `guard-${n++}.db`)}`
    const setup = createClient({ url })
    await setup.execute('PRAGMA journal_mode = WAL')
    await new LibSQLLockStore(setup).ensureSchema()
    await setup.execute('CREATE TABLE rooms (id TEXT PRIMARY KEY, n INTEGER NOT NULL, last_token INTEGER)')
    await setup.execute("INSERT INTO rooms VALUES ('room-1', 0, NULL)")
    setup.close()
  })
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
    while (clients.length) clients.pop()!.close()
  })

  const bump = (lock: Pick<Lock, 'doId' | 'fencingToken'>) => [
    { sql: 'UPDATE rooms SET n = n + 1, last_token = ? WHERE id = ?', args: [lock.fencingToken, lock.doId] },
  ]
  const room = async (client: Client) =>
    (await client.execute("SELECT n, last_token FROM rooms WHERE id = 'room-1'")).rows[0]!

  it('lets exactly one of two guards win a concurrent acquire', async () => {
    const a = await node('node-a')
    const b = await node('node-b')
    const results = await Promise.all([a.guard.acquire('room-1'), b.guard.acquire('room-1')])
    expect(results.filter((r) => r.acquired)).toHaveLength(1)
    const loser = results.find((r) => !r.acquired)!
    expect(!loser.acquired && loser.retryAfterMs).toBeGreaterThan(9_000)
  })

  it("rejects a stale holder's fenced write after a new holder acquired, changing nothing", async () => {
    const a = await node('node-a', { ttlMs: 300 })
    const b = await node('node-b')
    // node-a "pauses": no heartbeat, its lease runs out, node-b takes over.
    const stale = held(await a.guard.acquire('room-1', { heartbeat: false }))
    await fencedWrite(
      a.store,
      { doId: stale.doId, nodeId: stale.nodeId, fencingToken: stale.fencingToken },
      bump(stale),
    )
    await sleep(350)
    const current = held(await b.guard.acquire('room-1'))
    expect(current.fencingToken).toBe(stale.fencingToken + 1)
    // The zombie ignores its signal and writes anyway with its node and token alone: the store refuses.
    const error = await a.store
      .fencedWrite({ doId: stale.doId, nodeId: stale.nodeId, fencingToken: stale.fencingToken }, [
        ...bump(stale),
        { sql: "INSERT INTO rooms VALUES ('zombie', 1, NULL)" },
      ])
      .catch((e) => e)
    expect(error).toBeInstanceOf(StaleFencingTokenError)
    expect(error).toMatchObject({ doId: 'room-1', token: stale.fencingToken })
    expect(await room(b.raw)).toMatchObject({ n: 1, last_token: stale.fencingToken })
    expect((await b.raw.execute("SELECT count(*) AS c FROM rooms WHERE id = 'zombie'")).rows[0]!.c).toBe(0)
    await fencedWrite(b.store, current, bump(current))
    expect(await room(b.raw)).toMatchObject({ n: 2, last_token: current.fencingToken })
  })

  it('rejects a fenced write after the lease expired even if nobody took over', async () => {
    const a = await node('node-a')
    // Straight from the store: no guard that would release the lease once its validity ran out.
    const taken = await a.store.acquire({ doId: 'room-1', nodeId: 'node-a', ttlMs: 200 })
    if (!taken.acquired) throw new Error('expected the lease')
    const lock = taken.lock
    await sleep(250)
    const row = await a.store.get('room-1')
    expect(row).toMatchObject({ held: false, nodeId: 'node-a', fencingToken: lock.fencingToken })
    expect(row!.expiresAt).toBeGreaterThan(0) // expired, not released: the fence's expiry check decides
    await expect(a.store.fencedWrite(lock, bump(lock))).rejects.toBeInstanceOf(StaleFencingTokenError)
  })

  it("refuses a fenced write sent straight to the store, without I/O, once the guard lock's signal has fired", async () => {
    const a = await node('node-a', { ttlMs: 200 })
    const lock = held(await a.guard.acquire('room-1', { heartbeat: false }))
    await sleep(250)
    const before = a.requests()
    await expect(a.store.fencedWrite(lock, bump(lock))).rejects.toBeInstanceOf(LockLostError)
    expect(a.requests()).toBe(before)
  })

  it('refuses a fenced write without I/O once the lease signal has fired (invariant 7)', async () => {
    const a = await node('node-a', { ttlMs: 200 })
    const lock = held(await a.guard.acquire('room-1', { heartbeat: false }))
    await sleep(250)
    expect(lock.signal.aborted).toBe(true)
    const before = a.requests()
    await expect(fencedWrite(a.store, lock, bump(lock))).rejects.toBeInstanceOf(LockLostError)
    expect(a.requests()).toBe(before)
  })

  it('answers a refresh with null and fires the signal when the store gave the lease to another node', async () => {
    const a = await node('node-a')
    const b = await node('node-b')
    const lock = held(await a.guard.acquire('room-1', { heartbeat: false }))
    await b.store.forceRelease('room-1') // an operator evicts node-a...
    held(await b.guard.acquire('room-1')) // ...and node-b takes over, while node-a still trusts its lease
    expect(lock.signal.aborted).toBe(false)
    const before = a.requests()
    expect(await a.guard.refresh(lock)).toBeNull()
    expect(a.requests()).toBe(before + 1) // the store said so; not a local shortcut
    expect(lock.signal.aborted).toBe(true)
    expect(lock.signal.reason).toBeInstanceOf(LockLostError)
  })

  it('keeps a lease alive with heartbeats well past its ttl', async () => {
    const a = await node('node-a', { ttlMs: 300, heartbeatMs: 100 })
    const b = await node('node-b')
    const lock = held(await a.guard.acquire('room-1'))
    await sleep(900)
    expect(lock.signal.aborted).toBe(false)
    expect((await b.guard.acquire('room-1')).acquired).toBe(false)
    await fencedWrite(a.store, lock, bump(lock))
    expect(await a.guard.validateLock(lock)).toBe(true)
  })

  it('releases every held lease on shutdown', async () => {
    const a = await node('node-a')
    for (const id of ['r1', 'r2', 'r3']) held(await a.guard.acquire(id))
    expect(await a.guard.shutdown()).toEqual({ released: 3, failed: 0, timedOut: false })
    expect(await a.store.list()).toEqual([])
  })

  it('sends one request per acquire, release, refresh and fenced write (invariant 6)', async () => {
    const a = await node('node-a')
    const count = async (op: () => Promise<unknown>) => {
      const before = a.requests()
      await op()
      return a.requests() - before
    }
    let lock: Lock | undefined
    expect(await count(async () => (lock = held(await a.guard.acquire('room-1'))))).toBe(1)
    expect(await count(() => a.guard.refresh(lock!))).toBe(1)
    expect(await count(() => fencedWrite(a.store, lock!, [...bump(lock!), ...bump(lock!)]))).toBe(1)
    expect(await count(() => a.guard.release(lock!))).toBe(1)
  })
})
