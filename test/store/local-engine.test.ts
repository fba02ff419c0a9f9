/**
 * The local engine (src/store/local-engine.ts): LibSQLLockStore on one native libsql connection. The
 * shared contracts run on it unchanged; the rest are the three failures of issue 13 it must make
 * impossible (a connection leaked per SQLITE_BUSY, a heartbeat "succeeding" without a commit, a busy
 * wait that freezes the event loop) and how it is opened.
 */
import { createClient, type Client } from '@libsql/client'
import Database from 'libsql'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  LibSQLLockStore,
  LocalEngine,
  StoreUnavailableError,
  type LibSQLLockStoreOptions,
  type NativeDatabaseConstructor,
} from '../../src/index.js'
import { STATEMENT_CACHE_SIZE } from '../../src/store/local-engine.js'
import { STORE_NOW } from '../../src/store/sql.js'
import { describeObjectStoreContract } from '../storage/object-store-contract.js'
import { buildEntry, configArg, ProcessGroup, type BuiltEntry } from '../support/processes.js'
import { watchTimerLateness } from '../support/timer-lateness.js'
import { describeLockStoreContract } from './contract.js'
import { describeFenceContract } from './fence-contract.js'
import type { ContenderConfig, ContenderResult } from './local-contender.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-local-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let fileNo = 0
const freshPath = () => join(dir, `locks-${fileNo++}.db`)
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const openDescriptors = () => readdirSync('/proc/self/fd').length

/**
 * The real libsql constructor, counting transactions: each store request is exactly one `BEGIN` on
 * the engine's connection (docs/design.md invariant 6), so this is the request count.
 */
function countingLibsql(): { libsql: NativeDatabaseConstructor; requests: () => number } {
  let begins = 0
  class Counting extends Database {
    override exec(sql: string) {
      if (/^BEGIN/.test(sql)) begins++
      return super.exec(sql)
    }
  }
  return { libsql: Counting as unknown as NativeDatabaseConstructor, requests: () => begins }
}

function localStore(url: string, options: LibSQLLockStoreOptions = {}) {
  const counted = countingLibsql()
  const store = new LibSQLLockStore(url, { ...options, libsql: counted.libsql })
  return { store, requests: counted.requests, close: () => store.close() }
}

for (const groupCommit of [true, false]) {
  const variant = groupCommit ? 'group commit' : 'no group commit (the default)'
  describeLockStoreContract(`LibSQLLockStore local engine on a file (${variant})`, async () =>
    localStore(`file:${freshPath()}`, { groupCommit }),
  )
  describeLockStoreContract(`LibSQLLockStore local engine on :memory: (${variant})`, async () =>
    localStore(':memory:', { groupCommit }),
  )
}

describeLockStoreContract('LibSQLLockStore local engine driving a file: client (engine native)', async () => {
  const raw = createClient({ url: `file:${freshPath()}` })
  await raw.execute('PRAGMA journal_mode=WAL')
  await raw.execute('PRAGMA busy_timeout=5000')
  const counted = countingLibsql()
  const store = new LibSQLLockStore(raw, { engine: 'native', libsql: counted.libsql })
  return { store, requests: counted.requests, close: () => (store.close(), raw.close()) }
})

/** `raw` runs on a separate @libsql/client connection to the same file, as another process would. */
function fenceHarnessOnFile(store: LibSQLLockStore, client: Client) {
  return {
    store,
    raw: async (sql: string) => (await client.execute(sql)).rows.map((r) => ({ ...r })),
    until: async (ms: number) => {
      while (Number((await client.execute(`SELECT ${STORE_NOW} AS now`)).rows[0]!.now) <= ms) await sleep(10)
    },
    close: () => (store.close(), client.close()),
  }
}

describeFenceContract('LibSQLLockStore local engine on a file', async () => {
  const path = freshPath()
  const store = new LibSQLLockStore(`file:${path}`)
  await store.get('x').catch(() => undefined) // opens the file in WAL mode before the raw client does
  const client = createClient({ url: `file:${path}` })
  await client.execute('PRAGMA busy_timeout = 5000')
  return fenceHarnessOnFile(store, client)
})

describeObjectStoreContract('SqlObjectStore on the LibSQLLockStore local engine (a file)', async () => {
  const { store, requests, close } = localStore(`file:${freshPath()}`)
  return { locks: store, objects: store.objects, requests, close }
})

