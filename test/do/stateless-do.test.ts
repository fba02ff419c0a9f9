/**
 * StatelessDO's request flow in Node (Request/Response are the same web APIs as in workerd). The
 * same class is exercised inside the real Workers runtime in test/workers/.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  CorruptLockRowError,
  HybridConsistencyGuard,
  InvalidArgumentError,
  LockLostError,
  MemoryLockStore,
  StaleFencingTokenError,
  StatelessDO,
  StatementError,
  StoreUnavailableError,
  type AcquireOptions,
  type ConsistencyGuard,
  type Lock,
  type LockHolder,
  type StatelessDOContext,
} from '../../src/index.js'

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

interface Env {
  guard: HybridConsistencyGuard
  gate?: Promise<void>
  waitMs?: number
  fail?: unknown
}

class Room extends StatelessDO<Env> {
  // These tests specify the lease-per-request mode; activations have their own (stateless-do-activations.test.ts).
  protected override activationOptions(): false {
    return false
  }
  errors: Array<[unknown, string]> = []
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override acquireOptions(): AcquireOptions {
    return { waitMs: this.env.waitMs ?? 0 }
  }
  protected override onError(error: unknown, phase: string): void {
    this.errors.push([error, phase])
  }
  protected async handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> {
    await this.env.gate
    if (this.env.fail) throw this.env.fail
    if (new URL(request.url).pathname === '/follow-client') {
      // A handler that stops when its client leaves, as fetch(url, { signal: request.signal }) would.
      request.signal.throwIfAborted()
      await new Promise((resolve) => request.signal.addEventListener('abort', resolve))
      throw request.signal.reason
    }
    if (new URL(request.url).pathname === '/wait-for-loss') {
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
      throw signal.reason
    }
    return Response.json({ doId: lock.doId, token: lock.fencingToken, node: lock.nodeId })
  }
}

const ctxFor = (name: string, extra: Partial<StatelessDOContext> = {}): StatelessDOContext => ({
  // The runtime's hex id; tests name objects by it so their keys read well.
  id: { name, toString: () => name },
  ...extra,
})

describe('StatelessDO', () => {
  const guards: HybridConsistencyGuard[] = []
  const guardOn = (store: MemoryLockStore, nodeId: string, ttlMs = 30_000) => {
    const g = new HybridConsistencyGuard({ store, nodeId, ttlMs })
    guards.push(g)
    return g
  }
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it('serves a request under the lease named by ctx.id, then releases it', async () => {
    const store = new MemoryLockStore()
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
    const res = await room.fetch(new Request('https://do/x'))
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ doId: 'room-1', token: 1, node: 'node-a' })
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('answers 503 with Retry-After and a JSON body while another node serves the same id', async () => {
    const store = new MemoryLockStore()
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const first = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), gate }).fetch(
      new Request('https://do/'),
    )
    await sleep(5)
    const second = await new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-b') }).fetch(
      new Request('https://do/'),
    )
    expect(second.status).toBe(503)
    // The holder is a request that took its lease 5 ms ago: it will most likely release within a
    // request's time, so 1 s, not the 30 s left on its lease (that stays in the body as the upper bound).
    expect(second.headers.get('Retry-After')).toBe('1')
    const body = (await second.json()) as { retryAfterMs: number }
    expect(body).toMatchObject({ error: 'locked', doId: 'room-1', holder: 'node-a' })
    expect(body.retryAfterMs).toBeGreaterThan(29_000)
    open()
    expect((await first).status).toBe(200)
  })

  describe('Retry-After of a held object', () => {
    // The store's clock, moved by hand: how long the holder has held its lease is all that changes.
    let now = 1_000_000
    const clock = { now: () => now, monotonic: () => now }
    const locked = async (guard: HybridConsistencyGuard) => {
      const res = await new Room(ctxFor('room-1'), { guard }).fetch(new Request('https://do/'))
      expect(res.status).toBe(503)
      const body = (await res.json()) as { error: string; retryAfterMs: number }
      expect(body.error).toBe('locked')
      return { retryAfter: res.headers.get('Retry-After'), retryAfterMs: body.retryAfterMs }
    }

    it('is 1 while the holder took its lease less than a heartbeat period ago (it releases right after its handler)', async () => {
      const store = new MemoryLockStore({ clock })
      await store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 30_000 })
      now += 20
      expect(await locked(guardOn(store, 'node-a'))).toEqual({ retryAfter: '1', retryAfterMs: 29_980 })
      now += 9_000 // still within the first heartbeat period (10 s)
      expect(await locked(guardOn(store, 'node-a'))).toEqual({ retryAfter: '1', retryAfterMs: 20_980 })
    })

    it('is the time left on the lease once the holder missed its heartbeat (it will not release early)', async () => {
      const store = new MemoryLockStore({ clock })
      await store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 30_000 })
      now += 18_000 // no refresh for 18 s: a crashed or paused holder, its lease runs out by TTL
      expect(await locked(guardOn(store, 'node-a'))).toEqual({ retryAfter: '12', retryAfterMs: 12_000 })
    })

    it('is the time left on the lease when the holder has held it for longer than a heartbeat period (a long handler kept alive)', async () => {
      const store = new MemoryLockStore({ clock })
      const taken = await store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 30_000 })
      if (!taken.acquired) throw new Error('expected the lease')
      for (let beat = 0; beat < 6; beat++) {
        now += 10_000
        expect(await store.refresh({ ...taken.lock, ttlMs: 30_000 })).not.toBeNull()
      }
      now += 5_000 // held for 65 s, refreshed 5 s ago
      expect(await locked(holderAgeGuard(store, 'node-a'))).toEqual({ retryAfter: '25', retryAfterMs: 25_000 })
    })
  })

  /**
   * The guard as it would be if its contended result passed on the holder's `acquiredAt` (the store
   * reports it; the guard's toHolder drops it today). Without it, StatelessDO can tell a young lease
   * only from when it was last written, and a heartbeating holder looks young.
   */
  const holderAgeGuard = (store: MemoryLockStore, nodeId: string): HybridConsistencyGuard => {
    const guard = guardOn(store, nodeId)
    const acquire = guard.acquire.bind(guard)
    guard.acquire = async (doId, options) => {
      const result = await acquire(doId, options)
      const row = await store.get(doId)
      if (result.acquired || !result.holder || !row) return result
      const holder: LockHolder & { acquiredAt: number } = { ...result.holder, acquiredAt: row.acquiredAt }
      return { ...result, holder }
    }
    return guard
  }

  it('serves concurrent requests in turn when acquireOptions waits', async () => {
    const store = new MemoryLockStore()
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const first = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), gate }).fetch(
      new Request('https://do/'),
    )
    const second = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-b'), waitMs: 5_000 }).fetch(
      new Request('https://do/'),
    )
    await sleep(50)
    open()
    const [a, b] = await Promise.all([first, second])
    expect(await a.json()).toMatchObject({ token: 1, node: 'node-a' })
    expect(await b.json()).toMatchObject({ token: 2, node: 'node-b' })
  })

  it('answers 503 and reports the error when the store is unavailable', async () => {
    const store = new MemoryLockStore()
    vi.spyOn(store, 'acquire').mockRejectedValue(new StoreUnavailableError('connection refused'))
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(503)
    expect(res.headers.get('Retry-After')).toBe('1')
    expect(await res.json()).toMatchObject({ error: 'store_unavailable' })
    expect(room.errors[0]?.[1]).toBe('acquire')
  })

  it("answers 503 store_unavailable, not a 500, when the handler's own store call fails", async () => {
    const store = new MemoryLockStore()
    const outage = new StoreUnavailableError('lock store request failed: fetch failed', { retryable: true })
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), fail: outage })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(503)
    expect(res.headers.get('Retry-After')).toBe('1')
    expect(await res.json()).toMatchObject({ error: 'store_unavailable', doId: 'room-1' })
    expect(room.errors).toEqual([[outage, 'handler']])
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('answers 500 statement_failed, reports it and sends no Retry-After when the database refused a statement', async () => {
    const store = new MemoryLockStore()
    const refused = new StatementError('UNIQUE constraint failed: rooms.name', {
      sqliteCode: 'SQLITE_CONSTRAINT_PRIMARYKEY',
      statementIndex: 0,
    })
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), fail: refused })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'statement_failed', doId: 'room-1' })
    expect(room.errors).toEqual([[refused, 'handler']])
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('answers 500 store_failed, not 503 store_unavailable, for a store error a retry would only repeat', async () => {
    const store = new MemoryLockStore()
    const deterministic = new StoreUnavailableError('lock store request failed: SQLITE_ERROR: no such table: rooms', {
      retryable: false,
    })
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), fail: deterministic })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'store_failed', doId: 'room-1' })
    expect(room.errors).toEqual([[deterministic, 'handler']])

    // The same at acquire (e.g. do_locks missing): a 500, reported.
    vi.spyOn(store, 'acquire').mockRejectedValue(deterministic)
    const atAcquire = await new Room(ctxFor('room-2'), { guard: guardOn(store, 'node-a') }).fetch(
      new Request('https://do/'),
    )
    expect(atAcquire.status).toBe(500)
    expect(await atAcquire.json()).toEqual({ error: 'store_failed', doId: 'room-2' })
  })

  it('answers 499, reports nothing and holds no lease when the client goes away while the lease is being taken', async () => {
    const store = new MemoryLockStore()
    const real = store.acquire.bind(store)
    vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
      await sleep(30)
      return real(req)
    })
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
    const client = new AbortController()
    const pending = room.fetch(new Request('https://do/', { signal: client.signal }))
    await sleep(5)
    client.abort()
    const res = await pending
    expect(res.status).toBe(499)
    expect(await res.json()).toEqual({ error: 'client_closed_request', doId: 'room-1' })
    expect(room.errors).toEqual([])
    await sleep(5)
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  describe('a client that goes away during the handler', () => {
    it('does not interrupt the handler, and the lease is released after it as usual', async () => {
      const store = new MemoryLockStore()
      let open!: () => void
      const gate = new Promise<void>((r) => (open = r))
      const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), gate })
      const client = new AbortController()
      const pending = room.fetch(new Request('https://do/', { signal: client.signal }))
      await sleep(5)
      client.abort()
      await sleep(5)
      expect((await store.get('room-1'))?.held).toBe(true) // still serving
      open()
      expect((await pending).status).toBe(200)
      expect((await store.get('room-1'))?.held).toBe(false)
      expect(room.errors).toEqual([])
    })

    it('answers 499, reports nothing and releases the lease when the handler stops because of request.signal', async () => {
      const store = new MemoryLockStore()
      const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
      const client = new AbortController()
      const pending = room.fetch(new Request('https://do/follow-client', { signal: client.signal }))
      await sleep(5)
      client.abort()
      const res = await pending
      expect(res.status).toBe(499)
      expect(await res.json()).toEqual({ error: 'client_closed_request', doId: 'room-1' })
      expect(room.errors).toEqual([])
      expect((await store.get('room-1'))?.held).toBe(false)
    })

    it('hands the handler and the release to ctx.waitUntil before the handler runs, so a Worker keeps them going', async () => {
      const store = new MemoryLockStore()
      let open!: () => void
      const gate = new Promise<void>((r) => (open = r))
      const waited: Promise<unknown>[] = []
      const room = new Room(ctxFor('room-1', { waitUntil: (p) => waited.push(p) }), {
        guard: guardOn(store, 'node-a'),
        gate,
      })
      const pending = room.fetch(new Request('https://do/'))
      await sleep(5)
      expect(waited).toHaveLength(1) // registered while the handler still runs
      open()
      expect((await pending).status).toBe(200)
      expect(await waited[0]).toBe(true) // settles once the lease is released
      expect((await store.get('room-1'))?.held).toBe(false)
    })
  })

  it('answers 503 and reports a corrupt lock row instead of throwing', async () => {
    const store = new MemoryLockStore()
    vi.spyOn(store, 'acquire').mockRejectedValue(
      new CorruptLockRowError('room-1', 'fencing_token', 'is not an integer'),
    )
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ error: 'corrupt_lock_row', column: 'fencing_token' })
    expect(room.errors[0]?.[0]).toBeInstanceOf(CorruptLockRowError)
  })

  it('aborts the handler signal when the lease is lost and answers 503 lease_lost', async () => {
    const store = new MemoryLockStore()
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a', 300) })
    const pending = room.fetch(new Request('https://do/wait-for-loss'))
    await sleep(20)
    await store.forceRelease('room-1') // an operator evicts the holder; the next heartbeat notices
    const res = await pending
    expect(res.status).toBe(503)
    expect(await res.json()).toMatchObject({ error: 'lease_lost' })
    expect(room.errors.find(([, phase]) => phase === 'handler')?.[0]).toBeInstanceOf(LockLostError)
  })

  it('releases through ctx.waitUntil when the runtime offers it', async () => {
    const store = new MemoryLockStore()
    const waited: Promise<unknown>[] = []
    const room = new Room(ctxFor('room-1', { waitUntil: (p) => waited.push(p) }), { guard: guardOn(store, 'node-a') })
    expect((await room.fetch(new Request('https://do/'))).status).toBe(200)
    expect(waited).toHaveLength(1)
    expect(await waited[0]).toBe(true)
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('reports a release that did not free a lease it still trusted (the guard never throws it)', async () => {
    const store = new MemoryLockStore()
    vi.spyOn(store, 'release').mockRejectedValue(new StoreUnavailableError('connection refused', { retryable: true }))
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a') })
    expect((await room.fetch(new Request('https://do/'))).status).toBe(200)
    expect(room.errors).toHaveLength(1)
    const [error, phase] = room.errors[0]!
    expect(phase).toBe('release')
    expect(error).toBeInstanceOf(LockLostError)
    expect((error as Error).message).toMatch(/release did not free the lease/)
    expect((await store.get('room-1'))?.held).toBe(true) // it runs out by its TTL
  })

  it('reports a release that threw and still settles what it handed to ctx.waitUntil', async () => {
    const store = new MemoryLockStore()
    const guard = guardOn(store, 'node-a')
    const bug = new TypeError('release is broken')
    guard.release = () => {
      throw bug
    }
    const waited: Promise<unknown>[] = []
    const room = new Room(ctxFor('room-1', { waitUntil: (p) => waited.push(p) }), { guard })
    expect((await room.fetch(new Request('https://do/'))).status).toBe(200)
    expect(await waited[0]).toBe(false)
    expect(room.errors).toEqual([[bug, 'release']])
  })

  it('does not report the release of a lease already known lost (that was reported as the handler failing)', async () => {
    const store = new MemoryLockStore()
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a', 300) })
    const pending = room.fetch(new Request('https://do/wait-for-loss'))
    await sleep(20)
    await store.forceRelease('room-1')
    expect((await pending).status).toBe(503)
    expect(room.errors.map(([, phase]) => phase)).toEqual(['handler'])
  })

  it("answers a library error the handler let through in that error's HTTP form, and reports it", async () => {
    const store = new MemoryLockStore()
    // The handler's own bug: a statement argument the store refuses before any I/O.
    const bug = new InvalidArgumentError('statements[0].args[0]', 'expected a finite number, got NaN')
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), fail: bug })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'internal_error', doId: 'room-1' })
    expect(room.errors).toEqual([[bug, 'handler']])
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('releases when the handler throws, and lets the error through', async () => {
    const store = new MemoryLockStore()
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), fail: new TypeError('bug') })
    await expect(room.fetch(new Request('https://do/'))).rejects.toThrow('bug')
    expect((await store.get('room-1'))?.held).toBe(false)
  })

  it('locks the hex id, not ctx.id.name, so the key does not depend on how the object was addressed', async () => {
    const store = new MemoryLockStore()
    const room = new Room({ id: { name: 'room-1', toString: () => '8f3a' } }, { guard: guardOn(store, 'node-a') })
    expect(await (await room.fetch(new Request('https://do/'))).json()).toMatchObject({ doId: '8f3a' })
  })

  it('reports a fenced write refused as stale once, as the handler failing, not again as a failed release', async () => {
    const store = new MemoryLockStore()
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const room = new Room(ctxFor('room-1'), {
      guard: guardOn(store, 'node-a'),
      gate,
      fail: new StaleFencingTokenError('room-1', 1),
    })
    const pending = room.fetch(new Request('https://do/'))
    await sleep(5)
    // Another node took over under the handler (its signal has not fired yet); the handler's write is refused.
    await store.forceRelease('room-1')
    expect((await store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 30_000 })).acquired).toBe(true)
    open()
    const res = await pending
    expect(res.status).toBe(503)
    await sleep(5)
    expect(room.errors.map(([, phase]) => phase)).toEqual(['handler'])
  })

  it("answers 500 internal_error, without the guard's message, and reports phase acquireOptions when acquireOptions returns a bad option", async () => {
    const store = new MemoryLockStore()
    const room = new Room(ctxFor('room-1'), { guard: guardOn(store, 'node-a'), waitMs: -1 })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'internal_error', doId: 'room-1' })
    expect(room.errors).toHaveLength(1)
    expect(room.errors[0]![0]).toBeInstanceOf(InvalidArgumentError)
    expect(room.errors[0]![1]).toBe('acquireOptions')
    expect(await store.get('room-1')).toBeNull() // refused before any I/O
  })

  it('answers 500 and reports phase acquireOptions when acquireOptions throws', async () => {
    const bug = new TypeError('options.get is not a function')
    class Broken extends Room {
      protected override acquireOptions(): AcquireOptions {
        throw bug
      }
    }
    const room = new Broken(ctxFor('room-1'), { guard: guardOn(new MemoryLockStore(), 'node-a') })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(500)
    expect(await res.json()).toEqual({ error: 'internal_error', doId: 'room-1' })
    expect(room.errors).toEqual([[bug, 'acquireOptions']])
  })

  it('still answers 400 bad_request, reported as phase doId, for an id from doIdFor the guard would refuse', async () => {
    const store = new MemoryLockStore()
    for (const id of ['room\0one', 'x'.repeat(1025), 'room-\uD800']) {
      class ById extends Room {
        protected override doIdFor(): string {
          return id
        }
      }
      const room = new ById(undefined, { guard: guardOn(store, 'node-a') })
      const res = await room.fetch(new Request('https://do/'))
      expect(res.status).toBe(400)
      expect(await res.json()).toEqual({ error: 'bad_request', message: expect.stringContaining('invalid doId') })
      expect(room.errors.map(([, phase]) => phase)).toEqual(['doId'])
    }
    expect(await store.list()).toEqual([])
  })

  it('answers 400 when there is no id (a plain Worker that did not override doIdFor)', async () => {
    const room = new Room(undefined, { guard: guardOn(new MemoryLockStore(), 'node-a') })
    const res = await room.fetch(new Request('https://do/'))
    expect(res.status).toBe(400)
    expect(await res.json()).toMatchObject({ error: 'bad_request', message: expect.stringContaining('doIdFor') })
  })

  it('takes the id from doIdFor when overridden', async () => {
    class ByPath extends Room {
      protected override doIdFor(request: Request): string {
        return new URL(request.url).pathname.slice(1)
      }
    }
    const store = new MemoryLockStore()
    const res = await new ByPath(undefined, { guard: guardOn(store, 'node-a') }).fetch(new Request('https://do/chat-7'))
    expect(await res.json()).toMatchObject({ doId: 'chat-7' })
    const bad = await new ByPath(undefined, { guard: guardOn(store, 'node-a') }).fetch(new Request('https://do/'))
    expect(bad.status).toBe(400)
  })
})
