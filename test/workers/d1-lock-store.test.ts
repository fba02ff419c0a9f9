/**
 * D1LockStore inside workerd: this file runs IN the Workers runtime (vitest project "workers",
 * @cloudflare/vitest-plugin), against the real D1 implementation that workerd/miniflare provide.
 *
 * How the workers tests are set up, and how to add another Worker or Durable Object:
 * - vitest.config.ts lists the projects; `workersProject()` (test/workers/project.ts) builds one whose
 *   files run inside workerd. `npm test` (one `vitest run`) runs the Node and the workers projects;
 *   `npx vitest run --project workers` runs only these.
 * - Bindings come from test/workers/wrangler.jsonc and reach tests as `env` from "cloudflare:test".
 *   Type each new binding in test/workers/env.d.ts (kept local so the repo's one tsconfig keeps its
 *   Node/DOM globals; add `SELF`, `runInDurableObject`, ... there when first used).
 * - A Durable Object (e.g. a `StatelessDO` subclass): write a test Worker under test/workers/ (say
 *   `test/workers/do-worker.ts`) that exports the class and a default `fetch`; add `"main":
 *   "./do-worker.ts"` and `"durable_objects": { "bindings": [{ "name": "ROOMS", "class_name": "Room" }] }`
 *   to wrangler.jsonc (plus a `"migrations"` entry with `"new_sqlite_classes": ["Room"]`); then tests use
 *   `env.ROOMS.get(id)`, `SELF.fetch(...)` and `runInDurableObject(stub, ...)` from "cloudflare:test".
 *   Only the Node tests need src/index.ts; workers tests import from src/ the same way.
 * - A separate Worker project (e.g. examples/worker/): give it its own wrangler config and `main`, and add
 *   `workersProject({ name: 'example', wranglerConfig: './examples/worker/wrangler.jsonc',
 *   include: ['examples/worker/test/**\/*.test.ts'] })` to `projects` in vitest.config.ts.
 * - Test files in this project share storage (`isolatedStorage` is off, see project.ts): every test
 *   works in tables of its own (`freshTable()` from support/tables.ts) and drops them afterwards, so tests
 *   are independent whatever order or file they run in. Do the same (or use unique DO ids) in new tests:
 *   stateless-do.test.ts shares the default `do_locks` table with the example, with a fresh room name
 *   per test.
 */
import type { D1Database as CloudflareD1Database, D1DatabaseSession } from '@cloudflare/workers-types/latest'
import { env } from 'cloudflare:test'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { D1LockStore, type D1DatabaseLike } from '../../src/store/d1.js'
import {
  InvalidArgumentError,
  STALE_TOKEN_MESSAGE,
  StaleFencingTokenError,
  StatementError,
  StoreUnavailableError,
  type LockRecord,
  type StoreAcquireResult,
} from '../../src/index.js'
import { describeLockStoreContract } from '../store/contract.js'
import { describeFenceContract } from '../store/fence-contract.js'
import { countingD1 } from './support/counting-d1.js'
import { dropLockTable, freshTable, untilStoreClock } from './support/tables.js'

// Compile-time check: the real binding types fit the structural type D1LockStore accepts.
export type BindingFits = [CloudflareD1Database, D1DatabaseSession] extends [D1DatabaseLike, D1DatabaseLike]
  ? true
  : never
const bindingFits: BindingFits = true
void bindingFits

function won(result: StoreAcquireResult): LockRecord {
  if (!result.acquired) throw new Error(`expected to acquire, but ${result.holder.nodeId} holds it`)
  return result.lock
}

/** Schema objects (tables, views, triggers, indexes) whose names start with `prefix`. */
async function schemaObjects(prefix: string): Promise<Array<{ type: string; name: string }>> {
  const { results } = await env.DB.prepare(
    'SELECT type, name FROM sqlite_master WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name',
  )
    .bind(prefix)
    .all<{ type: string; name: string }>()
  return results
}

describeLockStoreContract(
  'D1LockStore (workerd)',
  async () => {
    const counted = countingD1(env.DB)
    const store = new D1LockStore(counted.db, { table: freshTable('contract') })
    return { store, requests: counted.requests, close: () => dropLockTable(env.DB, store.sql) }
  },
  // workerd's timers fire early against D1's clock when the machine is loaded (see untilStoreClock), so
  // the contract's waits for a lease to expire get generous slack.
  { slowMs: 250, until: (ms) => untilStoreClock(env.DB, ms).then(() => undefined) },
)

