/**
 * Activations' `prefetch`: a cold start's acquire asks for the object's first storage rows, and the
 * storage factory finds them on the lock (docs/design.md invariant 13). Real leases over a
 * MemoryLockStore, a fake storage.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { Activations } from '../../src/activation/index.js'
import { HybridConsistencyGuard, InvalidArgumentError, MemoryLockStore, type Lock } from '../../src/index.js'
import { FakeStorage } from './fake-storage.js'

describe('Activations prefetch', () => {
  const cleanup: Array<() => Promise<unknown>> = []
  afterEach(async () => {
    for (const step of cleanup.splice(0)) await step()
  })

  const node = async (prefetch?: number) => {
    const store = new MemoryLockStore()
    const writer = await store.acquire({ doId: 'room', nodeId: 'writer', ttlMs: 5000 })
    if (!writer.acquired) throw new Error('unreachable')
    await store.objects.flush({ ...writer.lock, ttlMs: 5000 }, { entries: new Map([['n', '1']]) })
    await store.release(writer.lock)
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a', ttlMs: 5000 })
    const locks: Lock[] = []
    const registry = new Activations<FakeStorage>({
      guard,
      createFlusher: (lock) => (locks.push(lock), new FakeStorage()),
      idleMs: 60_000,
      ...(prefetch === undefined ? {} : { prefetch }),
    })
    cleanup.push(
      () => registry.shutdown(),
      () => guard.shutdown(),
    )
    return { guard, registry, locks }
  }

  it("asks the cold start's acquire for prefetch rows and hands the lock, rows and all, to createFlusher; warm turns acquire nothing", async () => {
    const { guard, registry, locks } = await node(8)
    const acquire = vi.spyOn(guard, 'acquire')
    await registry.run('room', () => 'cold')
    await registry.run('room', () => 'warm')
    expect(acquire).toHaveBeenCalledTimes(1)
    expect(acquire.mock.calls[0]![1]).toMatchObject({ prefetch: 8 })
    expect(locks.map((lock) => lock.prefetched)).toEqual([{ entries: [['n', '1']], complete: true }])
  })

  it('asks for no rows by default, or with 0', async () => {
    for (const prefetch of [undefined, 0]) {
      const { guard, registry, locks } = await node(prefetch)
      const acquire = vi.spyOn(guard, 'acquire')
      await registry.run('room', () => 'cold')
      expect(acquire.mock.calls[0]![1]).not.toHaveProperty('prefetch')
      expect(locks[0]).not.toHaveProperty('prefetched')
    }
  })

  it.each([-1, 2.5, 1001, Number.NaN])('refuses prefetch %s, naming it', (prefetch) => {
    const guard = { acquire: async () => ({}) as never, release: async () => true }
    expect(() => new Activations({ guard, createFlusher: () => new FakeStorage(), prefetch })).toThrow(
      expect.objectContaining({ constructor: InvalidArgumentError, argument: 'prefetch' }),
    )
  })
})