// Group commit combines flushes with other operations (src/store/libsql.ts): alone, each is still one request.
describeObjectStoreContract(
  'SqlObjectStore on the LibSQLLockStore local engine with group commit (a file)',
  async () => {
    const { store, requests, close } = localStore(`file:${freshPath()}`, { groupCommit: true })
    return { locks: store, objects: store.objects, requests, close }
  },
)

describeObjectStoreContract('SqlObjectStore on the LibSQLLockStore local engine (:memory:)', async () => {
  const { store, requests, close } = localStore(':memory:')
  return { locks: store, objects: store.objects, requests, close }
})

describe('LibSQLLockStore local engine', () => {
  const closers: Array<() => void> = []
  afterEach(() => {
    while (closers.length) closers.pop()!()
  })
  const client = (path: string) => {
    const c = createClient({ url: `file:${path}` })
    closers.push(() => c.close())
    return c
  }
  const store = (url: string, options: LibSQLLockStoreOptions = {}) => {
    const s = new LibSQLLockStore(url, options)
    closers.push(() => s.close())
    return s
  }

  describe('opening', () => {
    it('refuses a URL that is not local, or a bad option, naming it, before any I/O', () => {
      for (const url of [
        'libsql://db.example.com',
        'http://localhost:8080',
        'file:a.db?mode=ro',
        'file://host/a.db',
        'file:',
      ]) {
        const error = (() => {
          try {
            new LibSQLLockStore(url)
          } catch (e) {
            return e
          }
        })()
        expect(error, url).toBeInstanceOf(InvalidArgumentError)
        expect((error as InvalidArgumentError).argument).toBe('client')
      }
      const path = `file:${freshPath()}`
      expect(() => new LibSQLLockStore(path, { busyTimeoutMs: -1 })).toThrow(/busyTimeoutMs/)
      expect(() => new LibSQLLockStore(path, { busyTimeoutMs: 1.5 })).toThrow(/busyTimeoutMs/)
      expect(() => new LibSQLLockStore(path, { pragmas: ['journal_mode = WAL; DROP TABLE x'] })).toThrow(/pragmas/)
      expect(() => new LibSQLLockStore(path, { engine: 'client' })).toThrow(/engine/)
      expect(() => new LibSQLLockStore(path, { engine: 'fast' as never })).toThrow(/engine/)
      expect(() => new LibSQLLockStore(path, { libsql: 'libsql' as never })).toThrow(/libsql/)
    })

    it('opens file:relative, file:/absolute and file:///absolute paths, and LibSQLLockStore.open is the same', async () => {
      const path = freshPath()
      for (const [i, url] of [`file:${path}`, `file://${path}`, `file:${encodeURI(path)}`].entries()) {
        const s = store(url)
        await s.ensureSchema()
        const r = await s.acquire({ doId: `id-${i}`, nodeId: 'a', ttlMs: 10_000 })
        expect(r.acquired).toBe(true)
      }
      const opened = LibSQLLockStore.open(`file:${path}`)
      closers.push(() => opened.close())
      expect((await opened.list()).map((l) => l.doId)).toHaveLength(3)
      // The file is in WAL mode (the default pragma), seen from another connection.
      expect((await client(path).execute('PRAGMA journal_mode')).rows[0]?.journal_mode).toBe('wal')
    })

    it("drives a file: client's own file with engine 'native', carrying its synchronous and busy_timeout over", async () => {
      const path = freshPath()
      const raw = client(path)
      await raw.execute('PRAGMA journal_mode=WAL')
      await raw.execute('PRAGMA synchronous = NORMAL')
      await raw.execute('PRAGMA busy_timeout = 30')
      const s = new LibSQLLockStore(raw, { engine: 'native' })
      closers.push(() => s.close())
      await s.ensureSchema()
      await s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect((await raw.execute("SELECT node_id FROM do_locks WHERE do_id = 'x'")).rows[0]?.node_id).toBe('a')
      // The client's busy_timeout (30 ms) is the engine's asynchronous budget.
      const tx = await raw.transaction('write')
      const started = performance.now()
      await expect(s.acquire({ doId: 'y', nodeId: 'a', ttlMs: 10_000 })).rejects.toMatchObject({ retryable: true })
      expect(performance.now() - started).toBeLessThan(1_000)
      await tx.rollback()
    })

    it("refuses engine 'native' for a client it cannot drive: in memory, or without sync() to rule out an embedded replica", async () => {
      const memory = createClient({ url: ':memory:' })
      closers.push(() => memory.close())
      await expect(new LibSQLLockStore(memory, { engine: 'native' }).get('x')).rejects.toMatchObject({
        name: 'StoreUnavailableError',
        retryable: false,
        message: expect.stringMatching(/not a file/),
      })
      const raw = client(freshPath())
      const wrapper = { execute: raw.execute.bind(raw), batch: raw.batch.bind(raw) }
      await expect(new LibSQLLockStore(wrapper, { engine: 'native' }).get('x')).rejects.toMatchObject({
        retryable: false,
        message: expect.stringMatching(/embedded replica/),
      })
    })

    it('stays on the client engine for a client unless asked: its statements go through the client', async () => {
      const raw = client(freshPath())
      const calls: string[] = []
      const s = new LibSQLLockStore({
        protocol: 'file',
        execute: (st) => (calls.push('execute'), raw.execute(st)),
        batch: (st, mode) => (calls.push('batch'), raw.batch(st, mode)),
      })
      await s.ensureSchema()
      expect(calls).toEqual(['batch'])
      expect(s.localEngine).toBeUndefined()
    })

    it('reports a libsql constructor that cannot open the file as a failed request, and opens at the next one', async () => {
      let attempts = 0
      class Flaky extends Database {
        constructor(path: string) {
          if (attempts++ === 0)
            throw Object.assign(new Error('unable to open database file'), { code: 'SQLITE_CANTOPEN' })
          super(path)
        }
      }
      const s = store(`file:${freshPath()}`, { libsql: Flaky as unknown as NativeDatabaseConstructor })
      await expect(s.ensureSchema()).rejects.toMatchObject({ name: 'StoreUnavailableError', retryable: false })
      await s.ensureSchema()
      expect(await s.get('x')).toBeNull()
    })

    it('fails every request after close(), not retryable', async () => {
      const s = new LibSQLLockStore(`file:${freshPath()}`)
      await s.ensureSchema()
      s.close()
      await expect(s.get('x')).rejects.toMatchObject({ name: 'StoreUnavailableError', retryable: false })
    })
  })

  describe('SQLITE_BUSY', () => {
    it('keeps the descriptor count constant over 10,000 busy events, and commits visibly afterwards', async () => {
      const path = freshPath()
      const s = store(`file:${path}`, { busyTimeoutMs: 0 })
      await s.ensureSchema()
      const other = client(path)
      await s.get('x') // the connection is open before the count starts
      const tx = await other.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      const before = openDescriptors() // both connections, with their WAL files, are open
      let busy = 0
      for (let i = 0; i < 10_000; i++) {
        const op =
          i % 3 === 0
            ? s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
            : i % 3 === 1
              ? s.refresh({ doId: 'x', nodeId: 'a', fencingToken: 1, ttlMs: 10_000 })
              : s.release({ doId: 'x', nodeId: 'a', fencingToken: 1 })
        const error = await op.then(
          () => undefined,
          (e: unknown) => e,
        )
        expect(error).toBeInstanceOf(StoreUnavailableError)
        expect((error as StoreUnavailableError).retryable).toBe(true)
        expect(String((error as Error).message)).toMatch(/SQLITE_BUSY|locked/)
        busy++
      }
      expect(busy).toBe(10_000)
      expect(openDescriptors()).toBe(before)
      await tx.commit()
      // Not stuck in an old snapshot: it sees the other connection's commit, and its own writes commit.
      expect(await s.get('other')).toMatchObject({ nodeId: 'n' })
      const r = await s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      expect(r.acquired).toBe(true)
      expect((await other.execute("SELECT node_id FROM do_locks WHERE do_id = 'x'")).rows[0]?.node_id).toBe('a')
      expect(s.localEngine?.reopened).toBe(0)
    })

    it('waits for a busy database without blocking the event loop, then succeeds', async () => {
      const path = freshPath()
      const s = store(`file:${path}`)
      await s.ensureSchema()
      const other = client(path)
      const tx = await other.transaction('write')
      await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
      const lateness = watchTimerLateness(5)
      const waiting = Promise.all(
        Array.from({ length: 8 }, (_, i) => s.acquire({ doId: `id-${i}`, nodeId: 'a', ttlMs: 10_000 })),
      )
      await sleep(400)
      await tx.commit()
      const results = await waiting
      const worstLateMs = lateness.stop()
      expect(results.every((r) => r.acquired)).toBe(true)
      // The client engine with busy_timeout 5000 blocked the whole process for the 400 ms (and the
      // holder's commit with it). Under a loaded run scheduling alone can delay a timer by tens of ms.
      expect(worstLateMs).toBeLessThan(250)
    })

    it('is measured by a check that catches a blocking busy wait: the client engine with busy_timeout 2000 stalls the same timer', async () => {
      const path = freshPath()
      const blocking = client(path)
      await blocking.execute('PRAGMA journal_mode=WAL')
      await blocking.execute('PRAGMA busy_timeout = 2000')
      const s = new LibSQLLockStore(blocking) // the client engine: SQLite's busy handler runs on this thread
      await s.ensureSchema()
      const tx = await client(path).transaction('write')
      const lateness = watchTimerLateness(5)
      await sleep(20)
      await expect(s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })).rejects.toMatchObject({ retryable: true })
      await sleep(20)
      const worstLateMs = lateness.stop()
      await tx.rollback()
      expect(worstLateMs).toBeGreaterThan(1_000)
    })

    it('waits out a lone read that finds the file locked exclusively, and leaves no transaction open behind it', async () => {
      // In rollback-journal mode another connection's exclusive lock makes even a read's snapshot
      // busy, after its BEGIN DEFERRED had opened a transaction.
      const path = freshPath()
      const s = store(`file:${path}`, { pragmas: ['journal_mode = DELETE'], busyTimeoutMs: 2_000 })
      await s.ensureSchema()
      await s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 60_000 })
      const other = new Database(path)
      other.exec('BEGIN EXCLUSIVE')
      setTimeout(() => other.exec('COMMIT'), 100)
      try {
        expect(await s.get('x')).toMatchObject({ doId: 'x', nodeId: 'a', held: true })
        // Before: every later request failed with "cannot start a transaction within a transaction".
        expect((await s.acquire({ doId: 'y', nodeId: 'b', ttlMs: 1_000 })).acquired).toBe(true)
        expect(await s.get('x')).toMatchObject({ held: true })
      } finally {
        other.close()
      }
    })

    it('gives up after busyTimeoutMs with a retryable error', async () => {
      const path = freshPath()
      const s = store(`file:${path}`, { busyTimeoutMs: 100 })
      await s.ensureSchema()
      const tx = await client(path).transaction('write')
      const started = performance.now()
      await expect(s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1_000 })).rejects.toMatchObject({ retryable: true })
      const waited = performance.now() - started
      expect(waited).toBeGreaterThanOrEqual(95)
      expect(waited).toBeLessThan(2_000)
      await tx.rollback()
    })

    it('replaces the connection, closing the old one, if a statement inside a transaction ever fails busy (fault injected)', async () => {
      // Under the write lock a WAL database never answers SQLITE_BUSY to a statement; injected here.
      let inject = 0
      const opened: Array<{ closed: boolean }> = []
      // Typed as the engine sees it (libsql's own typings come from better-sqlite3's).
      const Base = Database as unknown as new (path: string) => {
        prepare(sql: string): { run(...args: unknown[]): unknown }
        close(): void
      }
      class Faulty extends Base {
        readonly record = { closed: false }
        constructor(path: string) {
          super(path)
          opened.push(this.record)
        }
        override prepare(sql: string) {
          const statement = super.prepare(sql)
          if (!/^\s*UPDATE/.test(sql)) return statement
          const run = statement.run.bind(statement)
          return Object.assign(statement, {
            run: (...args: unknown[]) => {
              if (inject > 0) {
                inject--
                throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
              }
              return run(...args)
            },
          })
        }
        override close() {
          this.record.closed = true
          super.close()
        }
      }
      const path = freshPath()
      const s = store(`file:${path}`, { libsql: Faulty as unknown as NativeDatabaseConstructor, groupCommit: false })
      await s.ensureSchema()
      const r = await s.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })
      if (!r.acquired) throw new Error('expected the lease')
      inject = 1
      // Retried on the fresh connection within busyTimeoutMs: the caller sees the release succeed.
      expect(await s.release(r.lock)).toBe(true)
      expect(s.localEngine?.reopened).toBe(1)
      expect(opened.map((o) => o.closed)).toEqual([true, false])
      expect(
        (await client(path).execute("SELECT expires_at FROM do_locks WHERE do_id = 'x'")).rows[0]?.expires_at,
      ).toBe(0)
    })
  })

  describe('across processes', () => {
    const group = new ProcessGroup()
    let contender: BuiltEntry | undefined
    beforeAll(async () => {
      contender = await buildEntry(new URL('./local-contender.ts', import.meta.url))
    })
    afterEach(() => group.killAll())
    afterAll(() => contender?.dispose())

    it('never waits for a busy database on the event loop while 8 processes contend for one id', async () => {
      const path = freshPath()
      const url = `file:${path}`
      // Every way the store can hold this event loop is a synchronous native call: timed, each one.
      let worstNativeMs = 0
      let worstNative = ''
      class Timed extends Database {
        override exec(sql: string) {
          const started = performance.now()
          try {
            return super.exec(sql)
          } finally {
            const ms = performance.now() - started
            if (ms > worstNativeMs) worstNative = sql.split(' ')[0]!
            worstNativeMs = Math.max(worstNativeMs, ms)
          }
        }
      }
      const s = store(url, { libsql: Timed as unknown as NativeDatabaseConstructor })
      await s.ensureSchema()
      const durationMs = 2_500
      const spawn = (config: ContenderConfig) =>
        group.spawn(contender!.file, { name: config.name, args: configArg(config), timeoutMs: 30_000 })
      const children = Array.from({ length: 7 }, (_, i) => spawn({ url, name: `child-${i}`, doId: 'hot', durationMs }))
      // A process with the same timer and no store: how late a timer runs on this machine anyway.
      const control = spawn({ url, name: 'control', doId: 'none', durationMs, mode: 'timer' })
      await Promise.all([...children, control].map((c) => c.waitFor('ready', 20_000)))
      group.broadcast({ type: 'go' })
      // This process is the 8th contender, with the timer beside it.
      const lateness = watchTimerLateness(10)
      const mine = { acquired: 0, contended: 0, busy: 0 }
      const deadline = performance.now() + durationMs
      while (performance.now() < deadline) {
        try {
          const r = await s.acquire({ doId: 'hot', nodeId: 'parent', ttlMs: 10_000 })
          if (!r.acquired) {
            // A waiter polls with a pause (as the guard does); a loop of answered promises alone
            // would never let this process's own timers run, whatever the store does.
            mine.contended++
            await sleep(1)
            continue
          }
          mine.acquired++
          await s.release(r.lock)
        } catch (error) {
          if (!(error instanceof StoreUnavailableError && error.retryable)) throw error
          mine.busy++
        }
      }
      const worstLateMs = lateness.stop()
      await group.waitForAll({ timeoutMs: 20_000 })
      const results = await Promise.all(children.map((c) => c.waitFor<ContenderResult>('result', 0)))
      const noise = (await control.waitFor<ContenderResult>('result', 0)).worstLateMs
      const acquired = results.reduce((n, r) => n + r.acquired, mine.acquired)
      const busy = results.reduce((n, r) => n + r.busy, mine.busy)
      console.info(
        `8 processes on one id for ${durationMs} ms: ${acquired} leases (${[mine, ...results].map((r) => r.acquired).join('/')}), ` +
          `busy errors ${busy}; worst timer lateness: this process ${worstLateMs.toFixed(1)} ms, the children ` +
          `${Math.max(...results.map((r) => r.worstLateMs)).toFixed(1)} ms, a process without a store ${noise.toFixed(1)} ms; ` +
          `longest native call here ${worstNativeMs.toFixed(1)} ms (${worstNative})`,
      )
      // Real contention happened (each process took the lease).
      expect(results.every((r) => r.acquired > 0)).toBe(true)
      expect(mine.acquired).toBeGreaterThan(0)
      expect(mine.contended).toBeGreaterThan(0)
      // The store never waits for a busy database on the event loop: the old client engine, with the
      // recommended busy_timeout of 5000, held it for seconds here. What remains is the time of a
      // native call itself (a COMMIT's fsync, a WAL lock attempt): well under 1 ms on a quiet machine,
      // but tens of ms when other processes load this 2-core machine (the control process's timer
      // shows that load). The 50 ms target is measured by bench:lock (bench/RESULTS.md); this test keeps
      // a margin that a blocking busy wait (seconds) cannot pass.
      expect(worstNativeMs).toBeLessThan(500)
      expect(worstLateMs).toBeLessThan(500 + noise)
      expect(s.localEngine?.reopened).toBe(0)
    }, 60_000)
  })
})

