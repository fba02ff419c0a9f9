/**
 * `this.storage` inside a StatelessDO request: Durable Object storage's API over the lease's database,
 * written only through a fenced flush that commits before the response is released (docs/design.md
 * invariants 10-12).
 */
import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import {
  HybridConsistencyGuard,
  InvalidArgumentError,
  LibSQLLockStore,
  MemoryLockStore,
  StatelessDO,
  StoreUnavailableError,
  type ConsistencyGuard,
  type StatelessDOActivationOptions,
  type LockStore,
  type ObjectStore,
} from '../../src/index.js'
import { countingClient } from '../support/counting-client.js'

interface Env {
  guard: HybridConsistencyGuard
  objects?: ObjectStore
  /** Runs inside the handler, after its writes, before it answers. */
  after?: () => Promise<void> | void
  /** `false`: a lease per request. Default: activations. */
  activation?: false | StatelessDOActivationOptions
}

/** A counter kept in `this.storage`, as a Durable Object keeps it in `this.ctx.storage`. */
class Counter extends StatelessDO<Env> {
  errors: Array<[unknown, string]> = []
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override objectStore(): ObjectStore | undefined {
    return this.env.objects ?? super.objectStore()
  }
  protected override doIdFor(): string {
    return 'counter'
  }
  protected override activationOptions() {
    return this.env.activation ?? {}
  }
  protected override onError(error: unknown, phase: string): void {
    this.errors.push([error, phase])
  }
  protected async handleRequest(request: Request): Promise<Response> {
    if (request.method === 'GET') return Response.json({ n: (await this.storage.get<number>('n')) ?? 0 })
    const n = ((await this.storage.get<number>('n')) ?? 0) + 1
    await this.storage.put('n', n)
    await this.storage.put('log', [...((await this.storage.get<number[]>('log')) ?? []), n])
    await this.env.after?.()
    if (new URL(request.url).pathname === '/throw') throw new Error('the handler failed after its writes')
    return Response.json({ n })
  }
  /** Exposes the getter to the test. */
  storageOutsideARequest(): unknown {
    return this.storage
  }
}

/** An ObjectStore that counts calls and can hold or fail flushes. */
function controlled(inner: ObjectStore) {
  const calls = { get: 0, list: 0, flush: 0 }
  let hold: Promise<void> | undefined
  let fail: unknown
  const store: ObjectStore = {
    ensureSchema: () => inner.ensureSchema(),
    get: (lease, keys) => (calls.get++, inner.get(lease, keys)),
    list: (lease, range) => (calls.list++, inner.list(lease, range)),
    flush: async (lease, writes) => {
      calls.flush++
      await hold
      if (fail) throw fail
      return inner.flush(lease, writes)
    },
  }
  return {
    store,
    calls,
    holdFlushes(gate: Promise<void>) {
      hold = gate
    },
    failFlushes(error: unknown) {
      fail = error
    },
  }
}

const post = (path = '/') => new Request(`https://do${path}`, { method: 'POST' })
const read = () => new Request('https://do/', { method: 'GET' })