describeFenceContract('D1LockStore (workerd)', async () => {
  const store = new D1LockStore(env.DB, { table: freshTable('fence') })
  return {
    store,
    raw: async (sql) => (await env.DB.prepare(sql).all<Record<string, unknown>>()).results,
    until: async (ms) => void (await untilStoreClock(env.DB, ms + 1)),
    close: () => dropLockTable(env.DB, store.sql),
  }
})

// Table names that mean something inside SQL (test/store/table-names.test.ts runs all of them on libSQL).
// Fixed names, not fresh ones: dropped before and after each test, and used by no other test file.
for (const table of ['new', 'excluded', 'select']) {
  const hostile = async () => {
    const counted = countingD1(env.DB)
    const store = new D1LockStore(counted.db, { table })
    await dropLockTable(env.DB, store.sql)
    return { store, counted }
  }
  describeLockStoreContract(
    `D1LockStore (workerd), table "${table}"`,
    async () => {
      const { store, counted } = await hostile()
      return { store, requests: counted.requests, close: () => dropLockTable(env.DB, store.sql) }
    },
    { slowMs: 250, until: (ms) => untilStoreClock(env.DB, ms).then(() => undefined) },
  )
  describeFenceContract(`D1LockStore (workerd), table "${table}"`, async () => {
    const { store } = await hostile()
    return {
      store,
      raw: async (sql) => (await env.DB.prepare(sql).all<Record<string, unknown>>()).results,
      until: async (ms) => void (await untilStoreClock(env.DB, ms + 1)),
      close: () => dropLockTable(env.DB, store.sql),
    }
  })
}

