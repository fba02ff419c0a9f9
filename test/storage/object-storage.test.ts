/**
 * ObjectStorage (src/storage/object-storage.ts): Durable Object storage's API over MemoryObjectStore,
 * with the requests of each call counted (support/counting-object-store.ts): a cached get costs none,
 * an uncached get(keys) one, a flush of 100 keys one (docs/design.md invariant 13), a stale flush
 * rejects and writes nothing (invariant 10), the cache dies with the lease (invariant 11).
 * Which answers Durable Objects give is established against real ctx.storage in
 * test/workers/storage-semantics.test.ts; here the API's own mechanics.
 */
import { describe, expect, it } from 'vitest'
import {
  DataCloneError,
  InvalidArgumentError,
  LibSQLLockStore,
  LockLostError,
  MemoryObjectStore,
  ObjectStorage,
  StaleFencingTokenError,
  StoreUnavailableError,
  TooManyKeysError,
  TransactionEndedError,
  ValueTooLargeError,
  compareKeys,
  type ObjectLease,
  type ObjectStore,
  type StorageTransaction,
} from '../../src/index.js'
import { CountingObjectStore } from './support/counting-object-store.js'
import { TestLeases } from './support/leases.js'

const TTL = 10_000

async function setup(options: { signal?: AbortSignal } = {}) {
  const leases = new TestLeases()
  const memory = new MemoryObjectStore(leases)
  const store = new CountingObjectStore(memory)
  const taken = await leases.acquire({ doId: 'obj', nodeId: 'node-a', ttlMs: TTL })
  if (!taken.acquired) throw new Error('expected the lease')
  const lease: ObjectLease = { ...taken.lock, ttlMs: TTL }
  const storage = new ObjectStorage({ store, lease: { ...lease, ...options } })
  /** What the store holds now, read under the lease as a fresh turn would (not counted). */
  const committed = async () => new Map(await memory.list(lease, {}))
  /** Requests sent by the calls `op` makes. */
  const requests = async (op: () => Promise<unknown>) => {
    const before = store.requests
    await op()
    return store.requests - before
  }
  return { leases, memory, store, lease, storage, committed, requests }
}

/** Puts entries straight into the store under the lease (committed state a turn starts with). */
async function seed(store: ObjectStore, lease: ObjectLease, entries: Record<string, unknown>) {
  const storage = new ObjectStorage({ store, lease })
  await storage.put(entries)
  await storage.flush()
}

const keysOf = (map: Map<string, unknown>) => [...map.keys()]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * An ObjectStorage over MemoryObjectStore holding the lease, `entries` committed; `reread` reads
 * `keys` through a fresh storage under the same lease, as the next turn would.
 */
async function overMemory(entries: Record<string, unknown>) {
  const { storage, memory, lease } = await setup()
  await seed(memory, lease, entries)
  const reread = (keys: string[]) => new ObjectStorage({ store: memory, lease }).get(keys)
  return { storage, reread, close: () => {} }
}

/** The same over a LibSQLLockStore's own object store, on a libSQL :memory: database. */
async function overLibSQL(entries: Record<string, unknown>) {
  const locks = new LibSQLLockStore(':memory:')
  await locks.ensureSchema()
  const taken = await locks.acquire({ doId: 'obj', nodeId: 'node-a', ttlMs: TTL })
  if (!taken.acquired) throw new Error('expected the lease')
  const { doId, nodeId, fencingToken } = taken.lock
  const lease: ObjectLease = { doId, nodeId, fencingToken, ttlMs: TTL }
  await seed(locks.objects, lease, entries)
  const reread = (keys: string[]) => new ObjectStorage({ store: locks.objects, lease }).get(keys)
  return { storage: new ObjectStorage({ store: locks.objects, lease }), reread, close: () => locks.close() }
}

