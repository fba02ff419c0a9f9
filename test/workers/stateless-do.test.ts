/**
 * StatelessDO inside workerd, through examples/worker exactly as a user deploys it: the workers project's
 * `main` (example-worker.ts) re-exports the example's Worker and `Room`, with `stateless-do` aliased to
 * src/index.ts (project.ts), so these tests run the example's source, not a copy. `TestRoom` is that Room
 * with opt-in hooks (`?tag`, `&gate`, `?ttl`) to hold a request inside its handler, on a node of its own
 * whose activations go idle after 50 ms (the example's Durable Object keeps a room warm for 10 s).
 *
 * The example keeps its leases in the default `do_locks` table of the shared `env.DB` and the rooms'
 * state in `do_storage` (through `this.storage`); no other test touches those tables, and every test
 * here uses rooms of its own. State is read back through the example's own GET, or through the lock
 * store's `objects` under a lease. The test itself plays "another node" through a D1LockStore on the
 * same tables.
 *
 * The two routes are two modes: `/rooms/:name` is a Durable Object, whose requests are turns of the
 * room's activation (queued, one at a time, lease kept while warm); `/worker/rooms/:name` is a plain
 * Worker, which takes a lease per request (StatelessDO's default without `ctx.id`: workerd does not let
 * one request's turn answer another request, see `activationOptions`).
 */
import { env, SELF } from 'cloudflare:test'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { D1LockStore, LockLostError, ObjectStorage, type LockRecord } from '../../src/index.js'
import type { LogEntry } from '../../examples/worker/src/room.js'
import { open, tagged } from './example-worker.js'

// Rooms (lease ids) of this file: unique per run and per test.
const run = crypto.randomUUID().slice(0, 8)
let counter = 0
const freshRoom = (prefix = 'room') => `${prefix}-${run}-${++counter}`

const store = new D1LockStore(env.DB)
const testRoom = (room: string) => env.TEST_ROOMS.get(env.TEST_ROOMS.idFromName(room))
const url = (path: string) => `https://example.test${path}`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Served {
  room: string
  count: number
  token: number
  node: string
}

interface RoomState {
  room: string
  count: number
  log: LogEntry[]
}

interface Locked {
  error: 'locked'
  doId: string
  holder: string
  retryAfterMs: number
}

async function served(response: Response | Promise<Response>): Promise<Served> {
  const res = await response
  expect(res.status).toBe(200)
  return (await res.json()) as Served
}

/** The room as the example's own GET answers it. */
async function roomState(response: Response | Promise<Response>): Promise<RoomState> {
  const res = await response
  expect(res.status).toBe(200)
  return (await res.json()) as RoomState
}

/** What is committed in D1 for `room`, read through the lock store's `objects` under `lease`. */
async function committedUnder(lease: LockRecord) {
  const storage = new ObjectStorage({ store: store.objects, lease: { ...lease, ttlMs: 5_000 } })
  const count = await storage.get<number>('count')
  const log = [...(await storage.list<LogEntry>({ prefix: 'log:' })).values()]
  storage.discard()
  return { count, log }
}

/** As {@link committedUnder}, under a lease of the test's own, taken once the room is free. */
async function committed(room: string) {
  const lease = await vi.waitFor(
    async () => {
      const result = await store.acquire({ doId: room, nodeId: 'reader-node', ttlMs: 5_000 })
      if (!result.acquired) throw new Error(`${room} is still held`)
      return result.lock
    },
    { timeout: 5_000, interval: 20 },
  )
  try {
    return await committedUnder(lease)
  } finally {
    await store.release(lease)
  }
}

/** The lease is released after the response (ctx.waitUntil): wait for it to reach D1. */
async function untilReleased(room: string) {
  await vi.waitFor(async () => expect((await store.get(room))?.held).toBe(false), { timeout: 5_000, interval: 20 })
}

/**
 * A `locked` answer naming `holder`. `Retry-After` depends on the mode that answered: a lease per
 * request (plain Worker) says 1 s while the holder's lease is young, since such a lease is released
 * right after its handler; an activation (Durable Object) says when a warm holder can let go: once
 * idle for idleMs (the example's default, 10 s), capped by the time left on its lease.
 */
