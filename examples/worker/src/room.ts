import type { D1Database, DurableObjectNamespace } from '@cloudflare/workers-types'
import {
  D1LockStore,
  HybridConsistencyGuard,
  StatelessDO,
  fencedWrite,
  type AcquireOptions,
  type ConsistencyGuard,
  type Lock,
} from 'stateless-do'

export interface Env {
  /** D1 database holding the lease table (`do_locks`) and the rooms' state, so writes can be fenced. */
  DB: D1Database
  /** The `Room` Durable Object namespace. */
  ROOMS: DurableObjectNamespace
}

/** The example's own state. It lives in the same database as `do_locks`: that is what lets a write be fenced. */
const STATE_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    token INTEGER NOT NULL            -- fencing token of the last write
  )`,
  `CREATE TABLE IF NOT EXISTS room_log (
    room TEXT NOT NULL,
    count INTEGER NOT NULL,
    token INTEGER NOT NULL,           -- the lease that wrote this row
    node TEXT NOT NULL,
    PRIMARY KEY (room, count)
  )`,
]

// Per isolate: the lock store, the guard (its random node id is this isolate's name in
// do_locks.node_id, shown to other isolates in 503 answers), and the schema check. Created lazily:
// workerd allows no randomness or I/O at start-up.
let store: D1LockStore | undefined
let guard: HybridConsistencyGuard | undefined
let schemaReady = false

function storeFor(env: Env): D1LockStore {
  return (store ??= new D1LockStore(env.DB))
}

/**
 * Creates `do_locks` and the state tables (idempotent), until it has once succeeded in this isolate.
 * Only success is remembered, never a promise: a promise made in one request and awaited by others
 * hangs them all if that first request is cancelled (its client went away) before it settles.
 */
async function ensureSchema(env: Env): Promise<void> {
  if (schemaReady) return
  await storeFor(env).ensureSchema()
  await env.DB.batch(STATE_SCHEMA.map((sql) => env.DB.prepare(sql)))
  schemaReady = true
}

/**
 * A chat-room-like counter: `POST` increments the room's counter and appends to its log, `GET` reads
 * both. Any isolate may serve a room; the lease in `do_locks` makes sure only one does at a time, and
 * the fenced write makes sure a holder that lost its lease cannot write.
 *
 * Query parameters (to try contention by hand):
 * - `hold=ms`: keep the lease that long before writing (a lost lease ends the wait early).
 * - `wait=ms`: when another isolate serves the room, wait up to that long instead of answering 503.
 */
export class Room extends StatelessDO<Env> {
  // The lease id is the room's name, taken from the URL: it is all a plain Worker has (no ctx.id), and
  // the Worker sends /rooms/:name to the object idFromName(name), so in a Durable Object it names the
  // object too (whose ctx.id.name is not set on every runtime). Both routes then share one lease per room.
  protected override doIdFor(request: Request): string {
    const name = roomName(new URL(request.url).pathname)
    if (name === undefined) throw new Error('expected /rooms/:name or /worker/rooms/:name')
    return name
  }

  // One guard per isolate, shared by every object and request it serves: it holds this isolate's
  // leases and runs their heartbeats. StatelessDO asks for it once per object.
  protected createGuard(): ConsistencyGuard {
    return (guard ??= new HybridConsistencyGuard({ store: storeFor(this.env), nodeId: crypto.randomUUID() }))
  }

  protected override acquireOptions(request: Request): AcquireOptions {
    return { waitMs: queryMs(request, 'wait', 30_000) }
  }

  override async fetch(request: Request): Promise<Response> {
    try {
      await ensureSchema(this.env)
    } catch (error) {
      this.onError(error, 'acquire', undefined)
      return Response.json({ error: 'store_unavailable' }, { status: 503, headers: { 'Retry-After': '1' } })
    }
    return super.fetch(request)
  }

  protected async handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> {
    const db = this.env.DB
    if (request.method === 'GET') {
      const room = await db.prepare('SELECT count, token FROM rooms WHERE name = ?').bind(lock.doId).first()
      const { results: log } = await db
        .prepare('SELECT count, token, node FROM room_log WHERE room = ? ORDER BY count')
        .bind(lock.doId)
        .all()
      return Response.json({ room: lock.doId, count: room?.count ?? 0, log })
    }
    if (request.method !== 'POST')
      return new Response('use GET or POST\n', { status: 405, headers: { Allow: 'GET, POST' } })

    await sleep(queryMs(request, 'hold', 60_000), signal)
    // One D1 batch, one transaction: applied only if this lease (doId + token) is still current.
    const [updated] = await fencedWrite(storeFor(this.env), lock, [
      {
        sql: `INSERT INTO rooms (name, count, token) VALUES (?1, 1, ?2)
              ON CONFLICT (name) DO UPDATE SET count = count + 1, token = excluded.token
              RETURNING count`,
        args: [lock.doId, lock.fencingToken],
      },
      {
        sql: 'INSERT INTO room_log (room, count, token, node) SELECT name, count, token, ?2 FROM rooms WHERE name = ?1',
        args: [lock.doId, lock.nodeId],
      },
    ])
    return Response.json({
      room: lock.doId,
      count: updated?.rows[0]?.count,
      token: lock.fencingToken,
      node: lock.nodeId,
    })
  }
}

/** `lobby` in `/rooms/lobby`, `/rooms/lobby/anything` and `/worker/rooms/lobby`; undefined otherwise. */
export function roomName(pathname: string): string | undefined {
  const match = /^(?:\/worker)?\/rooms\/([^/]+)(?:\/|$)/.exec(pathname)
  if (match?.[1] === undefined) return undefined
  try {
    return decodeURIComponent(match[1])
  } catch {
    return undefined // malformed %-escape
  }
}

function queryMs(request: Request, name: string, max: number): number {
  const value = Number(new URL(request.url).searchParams.get(name) ?? 0)
  return Number.isFinite(value) ? Math.min(Math.max(0, value), max) : 0
}

/** Resolves after `ms`, or rejects with the lease's `LockLostError` as soon as the lease is lost. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', done)
      resolve()
    }, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
