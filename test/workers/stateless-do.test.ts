/**
 * StatelessDO inside workerd, through examples/worker exactly as a user deploys it: the workers project's
 * `main` (example-worker.ts) re-exports the example's Worker and `Room`, with `stateless-do` aliased to
 * src/index.ts (project.ts), so these tests run the example's source, not a copy. `TestRoom` is that Room
 * with opt-in hooks (`?tag`, `&gate`, `?ttl`) to hold a request inside its handler.
 *
 * The example keeps its leases in the default `do_locks` table of the shared `env.DB` (and its state in
 * `rooms`/`room_log`); no other test touches those tables, and every test here uses rooms of its own.
 * The test itself plays "another node" through a D1LockStore on the same table.
 */
import { env, SELF } from 'cloudflare:test'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { D1LockStore, LockLostError, StaleFencingTokenError } from '../../src/index.js'
import { open, tagged } from './example-worker.js'

// Rooms (lease ids) of this file: unique per run and per test.
const run = crypto.randomUUID().slice(0, 8)
let counter = 0
const freshRoom = (prefix = 'room') => `${prefix}-${run}-${++counter}`

const store = new D1LockStore(env.DB)
const testRoom = (room: string) => env.TEST_ROOMS.get(env.TEST_ROOMS.idFromName(room))

interface Served {
  room: string
  count: number
  token: number
  node: string
}

interface Locked {
  error: 'locked'
  doId: string
  holder: string
  retryAfterMs: number
}

async function state(room: string) {
  const row = await env.DB.prepare('SELECT count, token FROM rooms WHERE name = ?')
    .bind(room)
    .first<{ count: number; token: number }>()
  const { results: log } = await env.DB.prepare('SELECT count, token, node FROM room_log WHERE room = ? ORDER BY count')
    .bind(room)
    .all<{ count: number; token: number; node: string }>()
  return { row, log }
}

/** StatelessDO releases through ctx.waitUntil, after the response: wait for it to reach D1. */
async function untilReleased(room: string) {
  await vi.waitFor(async () => expect((await store.get(room))?.held).toBe(false), { timeout: 5_000, interval: 20 })
}

async function expectLocked(response: Response, room: string, holder: string): Promise<Locked> {
  expect(response.status).toBe(503)
  const body = (await response.json()) as Locked
  expect(body).toMatchObject({ error: 'locked', doId: room, holder })
  // Every holder here took its lease moments ago and releases right after its handler: Retry-After is
  // 1 s, not the ~30 s left on its lease, which the body keeps as the upper bound.
  expect(response.headers.get('Retry-After')).toBe('1')
  expect(body.retryAfterMs).toBeGreaterThan(20_000)
  expect(body.retryAfterMs).toBeLessThanOrEqual(30_000)
  return body
}