async function expectLocked(
  response: Response,
  room: string,
  holder: string,
  retryAfter: 'young' | 'idle',
): Promise<Locked> {
  expect(response.status).toBe(503)
  const body = (await response.json()) as Locked
  expect(body).toMatchObject({ error: 'locked', doId: room, holder })
  expect(body.retryAfterMs).toBeGreaterThan(20_000)
  expect(body.retryAfterMs).toBeLessThanOrEqual(30_000)
  expect(response.headers.get('Retry-After')).toBe(
    retryAfter === 'young' ? '1' : String(Math.min(10, Math.ceil(body.retryAfterMs / 1000))),
  )
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
    // The test acts as another node on the example's tables; the example creates them on first use too.
    await store.ensureSchema()
  })

  it("serves a POST as a turn of the room's activation: this.storage keeps the count and the log, and the lease stays held while warm", async () => {
    const room = freshRoom()
    const post = await served(SELF.fetch(url(`/rooms/${room}`), { method: 'POST' }))
    expect(post).toMatchObject({ room, count: 1, token: 1 })
    expect(post.node).toMatch(/^[0-9a-f-]{36}$/)
    // The Durable Object keeps the room active (idle 10 s): the lease is still its own.
    expect(await store.get(room)).toMatchObject({ held: true, fencingToken: 1, nodeId: post.node })

    // A read is a warm turn of the same activation: no new lease, and it sees the committed write.
    expect(await roomState(SELF.fetch(url(`/rooms/${room}/anything`)))).toEqual({
      room,
      count: 1,
      log: [{ count: 1, token: 1, node: post.node }],
    })
    expect(await store.get(room)).toMatchObject({ held: true, fencingToken: 1, nodeId: post.node })
  })

  it('gives the lease back once the activation has been idle for idleMs; the next request starts a new one on the committed state', async () => {
    const room = freshRoom()
    const first = await served(testRoom(room).fetch(url(`/rooms/${room}`), { method: 'POST' }))
    expect(first).toMatchObject({ room, count: 1 })
    await untilReleased(room) // TestRoom goes idle after 50 ms
    expect(await store.get(room)).toMatchObject({ held: false, fencingToken: first.token, nodeId: first.node })

    // A cold start (token + 1) reads what the last activation committed.
    expect(await roomState(testRoom(room).fetch(url(`/rooms/${room}`)))).toEqual({
      room,
      count: 1,
      log: [{ count: 1, token: first.token, node: first.node }],
    })
    expect((await store.get(room))?.fencingToken).toBe(first.token + 1)
    await untilReleased(room)
  })

  it('queues concurrent requests to one room on one node and serves them in turn, in arrival order, with no 503', async () => {
    const room = freshRoom()
    const [t1, t2, t3] = [tag(), tag(), tag()]
    const post = (t: string, gate = '') =>
      testRoom(room).fetch(url(`/rooms/${room}?tag=${t}${gate}`), { method: 'POST' })
    const first = post(t1, '&gate')
    const a = await tagged(t1) // inside its handler, holding the room's turn
    const second = post(t2)
    await sleep(50)
    const third = post(t3)
    // Neither is let in while the first runs (no waitMs needed: they wait for their turn, not a lease)...
    const early = await Promise.race([
      Promise.race([tagged(t2), tagged(t3)]).then(() => 'entered'),
      sleep(200).then(() => 'waiting'),
    ])
    expect(early).toBe('waiting')
    open(t1) // ...and each is served once the turns before it ended.
    const answers = await Promise.all([served(first), served(second), served(third)])
    // One activation, one lease: the same token for all three.
    expect(answers.map(({ count, token }) => [count, token])).toEqual([
      [1, a.token],
      [2, a.token],
      [3, a.token],
    ])
    expect((await roomState(testRoom(room).fetch(url(`/rooms/${room}`)))).log).toEqual(
      answers.map(({ count, token, node }) => ({ count, token, node })),
    )
    await untilReleased(room)
  })

  it("answers 503 locked, naming the holder, to another node's requests on both routes while a room is held", async () => {
    const room = freshRoom()
    const t = tag()
    const first = testRoom(room).fetch(url(`/rooms/${room}?tag=${t}&gate`), { method: 'POST' })
    const holder = await tagged(t) // TestRoom's node holds the room

    // The example's own Room object for that name, and its plain-Worker route, are another node.
    await expectLocked(await SELF.fetch(url(`/rooms/${room}`), { method: 'POST' }), room, holder.node, 'idle')
    await expectLocked(await SELF.fetch(url(`/worker/rooms/${room}`), { method: 'POST' }), room, holder.node, 'young')

    open(t)
    expect(await served(first)).toEqual({ room, count: 1, token: holder.token, node: holder.node })
    // Only the served request wrote.
    expect(await roomState(testRoom(room).fetch(url(`/rooms/${room}`)))).toEqual({
      room,
      count: 1,
      log: [{ count: 1, token: holder.token, node: holder.node }],
    })
    await untilReleased(room)
  })

  it('answers 503 naming another node that holds the room', async () => {
    const room = freshRoom()
    const other = await store.acquire({ doId: room, nodeId: 'other-node', ttlMs: 30_000 })
    if (!other.acquired) throw new Error('expected the other node to take the room')
    await expectLocked(await SELF.fetch(url(`/rooms/${room}`), { method: 'POST' }), room, 'other-node', 'idle')
    await expectLocked(await SELF.fetch(url(`/worker/rooms/${room}`), { method: 'POST' }), room, 'other-node', 'young')
    expect(await committedUnder(other.lock)).toEqual({ count: undefined, log: [] })
    expect(await store.release(other.lock)).toBe(true)
  })

  it('waits for a room another node holds when the request asks to (?wait: acquireOptions waitMs)', async () => {
    const room = freshRoom()
    const other = await store.acquire({ doId: room, nodeId: 'other-node', ttlMs: 30_000 })
    if (!other.acquired) throw new Error('expected the other node to take the room')
    const pending = SELF.fetch(url(`/rooms/${room}?wait=10000`), { method: 'POST' })
    const early = await Promise.race([pending.then(() => 'answered'), sleep(200).then(() => 'waiting')])
    expect(early).toBe('waiting')
    expect(await store.release(other.lock)).toBe(true) // the other node lets go: the request takes the room
    expect(await served(pending)).toMatchObject({ room, count: 1, token: other.lock.fencingToken + 1 })
  })

  it('fires the handler signal when the lease is lost, answers 503 lease_lost and writes nothing', async () => {
    const room = freshRoom()
    const t = tag()
    // A 3 s lease (heartbeat every second), and a handler that holds its turn for up to a minute before writing.
    const pending = testRoom(room).fetch(url(`/rooms/${room}?tag=${t}&ttl=3000&hold=60000`), { method: 'POST' })
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
    expect(await store.get(room)).toMatchObject({ held: false, fencingToken: held.token })
    expect(await committed(room)).toEqual({ count: undefined, log: [] })
  })

  it("refuses a stale holder's flush in D1 after another node took the room over: 503 lease_lost, nothing written", async () => {
    const room = freshRoom()
    const [t1, t2] = [tag(), tag()]
    const first = testRoom(room).fetch(url(`/rooms/${room}?tag=${t1}&gate`), { method: 'POST' })
    await tagged(t1)
    const second = testRoom(room).fetch(url(`/rooms/${room}?tag=${t2}&gate`), { method: 'POST' })
    await sleep(50) // queued behind the first
    open(t1)
    expect(await served(first)).toMatchObject({ count: 1 })
    // The second turn runs warm: the same lease, and the count in its cache (no read left to fail).
    const stale = await tagged(t2)

    // Evicted and taken over before the stale holder's heartbeat (every 10 s) could notice.
    expect(await store.forceRelease(room)).toBe(true)
    const other = await store.acquire({ doId: room, nodeId: 'other-node', ttlMs: 30_000 })
    if (!other.acquired) throw new Error('expected the other node to take the room')
    expect(other.lock.fencingToken).toBe(stale.token + 1)

    open(t2) // the handler answers 200, but its flush is refused in D1: the client hears 503
    const res = await second
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ error: 'lease_lost', doId: room })
    expect((await stale.outcome).error).toBeUndefined() // the refusal came at the flush, not in the handler

    // Nothing of the stale turn is in D1; the current holder reads only the first turn's write.
    expect(await committedUnder(other.lock)).toEqual({
      count: 1,
      log: [{ count: 1, token: stale.token, node: stale.node }],
    })
    expect(await store.release(other.lock)).toBe(true)
  })

  it('answers 500 without Retry-After when a fenced write in D1 names a table that does not exist', async () => {
    const room = freshRoom()
    const res = await testRoom(room).fetch(url(`/rooms/${room}?missing-table`), { method: 'POST' })
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'statement_failed', doId: room })
    // The turn failed alone: the room is still served, and nothing was written.
    expect(await roomState(testRoom(room).fetch(url(`/rooms/${room}`)))).toEqual({ room, count: 0, log: [] })
    await untilReleased(room)
  })

  it('finishes the handler, writes and releases the lease when the client of a plain Worker goes away mid-handler', async () => {
    const room = freshRoom()
    const client = new AbortController()
    const pending = SELF.fetch(url(`/worker/rooms/${room}?hold=300`), { method: 'POST', signal: client.signal })
    await vi.waitFor(async () => expect((await store.get(room))?.held).toBe(true), { timeout: 5_000, interval: 10 })
    client.abort()
    await pending.catch(() => undefined)
    await untilReleased(room)
    expect(await roomState(SELF.fetch(url(`/worker/rooms/${room}?wait=5000`)))).toMatchObject({ count: 1 })
    await untilReleased(room)
  })

  it('shares one guard per isolate across requests and objects (no signal tied to the first request)', async () => {
    // The guard is created by the first request that needs it; workerd binds an AbortSignal to the
    // request or object that made it, so a guard-level signal would break every later request.
    const rooms = [freshRoom(), freshRoom(), freshRoom()]
    const nodes = new Set<string>()
    for (const room of rooms) {
      nodes.add((await served(SELF.fetch(url(`/worker/rooms/${room}`), { method: 'POST' }))).node)
      await untilReleased(room)
      // The Durable Object keeps its room warm afterwards: every test room is its own.
      nodes.add((await served(SELF.fetch(url(`/rooms/${room}?wait=5000`), { method: 'POST' }))).node)
    }
    expect(nodes.size).toBe(1) // one isolate, one guard, one node id
  })

  it('serves the plain-Worker variant (a Room per request, the id from the URL) on the same lease', async () => {
    const room = freshRoom()
    const plain = await served(SELF.fetch(url(`/worker/rooms/${room}`), { method: 'POST' }))
    expect(plain).toMatchObject({ room, count: 1, token: 1 })
    await untilReleased(room) // a lease per request: given back right after the response

    // The Durable Object route serves the same room: same lease (next token) and same state.
    const viaObject = await served(SELF.fetch(url(`/rooms/${room}?wait=5000`), { method: 'POST' }))
    expect(viaObject).toMatchObject({ room, count: 2, token: 2, node: plain.node })
    expect((await roomState(SELF.fetch(url(`/rooms/${room}`)))).log.map(({ count, token }) => [count, token])).toEqual([
      [1, 1],
      [2, 2],
    ])
    // While the object keeps the room warm, the plain-Worker route finds its lease held (by this very node).
    await expectLocked(await SELF.fetch(url(`/worker/rooms/${room}`), { method: 'POST' }), room, plain.node, 'young')

    expect((await SELF.fetch(url('/elsewhere'))).status).toBe(404)
  })
})