describe('D1LockStore (workerd)', () => {
  // Every store made through `open` gets a fresh table, dropped after the test.
  const opened: D1LockStore[] = []
  const scratch: string[] = []
  const open = (table = freshTable(), db: D1DatabaseLike = env.DB) => {
    const store = new D1LockStore(db, { table })
    opened.push(store)
    return store
  }
  afterEach(async () => {
    vi.useRealTimers()
    while (opened.length) await dropLockTable(env.DB, opened.pop()!.sql)
    while (scratch.length) await env.DB.prepare(`DROP TABLE IF EXISTS "${scratch.pop()}"`).run()
  })

  it('rejects something that is not a D1 binding, and table names that are not plain identifiers', () => {
    for (const db of [null, undefined, {}, { prepare() {} }, 'DB']) {
      expect(() => new D1LockStore(db as never)).toThrow(InvalidArgumentError)
    }
    expect(() => new D1LockStore({} as never)).toThrow(/db/)
    expect(new D1LockStore(env.DB).sql.table).toBe('do_locks')
    for (const table of ['', '1locks', 'do-locks', 'locks; DROP TABLE x', 'sqlite_master', 7]) {
      expect(() => new D1LockStore(env.DB, { table: table as string })).toThrow(InvalidArgumentError)
    }
  })

  it('keeps leases in a configurable table, independent of another table in the same database', async () => {
    const prefix = freshTable('cfg')
    const tenant = open(`${prefix}_tenant`)
    const main = open(`${prefix}_main`)
    await tenant.ensureSchema()
    await main.ensureSchema()
    expect(won(await tenant.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })).fencingToken).toBe(1)
    expect(won(await main.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 })).fencingToken).toBe(1)
    expect((await tenant.acquire({ doId: 'x', nodeId: 'c', ttlMs: 10_000 })).acquired).toBe(false)
    await main.forceRelease('x')
    expect(won(await main.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 })).fencingToken).toBe(2)
    expect(await tenant.get('x')).toMatchObject({ held: true, nodeId: 'a', fencingToken: 1 })
    expect(await schemaObjects(prefix)).toEqual(
      [
        { type: 'table', name: `${prefix}_main` },
        { type: 'view', name: `${prefix}_main_fence_v2` },
        { type: 'trigger', name: `${prefix}_main_fence_v2_check` },
        { type: 'index', name: `${prefix}_main_expires_at` },
        { type: 'table', name: `${prefix}_main_handover` },
        { type: 'table', name: `${prefix}_main_high_water` },
        { type: 'table', name: `${prefix}_main_storage` },
        { type: 'table', name: `${prefix}_tenant` },
        { type: 'view', name: `${prefix}_tenant_fence_v2` },
        { type: 'trigger', name: `${prefix}_tenant_fence_v2_check` },
        { type: 'index', name: `${prefix}_tenant_expires_at` },
        { type: 'table', name: `${prefix}_tenant_handover` },
        { type: 'table', name: `${prefix}_tenant_high_water` },
        { type: 'table', name: `${prefix}_tenant_storage` },
      ].sort((a, b) => (a.name < b.name ? -1 : 1)),
    )
    const fenced = await tenant.fencedWrite({ doId: 'x', nodeId: 'a', fencingToken: 1 }, [{ sql: 'SELECT 1 AS ok' }])
    expect(fenced[0]?.rows).toEqual([{ ok: 1 }])
  })

  it('uses the documented schema column names', async () => {
    const store = open()
    await store.ensureSchema()
    const { results } = await env.DB.prepare(`PRAGMA table_info("${store.sql.table}")`).all<{ name: string }>()
    expect(results.map((r) => r.name)).toEqual([
      'do_id',
      'node_id',
      'acquired_at',
      'expires_at',
      'fencing_token',
      'metadata',
    ])
  })

  it("judges expiry by D1's clock, not by the Worker's (faked, wildly wrong) clock", async () => {
    const storeA = open()
    const storeB = new D1LockStore(env.DB, { table: storeA.sql.table })
    await storeA.ensureSchema()
    const realNow = Date.now()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('1999-01-01T00:00:00Z')) // node A thinks it is 1999
    const a = won(await storeA.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1000 }))
    expect(Math.abs(a.acquiredAt - realNow)).toBeLessThan(5_000)
    expect(a.expiresAt - a.acquiredAt).toBe(1000)
    vi.setSystemTime(new Date('2099-01-01T00:00:00Z')) // node B thinks the lease ran out decades ago
    const refused = await storeB.acquire({ doId: 'x', nodeId: 'b', ttlMs: 300 })
    expect(refused.acquired).toBe(false)
    if (!refused.acquired) expect(refused.holder.expiresAt - refused.storeNow).toBeGreaterThan(0)
    expect(await storeB.get('x')).toMatchObject({ held: true, nodeId: 'a' })
    vi.useRealTimers()
    await untilStoreClock(env.DB, a.expiresAt)
    expect(await storeB.get('x')).toMatchObject({ held: false, nodeId: 'a' })
    expect(await storeA.refresh({ ...a, ttlMs: 1000 })).toBeNull()
    expect(won(await storeB.acquire({ doId: 'x', nodeId: 'b', ttlMs: 300 })).fencingToken).toBe(2)
  })

  describe('fencedWrite', () => {
    // The application's own state table, written under the lock.
    let state = ''
    const setup = async () => {
      const counted = countingD1(env.DB)
      const store = open(freshTable(), counted.db)
      await store.ensureSchema()
      state = freshTable('state')
      scratch.push(state)
      await env.DB.prepare(
        `CREATE TABLE "${state}" (k TEXT PRIMARY KEY, v TEXT NOT NULL, token INTEGER NOT NULL)`,
      ).run()
      return { store, counted }
    }
    const rows = async () => (await env.DB.prepare(`SELECT k, v, token FROM "${state}" ORDER BY k`).all()).results
    const put = (k: string, v: string, token: number) => ({
      sql: `INSERT INTO "${state}" (k, v, token) VALUES (?1, ?2, ?3)
        ON CONFLICT (k) DO UPDATE SET v = excluded.v, token = excluded.token RETURNING k, v, token`,
      args: [k, v, token],
    })

    it('writes under the current token, in one request, and returns each statement result', async () => {
      const { store, counted } = await setup()
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      counted.reset()
      const results = await store.fencedWrite(lock, [
        put('a', 'one', lock.fencingToken),
        put('b', 'two', lock.fencingToken),
      ])
      expect(counted.requests()).toBe(1)
      expect(results).toHaveLength(2)
      expect(results[0]).toMatchObject({ rows: [{ k: 'a', v: 'one', token: 1 }], rowsAffected: 1 })
      expect(results[1]?.rows).toEqual([{ k: 'b', v: 'two', token: 1 }])
      expect(await rows()).toEqual([
        { k: 'a', v: 'one', token: 1 },
        { k: 'b', v: 'two', token: 1 },
      ])
    })

    it('rejects a token that was taken over with StaleFencingTokenError and rolls back the whole batch', async () => {
      const { store, counted } = await setup()
      const old = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      await store.fencedWrite(old, [put('a', 'before', old.fencingToken)])
      expect(await store.forceRelease('room')).toBe(true)
      const current = won(await store.acquire({ doId: 'room', nodeId: 'b', ttlMs: 10_000 }))
      counted.reset()
      const error = await store
        .fencedWrite(old, [put('a', 'stale', old.fencingToken), put('z', 'stale', old.fencingToken)])
        .catch((e: unknown) => e)
      expect(counted.requests()).toBe(1)
      expect(error).toBeInstanceOf(StaleFencingTokenError)
      expect(error).toMatchObject({ code: 'STALE_FENCING_TOKEN', doId: 'room', token: old.fencingToken })
      expect(await rows()).toEqual([{ k: 'a', v: 'before', token: 1 }])
      await store.fencedWrite(current, [put('a', 'after', current.fencingToken)])
      expect(await rows()).toEqual([{ k: 'a', v: 'after', token: 2 }])
    })

    it('rejects the token of a lease that expired or was released, even if nobody took over', async () => {
      const { store } = await setup()
      const short = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 40 }))
      await untilStoreClock(env.DB, short.expiresAt)
      await expect(store.fencedWrite(short, [put('a', 'late', short.fencingToken)])).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      const released = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      expect(await store.release(released)).toBe(true)
      await expect(store.fencedWrite(released, [put('a', 'late', released.fencingToken)])).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      await expect(
        store.fencedWrite({ doId: 'never-locked', nodeId: 'a', fencingToken: 1 }, [put('a', 'x', 1)]),
      ).rejects.toBeInstanceOf(StaleFencingTokenError)
      expect(await rows()).toEqual([])
    })

    it('rolls back the fence and earlier statements when a later statement fails, reporting the refused statement, not a stale token', async () => {
      const { store } = await setup()
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      const error = await store
        .fencedWrite(lock, [
          put('a', 'one', 1),
          { sql: `INSERT INTO "${state}" (k, v, token) VALUES (?1, NULL, 1)`, args: ['b'] },
        ])
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StatementError)
      expect(error).not.toBeInstanceOf(StaleFencingTokenError)
      expect((error as StatementError).sqliteCode).toMatch(/^SQLITE_CONSTRAINT/)
      expect((error as Error).message).toMatch(/NOT NULL/)
      expect(await rows()).toEqual([])
    })

    it("surfaces the trigger's message through D1's error wrapping (D1_ERROR: ...: SQLITE_CONSTRAINT)", async () => {
      const { store } = await setup()
      const raw = await env.DB.batch([
        env.DB.prepare(store.sql.fence).bind('room', 'a', 1),
        env.DB.prepare(`INSERT INTO "${state}" VALUES ('a', 'x', 1)`),
      ]).catch((e: unknown) => e)
      expect(raw).toBeInstanceOf(Error)
      expect((raw as Error).message).toContain(STALE_TOKEN_MESSAGE)
      expect((raw as Error).message).toMatch(/^D1_ERROR: .*SQLITE_CONSTRAINT/)
      expect(await rows()).toEqual([])
    })

    it('binds numbers and booleans as D1 does (REAL, INTEGER columns store integers), safe bigints as numbers; refuses unsafe bigints before any request', async () => {
      const { store, counted } = await setup()
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      const [selected, , stored] = await store.fencedWrite(lock, [
        { sql: 'SELECT ?1 AS t, ?2 AS f, ?3 AS b, typeof(?3) AS bt', args: [true, false, 9_007_199_254_740_991n] },
        { sql: `INSERT INTO "${state}" (k, v, token) VALUES (?1, ?2, ?3)`, args: ['a', 'x', 9_007_199_254_740_991n] },
        { sql: `SELECT token, typeof(token) AS tt FROM "${state}"` },
      ])
      expect(selected?.rows).toEqual([{ t: 1, f: 0, b: 9_007_199_254_740_991, bt: 'real' }])
      expect(stored?.rows).toEqual([{ token: 9_007_199_254_740_991, tt: 'integer' }])
      const row = await env.DB.prepare(
        `SELECT typeof(expires_at) AS e, typeof(fencing_token) AS f FROM "${store.sql.table}" WHERE do_id = 'room'`,
      ).first()
      expect(row).toEqual({ e: 'integer', f: 'integer' })
      counted.reset()
      const error = await store.fencedWrite(lock, [{ sql: 'SELECT ?1', args: [2n ** 60n] }]).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect((error as InvalidArgumentError).argument).toBe('args')
      expect(counted.requests()).toBe(0)
    })
  })

  describe('store failures', () => {
    it("reports a missing table (ensureSchema not called) as a StatementError, in D1's words said once", async () => {
      const store = open()
      const error = await store.get('x').catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StatementError)
      expect((error as StatementError).sqliteCode).toBe('SQLITE_ERROR')
      expect((error as Error).message).toBe(`statement failed (SQLITE_ERROR): no such table: ${store.sql.table}`)
      expect((error as Error).cause).toBeInstanceOf(Error)
    })

    it('reports a D1 function the runtime forbids as a refused statement (D1 refuses e.g. sqlite_version())', async () => {
      const store = open()
      await store.ensureSchema()
      const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
      const error = await store.fencedWrite(lock, [{ sql: 'SELECT sqlite_version()' }]).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(StatementError)
      expect((error as Error).message).toMatch(/not authorized/)
    })
  })
})
