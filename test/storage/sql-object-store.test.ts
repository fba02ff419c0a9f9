import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import {
  InvalidArgumentError,
  LibSQLLockStore,
  StaleFencingTokenError,
  StatementError,
  StoreUnavailableError,
  type LockRecord,
  type SqlDriver,
  type SqlStatement,
} from '../../src/index.js'
import type { ObjectLease } from '../../src/store/object-store.js'
import { MAX_BOUND_PARAMETERS, MAX_ROWS_PER_PUT, prefixSuccessor } from '../../src/store/object-sql.js'
import { SqlObjectStore } from '../../src/store/sql-object-store.js'
import { countingClient, sleep } from '../support/counting-client.js'
import { describeObjectStoreContract } from './object-store-contract.js'
import { libsqlDriver } from './support/libsql-driver.js'
import { asRemote } from '../support/remote.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-objects-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let fileNo = 0
const freshFile = () => `file:${join(dir, `objects-${fileNo++}.db`)}`

/** Both stores over one (counted) client, as LibSQLLockStore will carry its SqlObjectStore. */
function harness(raw: Client) {
  const counted = countingClient(raw)
  return {
    locks: new LibSQLLockStore(counted.client),
    objects: new SqlObjectStore(libsqlDriver(counted.client)),
    requests: counted.requests,
    close: () => raw.close(),
  }
}

describeObjectStoreContract('SqlObjectStore on libSQL :memory:', async () => harness(createClient({ url: ':memory:' })))

describeObjectStoreContract('SqlObjectStore on a libSQL file: database (WAL)', async () => {
  const raw = createClient({ url: freshFile() })
  await raw.execute('PRAGMA journal_mode=WAL')
  await raw.execute('PRAGMA busy_timeout=5000')
  return harness(raw)
})

describeObjectStoreContract(
  'SqlObjectStore on the libSQL remote path (protocol "http", a file: database behind it)',
  async () => {
    const raw = createClient({ url: freshFile() })
    await raw.execute('PRAGMA journal_mode=WAL')
    return harness(asRemote(raw))
  },
)

/** A driver that records every call (and may rewrite its statements) before passing it on. */
function spy(driver: SqlDriver, rewrite: (statements: SqlStatement[]) => SqlStatement[] = (s) => s) {
  const calls: Array<{ method: 'execute' | 'batch'; statements: SqlStatement[] }> = []
  const wrapped: SqlDriver = {
    execute: (statement) => {
      calls.push({ method: 'execute', statements: [statement] })
      return driver.execute(rewrite([statement])[0]!)
    },
    batch: (statements) => {
      calls.push({ method: 'batch', statements })
      return driver.batch(rewrite(statements))
    },
  }
  return { driver: wrapped, calls }
}

/** The highest parameter a statement binds: `?N`, or its number of arguments. */
function boundParameters(statement: SqlStatement): number {
  const numbered = [...statement.sql.matchAll(/\?(\d+)/g)].map((m) => Number(m[1]))
  return Math.max(statement.args?.length ?? 0, ...numbered)
}