describe('ObjectStorage', () => {
  describe('get', () => {
    it('answers undefined for a missing key, and a Map of only the keys found, in key order, each once', async () => {
      const { storage, memory, lease } = await setup()
      await seed(memory, lease, { b: 2, a: 1, '\u{1F600}': 'astral', '\uFFFF': 'bmp' })
      expect(await storage.get('nope')).toBeUndefined()
      const found = await storage.get(['\u{1F600}', 'nope', 'b', '\uFFFF', 'a', 'b'])
      expect([...found]).toEqual([
        ['a', 1],
        ['b', 2],
        ['\uFFFF', 'bmp'],
        ['\u{1F600}', 'astral'],
      ])
    })

    it('costs one request for all uncached keys of a get(keys), and none once cached (absent keys too)', async () => {
      const { storage, memory, lease, store, requests } = await setup()
      await seed(memory, lease, { a: 1, b: 2 })
      expect(await requests(() => storage.get(['a', 'b', 'missing']))).toBe(1)
      expect(await requests(() => storage.get(['a', 'b', 'missing']))).toBe(0)
      expect(await requests(() => storage.get('missing'))).toBe(0)
      expect(await requests(() => storage.get(['a', 'c', 'd']))).toBe(1)
      expect(store.log.at(-1)).toEqual({ op: 'get', keys: ['c', 'd'] })
    })

    it('returns a new copy on every call; changing it changes nothing stored', async () => {
      const { storage } = await setup()
      await storage.put('o', { n: 1, list: [1] })
      const first = await storage.get<{ n: number; list: number[] }>('o')
      const second = await storage.get<{ n: number; list: number[] }>('o')
      expect(first).not.toBe(second)
      first!.n = 99
      first!.list.push(2)
      expect(await storage.get('o')).toEqual({ n: 1, list: [1] })
    })

    it('converts non-string keys with String(), as Durable Objects do', async () => {
      const { storage } = await setup()
      await storage.put('1', 'one')
      await storage.put('null', 'nothing')
      expect(await storage.get(1 as never)).toBe('one')
      expect(await storage.get(null as never)).toBe('nothing')
      expect(keysOf(await storage.get([1, null] as unknown as string[]))).toEqual(['1', 'null'])
    })

    it(`refuses more than 128 keys before any I/O`, async () => {
      const { storage, requests } = await setup()
      const keys = Array.from({ length: 129 }, (_, i) => `k${i}`)
      expect(await requests(() => expect(storage.get(keys)).rejects.toBeInstanceOf(TooManyKeysError))).toBe(0)
    })

    it('with noCache, does not keep what it read (the next read asks again); results are the same', async () => {
      const { storage, memory, lease, requests } = await setup()
      await seed(memory, lease, { a: 1 })
      expect(await storage.get('a', { noCache: true })).toBe(1)
      expect(await requests(() => storage.get('a'))).toBe(1)
      expect(await requests(() => storage.get('a', { noCache: true }))).toBe(0)
    })
  })

  describe('put', () => {
    it('is seen at once by every later read (read-your-writes), and sends nothing before the flush', async () => {
      const { storage, requests, committed } = await setup()
      expect(
        await requests(async () => {
          await storage.put('a', 1)
          await storage.put({ b: 2, c: [3] })
          expect(await storage.get('a')).toBe(1)
          expect([...(await storage.get(['a', 'b', 'c']))]).toEqual([
            ['a', 1],
            ['b', 2],
            ['c', [3]],
          ])
        }),
      ).toBe(0)
      expect(await committed()).toEqual(new Map())
    })

    it('stores a copy taken at the call: changing the object afterwards (even before awaiting) changes nothing', async () => {
      const { storage, memory, lease } = await setup()
      const value = { n: 1 }
      const put = storage.put('v', value)
      value.n = 2
      await put
      expect(await storage.get('v')).toEqual({ n: 1 })
      await storage.flush()
      expect(await new ObjectStorage({ store: memory, lease }).get('v')).toEqual({ n: 1 })
    })

    it('put(key, undefined) is refused as in Durable Objects; undefined entries of put(entries) are skipped', async () => {
      const { storage } = await setup()
      await expect(storage.put('u', undefined)).rejects.toMatchObject({
        constructor: InvalidArgumentError,
        argument: 'value',
        message: 'invalid value: put() called with undefined value.',
      })
      await expect((storage.put as unknown as (key: string) => Promise<void>)('u')).rejects.toBeInstanceOf(
        InvalidArgumentError,
      )
      await storage.put({ a: 1, b: undefined })
      expect(keysOf(await storage.list())).toEqual(['a'])
    })

    it('put(entries, options) takes options; anything else as a second argument is refused', async () => {
      const { storage } = await setup()
      await storage.put({ a: 1 }, { allowUnconfirmed: true, noCache: true, allowConcurrency: true })
      await expect(storage.put({ b: 1 }, 1 as never)).rejects.toMatchObject({ argument: 'options' })
      expect(keysOf(await storage.list())).toEqual(['a'])
    })

    it('is all or nothing: one uncloneable or oversized entry buffers none of put(entries)', async () => {
      const { storage } = await setup()
      await expect(storage.put({ a: 1, f: () => 1 })).rejects.toMatchObject({
        constructor: DataCloneError,
        argument: 'entries["f"]',
        key: 'f',
      })
      await expect(storage.put({ a: 1, big: 'x'.repeat(200_000) })).rejects.toMatchObject({
        constructor: ValueTooLargeError,
        argument: 'entries["big"]',
        key: 'big',
      })
      await expect(
        storage.put(Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`k${i}`, i]))),
      ).rejects.toMatchObject({
        constructor: TooManyKeysError,
        argument: 'entries',
        count: 129,
      })
      expect(await storage.list()).toEqual(new Map())
      expect(storage.hasPendingWrites()).toBe(false)
    })
  })

  describe('delete', () => {
    it('answers whether the key existed (a boolean) or how many did (a count, each key once)', async () => {
      const { storage, memory, lease } = await setup()
      await seed(memory, lease, { a: 1, b: 2 })
      await storage.put('c', 3)
      expect(await storage.delete('a')).toBe(true)
      expect(await storage.delete('a')).toBe(false)
      expect(await storage.delete(['b', 'c', 'zz', 'b'])).toBe(2)
      expect(await storage.delete([])).toBe(0)
      expect(await storage.list()).toEqual(new Map())
    })

    it('costs no request for a key the turn knows, one read for all the others of one call', async () => {
      const { storage, memory, lease, requests } = await setup()
      await seed(memory, lease, { a: 1, b: 2, c: 3 })
      await storage.get('a')
      expect(await requests(() => storage.delete('a'))).toBe(0)
      expect(await requests(() => storage.delete(['b', 'c', 'd']))).toBe(1)
    })

    it('takes effect at the call, before its read returns: a put right after it wins', async () => {
      const { storage, memory, lease, committed } = await setup()
      await seed(memory, lease, { k: 'old' })
      const deleted = storage.delete('k')
      const put = storage.put('k', 'new')
      expect(await deleted).toBe(true)
      await put
      expect(await storage.get('k')).toBe('new')
      await storage.flush()
      expect(await committed()).toEqual(new Map([['k', '["new"]']]))
    })
  })

  describe('list', () => {
    it('merges committed entries with unflushed puts and deletes, in code point order', async () => {
      const { storage, memory, lease } = await setup()
      await seed(memory, lease, { a: 1, c: 3, e: 5, '\u{1F600}': 'x' })
      await storage.put({ b: 2, c: 'new', '\uFFFF': 'y' })
      await storage.delete('e')
      expect([...(await storage.list())]).toEqual([
        ['a', 1],
        ['b', 2],
        ['c', 'new'],
        ['\uFFFF', 'y'],
        ['\u{1F600}', 'x'],
      ])
    })

    it('applies start, startAfter, end and prefix to both, as Durable Objects combine them', async () => {
      const { storage, memory, lease } = await setup()
      await seed(memory, lease, { a: 1, ab: 1, abc: 1, b: 1 })
      await storage.put({ aa: 2, abd: 2, c: 2 })
      const keys = async (options: object) => keysOf(await storage.list(options))
      expect(await keys({ start: 'ab' })).toEqual(['ab', 'abc', 'abd', 'b', 'c'])
      expect(await keys({ startAfter: 'ab' })).toEqual(['abc', 'abd', 'b', 'c'])
      expect(await keys({ end: 'ab' })).toEqual(['a', 'aa'])
      expect(await keys({ prefix: 'ab' })).toEqual(['ab', 'abc', 'abd'])
      expect(await keys({ prefix: 'a', start: 'aa', end: 'abd' })).toEqual(['aa', 'ab', 'abc'])
      expect(await keys({ prefix: 'a', start: 'b' })).toEqual([])
      expect(await keys({ start: 'b', end: 'a' })).toEqual([])
      expect(await keys({ prefix: '' })).toEqual(['a', 'aa', 'ab', 'abc', 'abd', 'b', 'c'])
    })

    it('still fills limit when unflushed deletes hide committed entries (forward and reverse)', async () => {
      const { storage, memory, lease, store } = await setup()
      await seed(memory, lease, { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 })
      await storage.delete(['a', 'b', 'f'])
      await storage.put('bb', 'new')
      expect(keysOf(await storage.list({ limit: 2 }))).toEqual(['bb', 'c'])
      expect(store.log.at(-1)).toMatchObject({ op: 'list', range: { limit: 5 } })
      expect(keysOf(await storage.list({ limit: 3, reverse: true }))).toEqual(['e', 'd', 'c'])
      expect(keysOf(await storage.list({ limit: 10, reverse: true }))).toEqual(['e', 'd', 'c', 'bb'])
    })

    it('after deleteAll() lists only what was written since, without a request', async () => {
      const { storage, memory, lease, requests } = await setup()
      await seed(memory, lease, { a: 1, b: 2 })
      await storage.deleteAll()
      await storage.put('z', 26)
      expect(await requests(async () => expect(keysOf(await storage.list())).toEqual(['z']))).toBe(0)
      expect(await requests(async () => expect(await storage.get(['a', 'z'])).toEqual(new Map([['z', 26]])))).toBe(0)
    })

    it('fills the cache: a get of a listed key costs no request', async () => {
      const { storage, memory, lease, requests } = await setup()
      await seed(memory, lease, { a: 1, b: 2 })
      await storage.list()
      expect(await requests(() => storage.get(['a', 'b']))).toBe(0)
    })

    it('reads the options as Durable Objects do, and refuses what they refuse, before any I/O', async () => {
      const { storage, memory, lease, requests } = await setup()
      await seed(memory, lease, { a: 1, b: 2, c: 3, null: 4 })
      expect((await storage.list({ limit: 1.5 })).size).toBe(1)
      expect((await storage.list({ limit: '2' as never })).size).toBe(2)
      expect((await storage.list({ reverse: 'false' as never, limit: 1 })).keys().next().value).toBe('null')
      expect(keysOf(await storage.list({ start: null as never }))).toEqual(['null'])
      const refused: Array<[object, string, string]> = [
        [{ limit: 0 }, 'options.limit', 'List limit must be positive.'],
        [{ limit: Number.NaN }, 'options.limit', 'List limit must be positive.'],
        [{ limit: 1e10 }, 'options.limit', 'Value out of range'],
        [
          { start: 'a', startAfter: 'b' },
          'options.startAfter',
          'list() cannot be called with both start and startAfter values.',
        ],
        [{ prefix: Symbol('p') }, 'options.prefix', 'Cannot convert a Symbol value to a string'],
      ]
      for (const [options, argument, message] of refused) {
        expect(
          await requests(() =>
            expect(storage.list(options)).rejects.toMatchObject({
              argument,
              message: expect.stringContaining(message),
            }),
          ),
        ).toBe(0)
      }
    })
  })

  describe('deleteAll', () => {
    it('reaches the store as deleteAll first, then the writes made after it, in one flush', async () => {
      const { storage, memory, lease, store, committed } = await setup()
      await seed(memory, lease, { a: 1, b: 2 })
      await storage.put('x', 0)
      await storage.deleteAll()
      await storage.put('c', 3)
      expect(await storage.deleteAll().then(() => storage.put('d', 4))).toBeUndefined()
      await storage.flush()
      expect(store.log.at(-1)).toEqual({ op: 'flush', writes: { deleteAll: true, entries: new Map([['d', '[4]']]) } })
      expect(await committed()).toEqual(new Map([['d', '[4]']]))
    })

    it('is refused inside a transaction, on the storage and on the txn', async () => {
      const { storage } = await setup()
      await storage.transaction(async (txn) => {
        await expect(txn.deleteAll()).rejects.toMatchObject({
          message: expect.stringContaining('within a transaction'),
        })
        await expect(storage.deleteAll()).rejects.toMatchObject({
          message: expect.stringContaining('within a transaction'),
        })
      })
    })
  })

  describe('transaction', () => {
    it('sees its own writes, joins the turn when it returns, and resolves with the closure result', async () => {
      const { storage, store, committed } = await setup()
      await storage.put('outer', 1)
      const result = await storage.transaction(async (txn) => {
        await txn.put('t', 'in')
        expect(await txn.get(['outer', 't'])).toEqual(
          new Map<string, unknown>([
            ['outer', 1],
            ['t', 'in'],
          ]),
        )
        expect(keysOf(await txn.list())).toEqual(['outer', 't'])
        expect(await txn.delete('outer')).toBe(true)
        return 'done'
      })
      expect(result).toBe('done')
      expect(keysOf(await storage.list())).toEqual(['t'])
      await storage.flush()
      expect(store.calls.flush).toBe(1)
      expect(await committed()).toEqual(new Map([['t', '["in"]']]))
    })

    it('writes nothing after rollback(), and still returns the closure result', async () => {
      const { storage } = await setup()
      await storage.put('k', 'before')
      const result = await storage.transaction(async (txn) => {
        await txn.put('k', 'txn')
        await txn.put('new', 1)
        txn.rollback()
        txn.rollback()
        return 42
      })
      expect(result).toBe(42)
      expect([...(await storage.list())]).toEqual([['k', 'before']])
    })

    it('writes nothing when the closure throws, and rejects with its error', async () => {
      const { storage } = await setup()
      const boom = new Error('boom')
      await expect(
        storage.transaction(async (txn) => {
          await txn.put('k', 1)
          throw boom
        }),
      ).rejects.toBe(boom)
      expect(await storage.list()).toEqual(new Map())
    })

    it('counts calls on the storage itself while it runs as part of it (as SQLite-backed objects do)', async () => {
      const { storage } = await setup()
      await storage.transaction(async (txn) => {
        await storage.put('via-storage', 1)
        expect(await txn.get('via-storage')).toBe(1)
        txn.rollback()
      })
      expect(await storage.get('via-storage')).toBeUndefined()
    })

    it('nests: an inner rollback keeps the outer transaction writes', async () => {
      const { storage } = await setup()
      await storage.transaction(async (outer) => {
        await outer.put('k', 'outer')
        await storage.transaction(async (inner) => {
          await inner.put('k', 'inner')
          expect(await outer.get('k')).toBe('outer')
          inner.rollback()
        })
      })
      expect(await storage.get('k')).toBe('outer')
    })

    it('refuses a txn used after rollback or after its closure returned, with the Durable Objects texts', async () => {
      const { storage } = await setup()
      let kept: StorageTransaction | undefined
      await storage.transaction(async (txn) => {
        txn.rollback()
        await expect(txn.get('k')).rejects.toMatchObject({
          constructor: TransactionEndedError,
          message: 'invalid txn: Cannot get() on rolled back transaction',
        })
      })
      await storage.transaction((txn) => {
        kept = txn
      })
      await expect(kept!.put('late', 1)).rejects.toMatchObject({
        constructor: TransactionEndedError,
        state: 'committed',
        message: expect.stringContaining('Cannot call put() on transaction that has already committed'),
      })
    })
  })

  describe.each([
    ['MemoryObjectStore', overMemory],
    ['libSQL (:memory:)', overLibSQL],
  ])('transactions started together, over %s', (_name, open) => {
    it('each commits its read-modify-write of its own key: in the turn and in the store', async () => {
      const { storage, reread, close } = await open({ a: 0, b: 0, c: 0 })
      const results = await Promise.all(
        ['a', 'b', 'c'].map((k) =>
          storage.transaction(async (txn) => {
            const value = (await txn.get<number>(k))!
            await txn.put(k, value + 1)
            return `${k}: ${value + 1}`
          }),
        ),
      )
      expect(results).toEqual(['a: 1', 'b: 1', 'c: 1'])
      const incremented = new Map(Object.entries({ a: 1, b: 1, c: 1 }))
      expect(await storage.get(['a', 'b', 'c'])).toEqual(incremented)
      await storage.flush()
      expect(await reread(['a', 'b', 'c'])).toEqual(incremented)
      close()
    })

    it('run one after another, as in Durable Objects: a counter they all increment counts each', async () => {
      const { storage, reread, close } = await open({ total: 0 })
      const log: string[] = []
      await Promise.all(
        ['a', 'b', 'c'].map((k) =>
          storage.transaction(async (txn) => {
            log.push(`${k} starts`)
            const total = (await txn.get<number>('total'))!
            await sleep(1)
            await txn.put('total', total + 1)
            log.push(`${k} ends`)
          }),
        ),
      )
      expect(log).toEqual(['a starts', 'a ends', 'b starts', 'b ends', 'c starts', 'c ends'])
      await storage.flush()
      expect(await reread(['total'])).toEqual(new Map([['total', 3]]))
      close()
    })

    it('one started with another that throws or rolls back runs after it, sees none of its writes, and keeps its own', async () => {
      const { storage, reread, close } = await open({})
      const boom = new Error('boom')
      const settled = await Promise.allSettled([
        storage.transaction(async (txn) => {
          await txn.put('shared', 'thrown')
          await sleep(5)
          throw boom
        }),
        storage.transaction(async (txn) => {
          const seen = await txn.get('shared')
          await txn.put('second', 'kept')
          return seen
        }),
        storage.transaction(async (txn) => {
          await txn.put('shared', 'rolled back')
          await sleep(5)
          txn.rollback()
        }),
        storage.transaction(async (txn) => txn.put('fourth', 'kept')),
      ])
      expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : s.reason))).toEqual([
        boom,
        undefined,
        undefined,
        undefined,
      ])
      expect(keysOf(await storage.list())).toEqual(['fourth', 'second'])
      await storage.flush()
      expect(keysOf(await reread(['shared', 'second', 'fourth']))).toEqual(['fourth', 'second'])
      close()
    })
  })

  describe('transactions at the same time, nested or not', () => {
    it('nests: transactions started together inside one run one after another and join it; its throw discards them', async () => {
      const { storage } = await setup()
      const log: string[] = []
      const withTwoInside = (outcome: 'commits' | 'throws') =>
        storage.transaction(async (outer) => {
          await outer.put(`${outcome}-outer`, 1)
          await Promise.all(
            ['p', 'q'].map((k) =>
              storage.transaction(async (inner) => {
                log.push(`${k} starts`)
                await sleep(1)
                await inner.put(`${outcome}-${k}`, 1)
                log.push(`${k} ends`)
              }),
            ),
          )
          expect(keysOf(await outer.list({ prefix: outcome }))).toEqual([
            `${outcome}-outer`,
            `${outcome}-p`,
            `${outcome}-q`,
          ])
          if (outcome === 'throws') throw new Error('the outer fails')
        })
      await withTwoInside('commits')
      await expect(withTwoInside('throws')).rejects.toThrow('the outer fails')
      expect(log).toEqual(['p starts', 'p ends', 'q starts', 'q ends', 'p starts', 'p ends', 'q starts', 'q ends'])
      expect(keysOf(await storage.list())).toEqual(['commits-outer', 'commits-p', 'commits-q'])
    })

    it('nests: one its parent did not await commits into the turn when it ends after the parent', async () => {
      const { storage, committed } = await setup()
      let inner: Promise<void> | undefined
      await storage.transaction(async (outer) => {
        await outer.put('outer', 1)
        inner = storage.transaction(async (txn) => {
          await sleep(5)
          await txn.put('inner', 1)
        })
      })
      await inner
      expect(keysOf(await storage.list())).toEqual(['inner', 'outer'])
      await storage.flush()
      expect(keysOf(await committed())).toEqual(['inner', 'outer'])
    })

    it('what the code that started a transaction calls next, before it awaits, is outside it: a put outlives its rollback', async () => {
      const { storage } = await setup()
      const rolledBack = storage.transaction(async (txn) => {
        await txn.put('inside', 1)
        await sleep(5)
        txn.rollback()
      })
      await storage.put('beside', 1)
      expect(await storage.get('inside')).toBe(1) // after an await: see the next test
      await rolledBack
      expect(keysOf(await storage.list())).toEqual(['beside'])
    })

    it('a call made after an await while a transaction is open is taken as part of it (nothing tells who called): its rollback discards it', async () => {
      // Durable Objects run such a call after the transaction, outside it (storage-semantics.test.ts);
      // without an async context we cannot tell it from a call by the transaction's own closure.
      const { storage } = await setup()
      const open = storage.transaction(async (txn) => {
        await txn.put('inside', 1)
        await sleep(20)
        txn.rollback()
      })
      await sleep(1)
      const later = storage.transaction(async (txn) => {
        await txn.put('in-the-later-one', 1)
        return txn.get('inside')
      })
      expect(await later).toBe(1)
      await storage.put('put-after-the-await', 1)
      await open
      expect(await storage.list()).toEqual(new Map())
    })
  })

  describe('flush', () => {
    it('sends 100 buffered keys in one request, and nothing when nothing is buffered', async () => {
      const { storage, requests, committed } = await setup()
      for (let i = 0; i < 100; i++) await storage.put(`k${String(i).padStart(3, '0')}`, i)
      expect(storage.hasPendingWrites()).toBe(true)
      let result: unknown
      expect(await requests(async () => (result = await storage.flush()))).toBe(1)
      expect(result).toEqual({ expiresAt: expect.any(Number) })
      expect((await committed()).size).toBe(100)
      expect(storage.hasPendingWrites()).toBe(false)
      expect(await requests(async () => expect(await storage.flush()).toBeUndefined())).toBe(0)
    })

    it('asks the store to extend the lease unless extendLease is false (a guard heartbeats its leases)', async () => {
      const { store, lease } = await setup()
      const extending = new ObjectStorage({ store, lease })
      await extending.put('a', 1)
      await extending.flush()
      expect(store.log.at(-1)).toEqual({ op: 'flush', writes: { deleteAll: false, entries: new Map([['a', '[1]']]) } })
      const fenceOnly = new ObjectStorage({ store, lease, extendLease: false })
      await fenceOnly.put('a', 2)
      await fenceOnly.flush()
      expect(store.log.at(-1)).toEqual({
        op: 'flush',
        writes: { deleteAll: false, entries: new Map([['a', '[2]']]), extend: false },
      })
      expect(() => new ObjectStorage({ store, lease, extendLease: 'no' as never })).toThrow(
        expect.objectContaining({ name: 'InvalidArgumentError', argument: 'options.extendLease' }),
      )
    })

    it('keeps serving the turn after a flush from its cache: the flushed values cost no request', async () => {
      const { storage, requests } = await setup()
      await storage.put({ a: 1, b: 2 })
      await storage.delete('b')
      await storage.flush()
      expect(await requests(async () => expect([...(await storage.get(['a', 'b']))]).toEqual([['a', 1]]))).toBe(0)
    })

    it('takes its snapshot inside the call: later writes go to the next flush, reads see both meanwhile', async () => {
      const { storage, store, committed } = await setup()
      let release!: () => void
      store.holdFlush = new Promise<void>((resolve) => (release = resolve))
      await storage.put('first', 1)
      const flushed = storage.flush()
      await storage.put('second', 2)
      expect(storage.hasPendingWrites()).toBe(true)
      expect([...(await storage.get(['first', 'second']))]).toEqual([
        ['first', 1],
        ['second', 2],
      ])
      expect(keysOf(await storage.list())).toEqual(['first', 'second'])
      const next = storage.flush()
      release()
      store.holdFlush = undefined
      await flushed
      expect(store.log.filter((entry) => entry.op === 'flush')[0]).toMatchObject({
        writes: { entries: new Map([['first', '[1]']]) },
      })
      await next
      expect(keysOf(await committed())).toEqual(['first', 'second'])
    })

    it('of a stale holder rejects StaleFencingTokenError, writes nothing, and every later call rejects too', async () => {
      const { storage, leases, memory, lease, requests } = await setup()
      await seed(memory, lease, { keep: 'old' })
      await storage.put('keep', 'new')
      await leases.release(lease)
      const other = await leases.acquire({ doId: 'obj', nodeId: 'node-b', ttlMs: TTL })
      if (!other.acquired) throw new Error('expected the lease')
      const error = await storage.flush().catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StaleFencingTokenError)
      expect(error).toMatchObject({ doId: 'obj', token: lease.fencingToken })
      expect(await new ObjectStorage({ store: memory, lease: { ...other.lock, ttlMs: TTL } }).get('keep')).toBe('old')
      expect(storage.hasPendingWrites()).toBe(false)
      expect(
        await requests(async () => {
          await expect(storage.get('keep')).rejects.toBe(error)
          await expect(storage.put('x', 1)).rejects.toBe(error)
          await expect(storage.flush()).rejects.toBe(error)
        }),
      ).toBe(0)
    })

    it('when the store is unreachable, rejects with its error and ends the storage (the turn failed)', async () => {
      const { storage, store, committed } = await setup()
      await storage.put('a', 1)
      const down = new StoreUnavailableError('down')
      store.failWith = down
      await expect(storage.flush()).rejects.toBe(down)
      store.failWith = undefined
      await expect(storage.list()).rejects.toBe(down)
      expect(await committed()).toEqual(new Map())
    })

    it('a failed read ends the storage as well: its cache can no longer be trusted to be complete', async () => {
      const { storage, store } = await setup()
      const down = new StoreUnavailableError('down')
      store.failWith = down
      await expect(storage.get('a')).rejects.toBe(down)
      store.failWith = undefined
      await expect(storage.get('a')).rejects.toBe(down)
    })

    it('sync() flushes', async () => {
      const { storage, committed } = await setup()
      await storage.put('a', 1)
      await storage.sync()
      expect(keysOf(await committed())).toEqual(['a'])
    })
  })

  describe('the lease', () => {
    it('once its signal fired, every call rejects with its LockLostError before any I/O, writes dropped', async () => {
      const controller = new AbortController()
      const { storage, requests, committed, lease } = await setup({ signal: controller.signal })
      await storage.put('a', 1)
      const lost = new LockLostError(lease.doId, lease.fencingToken, 'refresh failed')
      controller.abort(lost)
      expect(storage.hasPendingWrites()).toBe(false)
      expect(
        await requests(async () => {
          await expect(storage.get('a')).rejects.toBe(lost)
          await expect(storage.list()).rejects.toBe(lost)
          await expect(storage.put('b', 2)).rejects.toBe(lost)
          await expect(storage.delete('a')).rejects.toBe(lost)
          await expect(storage.transaction(async () => 1)).rejects.toBe(lost)
          await expect(storage.flush()).rejects.toBe(lost)
        }),
      ).toBe(0)
      expect(await committed()).toEqual(new Map())
    })

    it('a read in flight when the signal fires rejects rather than answer from a lease that ended', async () => {
      const controller = new AbortController()
      const { storage, lease } = await setup({ signal: controller.signal })
      const read = storage.get('a')
      controller.abort(new LockLostError(lease.doId, lease.fencingToken, 'released'))
      await expect(read).rejects.toBeInstanceOf(LockLostError)
    })

    it('a signal fired with another reason still rejects with a LockLostError', async () => {
      const controller = new AbortController()
      const { storage } = await setup({ signal: controller.signal })
      controller.abort(new Error('shutting down'))
      await expect(storage.get('a')).rejects.toBeInstanceOf(LockLostError)
    })

    it('discard() ends the storage without a flush', async () => {
      const { storage, requests } = await setup()
      await storage.put('a', 1)
      storage.discard()
      expect(await requests(() => expect(storage.flush()).rejects.toBeInstanceOf(LockLostError))).toBe(0)
      const reason = new Error('activation ended')
      const other = (await setup()).storage
      other.discard(reason)
      await expect(other.get('a')).rejects.toBe(reason)
    })
  })

  describe('constructor', () => {
    it('validates the store and the lease before any I/O', async () => {
      const { lease, store } = await setup()
      const bad: Array<[unknown, string]> = [
        [null, 'options'],
        [{ store: {}, lease }, 'options.store'],
        [{ store, lease: null }, 'options.lease'],
        [{ store, lease: { ...lease, doId: '' } }, 'options.lease.doId'],
        [{ store, lease: { ...lease, fencingToken: 0 } }, 'options.lease.fencingToken'],
        [{ store, lease: { ...lease, ttlMs: 0 } }, 'options.lease.ttlMs'],
        [{ store, lease: { ...lease, signal: {} } }, 'options.lease.signal'],
      ]
      for (const [options, argument] of bad) {
        expect(() => new ObjectStorage(options as never), argument).toThrow(
          expect.objectContaining({ argument }) as unknown as Error,
        )
      }
    })
  })
})

describe('compareKeys', () => {
  it('orders by code point: astral keys after U+FFFF, unlike UTF-16 order', () => {
    const keys = ['\u{1F600}', '\uFFFF', 'b', '', 'a', 'ab', '\uE000', '\uD7FF', '\u{10000}']
    expect([...keys].sort(compareKeys)).toEqual([
      '',
      'a',
      'ab',
      'b',
      '\uD7FF',
      '\uE000',
      '\uFFFF',
      '\u{10000}',
      '\u{1F600}',
    ])
  })
})
