/**
 * Activations, the per-node registry: one shared acquire per cold object, turns queued rather than
 * answered "locked" by their own node (docs/design.md invariant 9), contention with other nodes
 * answered per `waitMs` (invariant 14), re-activation after an end, shutdown. Real leases
 * (HybridConsistencyGuard over one MemoryLockStore shared by two "nodes"), a fake storage.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  Activations,
  ActivationEndedError,
  TurnTimeoutError,
  type ActivationsOptions,
} from '../../src/activation/index.js'
import {
  HybridConsistencyGuard,
  LockContendedError,
  MemoryLockStore,
  StoreUnavailableError,
  type ConsistencyGuard,
  type Lock,
  type LockResult,
} from '../../src/index.js'
import { FakeStorage } from './fake-storage.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Promise.withResolvers, which Node 20 lacks. */
function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((res) => (resolve = res))
  return { promise, resolve }
}

describe('Activations', () => {
  let store: MemoryLockStore
  let guards: HybridConsistencyGuard[]
  let registries: Activations<FakeStorage>[]
  /** The object's committed state, shared by every activation of every node (the "database"). */
  let committed: Map<string, number>

  beforeEach(() => {
    store = new MemoryLockStore()
    guards = []
    registries = []
    committed = new Map()
  })
  afterEach(async () => {
    await Promise.all(registries.map((r) => r.shutdown()))
    await Promise.all(guards.map((g) => g.shutdown()))
  })

  function node(nodeId: string, overrides: Partial<ActivationsOptions<FakeStorage>> = {}) {
    const guard = new HybridConsistencyGuard({ store, nodeId, ttlMs: 5000 })
    guards.push(guard)
    const storages: FakeStorage[] = []
    const locks: Lock[] = []
    const registry = new Activations<FakeStorage>({
      guard,
      createFlusher: (lock) => {
        locks.push(lock)
        const storage = new FakeStorage({ rttMs: 2, committed })
        storages.push(storage)
        return storage
      },
      idleMs: 50,
      ...overrides,
    })
    registries.push(registry)
    return { guard, registry, storages, locks }
  }

  /** A read-modify-write turn that records its enter/exit to catch overlapping turns. */
  function counter() {
    let inside = 0
    let overlaps = 0
    const increment = async (storage: FakeStorage) => {
      if (++inside > 1) overlaps++
      const n = storage.get('n') ?? 0
      await sleep(Math.random() < 0.5 ? 0 : 1)
      storage.put('n', n + 1)
      inside--
      return n + 1
    }
    return { increment, overlaps: () => overlaps }
  }

  describe('one node, one object', () => {
    it.each([10, 50])(
      '%i concurrent requests: one acquire, all succeed, never two turns at once, final state = every acknowledged write',
      async (count) => {
        const { guard, registry, locks } = node('node-a')
        const acquire = vi.spyOn(guard, 'acquire')
        const { increment, overlaps } = counter()
        const results = await Promise.all(
          Array.from({ length: count }, () => registry.run('room-1', (a) => increment(a.flusher))),
        )
        expect(acquire).toHaveBeenCalledTimes(1)
        expect(locks).toHaveLength(1)
        expect(overlaps()).toBe(0)
        expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: count }, (_, i) => i + 1))
        expect(committed.get('n')).toBe(count)
        expect(registry.size).toBe(1)
      },
    )

    it('runs the turns that waited for the cold start in arrival order, with or without a signal', async () => {
      const { registry } = node('node-a')
      const started: number[] = []
      const runs = Array.from({ length: 8 }, (_, i) =>
        registry.run('room-1', () => void started.push(i), i % 2 ? { signal: new AbortController().signal } : {}),
      )
      await Promise.all(runs)
      expect(started).toEqual([0, 1, 2, 3, 4, 5, 6, 7])
    })

    it('runs turns of different objects independently, one activation each', async () => {
      const { registry, locks } = node('node-a')
      const hold = deferred()
      const slow = registry.run('room-1', () => hold.promise)
      await expect(registry.run('room-2', () => 'not blocked')).resolves.toBe('not blocked')
      hold.resolve()
      await slow
      expect(locks.map((l) => l.doId).sort()).toEqual(['room-1', 'room-2'])
    })

    it('after an activation ended (idle), the next turn starts a new one under a newer token', async () => {
      const { registry, locks, storages } = node('node-a')
      await registry.run('room-1', (a) => a.flusher.put('n', 1))
      const first = registry.get('room-1')!
      await first.ended // idle after 50 ms
      expect(registry.size).toBe(0)
      expect(await registry.run('room-1', (a) => a.flusher.get('n'))).toBe(1)
      expect(locks.map((l) => l.fencingToken)).toEqual([1, 2])
      expect(storages).toHaveLength(2)
    })

    it('a turn arriving while its activation drains waits for it to let go, then starts a new one (never "locked")', async () => {
      const { guard, registry, locks } = node('node-a', { idleMs: 60_000 })
      await registry.run('room-1', () => 'warm')
      const acquire = vi.spyOn(guard, 'acquire')
      const hold = deferred()
      const last = registry.run('room-1', () => hold.promise)
      void registry.get('room-1')!.requestHandover()
      const arriving = registry.run('room-1', () => 'after handover')
      await sleep(5)
      expect(acquire).not.toHaveBeenCalled() // waits for its own activation, does not contend with itself
      hold.resolve()
      await expect(last).resolves.toBeUndefined()
      await expect(arriving).resolves.toBe('after handover')
      expect(await Promise.all(acquire.mock.results.map((r) => r.value as Promise<LockResult>))).toEqual([
        expect.objectContaining({ acquired: true }),
      ])
      expect(locks).toHaveLength(2)
    })

    it('a turn arriving after the lease was lost starts a new activation', async () => {
      const { guard, registry, locks } = node('node-a', { idleMs: 60_000 })
      await registry.run('room-1', () => 'warm')
      const first = registry.get('room-1')!
      await guard.release(locks[0]!) // the lease ends under the activation: its signal fires
      await first.ended
      expect(first.endReason).toBe('lease_lost')
      await expect(registry.run('room-1', () => 'again')).resolves.toBe('again')
      expect(locks.map((l) => l.fencingToken)).toEqual([1, 2])
    })
  })

  describe('held by another node', () => {
    it('with waitMs 0, rejects at once with a 503 "locked" carrying the holder and its retryAfterMs', async () => {
      const b = node('node-b', { idleMs: 60_000 })
      await b.registry.run('room-1', () => 'b holds it')
      const { registry } = node('node-a')
      const turn = vi.fn()
      const error = await registry.run('room-1', turn).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(LockContendedError)
      const contended = error as LockContendedError
      expect(contended.holder).toEqual({ nodeId: 'node-b', fencingToken: 1 })
      expect(contended.retryAfterMs).toBeGreaterThan(4000)
      expect(contended.retryAfterMs).toBeLessThanOrEqual(5000)
      expect(contended.status).toBe(503)
      expect(contended.toResponse().headers.get('Retry-After')).toBe('5')
      expect(turn).not.toHaveBeenCalled()
      expect(registry.size).toBe(0)
    })

    it('with waitMs, waits for the holder to let go (here: its handover), then serves the turn', async () => {
      const b = node('node-b', { idleMs: 60_000 })
      await b.registry.run('room-1', (a) => a.flusher.put('n', 41))
      const { registry } = node('node-a', { waitMs: 2000 })
      const waiting = registry.run('room-1', (a) => {
        a.flusher.put('n', a.flusher.get('n')! + 1)
        return a.flusher.get('n')
      })
      await sleep(20)
      await b.registry.get('room-1')!.requestHandover()
      await expect(waiting).resolves.toBe(42)
      expect(committed.get('n')).toBe(42)
    })

    it('a turn with more waitMs left than the shared acquire it joined tries again within its own wait', async () => {
      const b = node('node-b', { idleMs: 60_000 })
      await b.registry.run('room-1', () => 'b holds it')
      const { registry, guard } = node('node-a', { waitMs: 300 })
      const acquire = vi.spyOn(guard, 'acquire')
      const started = Date.now()
      await expect(registry.run('room-1', () => 'x')).rejects.toBeInstanceOf(LockContendedError)
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
      expect(acquire.mock.calls[0]![1]).toMatchObject({ waitMs: expect.any(Number) })
    })
  })

  describe('its own lease, not yet given back', () => {
    it('waits for it instead of answering "locked" (invariant 9)', async () => {
      const own = { nodeId: 'node-a', fencingToken: 1, expiresAt: Date.now() + 5000 }
      let attempts = 0
      const lock = { doId: 'room-1', fencingToken: 2, signal: new AbortController().signal } as unknown as Lock
      const guard = {
        nodeId: 'node-a',
        acquire: vi.fn(async (): Promise<LockResult> => {
          attempts++
          await sleep(5)
          return attempts < 3
            ? { acquired: false, holder: own, retryAfterMs: 5000, attempts: 1 }
            : { acquired: true, lock: { ...lock, validUntil: performance.now() + 5000, ttlMs: 5000 } as Lock }
        }),
        release: vi.fn(async () => true),
      } satisfies Pick<ConsistencyGuard, 'acquire' | 'release'> & { nodeId: string }
      const registry = new Activations({ guard, createFlusher: () => new FakeStorage() })
      registries.push(registry as never)
      await expect(registry.run('room-1', () => 'served')).resolves.toBe('served')
      expect(attempts).toBe(3)
    })

    it('pauses between its tries, so timers and heartbeats keep running while it waits (a predecessor with the same node id holds it)', async () => {
      // A process restarted with the same node id while its predecessor's lease is unexpired: the store
      // answers every try at once ("held by node-a"), and with hand-over on each try is acquire(0).
      await store.acquire({ doId: 'room-1', nodeId: 'node-a', ttlMs: 5000 })
      const { registry } = node('node-a', { maxWaitMs: 300, requestHandover: async () => {} })
      const tries = vi.spyOn(store, 'acquire')
      let ticks = 0
      const ticker = setInterval(() => ticks++, 10)
      const started = performance.now()
      const error = await registry.run('room-1', () => 'x').catch((e: unknown) => e)
      const elapsed = performance.now() - started
      clearInterval(ticker)
      expect(error).toBeInstanceOf(TurnTimeoutError)
      expect(elapsed).toBeGreaterThanOrEqual(290)
      // Before the pauses: tens of thousands of tries and not one tick of the timer.
      expect(tries.mock.calls.length).toBeLessThan(40)
      expect(ticks).toBeGreaterThanOrEqual(Math.floor(elapsed / 10 / 3))
    })

    it('gives up after maxWaitMs with a turn timeout (503), not "locked"', async () => {
      const guard = {
        nodeId: 'node-a',
        acquire: vi.fn(
          async (): Promise<LockResult> => (
            await sleep(5),
            {
              acquired: false,
              holder: { nodeId: 'node-a', fencingToken: 1, expiresAt: Date.now() + 5000 },
              retryAfterMs: 5000,
              attempts: 1,
            }
          ),
        ),
        release: vi.fn(async () => true),
      }
      const registry = new Activations({ guard, createFlusher: () => new FakeStorage(), maxWaitMs: 50 })
      await expect(registry.run('room-1', () => 'x')).rejects.toBeInstanceOf(TurnTimeoutError)
    })
  })

  describe('a lease lost under a running turn', () => {
    it("keeps the object's next turn waiting until that turn returned (never two at once), then serves it under a new lease", async () => {
      const { guard, registry, locks } = node('node-a')
      const release = deferred()
      let inside = 0
      let overlaps = 0
      const first = registry
        .run('room-1', async () => {
          inside++
          await release.promise // a slow upstream call that ignores the lease's signal
          inside--
          return 'first'
        })
        .catch((e: unknown) => e)
      await sleep(10)
      // Another node (an operator's force-release) takes the lease; the guard's next refresh sees it.
      await store.forceRelease('room-1')
      expect(await guard.refresh(locks[0]!)).toBeNull()
      await sleep(10)
      const second = registry.run('room-1', () => {
        if (inside > 0) overlaps++
        return 'second'
      })
      await sleep(50)
      release.resolve()
      await expect(second).resolves.toBe('second')
      expect(overlaps).toBe(0)
      expect(locks.map((l) => l.fencingToken)).toEqual([1, 2])
      expect(await first).toBeInstanceOf(Error) // its result was refused: the lease was lost
    })
  })

  describe('failures while activating', () => {
    it('a caller that goes away while the lease is being taken rejects with its reason; the others still run', async () => {
      const { registry } = node('node-a')
      const caller = new AbortController()
      const leaving = registry.run('room-1', () => 'never', { signal: caller.signal })
      const staying = registry.run('room-1', () => 'served')
      const reason = new Error('client closed')
      caller.abort(reason)
      await expect(leaving).rejects.toBe(reason)
      await expect(staying).resolves.toBe('served')
    })

    it('a store outage during acquire fails every turn that waited for it, typed', async () => {
      const { guard, registry } = node('node-a')
      const outage = new StoreUnavailableError('store down', { retryable: false })
      vi.spyOn(guard, 'acquire').mockRejectedValueOnce(outage)
      const runs = [registry.run('room-1', () => 1), registry.run('room-1', () => 2)]
      for (const run of runs) await expect(run).rejects.toBe(outage)
      await expect(registry.run('room-1', () => 3)).resolves.toBe(3)
    })

    it('if the storage cannot be built, the lease is given back and the turns fail with the error', async () => {
      const boom = new Error('no storage')
      const { guard } = node('node-a')
      const registry = new Activations({
        guard,
        createFlusher: () => {
          throw boom
        },
      })
      registries.push(registry as never)
      await expect(registry.run('room-1', () => 1)).rejects.toBe(boom)
      expect((await store.get('room-1'))?.held).toBe(false)
    })

    it('rejects a bad doId or turn before any I/O', async () => {
      const { guard, registry } = node('node-a')
      const acquire = vi.spyOn(guard, 'acquire')
      await expect(registry.run('', () => 1)).rejects.toThrow(/doId/)
      await expect(registry.run('room-1', 'x' as never)).rejects.toThrow(/turn/)
      expect(acquire).not.toHaveBeenCalled()
    })
  })

  it('runs onStart in blockConcurrencyWhile before the first turn of each activation', async () => {
    const order: string[] = []
    const { registry } = node('node-a', {
      onStart: async (activation) => {
        await sleep(5)
        order.push(`start ${activation.lock.fencingToken}`)
      },
    })
    await Promise.all([
      registry.run('room-1', () => void order.push('turn 1')),
      registry.run('room-1', () => void order.push('turn 2')),
    ])
    expect(order).toEqual(['start 1', 'turn 1', 'turn 2'])
  })

  it('shutdown ends every activation (queued turns finish, writes flush, leases released) and refuses new turns', async () => {
    const onEnd = vi.fn()
    const { registry } = node('node-a', { idleMs: 60_000, onEnd })
    await Promise.all([registry.run('room-1', () => 1), registry.run('room-2', () => 2)])
    const hold = deferred()
    const running = registry.run('room-1', async (a) => {
      await hold.promise
      a.flusher.put('n', 7)
    })
    await sleep(1)
    const queued = registry.run('room-1', (a) => a.flusher.get('n'))
    const shutdown = registry.shutdown()
    await expect(registry.run('room-3', () => 3)).rejects.toBeInstanceOf(ActivationEndedError)
    hold.resolve()
    await running
    await expect(queued).resolves.toBe(7)
    await shutdown
    expect(committed.get('n')).toBe(7)
    expect(registry.size).toBe(0)
    expect((await store.list()).length).toBe(0)
    expect(onEnd.mock.calls.map(([a, reason]) => [a.doId, reason]).sort()).toEqual([
      ['room-1', 'shutdown'],
      ['room-2', 'shutdown'],
    ])
  })

  it('validates its options before any I/O', () => {
    const guard = { acquire: async () => ({}) as never, release: async () => true }
    const createFlusher = () => new FakeStorage()
    expect(() => new Activations({ guard: {} as never, createFlusher })).toThrow(/guard/)
    expect(() => new Activations({ guard, createFlusher: undefined as never })).toThrow(/createFlusher/)
    expect(() => new Activations({ guard, createFlusher, waitMs: -1 })).toThrow(/waitMs/)
    expect(() => new Activations({ guard, createFlusher, maxWaitMs: 0 })).toThrow(/maxWaitMs/)
    expect(() => new Activations({ guard, createFlusher, idleMs: 1.5 })).toThrow(/idleMs/)
    expect(() => new Activations({ guard, createFlusher, onEnd: 3 as never })).toThrow(/onEnd/)
  })
})
