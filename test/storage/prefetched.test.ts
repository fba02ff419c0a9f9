/**
 * ObjectStorage started from the rows its lease's acquire prefetched (`options.prefetched`,
 * docs/design.md invariant 13): those rows are cached committed state; when they are the whole object
 * (`complete`), absent keys and `list()` need no request either. Requests are counted through
 * support/counting-object-store.ts.
 */
import { describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  MemoryLockStore,
  ObjectStorage,
  encodeValue,
  type ObjectLease,
  type PrefetchedRows,
} from '../../src/index.js'
import { CountingObjectStore } from './support/counting-object-store.js'

const TTL = 10_000

/**
 * An object holding `entries` (committed by an earlier lease), then a new lease taken with
 * `prefetch` rows and an ObjectStorage over it, started from what that acquire read.
 */
async function setup(entries: Record<string, unknown>, prefetch: number) {
  const locks = new MemoryLockStore()
  const first = await locks.acquire({ doId: 'obj', nodeId: 'node-a', ttlMs: TTL })
  if (!first.acquired) throw new Error('expected the lease')
  const writer = new ObjectStorage({ store: locks.objects, lease: { ...first.lock, ttlMs: TTL } })
  await writer.put(entries)
  await writer.flush()
  await locks.release(first.lock)
  const taken = await locks.acquire({ doId: 'obj', nodeId: 'node-a', ttlMs: TTL, prefetch })
  if (!taken.acquired || !taken.prefetched) throw new Error('expected the lease and its rows')
  const store = new CountingObjectStore(locks.objects)
  const lease: ObjectLease = { ...taken.lock, ttlMs: TTL }
  const storage = new ObjectStorage({ store, lease, prefetched: taken.prefetched })
  /** Requests sent by the calls `op` makes, and its result. */
  const requests = async <T>(op: () => Promise<T>): Promise<[number, T]> => {
    const before = store.requests
    const result = await op()
    return [store.requests - before, result]
  }
  return { locks, store, lease, storage, requests, prefetched: taken.prefetched }
}

