import { describe, expect, it } from 'vitest'
import { MemoryLockStore, type Clock } from '../../src/index.js'
import { describeLockStoreContract } from './contract.js'

describeLockStoreContract('MemoryLockStore', async () => ({ store: new MemoryLockStore() }), { inProcess: true })

describe('MemoryLockStore', () => {
  it('judges expiry by its injected clock', async () => {
    let t = 1_000_000
    const clock: Clock = { now: () => t, monotonic: () => t }
    const store = new MemoryLockStore({ clock })
    const a = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 100 })
    expect(a.acquired).toBe(true)
    t += 99
    expect((await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 100 })).acquired).toBe(false)
    t += 1
    const b = await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 100 })
    expect(b.acquired && b.lock.fencingToken).toBe(2)
  })
})
