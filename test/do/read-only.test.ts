/**
 * Read-only requests (opted in per request): served on any node from the object's committed state,
 * without the lease, so reading a busy object neither waits for its turn nor is answered 503.
 */
import { createClient } from '@libsql/client'
import { afterEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  MemoryLockStore,
  ObjectStorage,
  StatelessDO,
  StoreUnavailableError,
  type ConsistencyGuard,
  type LockStore,
  type ObjectStore,
} from '../../src/index.js'

interface Env {
  guard: HybridConsistencyGuard
  /** A write turn holds its turn this long after its put, before it returns (and flushes). */
  holdMs?: number
  objects?: ObjectStore
  errors?: unknown[]
}

class Counter extends StatelessDO<Env> {
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override activationOptions() {
    return { idleMs: 60_000 }
  }
  protected override objectStore(): ObjectStore | undefined {
    return this.env.objects ?? super.objectStore()
  }
  protected override onError(error: unknown): void {
    this.env.errors?.push(error)
  }
  protected override readOnlyRequest(request: Request): boolean {
    return request.method === 'GET'
  }
  protected override async handleReadOnlyRequest(request: Request, storage: ObjectStorage): Promise<Response> {
    if (new URL(request.url).searchParams.has('write')) await storage.put('n', -1)
    return Response.json({ n: (await storage.get<number>('n')) ?? 0 })
  }
  protected async handleRequest(): Promise<Response> {
    const n = ((await this.storage.get<number>('n')) ?? 0) + 1
    await this.storage.put('n', n)
    if (this.env.holdMs) await new Promise((resolve) => setTimeout(resolve, this.env.holdMs))
    return Response.json({ n })
  }
}

const object = { id: { toString: () => 'counter' } }
const post = () => new Request('https://do/', { method: 'POST' })
const read = (query = '') => new Request(`https://do/${query}`)
const json = async (response: Response) => ({ status: response.status, body: await response.json() })

for (const [name, open] of [
  ['MemoryLockStore', async (): Promise<LockStore> => new MemoryLockStore()],
  [
    'LibSQLLockStore (:memory:)',
    async (): Promise<LockStore> => {
      const store = new LibSQLLockStore(createClient({ url: ':memory:' }))
      await store.ensureSchema()
      await store.objects.ensureSchema()
      return store
    },
  ],
] as const) {
  describe(`StatelessDO read-only requests: ${name}`, () => {
    const guards: HybridConsistencyGuard[] = []
    const guardOn = (store: LockStore, nodeId: string) => {
      const guard = new HybridConsistencyGuard({ store, nodeId })
      guards.push(guard)
      return guard
    }
    afterEach(async () => {
      await Promise.all(guards.splice(0).map((g) => g.shutdown()))
    })

    it('on a node that does not hold the object: served at once from committed state, no lease taken', async () => {
      const store = await open()
      const holder: Env = { guard: guardOn(store, 'node-a'), holdMs: 400 }
      const reader: Env = { guard: guardOn(store, 'node-b') }
      expect(await json(await new Counter(object, holder).fetch(post()))).toEqual({ status: 200, body: { n: 1 } })
      // Node A runs a turn that has put n = 2 and holds it unflushed for 400 ms.
      const writing = new Counter(object, holder).fetch(post())
      await new Promise((resolve) => setTimeout(resolve, 50))
      const started = performance.now()
      expect(await json(await new Counter(object, reader).fetch(read()))).toEqual({ status: 200, body: { n: 1 } })
      expect(performance.now() - started).toBeLessThan(300) // it did not wait for the turn
      expect(await store.list({ nodeId: 'node-b' })).toEqual([]) // no lease taken
      expect(await json(await writing)).toEqual({ status: 200, body: { n: 2 } })
      // Once acknowledged, the write is what a read-only request sees.
      expect(await json(await new Counter(object, reader).fetch(read()))).toEqual({ status: 200, body: { n: 2 } })
    })

    it('on the holding node, during a turn: not queued behind it, and never shown its unflushed writes', async () => {
      const store = await open()
      const env: Env = { guard: guardOn(store, 'node-a'), holdMs: 400 }
      await new Counter(object, env).fetch(post())
      const writing = new Counter(object, env).fetch(post())
      await new Promise((resolve) => setTimeout(resolve, 50))
      const started = performance.now()
      expect(await json(await new Counter(object, env).fetch(read()))).toEqual({ status: 200, body: { n: 1 } })
      expect(performance.now() - started).toBeLessThan(300)
      expect((await writing).status).toBe(200)
    })

    it('a write is refused (500 internal_error, reported) and nothing is written', async () => {
      const store = await open()
      const env: Env = { guard: guardOn(store, 'node-a'), errors: [] }
      await new Counter(object, env).fetch(post())
      expect(await json(await new Counter(object, env).fetch(read('?write')))).toEqual({
        status: 500,
        body: { error: 'internal_error', doId: 'counter' },
      })
      expect(env.errors).toHaveLength(1)
      expect(String(env.errors![0])).toMatch(/put\(\) in a read-only request/)
      expect(await json(await new Counter(object, env).fetch(read()))).toEqual({ status: 200, body: { n: 1 } })
    })
  })
}

describe('StatelessDO read-only requests: failures', () => {
  it('a store that cannot be reached is a 503 store_unavailable, not a 200 with nothing', async () => {
    const store = new MemoryLockStore()
    const down: ObjectStore = {
      ...store.objects,
      ensureSchema: () => store.objects.ensureSchema(),
      get: (lease, keys) => store.objects.get(lease, keys),
      list: (lease, range) => store.objects.list(lease, range),
      flush: (lease, writes) => store.objects.flush(lease, writes),
      getCommitted: async () => {
        throw new StoreUnavailableError('down', { retryable: true })
      },
      listCommitted: async () => {
        throw new StoreUnavailableError('down', { retryable: true })
      },
    }
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    try {
      const response = await new Counter(object, { guard, objects: down, errors: [] }).fetch(read())
      expect(response.status).toBe(503)
      expect(((await response.json()) as { error: string }).error).toBe('store_unavailable')
    } finally {
      await guard.shutdown()
    }
  })

  it('an object store without committed reads is the server’s fault: 500', async () => {
    const store = new MemoryLockStore()
    const objects = store.objects
    const plain: ObjectStore = {
      ensureSchema: () => objects.ensureSchema(),
      get: (lease, keys) => objects.get(lease, keys),
      list: (lease, range) => objects.list(lease, range),
      flush: (lease, writes) => objects.flush(lease, writes),
    }
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    try {
      const response = await new Counter(object, { guard, objects: plain, errors: [] }).fetch(read())
      expect(response.status).toBe(500)
    } finally {
      await guard.shutdown()
    }
  })
})