describe('ObjectStorage with prefetched rows', () => {
  it('answers reads of the prefetched keys from the cache, with no request, each get a new copy', async () => {
    const { storage, requests, prefetched } = await setup({ a: { n: 1 }, b: [2] }, 10)
    expect(prefetched.complete).toBe(true)
    const [count, value] = await requests(() => storage.get<{ n: number }>('a'))
    expect([count, value]).toEqual([0, { n: 1 }])
    value!.n = 99
    expect(await requests(() => storage.get(['b', 'a']))).toEqual([
      0,
      new Map<string, unknown>([
        ['a', { n: 1 }],
        ['b', [2]],
      ]),
    ])
  })

  it('when complete, answers a key not among the rows absent, delete() and list() with no request, unflushed writes merged in', async () => {
    const { storage, requests } = await setup({ a: 1, b: 2, c: 3 }, 3)
    expect(await requests(() => storage.get('missing'))).toEqual([0, undefined])
    expect(await requests(() => storage.get(['missing', 'a']))).toEqual([0, new Map([['a', 1]])])
    await storage.put('bb', 22)
    expect(await requests(() => storage.delete('c'))).toEqual([0, true])
    expect(await requests(() => storage.delete('nope'))).toEqual([0, false])
    const [listed, all] = await requests(() => storage.list())
    expect([listed, [...all]]).toEqual([
      0,
      [
        ['a', 1],
        ['b', 2],
        ['bb', 22],
      ],
    ])
    const [ranged, some] = await requests(() => storage.list({ prefix: 'b', reverse: true, limit: 1 }))
    expect([ranged, [...some]]).toEqual([0, [['bb', 22]]])
  })

  it('when complete, stays complete after its flushes: what it wrote is the committed state', async () => {
    const { storage, requests, store } = await setup({ a: 1 }, 5)
    await storage.put('z', 26)
    await storage.delete('a')
    expect(await requests(() => storage.flush())).toMatchObject([1, { expiresAt: expect.any(Number) }])
    expect(store.calls).toEqual({ get: 0, list: 0, flush: 1 })
    expect(await requests(() => storage.get(['a', 'z']))).toEqual([0, new Map([['z', 26]])])
    expect(await requests(async () => [...(await storage.list())])).toEqual([0, [['z', 26]]])
  })

  it('of a new object (no rows, complete): every read answers absent with no request', async () => {
    const { storage, requests, prefetched } = await setup({}, 1)
    expect(prefetched).toEqual({ entries: [], complete: true })
    expect(await requests(() => storage.get('n'))).toEqual([0, undefined])
    expect(await requests(async () => (await storage.list()).size)).toEqual([0, 0])
  })

  it('when not complete, reads a key not prefetched from the store (once), and list() from the store', async () => {
    const { storage, requests, store, prefetched } = await setup({ a: 1, b: 2, c: 3 }, 2)
    expect(prefetched.complete).toBe(false)
    expect(prefetched.entries.map(([key]) => key)).toEqual(['a', 'b'])
    expect(await requests(() => storage.get(['a', 'b']))).toEqual([
      0,
      new Map([
        ['a', 1],
        ['b', 2],
      ]),
    ])
    expect(await requests(() => storage.get('c'))).toEqual([1, 3])
    expect(await requests(() => storage.get('c'))).toEqual([0, 3])
    expect(await requests(() => storage.get('missing'))).toEqual([1, undefined])
    const [listed, all] = await requests(() => storage.list())
    expect([listed, [...all.keys()]]).toEqual([1, ['a', 'b', 'c']])
    expect(store.log.filter((entry) => entry.op === 'get')).toEqual([
      { op: 'get', keys: ['c'] },
      { op: 'get', keys: ['missing'] },
    ])
  })

  it('copies the rows it is given: changing them afterwards changes nothing it answers', async () => {
    const { locks, lease } = await setup({ a: 1 }, 1)
    const entries: Array<[string, string]> = [['k', encodeValue(1, 'k')]]
    const rows = { entries, complete: true }
    const storage = new ObjectStorage({ store: locks.objects, lease, prefetched: rows })
    entries[0] = ['k', encodeValue(2, 'k')]
    entries.push(['other', encodeValue(3, 'other')])
    rows.complete = false
    expect(await storage.get(['k', 'other'])).toEqual(new Map([['k', 1]]))
  })

  describe('refuses prefetched rows that are not { entries: [key, encoded value][], complete: boolean }', () => {
    const cases: Array<[string, unknown, string]> = [
      ['null', null, 'options.prefetched'],
      ['a string', 'rows', 'options.prefetched'],
      ['complete missing', { entries: [] }, 'options.prefetched.complete'],
      ['complete not a boolean', { entries: [], complete: 'yes' }, 'options.prefetched.complete'],
      ['entries not an array', { entries: new Map(), complete: true }, 'options.prefetched.entries'],
      ['an entry that is not a pair', { entries: [['a']], complete: true }, 'options.prefetched.entries[0]'],
      [
        'a value that is not encoded (a string)',
        { entries: [['a', 1]], complete: true },
        'options.prefetched.entries[0]',
      ],
      [
        'a key twice',
        {
          entries: [
            ['a', '1'],
            ['b', '2'],
            ['a', '3'],
          ],
          complete: true,
        },
        'options.prefetched.entries[2]',
      ],
    ]
    for (const [what, prefetched, argument] of cases) {
      it(`refuses ${what}, naming ${argument}`, async () => {
        const { store, lease } = await setup({}, 1)
        expect(() => new ObjectStorage({ store, lease, prefetched: prefetched as PrefetchedRows })).toThrow(
          expect.objectContaining({ constructor: InvalidArgumentError, argument }),
        )
        expect(store.requests).toBe(0)
      })
    }
  })
})
