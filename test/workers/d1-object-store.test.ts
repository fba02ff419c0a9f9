/**
 * SqlObjectStore on D1 inside workerd (vitest project "workers"): the ObjectStore contract against the
 * real D1 implementation workerd/miniflare provide, which enforces D1's limits (at most 100 bound
 * parameters per statement, an authorizer on SQL functions). Every test works in tables of its own
 * (support/tables.ts), dropped afterwards; see d1-lock-store.test.ts for how the project is set up.
 */
import { env } from 'cloudflare:test'
import { afterEach, describe, expect, it } from 'vitest'
import { D1LockStore } from '../../src/store/d1.js'
import { SqlObjectStore } from '../../src/store/sql-object-store.js'
import { StaleFencingTokenError } from '../../src/index.js'
import { describeObjectStoreContract } from '../storage/object-store-contract.js'
import { d1Driver } from '../storage/support/d1-driver.js'
import { countingD1 } from './support/counting-d1.js'
import { dropLockTable, freshTable } from './support/tables.js'

/** A lock table and a storage table of its own, over one (counted) binding; `close` drops both. */
function stores() {
  const counted = countingD1(env.DB)
  const lockTable = freshTable('olocks')
  const table = freshTable('objects')
  const locks = new D1LockStore(counted.db, { table: lockTable })
  const objects = new SqlObjectStore(d1Driver(counted.db), { table, lockTable })
  return {
    locks,
    objects,
    requests: counted.requests,
    close: async () => {
      await dropLockTable(env.DB, locks.sql)
      await env.DB.prepare(`DROP TABLE IF EXISTS "${table}"`).run()
    },
  }
}

describeObjectStoreContract('SqlObjectStore on D1 (workerd)', async () => stores())

describe('SqlObjectStore on D1 (workerd)', () => {
  const opened: Array<ReturnType<typeof stores>> = []
  afterEach(async () => {
    while (opened.length) await opened.pop()!.close()
  })
  const open = async () => {
    const s = stores()
    opened.push(s)
    await s.locks.ensureSchema()
    await s.objects.ensureSchema()
    const r = await s.locks.acquire({ doId: 'obj', nodeId: 'node-a', ttlMs: 10_000 })
    if (!r.acquired) throw new Error('expected the lease')
    return { ...s, lease: { ...r.lock, ttlMs: 10_000 } }
  }

  it('D1 itself refuses a statement with more than 100 bound parameters (the limit flushes are chunked under)', async () => {
    const args = Array.from({ length: 101 }, (_, i) => i)
    const sql = `SELECT ${args.map((_, i) => `?${i + 1}`).join(', ')}`
    await expect(
      env.DB.prepare(sql)
        .bind(...args)
        .all(),
    ).rejects.toThrow(/between \?1 and \?100/)
  })

  it('flushes 500 entries of 1 KiB in one batch and reads them back with 128-key gets', async () => {
    const { objects, lease, requests } = await open()
    const key = (i: number) => `k${String(i).padStart(3, '0')}`
    const before = requests()
    await objects.flush(lease, {
      entries: new Map(Array.from({ length: 500 }, (_, i) => [key(i), `${i}:${'x'.repeat(1024)}`])),
    })
    expect(requests() - before).toBe(1)
    const found = await objects.get(
      lease,
      Array.from({ length: 128 }, (_, i) => key(i * 3)),
    )
    expect(found.size).toBe(128)
    expect(found.get(key(300))).toBe(`300:${'x'.repeat(1024)}`)
    expect(await objects.list(lease, { start: key(495) })).toHaveLength(5)
  })

  it('extends the lease by D1 clock in the same batch, and a released lease flushes nothing', async () => {
    const { objects, locks, lease } = await open()
    const { expiresAt } = await objects.flush({ ...lease, ttlMs: 60_000 }, { entries: new Map([['k', 'v']]) })
    const info = (await locks.get('obj'))!
    expect(info.expiresAt).toBe(expiresAt)
    expect(expiresAt - info.storeNow).toBeGreaterThan(59_000)
    expect(expiresAt - info.storeNow).toBeLessThanOrEqual(60_000)
    await locks.release(lease)
    await expect(objects.flush(lease, { entries: new Map([['k', 'stale']]) })).rejects.toBeInstanceOf(
      StaleFencingTokenError,
    )
    expect((await locks.get('obj'))!.expiresAt).toBe(0)
  })
})
