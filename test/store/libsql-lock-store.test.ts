import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import {
  CorruptLockRowError,
  InvalidArgumentError,
  LibSQLLockStore,
  SqlLockStore,
  StatementError,
  StoreUnavailableError,
  type LibSQLClientLike,
  type Lock,
  recoverLibSQLConnection,
} from '../../src/index.js'
import { countingClient } from '../support/counting-client.js'
import { describeLockStoreContract } from './contract.js'
import { describeFenceContract } from './fence-contract.js'
import { fenceHarness } from './libsql-harness.js'
import { asRemote } from '../support/remote.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-store-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let fileNo = 0
const freshFile = () => `file:${join(dir, `locks-${fileNo++}.db`)}`

describeLockStoreContract('LibSQLLockStore on :memory:', async () => {
  const counted = countingClient(createClient({ url: ':memory:' }))
  return { store: new LibSQLLockStore(counted.client), requests: counted.requests, close: () => counted.client.close() }
})

describeLockStoreContract('LibSQLLockStore on a file: database (WAL)', async () => {
  const raw = createClient({ url: freshFile() })
  await raw.execute('PRAGMA journal_mode=WAL')
  await raw.execute('PRAGMA busy_timeout=5000')
  const counted = countingClient(raw)
  return { store: new LibSQLLockStore(counted.client), requests: counted.requests, close: () => raw.close() }
})

// The remote path (Turso over HTTP or WebSocket): single statements go through `client.execute`, not
// wrapped in a write batch, and SQLITE_BUSY does not swap connections (test/support/remote.ts).
describeLockStoreContract(
  'LibSQLLockStore on its remote path (protocol "http", a file: database behind it)',
  async () => {
    const raw = createClient({ url: freshFile() })
    await raw.execute('PRAGMA journal_mode=WAL')
    const counted = countingClient(asRemote(raw))
    return { store: new LibSQLLockStore(counted.client), requests: counted.requests, close: () => raw.close() }
  },
)

describeFenceContract('LibSQLLockStore on :memory:', async () => {
  const raw = createClient({ url: ':memory:' })
  return fenceHarness(raw, new LibSQLLockStore(raw))
})

describeFenceContract('LibSQLLockStore on a file: database (WAL)', async () => {
  const raw = createClient({ url: freshFile() })
  await raw.execute('PRAGMA journal_mode=WAL')
  return fenceHarness(raw, new LibSQLLockStore(raw))
})

describeFenceContract('LibSQLLockStore on its remote path', async () => {
  const raw = createClient({ url: freshFile() })
  return fenceHarness(raw, new LibSQLLockStore(asRemote(raw)))
})

describe('LibSQLLockStore on its remote path', () => {
  it('sends refresh, release, get, list and forceRelease as one plain execute each, and acquire as one batch', async () => {
    const raw = createClient({ url: ':memory:' })
    try {
      const remote = asRemote(raw)
      const store = new LibSQLLockStore(remote)
      await store.ensureSchema()
      remote.calls.length = 0
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      if (!r.acquired) throw new Error('expected the lease')
      await store.refresh({ ...r.lock, ttlMs: 10_000 })
      await store.get('x')
      await store.list()
      await store.release(r.lock)
      await store.forceRelease('x')
      expect(remote.calls).toEqual(['batch', 'execute', 'execute', 'execute', 'execute', 'execute'])
    } finally {
      raw.close()
    }
  })

  it('does not try to swap connections after SQLITE_BUSY (a remote client has none to swap)', async () => {
    let swaps = 0
    const store = new LibSQLLockStore({
      protocol: 'http',
      execute: async () => {
        throw Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY' })
      },
      batch: async () => {
        throw Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY' })
      },
      transaction: async () => {
        swaps++
        return { close() {} }
      },
    })
    await expect(store.release({ doId: 'x', nodeId: 'a', fencingToken: 1 })).rejects.toMatchObject({ retryable: true })
    await expect(store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1_000 })).rejects.toMatchObject({ retryable: true })
    expect(swaps).toBe(0)
  })
})

