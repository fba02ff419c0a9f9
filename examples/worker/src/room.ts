import {
  D1LockStore,
  HybridConsistencyGuard,
  StatelessDO,
  type AcquireOptions,
  type ConsistencyGuard,
  type Lock,
} from 'stateless-do'
import type { Counter } from './counter.js'

export interface Env {
  /** D1 database holding the leases (`do_locks`) and the objects' storage (`do_storage`), so writes can be fenced. */
  DB: D1Database
  /** The `Room` Durable Object namespace. */
  ROOMS: DurableObjectNamespace
  /** The `Counter` Durable Object namespace (a StatelessDurableObject: typed stubs, RPC). */
  COUNTERS: DurableObjectNamespace<Counter>
}

/** One line of a room's log: the count a POST reached, the lease that wrote it, the node that held it. */
export interface LogEntry {
  count: number
  token: number
  node: string
}

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
 * This isolate's guard: it holds the isolate's leases and runs their heartbeats, for `Room` and
 * `Counter` alike. Its lock store's `objects` (do_storage) is `this.storage`'s table.
 */
export function guardFor(env: Env): HybridConsistencyGuard {
  return (guard ??= new HybridConsistencyGuard({ store: storeFor(env), nodeId: crypto.randomUUID() }))
}

/**
 * Creates `do_locks` and `do_storage` (idempotent), until it has once succeeded in this isolate.
 * Only success is remembered, never a promise: a promise made in one request and awaited by others
 * hangs them all if that first request is cancelled (its client went away) before it settles.
 */
export async function ensureSchema(env: Env): Promise<void> {
  if (schemaReady) return
  await storeFor(env).ensureSchema()
  schemaReady = true
}

/**
 * A chat-room-like counter: `POST` increments the room's counter and appends to its log, `GET` reads
 * both. Written as a Durable Object would be, against `this.storage` (the API of `ctx.storage`); any
 * isolate may serve a room: the lease in `do_locks` makes sure only one does at a time, and every
 * write is committed in a flush that checks that lease, so a holder that lost it writes nothing.
 *
 * Query parameters (to try it by hand):
 * - `hold=ms`: hold the turn that long before writing (a lost lease ends the wait early).
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

  // One guard per isolate, shared by every object and request it serves (see guardFor).
  protected createGuard(): ConsistencyGuard {
    return guardFor(this.env)
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

  // What a Durable Object's fetch would do with this.ctx.storage. Requests for one room run one at a
  // time on this node, so the read-modify-write below needs no transaction; its put is committed (with
  // the lease check) before the response leaves.
  protected async handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> {
    if (request.method === 'GET') {
      const count = (await this.storage.get<number>('count')) ?? 0
      const log = [...(await this.storage.list<LogEntry>({ prefix: 'log:' })).values()]
      return Response.json({ room: lock.doId, count, log })
    }
    if (request.method !== 'POST') {
      return new Response('use GET or POST\n', { status: 405, headers: { Allow: 'GET, POST' } })
    }

    await sleep(queryMs(request, 'hold', 60_000), signal)
    const count = ((await this.storage.get<number>('count')) ?? 0) + 1
    const entry: LogEntry = { count, token: lock.fencingToken, node: lock.nodeId }
    await this.storage.put({ count, [logKey(count)]: entry })
    return Response.json({ room: lock.doId, ...entry })
  }
}

/** `log:000000000042`: zero-padded, so that `list({ prefix: 'log:' })` returns the log in count order. */
function logKey(count: number): string {
  return `log:${String(count).padStart(12, '0')}`
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
