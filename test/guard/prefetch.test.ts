/**
 * `acquire(doId, { prefetch })`: the guard asks its store for the object's first storage rows in the
 * acquire's own request and hands them out as `lock.prefetched` (docs/design.md invariant 13).
 */
import { afterEach, describe, expect, it } from 'vitest'
import { HybridConsistencyGuard, InvalidArgumentError, MAX_PREFETCH_ROWS, MemoryLockStore } from '../../src/index.js'
import { held } from './support/leases.js'
import { recordingStore, shifty } from './support/recording-store.js'

describe('HybridConsistencyGuard acquire with prefetch', () => {
  const guards: HybridConsistencyGuard[] = []
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })
  /** A guard over a memory store whose object `room` has rows a, b, c (written under a lease of their own). */
  const setup = async () => {
    const inner = new MemoryLockStore()
    const writer = await inner.acquire({ doId: 'room', nodeId: 'writer', ttlMs: 10_000 })
    if (!writer.acquired) throw new Error('unreachable')
    const entries = new Map([
      ['b', '2'],
      ['a', '1'],
      ['c', '3'],
    ])
    await inner.objects.flush({ ...writer.lock, ttlMs: 10_000 }, { entries })
    await inner.release(writer.lock)
    const recorder = recordingStore(inner)
    const guard = new HybridConsistencyGuard({ store: recorder.store, nodeId: 'node-a' })
    guards.push(guard)
    return { guard, recorder }
  }

  it("hands out the object's rows when the lease began as lock.prefetched, asked for in the acquire's one request", async () => {
    const { guard, recorder } = await setup()
    const lock = held(await guard.acquire('room', { prefetch: 2 }))
    expect(recorder.received.acquire).toEqual([expect.objectContaining({ doId: 'room', prefetch: 2 })])
    expect(lock.prefetched).toEqual({
      entries: [
        ['a', '1'],
        ['b', '2'],
      ],
      complete: false,
    })
    await guard.release(lock)
    expect(held(await guard.acquire('room', { prefetch: 3 })).prefetched).toMatchObject({ complete: true })
  })

  it('asks for no rows, and hands out none, without prefetch or with 0', async () => {
    const { guard, recorder } = await setup()
    for (const options of [{}, { prefetch: 0 }]) {
      const lock = held(await guard.acquire('room', options))
      expect(lock).not.toHaveProperty('prefetched')
      await guard.release(lock)
    }
    expect(recorder.received.acquire.map((r) => 'prefetch' in r)).toEqual([false, false])
  })

  it.each<[string, unknown]>([
    ['-1', -1],
    ['1.5', 1.5],
    ['past MAX_PREFETCH_ROWS', MAX_PREFETCH_ROWS + 1],
    ['NaN', Number.NaN],
    ["'10' (a string)", '10'],
  ])('refuses prefetch %s, naming options.prefetch, before any I/O', async (_what, prefetch) => {
    const { guard, recorder } = await setup()
    const error = await guard.acquire('room', { prefetch: prefetch as number }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect(error).toMatchObject({ argument: 'options.prefetch' })
    expect(recorder.received.acquire).toEqual([])
  })

  it('reads options.prefetch once: what it validated is what the store is asked for', async () => {
    const { guard, recorder } = await setup()
    const lock = held(await guard.acquire('room', shifty({}, 'prefetch', 1, MAX_PREFETCH_ROWS + 5)))
    expect(recorder.received.acquire[0]).toMatchObject({ prefetch: 1 })
    expect(lock.prefetched?.entries).toEqual([['a', '1']])
  })
})