describe('LibSQLLockStore', () => {
  const clients: Client[] = []
  const open = (url = ':memory:', intMode?: 'number' | 'bigint' | 'string') => {
    const c = createClient({ url, intMode })
    clients.push(c)
    return c
  }
  afterEach(() => {
    vi.useRealTimers()
    while (clients.length) clients.pop()!.close()
  })

  it('rejects table names that are not plain SQL identifiers', () => {
    const client = open()
    for (const table of ['', '1locks', 'do-locks', 'locks; DROP TABLE x', '"q"', 'sqlite_master', 'a'.repeat(57), 7]) {
      expect(() => new LibSQLLockStore(client, { table: table as string })).toThrow(InvalidArgumentError)
    }
    expect(() => new LibSQLLockStore({} as never)).toThrow(/client/)
  })

  it('refuses a driver without batch() when the store is built, not at the first acquire', () => {
    const error = (() => {
      try {
        new SqlLockStore({ execute: async () => ({ rows: [], rowsAffected: 0 }) } as never)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(InvalidArgumentError)
    expect((error as InvalidArgumentError).argument).toBe('client')
  })

  it('keeps leases in a configurable table, independent of the default one', async () => {
    const client = open()
    const tenant = new LibSQLLockStore(client, { table: 'tenant_locks' })
    const main = new LibSQLLockStore(client)
    await tenant.ensureSchema()
    await main.ensureSchema()
    expect((await tenant.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })).acquired).toBe(true)
    expect((await main.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 })).acquired).toBe(true)
    const tables = await client.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    expect(tables.rows.map((r) => r.name)).toEqual([
      'do_locks',
      'do_locks_handover',
      'do_locks_high_water',
      'do_storage',
      'tenant_locks',
      'tenant_locks_handover',
      'tenant_locks_high_water',
      'tenant_locks_storage',
    ])
  })

  it('uses the documented schema column names', async () => {
    const client = open()
    await new LibSQLLockStore(client).ensureSchema()
    const cols = await client.execute('PRAGMA table_info(do_locks)')
    expect(cols.rows.map((r) => r.name)).toEqual([
      'do_id',
      'node_id',
      'acquired_at',
      'expires_at',
      'fencing_token',
      'metadata',
    ])
  })

  it('judges expiry by the database clock, not by the callers wildly different clocks', async () => {
    const url = freshFile()
    const storeA = new LibSQLLockStore(open(url))
    const storeB = new LibSQLLockStore(open(url))
    await storeA.ensureSchema()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('1999-01-01T00:00:00Z')) // node A thinks it is 1999
    const a = await storeA.acquire({ doId: 'x', nodeId: 'a', ttlMs: 200 })
    expect(a.acquired).toBe(true)
    if (!a.acquired) return
    expect(Math.abs(a.lock.acquiredAt - performance.timeOrigin - performance.now())).toBeLessThan(5_000)
    vi.setSystemTime(new Date('2099-01-01T00:00:00Z')) // node B thinks the lease ran out decades ago
    expect((await storeB.acquire({ doId: 'x', nodeId: 'b', ttlMs: 200 })).acquired).toBe(false)
    vi.useRealTimers()
    await new Promise((r) => setTimeout(r, 250))
    const b = await storeB.acquire({ doId: 'x', nodeId: 'b', ttlMs: 200 })
    expect(b.acquired && b.lock.fencingToken).toBe(2)
  })

  it('keeps tokens across process restarts (a new client on the same file)', async () => {
    const url = freshFile()
    const first = new LibSQLLockStore(open(url))
    await first.ensureSchema()
    const r1 = await first.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
    if (r1.acquired) await first.release(r1.lock)
    clients.pop()!.close()
    const second = new LibSQLLockStore(open(url))
    const r2 = await second.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 })
    expect(r2.acquired && r2.lock.fencingToken).toBe(2)
  })

  for (const intMode of ['bigint', 'string'] as const) {
    it(`works with a client in intMode "${intMode}"`, async () => {
      const store = new LibSQLLockStore(open(':memory:', intMode))
      await store.ensureSchema()
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired && typeof r.lock.fencingToken).toBe('number')
      expect(await store.get('x')).toMatchObject({ fencingToken: 1, held: true })
    })
  }

  describe('corrupt rows', () => {
    it('takes over a row whose expires_at is garbage, still incrementing the token', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('x', 'ghost', 0, 'never', 41, NULL)")
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired && r.lock.fencingToken).toBe(42)
    })

    it('refuses to take a row whose fencing token is garbage, with a typed error naming the column', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('x', 'ghost', 0, 0, 'zzz', NULL)")
      const error = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }).catch((e) => e)
      expect(error).toBeInstanceOf(CorruptLockRowError)
      expect(error).toMatchObject({ doId: 'x', column: 'fencing_token' })
    })

    for (const intMode of ['number', 'bigint', 'string'] as const) {
      it(`refuses, without committing anything, a released row whose next token would not be a safe integer (intMode ${intMode})`, async () => {
        const client = open(':memory:', intMode)
        const store = new LibSQLLockStore(client)
        await store.ensureSchema()
        await client.execute("INSERT INTO do_locks VALUES ('x', 'ghost', 0, 0, 9007199254740991, NULL)")
        const error = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }).catch((e: unknown) => e)
        expect(error).toBeInstanceOf(CorruptLockRowError)
        const row = await client.execute(
          "SELECT node_id, CAST(fencing_token AS TEXT) AS t FROM do_locks WHERE do_id = 'x'",
        )
        expect(row.rows[0]).toMatchObject({ node_id: 'ghost', t: '9007199254740991' })
        // One below: the successor is exactly MAX_SAFE_INTEGER, and is handed out.
        await client.execute("UPDATE do_locks SET fencing_token = 9007199254740990 WHERE do_id = 'x'")
        const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
        expect(r.acquired && r.lock.fencingToken).toBe(Number.MAX_SAFE_INTEGER)
      })
    }

    it('refuses, as corrupt and without committing anything, a released row with a negative token', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('x', 'ghost', 0, 2, -5, NULL)")
      const error = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(CorruptLockRowError)
      expect(error).toMatchObject({ column: 'fencing_token', message: expect.stringMatching(/negative/) })
      expect(
        (await client.execute("SELECT node_id, fencing_token FROM do_locks WHERE do_id = 'x'")).rows[0],
      ).toMatchObject({ node_id: 'ghost', fencing_token: -5 })
    })

    it('reports metadata that is not JSON as a corrupt row', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('x', 'ghost', 0, 0, 3, '{nope')")
      await expect(store.get('x')).rejects.toMatchObject({ column: 'metadata' })
      // Acquiring overwrites the bad metadata, so the id is usable again.
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired && r.lock.fencingToken).toBe(4)
    })

    it('does not extend a held row corrupted under its holder: refresh says lost, the lease runs out', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      // A BLOB of valid JSON bytes too: json_valid() accepts it, but it is not the text the library wrote.
      const cases = [
        ['acquired_at', "'garbage'"],
        ['metadata', "'{nope'"],
        ['metadata', "x'7b7d'"],
      ] as const
      for (const [i, [column, garbage]] of cases.entries()) {
        const doId = `${column}-${i}`
        const r = await store.acquire({ doId, nodeId: 'a', ttlMs: 10_000 })
        if (!r.acquired) throw new Error('expected the lease')
        await client.execute(`UPDATE do_locks SET ${column} = ${garbage} WHERE do_id = '${doId}'`)
        expect(await store.refresh({ ...r.lock, ttlMs: 60_000 })).toBeNull()
        const row = await client.execute(`SELECT expires_at FROM do_locks WHERE do_id = '${doId}'`)
        expect(row.rows[0]?.expires_at).toBe(r.lock.expiresAt)
      }
    })

    for (const intMode of ['number', 'bigint', 'string'] as const) {
      describe(`integers beyond 2^53 (intMode ${intMode})`, () => {
        const HUGE = '1152921504606846976' // 2^60: an INTEGER to SQLite, not a safe one to JavaScript
        const setup = async () => {
          const client = open(':memory:', intMode)
          const store = new LibSQLLockStore(client)
          await store.ensureSchema()
          // A held row per column, that column set past 2^53.
          for (const column of ['acquired_at', 'expires_at', 'fencing_token']) {
            const r = await store.acquire({ doId: column, nodeId: 'a', ttlMs: 60_000 })
            if (!r.acquired) throw new Error('expected the lease')
            await client.execute(`UPDATE do_locks SET ${column} = ${HUGE} WHERE do_id = '${column}'`)
          }
          const asText = async (doId: string) =>
            (
              await client.execute({
                sql: `SELECT node_id, CAST(acquired_at AS TEXT) AS acquired_at, CAST(expires_at AS TEXT) AS expires_at,
                  CAST(fencing_token AS TEXT) AS fencing_token FROM do_locks WHERE do_id = ?1`,
                args: [doId],
              })
            ).rows[0]
          return { client, store, asText }
        }

        it('get and acquire report CorruptLockRowError naming the column; a garbage expires_at counts as expired', async () => {
          const { store, asText } = await setup()
          for (const column of ['acquired_at', 'expires_at', 'fencing_token']) {
            await expect(store.get(column)).rejects.toMatchObject({
              name: 'CorruptLockRowError',
              doId: column,
              column,
              message: expect.stringMatching(/2\^53/),
            })
          }
          for (const column of ['acquired_at', 'fencing_token']) {
            const before = await asText(column)
            await expect(store.acquire({ doId: column, nodeId: 'b', ttlMs: 1_000 })).rejects.toMatchObject({
              name: 'CorruptLockRowError',
              column,
            })
            expect(await asText(column)).toEqual(before)
          }
          const taken = await store.acquire({ doId: 'expires_at', nodeId: 'b', ttlMs: 1_000 })
          expect(taken.acquired && taken.lock).toMatchObject({ nodeId: 'b', fencingToken: 2 })
        })

        it('list skips such rows, returning the others, instead of failing whole', async () => {
          const { store } = await setup()
          await store.acquire({ doId: 'good', nodeId: 'a', ttlMs: 60_000 })
          expect((await store.list()).map((l) => l.doId)).toEqual(['good'])
          expect((await store.list({ nodeId: 'a', limit: 1 })).map((l) => l.doId)).toEqual(['good'])
        })

        it('refresh never extends such a row', async () => {
          const { client, store, asText } = await setup()
          const r = await store.acquire({ doId: 'held', nodeId: 'a', ttlMs: 60_000 })
          if (!r.acquired) throw new Error('expected the lease')
          await client.execute(`UPDATE do_locks SET acquired_at = ${HUGE} WHERE do_id = 'held'`)
          const before = await asText('held')
          expect(await store.refresh({ ...r.lock, ttlMs: 120_000 })).toBeNull()
          expect(await asText('held')).toEqual(before)
        })
      })
    }

    it('prune leaves corrupt rows and rows whose token has no safe successor alone', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('text-token', 'ghost', 0, 0, 'zzz', NULL)")
      await client.execute("INSERT INTO do_locks VALUES ('max-token', 'ghost', 0, 0, 9007199254740991, NULL)")
      await client.execute("INSERT INTO do_locks VALUES ('bad-json', 'ghost', 0, 0, 5, '{nope')")
      await client.execute("INSERT INTO do_locks VALUES ('fine', 'ghost', 0, 0, 7, NULL)")
      expect(await store.prune({ olderThanMs: 0 })).toEqual({ removed: 1 })
      const left = await client.execute('SELECT do_id FROM do_locks ORDER BY do_id')
      expect(left.rows.map((r) => r.do_id)).toEqual(['bad-json', 'max-token', 'text-token'])
      expect((await client.execute('SELECT token FROM do_locks_high_water')).rows[0]?.token).toBe(7)
    })

    it('refuses every acquire of a new id, rather than start over at token 1, when the high-water mark is gone', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute('DELETE FROM do_locks_high_water')
      await expect(store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1_000 })).rejects.toMatchObject({
        name: 'StatementError',
        sqliteCode: expect.stringMatching(/^SQLITE_CONSTRAINT/),
        message: expect.stringMatching(/NOT NULL/),
      })
      expect(await store.get('x')).toBeNull()
    })

    it('skips garbage rows in list instead of failing the whole listing', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute("INSERT INTO do_locks VALUES ('bad', 'ghost', 0, 'never', 1, NULL)")
      await store.acquire({ doId: 'good', nodeId: 'a', ttlMs: 10_000 })
      expect((await store.list()).map((l) => l.doId)).toEqual(['good'])
    })
  })

  describe('store failures', () => {
    it('reports a locked database as a retryable StoreUnavailableError, not as "held"', async () => {
      const url = freshFile()
      const holder = open(url)
      await holder.execute('PRAGMA journal_mode=WAL')
      const store = new LibSQLLockStore(open(url))
      await store.ensureSchema()
      const tx = await holder.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      const error = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }).catch((e) => e)
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(error.retryable).toBe(true)
      await tx.rollback()
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired).toBe(true)
    })

    it('recovers from SQLITE_BUSY: later writes are committed and visible to other connections', async () => {
      const url = freshFile()
      const other = open(url)
      await other.execute('PRAGMA journal_mode=WAL')
      const client = open(url)
      await client.execute('PRAGMA busy_timeout = 50')
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      const tx = await other.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      await expect(store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })).rejects.toMatchObject({ retryable: true })
      await expect(store.release({ doId: 'x', nodeId: 'a', fencingToken: 1 })).rejects.toMatchObject({
        retryable: true,
      })
      await tx.rollback()
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired).toBe(true)
      // Seen from another connection, so it was really committed (libsql would otherwise leave it pending).
      const seen = await other.execute("SELECT node_id FROM do_locks WHERE do_id = 'x'")
      expect(seen.rows[0]?.node_id).toBe('a')
      await other.execute("INSERT INTO do_locks VALUES ('y', 'n', 0, 0, 1, NULL)")
      expect((await client.execute('PRAGMA busy_timeout')).rows[0]?.timeout).toBe(50)
    })

    it('treats a client that reports no protocol as local: after SQLITE_BUSY stuck its connection, a heartbeat fails loudly instead of reporting an extension nobody committed', async () => {
      const url = freshFile()
      const other = open(url)
      await other.execute('PRAGMA journal_mode=WAL')
      const client = open(url)
      await client.execute('PRAGMA busy_timeout = 50')
      // A wrapper that forwards only execute and batch: no protocol, no transaction() to swap with.
      const calls: string[] = []
      const wrapper: LibSQLClientLike = {
        execute: (s) => (calls.push('execute'), client.execute(s)),
        batch: (s, mode) => (calls.push('batch'), client.batch(s, mode)),
      }
      const store = new LibSQLLockStore(wrapper)
      await store.ensureSchema()
      const r = await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 60_000 })
      if (!r.acquired) throw new Error('expected the lease')
      const tx = await other.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      await expect(store.refresh({ ...r.lock, ttlMs: 60_000 })).rejects.toMatchObject({ retryable: true })
      await tx.rollback()
      calls.length = 0
      const heartbeat = await store.refresh({ ...r.lock, ttlMs: 120_000 }).catch((e: unknown) => e)
      expect(calls).toEqual(['batch'])
      expect(heartbeat).toBeInstanceOf(StoreUnavailableError)
      expect(String(heartbeat)).toMatch(/commit/i)
      const seen = await other.execute("SELECT expires_at FROM do_locks WHERE do_id = 'x'")
      expect(seen.rows[0]?.expires_at).toBe(r.lock.expiresAt)
    })

    it('takes local: true/false over what the client reports', async () => {
      const raw = open()
      const calls: string[] = []
      const wrap = (protocol?: string): LibSQLClientLike => ({
        ...(protocol === undefined ? {} : { protocol }),
        execute: (s) => (calls.push('execute'), raw.execute(s)),
        batch: (s, mode) => (calls.push('batch'), raw.batch(s, mode)),
      })
      await new LibSQLLockStore(raw).ensureSchema()
      for (const [client, local, expected] of [
        [wrap(), undefined, 'batch'],
        [wrap(), false, 'execute'],
        [wrap('http'), undefined, 'execute'],
        [wrap('http'), true, 'batch'],
        [wrap('file'), false, 'execute'],
      ] as const) {
        calls.length = 0
        await new LibSQLLockStore(client, local === undefined ? {} : { local }).get('x')
        expect(calls).toEqual([expected])
      }
      expect(() => new LibSQLLockStore(raw, { local: 'yes' as never })).toThrow(InvalidArgumentError)
    })

    it('carries the connection settings over to the fresh connection after SQLITE_BUSY', async () => {
      const url = freshFile()
      const other = open(url)
      await other.execute('PRAGMA journal_mode=WAL')
      const client = open(url)
      await client.execute('PRAGMA busy_timeout = 40')
      await client.execute('PRAGMA synchronous = NORMAL')
      await client.execute('PRAGMA foreign_keys = ON')
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      const tx = await other.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      await expect(store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })).rejects.toMatchObject({ retryable: true })
      await tx.rollback()
      expect((await client.execute('PRAGMA busy_timeout')).rows[0]?.timeout).toBe(40)
      expect((await client.execute('PRAGMA synchronous')).rows[0]?.synchronous).toBe(1)
      expect((await client.execute('PRAGMA foreign_keys')).rows[0]?.foreign_keys).toBe(1)
    })

    it('lets users recover their own connection after their statement hit SQLITE_BUSY', async () => {
      const url = freshFile()
      const other = open(url)
      await other.execute('PRAGMA journal_mode=WAL')
      await other.execute('CREATE TABLE t (v INTEGER)')
      await other.execute('INSERT INTO t VALUES (1)')
      const client = open(url)
      await client.execute('PRAGMA busy_timeout = 20')
      const tx = await other.transaction('write')
      await tx.execute('UPDATE t SET v = 2')
      await expect(client.execute('UPDATE t SET v = 3')).rejects.toThrow(/SQLITE_BUSY|locked/)
      await tx.commit()
      await recoverLibSQLConnection(client)
      expect((await client.execute('SELECT v FROM t')).rows[0]?.v).toBe(2) // not the stale snapshot
      await client.execute('UPDATE t SET v = 4')
      expect((await other.execute('SELECT v FROM t')).rows[0]?.v).toBe(4) // really committed
    })

    it('reports a closed client as a StoreUnavailableError', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      client.close()
      await expect(store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1000 })).rejects.toBeInstanceOf(StoreUnavailableError)
    })

    it('judges a refused statement by the SQLite code, not by words in the table and column names it quotes', async () => {
      const client = open()
      const store = new LibSQLLockStore(client)
      await store.ensureSchema()
      await client.execute('CREATE TABLE sessions (socket TEXT UNIQUE)')
      await client.execute("INSERT INTO sessions VALUES ('s1')")
      const lock = (await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })) as { acquired: true; lock: Lock }
      const duplicate = await store
        .fencedWrite(lock.lock, [{ sql: "INSERT INTO sessions VALUES ('s1')" }])
        .catch((e: unknown) => e)
      expect(duplicate).toBeInstanceOf(StatementError)
      expect(duplicate).toMatchObject({
        sqliteCode: expect.stringMatching(/^SQLITE_CONSTRAINT/),
        message: expect.stringMatching(/UNIQUE constraint failed: sessions\.socket/),
      })
      const missing = await new LibSQLLockStore(client, { table: 'network_timeout_locks' })
        .get('x')
        .catch((e: unknown) => e)
      expect(missing).toBeInstanceOf(StatementError)
      expect(missing).toMatchObject({
        sqliteCode: 'SQLITE_ERROR',
        message: expect.stringMatching(/no such table: network_timeout_locks/),
      })
    })

    it('rejects a fenced statement argument the driver cannot bind, naming it, before any request', async () => {
      const counted = countingClient(open())
      const store = new LibSQLLockStore(counted.client)
      await store.ensureSchema()
      const won = (await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })) as { acquired: true; lock: Lock }
      counted.reset()
      const error = await store
        .fencedWrite(won.lock, [
          { sql: 'SELECT 1' },
          { sql: 'SELECT ?1, ?2', args: ['ok', { not: 'bindable' } as never] },
        ])
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect((error as InvalidArgumentError).argument).toBe('statements[1].args[1]')
      for (const bad of [Number.NaN, Infinity]) {
        await expect(store.fencedWrite(won.lock, [{ sql: 'SELECT ?1', args: [bad] }])).rejects.toMatchObject({
          argument: 'statements[0].args[0]',
        })
      }
      expect(counted.requests()).toBe(0)
    })

    it('swaps the connection once for operations that hit SQLITE_BUSY together, and holds later ones until the swap is done', async () => {
      const log: string[] = []
      let busy = 3
      const client = {
        protocol: 'file',
        async execute(statement: { sql: string }) {
          log.push(statement.sql)
          await new Promise((r) => setTimeout(r, 5))
          return {
            rows: [{ timeout: 5000, synchronous: 2, foreign_keys: 0, cache_size: -2000, temp_store: 0 }],
            rowsAffected: 0,
          }
        },
        async batch(statements: unknown[]) {
          log.push('batch')
          if (busy-- > 0) throw Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY' })
          return statements.map(() => ({ rows: [], rowsAffected: 1 }))
        },
        async transaction() {
          log.push('swap')
          return { close() {} }
        },
      }
      const store = new LibSQLLockStore(client)
      const ref = { doId: 'x', nodeId: 'a', fencingToken: 1 }
      const together = [store.release(ref), store.release(ref), store.release(ref)].map((p) =>
        p.catch((e: unknown) => e),
      )
      await new Promise((r) => setTimeout(r, 1)) // the swap has begun
      const later = store.release(ref)
      for (const outcome of await Promise.all(together)) expect(outcome).toMatchObject({ retryable: true })
      expect(await later).toBe(true)
      expect(log.filter((l) => l === 'swap')).toHaveLength(1)
      const lastSetting = log.length - 1 - [...log].reverse().findIndex((l) => / = /.test(l))
      expect(log.lastIndexOf('batch')).toBeGreaterThan(lastSetting) // sent only once busy_timeout was back
      expect(log.slice(lastSetting - 4, lastSetting + 1)).toContain('PRAGMA busy_timeout = 5000')
    })

    it('treats transport failures that carry no SQLite code as retryable', async () => {
      const failing = (message: string) =>
        new LibSQLLockStore({
          execute: async () => {
            throw new TypeError(message)
          },
          batch: async () => {
            throw new TypeError(message)
          },
        })
      for (const message of ['fetch failed', 'read ECONNRESET', 'socket hang up', 'The operation timed out']) {
        await expect(failing(message).acquire({ doId: 'x', nodeId: 'a', ttlMs: 1_000 })).rejects.toMatchObject({
          retryable: true,
        })
      }
      await expect(failing('The client is closed').get('x')).rejects.toMatchObject({ retryable: false })
    })

    it('reports a missing table (ensureSchema not called) as a StatementError, said once', async () => {
      const store = new LibSQLLockStore(open())
      const error = await store.get('x').catch((e) => e)
      expect(error).toBeInstanceOf(StatementError)
      expect(error.sqliteCode).toBe('SQLITE_ERROR')
      expect(error.message).toBe('statement failed (SQLITE_ERROR): no such table: do_locks')
    })
  })

  it('sends acquire as a single batch with one request even when counting the raw client', async () => {
    const counted = countingClient(open())
    const store = new LibSQLLockStore(counted.client)
    await store.ensureSchema()
    counted.reset()
    await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1000 })
    expect(counted.requests()).toBe(1)
  })
})
