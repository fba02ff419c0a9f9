/**
 * Between nodes (docs/design.md invariants 11 and 14): a node that finds an object held elsewhere asks
 * the holder to let go; the holder hears it in the answer of its next flush or heartbeat (no request
 * of its own), finishes its queue, flushes and releases. And a node that takes an object back with the
 * next token (nobody held it in between) keeps the cache it had.
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  MemoryLockStore,
  StatelessDO,
  type AcquireOptions,
  type ConsistencyGuard,
  type Lock,
  type ObjectStore,
  type StatelessDOActivationOptions,
} from '../../src/index.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Env {
  guard: HybridConsistencyGuard
  activation: StatelessDOActivationOptions
  waitMs?: number
  /** Wraps the lock store's objects, e.g. to count reads. */
  objects?: ObjectStore
  /** The token each served request ran under. */
  tokens?: number[]
}

class Counter extends StatelessDO<Env> {
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override activationOptions(): StatelessDOActivationOptions {
    return this.env.activation
  }
  protected override acquireOptions(): AcquireOptions {
    return this.env.waitMs === undefined ? {} : { waitMs: this.env.waitMs }
  }
  protected override objectStore(): ObjectStore | undefined {
    return this.env.objects ?? super.objectStore()
  }
  protected override onError(): void {}
  protected async handleRequest(request: Request, lock: Lock): Promise<Response> {
    this.env.tokens?.push(lock.fencingToken)
    const n = (await this.storage.get<number>('n')) ?? 0
    if (request.method === 'GET') return Response.json({ n, token: lock.fencingToken })
    await this.storage.put('n', n + 1)
    return Response.json({ n: n + 1, token: lock.fencingToken })
  }
}

const object = { id: { toString: () => 'counter' } }
const post = () => new Request('https://do/', { method: 'POST' })
const get = () => new Request('https://do/')

/** An ObjectStore that counts the reads it passes on. */
function countingReads(objects: ObjectStore): ObjectStore & { reads: number } {
  const counting = {
    reads: 0,
    ensureSchema: () => objects.ensureSchema(),
    get: (lease, keys) => {
      counting.reads++
      return objects.get(lease, keys)
    },
    list: (lease, range) => {
      counting.reads++
      return objects.list(lease, range)
    },
    flush: (lease, writes) => objects.flush(lease, writes),
  } satisfies ObjectStore & { reads: number }
  return counting
}

