/**
 * `StatelessDurableObject` (stateless-do/workers) as workerd runs it: `RpcCounter` (durable-object-classes.ts)
 * is bound as `RPC_COUNTERS` and called over RPC through typed stubs (`DurableObjectNamespace<RpcCounter>`,
 * env.d.ts: a call with the wrong argument types would not compile). Its leases are in the default
 * `do_locks` table of `env.DB` and its state in `do_storage`; every test uses objects of its own. The
 * test plays "another node" through a D1LockStore on the same tables, and reads `do_storage` directly
 * to see what is durable.
 */
import { env, SELF } from 'cloudflare:test'
import { beforeAll, describe, expect, it } from 'vitest'
import { D1LockStore, HybridConsistencyGuard } from '../../src/index.js'
import { decodeValue } from '../../src/storage/serializer.js'
import { remoteErrorName } from '../../src/workers/index.js'

const run = crypto.randomUUID().slice(0, 8)
let counter = 0
const store = new D1LockStore(env.DB)

/** A stub of an object no other test uses, and the id its lease is under (`ctx.id.toString()`). */
function freshCounter() {
  const id = env.RPC_COUNTERS.idFromName(`counter-${run}-${++counter}`)
  return { stub: env.RPC_COUNTERS.get(id), doId: id.toString() }
}

/** The committed value of `key` in the object's `do_storage` rows (undefined: no row). */
async function committed(doId: string, key: string): Promise<unknown> {
  const row = await env.DB.prepare('SELECT value FROM do_storage WHERE do_id = ? AND key = ?')
    .bind(doId, key)
    .first<{ value: string }>()
  return row === null ? undefined : decodeValue(row.value, key)
}

async function leaseRow(doId: string) {
  return env.DB.prepare('SELECT node_id, fencing_token, expires_at FROM do_locks WHERE do_id = ?')
    .bind(doId)
    .first<{ node_id: string; fencing_token: number; expires_at: number }>()
}