describe('LocalEngine', () => {
  /** The real libsql constructor, counting the statements it prepares. */
  function preparingLibsql(): { libsql: NativeDatabaseConstructor; prepared: string[] } {
    const prepared: string[] = []
    // Typed as the engine sees it (libsql's own typings come from better-sqlite3's).
    const Base = Database as unknown as new (path: string) => { prepare(sql: string): unknown }
    class Preparing extends Base {
      override prepare(sql: string) {
        prepared.push(sql)
        return super.prepare(sql)
      }
    }
    return { libsql: Preparing as unknown as NativeDatabaseConstructor, prepared }
  }

  describe('prepared statements', () => {
    it('keeps at most STATEMENT_CACHE_SIZE prepared, however many distinct SQL texts it is sent', async () => {
      const engine = new LocalEngine(Database as unknown as NativeDatabaseConstructor, ':memory:')
      try {
        const distinct = 2_000
        expect(distinct).toBeGreaterThan(STATEMENT_CACHE_SIZE)
        // Values inlined in the text (as query builders do) make every statement distinct.
        for (let i = 0; i < distinct; i++) await engine.execute({ sql: `SELECT ${i} AS n` })
        expect(engine.cachedStatements).toBe(STATEMENT_CACHE_SIZE)
      } finally {
        engine.close()
      }
    })

    it('drops the least recently used: a statement in use stays prepared, an evicted one is prepared again and works', async () => {
      const { libsql, prepared } = preparingLibsql()
      const engine = new LocalEngine(libsql, ':memory:')
      try {
        const hot = 'SELECT 1 AS hot'
        for (let i = 0; i < 2 * STATEMENT_CACHE_SIZE; i++) {
          await engine.execute({ sql: hot })
          await engine.execute({ sql: `SELECT ${i} AS n` })
        }
        expect(prepared.filter((sql) => sql === hot)).toHaveLength(1)
        expect(await engine.execute({ sql: 'SELECT 0 AS n' })).toEqual({ rows: [{ n: 0 }], rowsAffected: 0 })
        expect(prepared.filter((sql) => sql === 'SELECT 0 AS n')).toHaveLength(2)
        expect(engine.cachedStatements).toBe(STATEMENT_CACHE_SIZE)
      } finally {
        engine.close()
      }
    })
  })

  describe('rowsAffected', () => {
    // What SqlResult.rowsAffected promises: the rows the statement wrote, whether or not it also returns rows.
    for (const [sql, written] of [
      ["UPDATE t SET v = v || '!' RETURNING k", 3],
      ["WITH c AS (SELECT 1) UPDATE t SET v = v || '!' RETURNING k", 3],
      ['WITH c(k) AS (VALUES (1), (2)) DELETE FROM t WHERE k IN c RETURNING k', 2],
      ['/* a comment */ SELECT * FROM t', 0],
      ['-- a comment\n  SELECT * FROM t', 0],
      ['SELECT * FROM t', 0],
      ["WITH c AS (SELECT 'update') SELECT * FROM c", 0],
      ['WITH c AS (SELECT 1 AS "delete", 2 AS [insert] /* update */) SELECT * FROM c', 0],
      ["WITH c AS (SELECT replace(v, 'a', 'b') AS v FROM t) SELECT * FROM c", 0],
    ] as const) {
      it(`counts ${written} for ${JSON.stringify(sql)} on 3 rows, as SQLite's changes() does`, async () => {
        const engine = new LocalEngine(Database as unknown as NativeDatabaseConstructor, ':memory:')
        try {
          await engine.batch([{ sql: 'CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)' }])
          await engine.batch([{ sql: "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')" }])
          await engine.execute({ sql: 'UPDATE t SET v = v WHERE 0' }) // changes() is 0 from here
          const result = await engine.execute({ sql })
          expect(result.rows.length).toBeGreaterThan(0)
          const [changes] = (await engine.execute({ sql: 'SELECT changes() AS n' })).rows
          expect(changes).toEqual({ n: written })
          expect(result.rowsAffected).toBe(written)
        } finally {
          engine.close()
        }
      })
    }
  })
})