describe('StatelessDO storage', () => {
  const guards: HybridConsistencyGuard[] = []
  const guardFor = (store: LockStore) => {
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    guards.push(guard)
    return guard
  }
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it("keeps state between requests in the lock store's objects, with no SQL of the user's", async () => {
    const store = new MemoryLockStore()
    const env = { guard: guardFor(store) }
    for (const expected of [1, 2, 3]) {
      expect(await (await new Counter(undefined, env).fetch(post())).json()).toEqual({ n: expected })
    }
    expect(await (await new Counter(undefined, env).fetch(read())).json()).toEqual({ n: 3 })
  })

  it('sends one flush for all of a request’s writes, and reads each key once (then from the cache)', async () => {
    const store = new MemoryLockStore()
    const objects = controlled(store.objects)
    const env = { guard: guardFor(store), objects: objects.store }
    await new Counter(undefined, env).fetch(post())
    // get n, get log: two reads of keys not yet cached; put n, put log: one flush.
    expect(objects.calls).toEqual({ get: 2, list: 0, flush: 1 })
  })

  it('holds the response until the flush holding its writes committed (output gate)', async () => {
    const store = new MemoryLockStore()
    const objects = controlled(store.objects)
    let commit!: () => void
    objects.holdFlushes(new Promise<void>((resolve) => (commit = resolve)))
    const env = { guard: guardFor(store), objects: objects.store }
    let answered = false
    const pending = new Counter(undefined, env).fetch(post()).then((res) => {
      answered = true
      return res
    })
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(objects.calls.flush).toBe(1)
    expect(answered).toBe(false)
    commit()
    expect((await pending).status).toBe(200)
  })

  it('answers 503 lease_lost and writes nothing when the lease was taken over before the flush', async () => {
    const store = new MemoryLockStore()
    const guard = guardFor(store)
    const other = guardFor(store)
    const env: Env = {
      guard,
      after: async () => {
        // Someone evicts this holder and another node takes the object before the flush.
        await store.forceRelease('counter')
        expect((await other.acquire('counter')).acquired).toBe(true)
      },
    }
    const room = new Counter(undefined, env)
    const res = await room.fetch(post())
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ error: 'lease_lost', doId: 'counter' })
    expect(room.errors.map(([, phase]) => phase)).toEqual(['flush'])
    // Nothing of the stale holder's writes is there for the new holder.
    const lock = other.heldLocks[0]!
    expect(await store.objects.get(lock, ['n', 'log'])).toEqual(new Map())
  })

  it('answers 503 store_unavailable, never 200, when the flush cannot reach the store', async () => {
    const store = new MemoryLockStore()
    const objects = controlled(store.objects)
    objects.failFlushes(new StoreUnavailableError('the database is unreachable', { retryable: true }))
    const env = { guard: guardFor(store), objects: objects.store }
    const room = new Counter(undefined, env)
    const res = await room.fetch(post())
    expect(res.status).toBe(503)
    expect(await res.json()).toEqual({ error: 'store_unavailable', doId: 'counter' })
    expect(res.headers.get('Retry-After')).toBe('1')
    expect(room.errors.map(([, phase]) => phase)).toEqual(['flush'])
    // Read through the same object store: one guard's classes share one (reads do not flush).
    expect(await (await new Counter(undefined, env).fetch(read())).json()).toEqual({ n: 0 })
  })

  it('keeps the writes of a handler that threw after making them, as a Durable Object does', async () => {
    const store = new MemoryLockStore()
    const env = { guard: guardFor(store) }
    await expect(new Counter(undefined, env).fetch(post('/throw'))).rejects.toThrow(/failed after its writes/)
    expect(await (await new Counter(undefined, env).fetch(read())).json()).toEqual({ n: 1 })
  })

  it('refuses this.storage outside a request, saying why', () => {
    const env = { guard: guardFor(new MemoryLockStore()) }
    expect(() => new Counter(undefined, env).storageOutsideARequest()).toThrow(InvalidArgumentError)
    expect(() => new Counter(undefined, env).storageOutsideARequest()).toThrow(/only while a request/)
  })

  describe('on libSQL (file:)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sdo-storage-'))
    const clients: Client[] = []
    afterAll(() => {
      for (const c of clients) c.close()
      rmSync(dir, { recursive: true, force: true })
    })

    it('costs, with a lease per request, one request each for the acquire (which brings the rows), the flush and the release', async () => {
      const client = createClient({ url: `file:${join(dir, 'per-request.db')}` })
      clients.push(client)
      const counted = countingClient(client)
      const store = new LibSQLLockStore(counted.client)
      await store.ensureSchema()
      const env: Env = { guard: guardFor(store), activation: false }
      expect(await (await new Counter(undefined, env).fetch(post())).json()).toEqual({ n: 1 })
      counted.reset()
      expect(await (await new Counter(undefined, env).fetch(post())).json()).toEqual({ n: 2 })
      expect(counted.requests()).toBe(3) // acquire with the object's rows, flush, release: no read of its own
      const rows = await client.execute("SELECT key FROM do_storage WHERE do_id = 'counter' ORDER BY key")
      expect(rows.rows.map((r) => r.key)).toEqual(['log', 'n'])
    })

    it('costs, warm, no request for a read and one for a write: its flush (invariant 13)', async () => {
      const client = createClient({ url: `file:${join(dir, 'warm.db')}` })
      clients.push(client)
      const counted = countingClient(client)
      const store = new LibSQLLockStore(counted.client)
      await store.ensureSchema()
      const env: Env = { guard: guardFor(store), activation: { idleMs: 60_000 } }
      const room = () => new Counter({ id: { toString: () => 'counter' } }, env)
      counted.reset()
      expect(await (await room().fetch(post())).json()).toEqual({ n: 1 })
      expect(counted.requests()).toBe(2) // cold: acquire (with the object's rows), flush
      counted.reset()
      expect(await (await room().fetch(read())).json()).toEqual({ n: 1 })
      expect(counted.requests()).toBe(0) // warm read: from the activation's cache
      expect(await (await room().fetch(post())).json()).toEqual({ n: 2 })
      expect(counted.requests()).toBe(1) // warm write: its flush, which also extends the lease
    })

    /** A libSQL store on a file of its own, its requests counted, and a fresh node (guard) per call. */
    const counting = async (name: string) => {
      const client = createClient({ url: `file:${join(dir, `${name}.db`)}` })
      clients.push(client)
      const counted = countingClient(client)
      const store = new LibSQLLockStore(counted.client)
      await store.ensureSchema()
      /** A request served by a node of its own: its first turn is a cold start. */
      const coldly = async (request: Request, activation: StatelessDOActivationOptions = {}) => {
        const guard = guardFor(store)
        const env: Env = { guard, activation: { idleMs: 60_000, ...activation } }
        counted.reset()
        const body: unknown = await (
          await new Counter({ id: { toString: () => 'counter' } }, env).fetch(request)
        ).json()
        const requests = counted.requests()
        await guard.shutdown() // lets the object go for the next node
        return { body, requests }
      }
      return { client, counted, store, coldly }
    }

    it("costs, cold, one request for a read and two for a write: the acquire carries the object's rows (invariant 13)", async () => {
      const { coldly } = await counting('cold')
      expect(await coldly(post())).toEqual({ body: { n: 1 }, requests: 2 }) // acquire + rows, flush
      expect(await coldly(read())).toEqual({ body: { n: 1 }, requests: 1 }) // acquire + rows
      expect(await coldly(post())).toEqual({ body: { n: 2 }, requests: 2 }) // both reads answered from the rows
    })

    it('costs, cold, one more request per first read of a key past the prefetch when the object has more rows', async () => {
      const { coldly } = await counting('cold-large')
      await coldly(post()) // rows: log, n
      // prefetch 1: only 'log' comes with the acquire, and the object is known to have more.
      expect(await coldly(read(), { prefetch: 1 })).toEqual({ body: { n: 1 }, requests: 2 }) // acquire, get n
      expect(await coldly(read(), { prefetch: 2 })).toEqual({ body: { n: 1 }, requests: 1 })
    })

    it('costs, cold with prefetch 0, one request each for the acquire, each first read and the flush', async () => {
      const { coldly } = await counting('cold-off')
      expect(await coldly(post(), { prefetch: 0 })).toEqual({ body: { n: 1 }, requests: 4 })
      expect(await coldly(read(), { prefetch: 0 })).toEqual({ body: { n: 1 }, requests: 2 })
    })
  })

  describe('prefetch', () => {
    it("asks the acquire for 128 rows by default, and for none when this.storage is not the lock store's own objects", async () => {
      const store = new MemoryLockStore()
      const own = guardFor(store)
      const acquire = vi.spyOn(own, 'acquire')
      await new Counter(undefined, { guard: own }).fetch(post())
      expect(acquire.mock.calls[0]![1]).toMatchObject({ prefetch: 128 })
      // Another object store has other rows: the lock store's cannot stand in for them.
      const other = guardFor(store)
      const otherAcquire = vi.spyOn(other, 'acquire')
      await new Counter(undefined, { guard: other, objects: controlled(store.objects).store }).fetch(post())
      expect(otherAcquire.mock.calls[0]![1]).not.toHaveProperty('prefetch')
    })

    it('refuses a prefetch that is not a whole number from 0 to 1000 (a 500: the class is misconfigured), naming it, before any I/O', async () => {
      const store = new MemoryLockStore()
      const guard = guardFor(store)
      const acquire = vi.spyOn(guard, 'acquire')
      const room = new Counter(undefined, { guard, activation: { prefetch: 1001 } })
      const res = await room.fetch(post())
      expect(res.status).toBe(500)
      expect(room.errors).toEqual([[expect.objectContaining({ argument: 'prefetch' }), expect.any(String)]])
      expect(acquire).not.toHaveBeenCalled()
    })
  })
})