describe('SqlObjectStore', () => {
  const clients: Client[] = []
  const open = (url = ':memory:') => {
    const c = createClient({ url })
    clients.push(c)
    return c
  }
  afterEach(() => {
    vi.useRealTimers()
    while (clients.length) clients.pop()!.close()
  })

  async function setup(client = open(), tables: { table?: string; lockTable?: string } = {}, driver?: SqlDriver) {
    const locks = new LibSQLLockStore(client, { table: tables.lockTable })
    const objects = new SqlObjectStore(driver ?? libsqlDriver(client), tables)
    await locks.ensureSchema()
    await objects.ensureSchema()
    const take = async (doId = 'obj', nodeId = 'node-a', ttlMs = 10_000): Promise<ObjectLease & LockRecord> => {
      const r = await locks.acquire({ doId, nodeId, ttlMs })
      if (!r.acquired) throw new Error('expected the lease')
      return { ...r.lock, ttlMs }
    }
    return { client, locks, objects, take }
  }

  describe('construction', () => {
    it('refuses something that is not a SqlDriver, naming the driver', () => {
      for (const driver of [null, undefined, {}, { execute() {} }, 'db']) {
        const error = (() => {
          try {
            new SqlObjectStore(driver as never)
          } catch (e) {
            return e
          }
        })()
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect((error as InvalidArgumentError).argument).toBe('driver')
      }
    })

    it('refuses table names that are not plain identifiers, json_each, or the lock table itself', () => {
      const driver = libsqlDriver(open())
      const refused: Array<[Record<string, unknown>, string]> = [
        [{ table: '' }, 'table'],
        [{ table: '1objects' }, 'table'],
        [{ table: 'do-storage' }, 'table'],
        [{ table: 'x; DROP TABLE do_locks' }, 'table'],
        [{ table: '"q"' }, 'table'],
        [{ table: 'sqlite_master' }, 'table'],
        [{ table: 7 }, 'table'],
        [{ table: 'json_each' }, 'table'],
        [{ table: 'JSON_EACH' }, 'table'],
        [{ lockTable: 'json_each' }, 'lockTable'],
        [{ table: 'do_locks' }, 'table'],
        [{ table: 'Locks', lockTable: 'locks' }, 'table'],
        [{ lockTable: 'no way' }, 'lockTable'],
      ]
      for (const [options, argument] of refused) {
        const error = (() => {
          try {
            new SqlObjectStore(driver, options as never)
          } catch (e) {
            return e
          }
        })()
        expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidArgumentError)
        expect((error as InvalidArgumentError).argument, JSON.stringify(options)).toBe(argument)
      }
      expect(() => new SqlObjectStore(driver, null as never)).toThrow(InvalidArgumentError)
    })

    it('defaults to do_storage beside do_locks', () => {
      const objects = new SqlObjectStore(libsqlDriver(open()))
      expect(objects.sql.table).toBe('do_storage')
      expect(objects.sql.lockTable).toBe('do_locks')
      expect(objects.lockSql.table).toBe('do_locks')
    })
  })

  it('keeps objects in a configurable table over a configurable lock table, apart from the defaults', async () => {
    const client = open()
    const tenant = await setup(client, { table: 'tenant_storage', lockTable: 'tenant_locks' })
    const main = await setup(client)
    const t = await tenant.take()
    const m = await main.take()
    expect(t.fencingToken).toBe(1)
    expect(m.fencingToken).toBe(1)
    await tenant.objects.flush(t, { entries: new Map([['k', 'tenant']]) })
    await main.objects.flush(m, { entries: new Map([['k', 'main']]) })
    expect(await tenant.objects.get(t, ['k'])).toEqual(new Map([['k', 'tenant']]))
    expect(await main.objects.get(m, ['k'])).toEqual(new Map([['k', 'main']]))
    // The tenant lease does not open the default tables: same id, node and token, other lock table.
    await main.locks.release(m)
    await expect(main.objects.get(t, ['k'])).rejects.toBeInstanceOf(StaleFencingTokenError)
    const names = (await client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")).rows
    // (The lock store's own tables are its business; only the storage tables are checked here.)
    expect(names.map((r) => String(r.name)).filter((n) => n.endsWith('_storage'))).toEqual([
      'do_storage',
      'tenant_locks_storage', // the tenant lock store's own default, unused here
      'tenant_storage',
    ])
  })

  // Names that would change an unqualified statement's meaning: upsert's `excluded`, triggers' `new` and
  // `old`, the columns' own names, and the aliases the statements use.
  for (const [table, lockTable] of [
    ['excluded', 'new'],
    ['new', 'excluded'],
    ['old', 'do_id'],
    ['key', 'value'],
    ['value', 'key'],
    ['s', 'l'],
    ['l', 'j'],
    ['j', 's'],
    ['node_id', 'fencing_token'],
  ] as const) {
    it(`works over tables named "${table}" (storage) and "${lockTable}" (locks)`, async () => {
      const { objects, locks, take } = await setup(open(), { table, lockTable })
      const lease = await take()
      await objects.flush(lease, {
        entries: new Map([
          ['a', '1'],
          ['b', '2'],
          ['c', '3'],
        ]),
      })
      await objects.flush(lease, {
        entries: new Map([
          ['a', 'one'],
          ['b', null],
        ]),
      })
      expect(await objects.get(lease, ['a', 'b', 'c'])).toEqual(
        new Map([
          ['a', 'one'],
          ['c', '3'],
        ]),
      )
      expect(await objects.list(lease, { prefix: 'c', reverse: true, limit: 1 })).toEqual([['c', '3']])
      await expect(
        objects.flush({ ...lease, fencingToken: 2 }, { deleteAll: true, entries: new Map() }),
      ).rejects.toBeInstanceOf(StaleFencingTokenError)
      await objects.flush(lease, { deleteAll: true, entries: new Map() })
      expect(await objects.list(lease, {})).toEqual([])
      expect(await locks.get('obj')).toMatchObject({ held: true, fencingToken: 1 })
    })
  }

  describe('what it sends', () => {
    it('sends get and list as one SELECT each (execute), and flush as one batch', async () => {
      const client = open()
      const s = spy(libsqlDriver(client))
      const { objects, take } = await setup(client, {}, s.driver)
      const lease = await take()
      s.calls.length = 0
      await objects.flush(lease, { entries: new Map([['a', '1']]) })
      await objects.get(lease, ['a'])
      await objects.list(lease, { prefix: 'a' })
      expect(s.calls.map((c) => c.method)).toEqual(['batch', 'execute', 'execute'])
      for (const call of s.calls.slice(1)) expect(call.statements[0]!.sql.trimStart()).toMatch(/^SELECT /)
    })

    it('flushes as [extend, fence, deleteAll, deletes, puts in chunks], each statement under D1s 100 parameters', async () => {
      const client = open()
      const s = spy(libsqlDriver(client))
      const { objects, locks, take } = await setup(client, {}, s.driver)
      const lease = await take()
      const entries = new Map<string, string | null>()
      for (let i = 0; i < 100; i++) entries.set(`put-${i}`, `v${i}`)
      for (let i = 0; i < 30; i++) entries.set(`del-${i}`, null)
      s.calls.length = 0
      await objects.flush(lease, { entries })
      const [call] = s.calls
      const sql = call!.statements.map((st) => st.sql)
      expect(sql[0]).toBe(locks.sql.extend)
      expect(sql[1]).toBe(objects.sql.extendedFence)
      expect(sql[2]).toBe(objects.sql.delete)
      const puts = call!.statements.slice(3)
      expect(puts.map((st) => (st.args!.length - 1) / 2)).toEqual([
        MAX_ROWS_PER_PUT,
        MAX_ROWS_PER_PUT,
        100 - 2 * MAX_ROWS_PER_PUT,
      ])
      for (const st of call!.statements) expect(boundParameters(st)).toBeLessThanOrEqual(MAX_BOUND_PARAMETERS)

      s.calls.length = 0
      await objects.flush(lease, { deleteAll: true, entries })
      const after = s.calls[0]!.statements.map((st) => st.sql)
      // After deleteAll the deletes would find nothing: they are not sent.
      expect(after.slice(0, 3)).toEqual([locks.sql.extend, objects.sql.extendedFence, objects.sql.deleteAll])
      expect(after.slice(3).every((q) => q.trimStart().startsWith('INSERT INTO "do_storage"'))).toBe(true)
    })

    it('flushes with extend: false as [fence, lease row read, writes]: the lock row is read, not written', async () => {
      const client = open()
      const s = spy(libsqlDriver(client))
      const { objects, locks, take } = await setup(client, {}, s.driver)
      const lease = await take()
      const row = await locks.get(lease.doId)
      s.calls.length = 0
      const { expiresAt } = await objects.flush(lease, { entries: new Map([['k', 'v']]), extend: false })
      const sql = s.calls[0]!.statements.map((st) => st.sql)
      expect(sql).toEqual([objects.sql.extendedFence, objects.sql.leaseState, objects.sql.put(1)])
      expect(sql).not.toContain(locks.sql.extend)
      // The expiry the lease had: nothing of the lock row changed.
      expect(expiresAt).toBe(row!.expiresAt)
      const { storeNow: _, ...before } = row!
      const { storeNow: __, ...after } = (await locks.get(lease.doId))!
      expect(after).toEqual(before)
    })

    it('binds many keys of a get as ONE JSON argument (D1 binds at most 100 per statement)', async () => {
      const client = open()
      const s = spy(libsqlDriver(client))
      const { objects, take } = await setup(client, {}, s.driver)
      const lease = await take()
      s.calls.length = 0
      await objects.get(
        lease,
        Array.from({ length: 128 }, (_, i) => `k${i}`),
      )
      expect(s.calls[0]!.statements[0]!.args).toHaveLength(4)
      expect(boundParameters(s.calls[0]!.statements[0]!)).toBe(4)
    })

    it('splits a huge delete into JSON arguments of at most 1 MB each, still one batch', async () => {
      const client = open()
      const s = spy(libsqlDriver(client))
      const { objects, take } = await setup(client, {}, s.driver)
      const lease = await take()
      const big = (i: number) => `${String(i).padStart(4, '0')}${'\u{1F600}'.repeat(1_000)}`
      await objects.flush(lease, { entries: new Map(Array.from({ length: 400 }, (_, i) => [big(i), 'v'])) })
      s.calls.length = 0
      await objects.flush(lease, { entries: new Map(Array.from({ length: 400 }, (_, i) => [big(i), null])) })
      expect(s.calls).toHaveLength(1)
      const deletes = s.calls[0]!.statements.filter((st) => st.sql === objects.sql.delete)
      expect(deletes.length).toBeGreaterThan(1)
      for (const st of deletes)
        expect(new TextEncoder().encode(st.args![1] as string).length).toBeLessThanOrEqual(1_000_000)
      expect(await objects.list(lease, {})).toEqual([])
    })
  })

  describe('failure', () => {
    it('rolls back every write and the lease extension when a later statement of the flush fails', async () => {
      const client = open()
      let breakLast = false
      const s = spy(libsqlDriver(client), (statements) =>
        breakLast ? [...statements.slice(0, -1), { sql: 'INSERT INTO no_such_table VALUES (1)' }] : statements,
      )
      const { objects, locks, take } = await setup(client, {}, s.driver)
      const lease = await take('obj', 'node-a', 5_000)
      await objects.flush(lease, { entries: new Map([['a', 'before']]) })
      const row = await locks.get('obj')
      breakLast = true
      const entries = new Map(Array.from({ length: 120 }, (_, i) => [`k${i}`, 'x'] as [string, string]))
      entries.set('a', 'after')
      const error = await objects
        .flush({ ...lease, ttlMs: 60_000 }, { deleteAll: true, entries })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StatementError)
      expect((error as Error).message).toMatch(/^statement failed \(SQLITE_ERROR\): no such table: .*no_such_table/)
      breakLast = false
      expect(await objects.list(lease, {})).toEqual([['a', 'before']])
      expect((await locks.get('obj'))!.expiresAt).toBe(row!.expiresAt)
    })

    it('reports a busy database as retryable, and not as a stale lease', async () => {
      const busy = Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY' })
      const objects = new SqlObjectStore({
        execute: async () => {
          throw busy
        },
        batch: async () => {
          throw busy
        },
      })
      const lease = { doId: 'x', nodeId: 'n', fencingToken: 1, ttlMs: 1_000 }
      for (const call of [
        objects.flush(lease, { entries: new Map() }),
        objects.get(lease, ['k']),
        objects.list(lease, {}),
        objects.ensureSchema(),
      ]) {
        const error = await call.catch((e: unknown) => e)
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect(error).toMatchObject({ retryable: true, cause: busy })
      }
    })

    it('refuses to pass off a corrupt row (a BLOB value written behind its back) as a value', async () => {
      const { client, objects, take } = await setup()
      const lease = await take()
      await client.execute({ sql: "INSERT INTO do_storage VALUES ('obj', 'blob', X'00ff')", args: [] })
      for (const call of [objects.get(lease, ['blob']), objects.list(lease, {})]) {
        const error = await call.catch((e: unknown) => e)
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect(error).toMatchObject({ retryable: false })
        expect((error as Error).message).toMatch(/corrupt/)
      }
    })

    it('neither reads nor writes under a lease row whose expiry is past 2^53 (corrupt: the fence does not hold it either)', async () => {
      const { client, objects, take } = await setup()
      const lease = await take()
      await objects.flush(lease, { entries: new Map([['k', 'v']]) })
      await client.execute({ sql: "UPDATE do_locks SET expires_at = 9007199254740993 WHERE do_id = 'obj'", args: [] })
      await expect(objects.get(lease, ['k'])).rejects.toBeInstanceOf(StaleFencingTokenError)
      await expect(objects.list(lease, {})).rejects.toBeInstanceOf(StaleFencingTokenError)
      await expect(objects.flush(lease, { entries: new Map([['k', 'w']]) })).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      await expect(objects.flush(lease, { entries: new Map([['k', 'w']]), extend: false })).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
    })

    it('writes nothing under a lease whose row refresh refuses (corrupt metadata): the fence aborts', async () => {
      const { client, objects, locks, take } = await setup()
      const lease = await take()
      await client.execute({ sql: "UPDATE do_locks SET metadata = '{broken' WHERE do_id = 'obj'", args: [] })
      await expect(objects.flush(lease, { entries: new Map([['k', 'v']]) })).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      await expect(objects.flush(lease, { entries: new Map([['k', 'v']]), extend: false })).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      await client.execute({ sql: "UPDATE do_locks SET metadata = NULL WHERE do_id = 'obj'", args: [] })
      expect(await objects.get(lease, ['k'])).toEqual(new Map())
      expect((await locks.get('obj'))!.expiresAt).toBe(lease.expiresAt)
    })
  })

  it('a holder racing a takeover on another connection: the new holder sees every acknowledged flush and nothing after', async () => {
    const file = freshFile()
    const a = open(file)
    const b = open(file)
    for (const c of [a, b]) {
      await c.execute('PRAGMA journal_mode=WAL')
      await c.execute('PRAGMA busy_timeout=5000')
    }
    const holder = await setup(a)
    const rival = await setup(b)
    for (let attempt = 0; attempt < 5; attempt++) {
      const doId = `race-${attempt}`
      // Short leases, renewed only by the holder's own flushes, with gaps that sometimes outlast them.
      const lease = { ...(await holder.take(doId, 'node-a', 15)), ttlMs: 15 }
      let acknowledged = -1
      let refused = false
      const writer = (async () => {
        for (let i = 0; i < 400 && !refused; i++) {
          try {
            await holder.objects.flush(lease, { entries: new Map([['n', String(i)]]) })
            acknowledged = i
          } catch (error) {
            expect(error).toBeInstanceOf(StaleFencingTokenError)
            refused = true
          }
          await sleep(i % 7 === 6 ? 25 : 1)
        }
      })()
      let taken: (ObjectLease & LockRecord) | undefined
      while (!taken) {
        const r = await rival.locks.acquire({ doId, nodeId: 'node-b', ttlMs: 10_000 })
        if (r.acquired) taken = { ...r.lock, ttlMs: 10_000 }
        else await sleep(1)
      }
      await writer
      const seen = await rival.objects.get(taken, ['n'])
      expect(seen.get('n')).toBe(acknowledged < 0 ? undefined : String(acknowledged))
      expect(refused || acknowledged === 399).toBe(true)
    }
  })

  it("judges the lease by the database's clock, not the node's", async () => {
    const { objects, take } = await setup()
    const lease = await take('obj', 'node-a', 10_000)
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 3_600_000) // the node's clock runs an hour ahead
    await objects.flush(lease, { entries: new Map([['k', 'v']]) })
    expect(await objects.get(lease, ['k'])).toEqual(new Map([['k', 'v']]))
  })

  it('lets a holder mix raw fenced writes and flushes under one lease, in the same database', async () => {
    const { client, objects, locks, take } = await setup()
    await client.execute('CREATE TABLE side (id TEXT PRIMARY KEY, n INTEGER)')
    const lease = await take()
    await locks.fencedWrite(lease, [{ sql: "INSERT INTO side VALUES ('x', 1)" }])
    await objects.flush(lease, { entries: new Map([['k', 'v']]) })
    await locks.release(lease)
    await expect(locks.fencedWrite(lease, [{ sql: 'UPDATE side SET n = 2' }])).rejects.toBeInstanceOf(
      StaleFencingTokenError,
    )
    await expect(objects.flush(lease, { entries: new Map() })).rejects.toBeInstanceOf(StaleFencingTokenError)
  })
})

describe('prefixSuccessor', () => {
  it('increments the last code point, skipping the surrogate range and carrying past U+10FFFF', () => {
    expect(prefixSuccessor('ab')).toBe('ac')
    expect(prefixSuccessor('a\uD7FF')).toBe('a\uE000')
    expect(prefixSuccessor('a\uFFFF')).toBe('a\u{10000}')
    expect(prefixSuccessor('a\u{1F600}')).toBe('a\u{1F601}')
    expect(prefixSuccessor('a\u{10FFFF}')).toBe('b')
    expect(prefixSuccessor('a\u{10FFFF}\u{10FFFF}')).toBe('b')
    expect(prefixSuccessor('\u{10FFFF}')).toBeUndefined()
    expect(prefixSuccessor('')).toBeUndefined()
  })
})