describe('StatelessDO hand-over between nodes', () => {
  const guards: HybridConsistencyGuard[] = []
  const guardOn = (store: MemoryLockStore, nodeId: string, ttlMs?: number) => {
    const guard = new HybridConsistencyGuard({ store, nodeId, ...(ttlMs === undefined ? {} : { ttlMs }) })
    guards.push(guard)
    return guard
  }
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it('a busy holder lets go at its next flush: the contender is served long before the holder would go idle', async () => {
    const store = new MemoryLockStore()
    // 3 s leases: A's last request, left waiting when B holds the object idle, gets it back at B's next
    // heartbeat (1 s) rather than after the default lease's (10 s).
    const a: Env = { guard: guardOn(store, 'node-a', 3_000), activation: { idleMs: 60_000 }, waitMs: 10_000 }
    const b: Env = { guard: guardOn(store, 'node-b', 3_000), activation: { idleMs: 60_000 }, waitMs: 10_000 }
    expect((await new Counter(object, a).fetch(post())).status).toBe(200)
    // Node A keeps the object busy with a stream of writes, each flushed.
    let streaming = true
    const acknowledged: number[] = []
    const stream = (async () => {
      while (streaming) {
        // A real client is across a network: yield to timers (the memory store answers in microtasks).
        await new Promise((resolve) => setImmediate(resolve))
        const response = await new Counter(object, a).fetch(post())
        if (response.status === 200) acknowledged.push(((await response.json()) as { n: number }).n)
        else await sleep(5)
      }
    })()
    await sleep(50)
    const started = performance.now()
    const response = await new Counter(object, b).fetch(post())
    const waited = performance.now() - started
    streaming = false
    await stream
    expect(response.status).toBe(200)
    const served = (await response.json()) as { n: number; token: number }
    expect(served.token).toBeGreaterThan(1) // B's own lease, after A's
    // Far below A's idleMs (60 s) and its heartbeat (1 s): A let go at the next flush after B asked.
    expect(waited).toBeLessThan(900)
    // Nothing lost across the hand-overs: every acknowledged value is distinct, and the last is the total.
    const all = [1, ...acknowledged, served.n].sort((x, y) => x - y)
    expect(new Set(all).size).toBe(all.length)
    const final = (await (await new Counter(object, b).fetch(get())).json()) as { n: number }
    expect(final.n).toBe(all.length)
  })

  it('a holder that handed over leaves the object to the node that asked, even when its own requests do not wait (waitMs 0)', async () => {
    const store = new MemoryLockStore()
    // Neither node waits for the lease (the default): B retries after a 503, as a client would.
    const a: Env = { guard: guardOn(store, 'node-a', 3_000), activation: { idleMs: 60_000 } }
    const b: Env = { guard: guardOn(store, 'node-b', 3_000), activation: { idleMs: 60_000 } }
    expect((await new Counter(object, a).fetch(post())).status).toBe(200)
    let streaming = true
    const stream = (async () => {
      while (streaming) {
        await sleep(2) // a client across a network
        await new Counter(object, a).fetch(post())
      }
    })()
    let served: Response | undefined
    const started = performance.now()
    while (performance.now() - started < 2_000) {
      const response = await new Counter(object, b).fetch(post())
      if (response.status === 200) {
        served = response
        break
      }
      await sleep(50)
    }
    streaming = false
    await stream
    // Before: A's next request took the object straight back every time, and B was never served.
    expect(served?.status).toBe(200)
  })

  it('an idle holder lets go at its next heartbeat, with no request of its own', async () => {
    const store = new MemoryLockStore()
    // A 1.5 s lease: heartbeats every 0.5 s; idleMs 60 s, so only the hand-over can end it soon.
    const a: Env = { guard: guardOn(store, 'node-a', 1_500), activation: { idleMs: 60_000 } }
    const b: Env = { guard: guardOn(store, 'node-b', 1_500), activation: { idleMs: 60_000 }, waitMs: 10_000 }
    const first = (await (await new Counter(object, a).fetch(post())).json()) as { token: number }
    const started = performance.now()
    const response = await new Counter(object, b).fetch(post())
    expect(response.status).toBe(200)
    expect(performance.now() - started).toBeLessThan(5_000)
    const served = (await response.json()) as { n: number; token: number }
    expect(served).toEqual({ n: 2, token: first.token + 1 })
  })

  it("a 503 locked says Retry-After within the holder's next heartbeat when it was asked to hand over, else idleMs or the time left", async () => {
    // 30 s leases (heartbeat 10 s), idleMs 60 s: the time left (~30 s) and idleMs say nothing of when a
    // holder that was asked lets go; its next heartbeat (or flush) does.
    const store = new MemoryLockStore()
    const a: Env = { guard: guardOn(store, 'node-a', 30_000), activation: { idleMs: 60_000 } }
    const b: Env = { guard: guardOn(store, 'node-b', 30_000), activation: { idleMs: 60_000 } }
    expect((await new Counter(object, a).fetch(post())).status).toBe(200)
    const refused = await new Counter(object, b).fetch(post())
    expect(refused.status).toBe(503)
    expect(refused.headers.get('Retry-After')).toBe('10')

    const plain = Object.defineProperty(new MemoryLockStore(), 'requestHandover', { value: undefined })
    const c: Env = { guard: guardOn(plain, 'node-c', 30_000), activation: { idleMs: 60_000 } }
    const d: Env = { guard: guardOn(plain, 'node-d', 30_000), activation: { idleMs: 60_000 } }
    expect((await new Counter(object, c).fetch(post())).status).toBe(200)
    const held = await new Counter(object, d).fetch(post())
    expect(held.status).toBe(503)
    expect(Number(held.headers.get('Retry-After'))).toBeGreaterThan(20) // the time left on a 30 s lease
  })

  it('a store without hand-over leaves contenders to wait for the holder to go idle', async () => {
    const store = new MemoryLockStore()
    // The same store with requestHandover hidden: the guard's store is what the activations ask.
    const plain = Object.defineProperty(store, 'requestHandover', { value: undefined })
    const a: Env = { guard: guardOn(plain, 'node-a', 1_500), activation: { idleMs: 1_000 } }
    const b: Env = { guard: guardOn(plain, 'node-b', 1_500), activation: { idleMs: 1_000 }, waitMs: 10_000 }
    await new Counter(object, a).fetch(post())
    const started = performance.now()
    expect((await new Counter(object, b).fetch(post())).status).toBe(200)
    expect(performance.now() - started).toBeGreaterThan(800) // A's idleMs, not a heartbeat
  })
})

describe('StatelessDO re-acquire with the next token', () => {
  const guards: HybridConsistencyGuard[] = []
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it('keeps the cache when nobody held the object in between (token + 1), and drops it otherwise', async () => {
    const store = new MemoryLockStore()
    const objects = countingReads(store.objects)
    const guardA = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    const guardB = new HybridConsistencyGuard({ store, nodeId: 'node-b' })
    guards.push(guardA, guardB)
    const a: Env = { guard: guardA, activation: { idleMs: 20 }, objects, tokens: [] }
    const b: Env = { guard: guardB, activation: { idleMs: 20 }, objects }
    const idle = async (guard: HybridConsistencyGuard) => {
      while ((await store.list({ nodeId: guard.nodeId })).length > 0) await sleep(10)
    }

    expect((await new Counter(object, a).fetch(post())).status).toBe(200)
    expect(objects.reads).toBe(1) // a cold read of 'n' (this object store is not prefetched)
    await idle(guardA)
    // Token 2 on the same node: the cache of token 1 is still the committed state.
    expect(await (await new Counter(object, a).fetch(get())).json()).toEqual({ n: 1, token: 2 })
    expect(objects.reads).toBe(1)
    await idle(guardA)
    // Node B holds it (token 3) and writes; node A's next lease (token 4) must read again.
    expect(await (await new Counter(object, b).fetch(post())).json()).toEqual({ n: 2, token: 3 })
    await idle(guardB)
    const readsBefore = objects.reads
    expect(await (await new Counter(object, a).fetch(get())).json()).toEqual({ n: 2, token: 4 })
    expect(objects.reads).toBe(readsBefore + 1)
  })
})