// Issue #15: "in workerd, the example under 20 concurrent requests to one room: 20 x 200".
describe('the example under 20 concurrent requests to one room', () => {
  const CONCURRENT = 20

  async function postAll(path: string): Promise<Response[]> {
    return Promise.all(Array.from({ length: CONCURRENT }, () => SELF.fetch(url(path), { method: 'POST' })))
  }

  /** Every answer 200, with the counts 1..20 between them, each in the log once. */
  async function expectAllServed(responses: Response[], read: () => Promise<Response>): Promise<Served[]> {
    expect(responses.map((r) => r.status)).toEqual(Array(CONCURRENT).fill(200))
    const answers = (await Promise.all(responses.map((r) => r.json()))) as Served[]
    const counts = Array.from({ length: CONCURRENT }, (_, i) => i + 1)
    expect(answers.map((a) => a.count).sort((x, y) => x - y)).toEqual(counts)
    const state = await roomState(read())
    expect(state.count).toBe(CONCURRENT)
    expect(state.log.map((entry) => entry.count)).toEqual(counts)
    // The log holds what the answers acknowledged, no more and no less.
    const acknowledged = [...answers].sort((x, y) => x.count - y.count)
    expect(state.log).toEqual(acknowledged.map(({ count, token, node }) => ({ count, token, node })))
    return answers
  }

  it('serves all 20 on the Durable Object route as turns of one activation: 20 x 200, count 20, log 1..20', async () => {
    const room = freshRoom('hot')
    const answers = await expectAllServed(await postAll(`/rooms/${room}`), () => SELF.fetch(url(`/rooms/${room}`)))
    expect(new Set(answers.map((a) => a.token))).toEqual(new Set([1])) // one cold start, 19 warm turns
  })

  it('serves all 20 on the plain-Worker route when each waits (?wait): a lease per request, 20 x 200, count 20, log 1..20', async () => {
    const room = freshRoom('hot')
    const answers = await expectAllServed(await postAll(`/worker/rooms/${room}?wait=30000`), () =>
      SELF.fetch(url(`/worker/rooms/${room}?wait=5000`)),
    )
    // Each request took the lease in turn: tokens 1..20, the write of lease n being count n.
    expect(answers.every((a) => a.token === a.count)).toBe(true)
    await untilReleased(room)
  })

  it('without ?wait, concurrent plain-Worker requests contend for the lease: each is 200 or 503 locked, and the count is the number of 200s', async () => {
    const room = freshRoom('hot')
    const responses = await postAll(`/worker/rooms/${room}`)
    const statuses = responses.map((r) => r.status)
    expect(statuses.every((s) => s === 200 || s === 503)).toBe(true)
    const ok = statuses.filter((s) => s === 200).length
    expect(ok).toBeGreaterThanOrEqual(1)
    for (const r of responses) {
      if (r.status === 503) expect(await r.json()).toMatchObject({ error: 'locked', doId: room })
    }
    await untilReleased(room)
    expect((await roomState(SELF.fetch(url(`/worker/rooms/${room}?wait=5000`)))).count).toBe(ok)
    await untilReleased(room)
  })
})