describe('StatelessDO in workerd (examples/worker)', () => {
  // Gates a failing test left shut would keep its request (and lease) hanging: open them all.
  const tags: string[] = []
  const tag = () => {
    const t = `t${++counter}`
    tags.push(t)
    return t
  }
  afterEach(() => {
    for (const t of tags.splice(0)) open(t)
  })

  beforeAll(async () => {
    // The test acts as another node on the example's lock table; the example creates it on first use too.
    await store.ensureSchema()
  })

  it('serves a request under the lease and writes the counter and the log through a fenced write', async () => {
    const room = freshRoom()
    const res = await SELF.fetch(`https://example.test/rooms/${room}`, { method: 'POST' })
    expect(res.status).toBe(200)
    const served = (await res.json()) as Served
    expect(served).toMatchObject({ room, count: 1, token: 1 })
    expect(served.node).toMatch(/^[0-9a-f-]{36}$/)

    const { row, log } = await state(room)
    expect(row).toEqual({ count: 1, token: 1 })
    expect(log).toEqual([{ count: 1, token: 1, node: served.node }])
    await untilReleased(room)
    expect(await store.get(room)).toMatchObject({ fencingToken: 1, nodeId: served.node, expiresAt: 0 })

    // Reads are served under the lease as well (a new one: token 2 was taken for this GET).
    const read = await SELF.fetch(`https://example.test/rooms/${room}/anything?wait=5000`)
    expect(read.status).toBe(200)
    expect(await read.json()).toEqual({ room, count: 1, log: [{ count: 1, token: 1, node: served.node }] })
    await untilReleased(room)
    expect((await store.get(room))?.fencingToken).toBe(2)
  })

  it('answers 503 with Retry-After and the holder while a concurrent request holds the room', async () => {
    const room = freshRoom()
    const t = tag()
    const first = testRoom(room).fetch(`https://example.test/rooms/${room}?tag=${t}&gate`, { method: 'POST' })
    const holder = await tagged(t) // inside its handler, holding the lease

    // The same object, the example's own Room object for that name, and the plain-Worker route: all
    // lock the room's name, so all are turned away while the first request holds it.
    await expectLocked(
      await testRoom(room).fetch(`https://example.test/rooms/${room}`, { method: 'POST' }),
      room,
      holder.node,
    )
    await expectLocked(await SELF.fetch(`https://example.test/rooms/${room}`, { method: 'POST' }), room, holder.node)
    await expectLocked(
      await SELF.fetch(`https://example.test/worker/rooms/${room}`, { method: 'POST' }),
      room,
      holder.node,
    )

    open(t)
    const served = await first
    expect(served.status).toBe(200)
    expect(await served.json()).toEqual({ room, count: 1, token: holder.token, node: holder.node })
    const { row, log } = await state(room)
    expect(row).toEqual({ count: 1, token: holder.token })
    expect(log).toEqual([{ count: 1, token: holder.token, node: holder.node }])
    await untilReleased(room)
  })

  it('answers 503 naming another node that holds the room', async () => {
    const room = freshRoom()
    const other = await store.acquire({ doId: room, nodeId: 'other-node', ttlMs: 30_000 })
    expect(other.acquired).toBe(true)
    const body = await expectLocked(
      await SELF.fetch(`https://example.test/rooms/${room}`, { method: 'POST' }),
      room,
      'other-node',
    )
    expect(body.retryAfterMs).toBeGreaterThan(20_000)
    expect((await state(room)).row).toBeNull()
    if (other.acquired) expect(await store.release(other.lock)).toBe(true)
  })

  it('serves concurrent requests in turn when the request waits (acquireOptions waitMs)', async () => {
    const room = freshRoom()
    const [t1, t2] = [tag(), tag()]
    const first = testRoom(room).fetch(`https://example.test/rooms/${room}?tag=${t1}&gate`, { method: 'POST' })
    const a = await tagged(t1)
    const second = testRoom(room).fetch(`https://example.test/rooms/${room}?tag=${t2}&wait=10000`, { method: 'POST' })
    // The second request is not let in while the first holds the lease...
    const early = await Promise.race([
      tagged(t2).then(() => 'entered'),
      new Promise((r) => setTimeout(r, 200, 'waiting')),
    ])
    expect(early).toBe('waiting')
    open(t1) // ...and is served once the first released it.
    const [ra, rb] = await Promise.all([first, second])
    expect([ra.status, rb.status]).toEqual([200, 200])
    const [sa, sb] = [(await ra.json()) as Served, (await rb.json()) as Served]
    expect(sa).toMatchObject({ count: 1, token: a.token })
    expect(sb).toMatchObject({ count: 2, token: a.token + 1 })
    expect((await state(room)).log).toEqual([
      { count: 1, token: a.token, node: sa.node },
      { count: 2, token: a.token + 1, node: sb.node },
    ])
    await untilReleased(room)
  })

  it('fires the handler signal when the lease is lost, answers 503 lease_lost and writes nothing', async () => {
    const room = freshRoom()
    const t = tag()
    // A 3 s lease (heartbeat every second), and a handler that holds it for up to a minute before writing.
    const pending = testRoom(room).fetch(`https://example.test/rooms/${room}?tag=${t}&ttl=3000&hold=60000`, {
      method: 'POST',
    })
    const held = await tagged(t)
    expect(await store.forceRelease(room)).toBe(true) // an operator evicts the holder; its next heartbeat notices

    const res = await pending
    expect(res.status).toBe(503)
    expect(res.headers.get('Retry-After')).toBe('1')
    expect(await res.json()).toEqual({ error: 'lease_lost', doId: room })
    const outcome = await held.outcome
    expect(outcome.aborted).toBe(true)
    expect(outcome.reason).toBeInstanceOf(LockLostError)
    expect(outcome.error).toBe(outcome.reason) // the example's hold ended with the signal's reason
    expect(await state(room)).toEqual({ row: null, log: [] })
    expect(await store.get(room)).toMatchObject({ held: false, fencingToken: held.token })
  })

  it("rejects a stale holder's write in D1 after another node took the room over", async () => {
    const room = freshRoom()
    const t = tag()
    const pending = testRoom(room).fetch(`https://example.test/rooms/${room}?tag=${t}&gate`, { method: 'POST' })
    const stale = await tagged(t)
    // Evicted and taken over before the stale holder's heartbeat (every 10 s) could notice.
    expect(await store.forceRelease(room)).toBe(true)
    const other = await store.acquire({ doId: room, nodeId: 'other-node', ttlMs: 30_000 })
    if (!other.acquired) throw new Error('expected the other node to take the room')
    expect(other.lock.fencingToken).toBe(stale.token + 1)

    open(t) // the stale holder now sends its fenced write: D1 refuses it in the same transaction
    const res = await pending
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ error: 'lease_lost', doId: room })
    expect((await stale.outcome).error).toBeInstanceOf(StaleFencingTokenError)
    expect(await state(room)).toEqual({ row: null, log: [] })

    // The current holder's fenced write goes through.
    await store.fencedWrite(other.lock, [
      { sql: 'INSERT INTO rooms (name, count, token) VALUES (?1, 1, ?2)', args: [room, other.lock.fencingToken] },
    ])
    expect((await state(room)).row).toEqual({ count: 1, token: other.lock.fencingToken })
    expect(await store.release(other.lock)).toBe(true)
  })

  it('answers 500 without Retry-After when a fenced write in D1 names a table that does not exist', async () => {
    const room = freshRoom()
    const res = await testRoom(room).fetch(`https://example.test/rooms/${room}?missing-table`, { method: 'POST' })
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'statement_failed', doId: room })
    expect(await state(room)).toEqual({ row: null, log: [] })
    await untilReleased(room)
  })

  it('finishes the handler, writes and releases the lease when the client of a plain Worker goes away mid-handler', async () => {
    const room = freshRoom()
    const client = new AbortController()
    const pending = SELF.fetch(`https://example.test/worker/rooms/${room}?hold=300`, {
      method: 'POST',
      signal: client.signal,
    })
    await vi.waitFor(async () => expect((await store.get(room))?.held).toBe(true), { timeout: 5_000, interval: 10 })
    client.abort()
    await pending.catch(() => undefined)
    await vi.waitFor(async () => expect((await state(room)).row).toEqual({ count: 1, token: 1 }), {
      timeout: 5_000,
      interval: 20,
    })
    await untilReleased(room)
  })

  it('shares one guard per isolate across requests and objects (no signal tied to the first request)', async () => {
    // The guard is created by the first request that needs it; workerd binds an AbortSignal to the
    // request or object that made it, so a guard-level signal would break every later request.
    const rooms = [freshRoom(), freshRoom(), freshRoom()]
    const nodes = new Set<string>()
    for (const room of rooms) {
      for (const path of [`/worker/rooms/${room}`, `/rooms/${room}?wait=5000`]) {
        const res = await SELF.fetch(`https://example.test${path}`, { method: 'POST' })
        expect(res.status, path).toBe(200)
        nodes.add(((await res.json()) as Served).node)
        await untilReleased(room)
      }
    }
    expect(nodes.size).toBe(1) // one isolate, one guard, one node id
  })

  it('serves the plain-Worker variant (a Room per request, the id from the URL) on the same lease', async () => {
    const room = freshRoom()
    const res = await SELF.fetch(`https://example.test/worker/rooms/${room}`, { method: 'POST' })
    expect(res.status).toBe(200)
    const plain = (await res.json()) as Served
    expect(plain).toMatchObject({ room, count: 1, token: 1 })
    await untilReleased(room)

    // The Durable Object route serves the same room: same lease (next token) and same state.
    const viaObject = await SELF.fetch(`https://example.test/rooms/${room}?wait=5000`, { method: 'POST' })
    expect(viaObject.status).toBe(200)
    expect(await viaObject.json()).toMatchObject({ room, count: 2, token: 2 })
    expect((await state(room)).log.map(({ count, token }) => [count, token])).toEqual([
      [1, 1],
      [2, 2],
    ])
    await untilReleased(room)

    expect((await SELF.fetch('https://example.test/elsewhere')).status).toBe(404)
  })
})
