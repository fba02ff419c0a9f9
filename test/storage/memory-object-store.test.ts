/**
 * MemoryObjectStore: the shared ObjectStore contract (object-store-contract.ts), over leases held in
 * memory (support/leases.ts, until MemoryLockStore answers LeaseCheck itself), plus what only a memory
 * store has to show: the lease check and the writes happen in one synchronous step.
 */
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, MemoryObjectStore, StaleFencingTokenError, type LeaseCheck } from '../../src/index.js'
import { describeObjectStoreContract } from './object-store-contract.js'
import { TestLeases } from './support/leases.js'

describeObjectStoreContract(
  'MemoryObjectStore',
  async () => {
    const leases = new TestLeases()
    return { objects: new MemoryObjectStore(leases), locks: leases.asLockStore() }
  },
  { inProcess: true },
)

describe('MemoryObjectStore', () => {
  it('checks the lease and applies the writes in the same synchronous step (nothing can come between)', async () => {
    const leases = new TestLeases()
    const objects = new MemoryObjectStore(leases)
    const taken = await leases.acquire({ doId: 'o', nodeId: 'n', ttlMs: 10_000 })
    if (!taken.acquired) throw new Error('not acquired')
    const lease = { ...taken.lock, ttlMs: 10_000 }
    // Not awaited: by the time flush() returns its promise, the check and the writes are done...
    const flushed = objects.flush(lease, { entries: new Map([['k', '["v"]']]) })
    // ...so the lease ending right after the call cannot undo or split them.
    expect(await leases.release(lease)).toBe(true)
    await expect(flushed).resolves.toMatchObject({ expiresAt: expect.any(Number) })
    const reader = await leases.acquire({ doId: 'o', nodeId: 'm', ttlMs: 10_000 })
    if (!reader.acquired) throw new Error('not acquired')
    expect(await objects.get({ ...reader.lock, ttlMs: 10_000 }, ['k'])).toEqual(new Map([['k', '["v"]']]))
  })

  it('asks the LeaseCheck once per call, extending the lease only in flush', async () => {
    const asked: string[] = []
    const leases: LeaseCheck = {
      holds: () => (asked.push('holds'), true),
      holdsAndExtend: (_ref, ttlMs) => (asked.push(`extend ${ttlMs}`), 1234),
    }
    const objects = new MemoryObjectStore(leases)
    const lease = { doId: 'o', nodeId: 'n', fencingToken: 1, ttlMs: 500 }
    expect(await objects.flush(lease, { entries: new Map([['a', '[1]']]) })).toEqual({ expiresAt: 1234 })
    await objects.get(lease, ['a'])
    await objects.list(lease, {})
    expect(asked).toEqual(['extend 500', 'holds', 'holds'])
  })

  it('refuses a stale flush before touching anything, with the doId and token', async () => {
    const objects = new MemoryObjectStore({ holds: () => false, holdsAndExtend: () => null })
    const lease = { doId: 'o', nodeId: 'n', fencingToken: 3, ttlMs: 500 }
    await expect(objects.flush(lease, { deleteAll: true, entries: new Map() })).rejects.toMatchObject({
      constructor: StaleFencingTokenError,
      doId: 'o',
      token: 3,
    })
  })

  it('needs a LeaseCheck', () => {
    expect(() => new MemoryObjectStore({} as LeaseCheck)).toThrow(InvalidArgumentError)
  })
})
