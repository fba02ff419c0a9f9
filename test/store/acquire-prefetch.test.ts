/**
 * An acquire that also reads the object's storage rows (docs/design.md invariant 13), where the SQL
 * stores need more than the shared contract says: combined into one group-commit batch with other
 * callers' acquires, a hostile storage table name, and rows someone else's SQL wrote.
 */
import { createClient, type Client } from '@libsql/client'
import { afterEach, describe, expect, it } from 'vitest'
import { LibSQLLockStore, type LockRecord, type StoreAcquireResult } from '../../src/index.js'
import { countingClient } from '../support/counting-client.js'
import { describeLockStoreContract } from './contract.js'

// The storage table is named by the user too: names that mean something inside a SELECT.
for (const objectTable of ['key', 'value', 'new']) {
  describeLockStoreContract(`LibSQLLockStore on :memory:, object table "${objectTable}"`, async () => {
    const counted = countingClient(createClient({ url: ':memory:' }))
    return {
      store: new LibSQLLockStore(counted.client, { objectTable }),
      requests: counted.requests,
      close: () => counted.client.close(),
    }
  })
}

function won(result: StoreAcquireResult): LockRecord {
  if (!result.acquired) throw new Error(`expected to acquire, but ${result.holder.nodeId} holds it`)
  return result.lock
}

describe('LibSQLLockStore acquire with prefetch', () => {
  const clients: Client[] = []
  afterEach(() => {
    for (const client of clients.splice(0)) client.close()
  })
  const open = async (groupCommit = false) => {
    const raw = createClient({ url: ':memory:' })
    clients.push(raw)
    const counted = countingClient(raw)
    const store = new LibSQLLockStore(counted.client, { groupCommit })
    await store.ensureSchema()
    /** Gives `doId` one row per key (value: the key in quotes), under a lease released afterwards. */
    const write = async (doId: string, keys: string[]) => {
      const lock = won(await store.acquire({ doId, nodeId: 'writer', ttlMs: 10_000 }))
      await store.objects.flush({ ...lock, ttlMs: 10_000 }, { entries: new Map(keys.map((k) => [k, `"${k}"`])) })
      await store.release(lock)
    }
    return { raw, counted, store, write }
  }

  it('with group commit, sends concurrent acquires with prefetch as ONE batch, each with its own rows', async () => {
    const { counted, store, write } = await open(true)
    await write('a', ['x'])
    await write('b', ['y', 'z'])
    counted.reset()
    const results = await Promise.all(
      ['a', 'b', 'c'].map((doId) => store.acquire({ doId, nodeId: 'n1', ttlMs: 10_000, prefetch: 1 })),
    )
    expect(counted.requests()).toBe(1)
    expect(results.map((r) => r.acquired && r.prefetched)).toEqual([
      { entries: [['x', '"x"']], complete: true },
      { entries: [['y', '"y"']], complete: false },
      { entries: [], complete: true },
    ])
  })

  it('with group commit, gives the rows only to the winner of a race inside one batch, though an upsert before the loser changed a row', async () => {
    const { counted, store, write } = await open(true)
    await write('hot', ['secret'])
    counted.reset()
    const [first, second] = await Promise.all(
      ['n1', 'n2'].map((nodeId) => store.acquire({ doId: 'hot', nodeId, ttlMs: 10_000, prefetch: 10 })),
    )
    expect(counted.requests()).toBe(1)
    expect(first!.acquired && first!.prefetched).toEqual({ entries: [['secret', '"secret"']], complete: true })
    expect(second!.acquired).toBe(false)
    expect(second).not.toHaveProperty('prefetched')
  })

  it('stops before a row that is not text (not complete), so reading that key reports it instead of failing the acquire', async () => {
    const { raw, store, write } = await open()
    await write('o', ['a', 'c'])
    await raw.execute("INSERT INTO do_storage (do_id, key, value) VALUES ('o', 'b', x'00ff')")
    const result = await store.acquire({ doId: 'o', nodeId: 'n1', ttlMs: 10_000, prefetch: 10 })
    expect(result.acquired && result.prefetched).toEqual({ entries: [['a', '"a"']], complete: false })
  })
})