/** The rejection of `promise` (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise
  } catch (error) {
    return error as Error
  }
  throw new Error('expected a rejection')
}

beforeAll(async () => {
  await store.ensureSchema()
})

describe('StatelessDurableObject over RPC', () => {
  it('runs a typed stub call as a turn under the lease, whose token is the one in do_locks', async () => {
    const { stub, doId } = freshCounter()
    const seen = await stub.whoami()
    expect(seen.doId).toBe(doId)
    expect(seen.token).toBeGreaterThan(0)
    const row = await leaseRow(doId)
    expect(row).toMatchObject({ node_id: seen.node, fencing_token: seen.token })
    expect(row!.expires_at).toBeGreaterThan(Date.now()) // still held: the activation is warm
    // A second call is a turn of the same activation: same lease, same token.
    expect((await stub.whoami()).token).toBe(seen.token)
  })

  it('serializes concurrent calls to one object: no overlap, all succeed, every increment counted', async () => {
    const { stub, doId } = freshCounter()
    const results = await Promise.all(Array.from({ length: 10 }, () => stub.increment(1, 5)))
    expect(results.map((r) => r.n).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    expect(results.every((r) => r.seen.running === 1)).toBe(true)
    expect(await stub.maxRunning()).toBe(1)
    expect(await committed(doId, 'n')).toBe(10)
  })

  it('makes a call’s writes durable in D1 before the call resolves (output gate)', async () => {
    const { stub, doId } = freshCounter()
    for (let i = 1; i <= 3; i++) {
      const { n } = await stub.increment(5)
      expect(n).toBe(5 * i)
      expect(await committed(doId, 'n')).toBe(5 * i) // read straight from do_storage, no lease
    }
  })

  it('delivers alarm() as a turn under the lease, and flushes its writes', async () => {
    const { stub, doId } = freshCounter()
    const { seen } = await stub.increment(1)
    await stub.scheduleAlarm(20)
    let alarm: unknown
    for (const deadline = Date.now() + 15_000; alarm === undefined && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      alarm = await committed(doId, 'alarm')
    }
    // Written through the fenced storage under the same warm lease; no other turn ran beside it.
    expect(alarm).toEqual({ token: seen.token, running: 0 })
  })

  it('rejects the next call of a holder whose lease was taken away, typed by its message, and writes nothing', async () => {
    const { stub, doId } = freshCounter()
    const { seen } = await stub.increment(1)
    // An operator force-releases the object and another node takes it.
    expect(await store.forceRelease(doId)).toBe(true)
    const other = new HybridConsistencyGuard({ store, nodeId: `other-${run}` })
    try {
      const taken = await other.acquire(doId)
      expect(taken.acquired).toBe(true)
      const error = await rejection(stub.increment(100))
      // Across RPC workerd delivers a plain Error; remoteErrorName reads the class from what it kept.
      expect(error).toBeInstanceOf(Error)
      expect(['LockLostError', 'StaleFencingTokenError']).toContain(remoteErrorName(error))
      expect(await committed(doId, 'n')).toBe(1) // the stale holder's write was refused
      // The next call finds the object held by the other node: typed as contention.
      const next = await rejection(stub.increment(100))
      expect(remoteErrorName(next)).toBe('LockContendedError')
      expect(await committed(doId, 'n')).toBe(1)
      expect((await leaseRow(doId))!.fencing_token).toBe(seen.token + 1)
    } finally {
      await other.shutdown()
    }
    // Once the other node let go, the object serves again, from the committed state.
    expect((await stub.increment(1)).n).toBe(2)
  })

  it('passes a method’s own error to the caller, after the turn', async () => {
    const { stub } = freshCounter()
    const error = await rejection(stub.fails())
    expect(error.message).toContain('the method itself failed')
    expect(remoteErrorName(error)).toBe('RangeError')
    expect((await stub.increment(1)).n).toBe(1) // the object still serves
  })

  it('serves fetch under ctx.id when the subclass overrides doIdFor, a hook the class calls itself (not a turn)', async () => {
    const { stub, doId } = freshCounter()
    const res = await stub.fetch('https://example.test/')
    expect(res.status).toBe(200)
    expect(((await res.json()) as { n: number }).n).toBe(1)
    expect((await leaseRow(doId))?.fencing_token).toBeGreaterThan(0)
  })

  it('still serves fetch as a turn under the same lease', async () => {
    const { stub, doId } = freshCounter()
    const { seen } = await stub.increment(1)
    const res = await stub.fetch('https://example.test/')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ n: 2, token: seen.token, sameLock: true })
    expect(await committed(doId, 'n')).toBe(2)
  })
})

describe('examples/worker Counter (the Durable Object form)', () => {
  const name = () => `counter-${run}-${++counter}`
  const url = (n: string) => `https://example.test/counters/${n}`

  it('increments over RPC from the Worker, durable before the answer, and its alarm records a snapshot as a turn', async () => {
    const n = name()
    const doId = env.COUNTERS.idFromName(n).toString()
    const first = await SELF.fetch(url(n), { method: 'POST' })
    expect(first.status).toBe(200)
    const { token } = (await first.json()) as { n: number; token: number }
    expect(await (await SELF.fetch(url(n), { method: 'POST' })).json()).toEqual({ n: 2, token })
    expect(await committed(doId, 'n')).toBe(2)
    // The alarm (set by the first increment, SNAPSHOT_AFTER_MS later) writes through the fenced storage.
    let snapshot: unknown
    for (const deadline = Date.now() + 15_000; snapshot === undefined && Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      snapshot = await committed(doId, 'snapshot')
    }
    expect(snapshot).toMatchObject({ n: 2, token })
    const state = (await (await SELF.fetch(url(n))).json()) as { n: number; snapshot: { n: number } }
    expect(state).toMatchObject({ n: 2, snapshot: { n: 2, token } })
  })

  it('answers a call that finds the counter held by another node 503, naming the error', async () => {
    const n = name()
    const doId = env.COUNTERS.idFromName(n).toString()
    const other = new HybridConsistencyGuard({ store, nodeId: `other-${run}-example` })
    try {
      expect((await other.acquire(doId)).acquired).toBe(true)
      const res = await SELF.fetch(url(n), { method: 'POST' })
      expect(res.status).toBe(503)
      expect(await res.json()).toMatchObject({ error: 'LockContendedError' })
      expect(await committed(doId, 'n')).toBeUndefined()
    } finally {
      await other.shutdown()
    }
  })
})
