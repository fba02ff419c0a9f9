/**
 * The fenced-write contract (docs/design.md invariants 3 and 5): one suite, run unchanged against every
 * SQL store (libSQL `:memory:`, `file:`, its remote path, D1 in workerd), and against tables whose names
 * mean something in SQL.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  StaleFencingTokenError,
  type LockRecord,
  type SqlLockStore,
  type SqlStatement,
  type StoreAcquireResult,
} from '../../src/index.js'

export interface FenceHarness {
  store: SqlLockStore
  /** Runs one statement on the database directly (not through the store) and returns its rows. */
  raw(sql: string): Promise<Array<Record<string, unknown>>>
  /** Waits until the store clock has passed `ms` (a lease that ended there is expired). */
  until(ms: number): Promise<void>
  close?: () => Promise<void> | void
}

function won(result: StoreAcquireResult): LockRecord {
  if (!result.acquired) throw new Error(`expected to acquire, but ${result.holder.nodeId} holds it`)
  return result.lock
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  )
}

export function describeFenceContract(name: string, create: () => Promise<FenceHarness>): void {
  describe(`fenced writes: ${name}`, () => {
    let h: FenceHarness
    let store: SqlLockStore
    let state = ''
    const put = (k: string, v: string) => ({
      sql: `INSERT INTO "${state}" (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v`,
      args: [k, v],
    })
    const rows = async () => h.raw(`SELECT k, v FROM "${state}" ORDER BY k`)

    beforeEach(async () => {
      h = await create()
      store = h.store
      await store.ensureSchema()
      state = `${store.sql.table}_state`
      await h.raw(`CREATE TABLE "${state}" (k TEXT PRIMARY KEY, v TEXT NOT NULL)`)
    })
    afterEach(async () => {
      await h.raw(`DROP TABLE IF EXISTS "${state}"`)
      await h.close?.()
    })

    it('commits the writes of the current holder, with each statement result', async () => {
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      const results = await store.fencedWrite(lock, [put('a', 'one'), { sql: `SELECT count(*) AS n FROM "${state}"` }])
      expect(results).toHaveLength(2)
      expect(results[1]?.rows[0]).toMatchObject({ n: 1 })
      expect(await rows()).toEqual([{ k: 'a', v: 'one' }])
    })

    it("rejects another node presenting the holder's token, unexpired: the fence checks node AND token (invariant 3)", async () => {
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      const error = await rejection(store.fencedWrite({ ...lock, nodeId: 'b' }, [put('a', 'intruder')]))
      expect(error).toBeInstanceOf(StaleFencingTokenError)
      expect(error).toMatchObject({ doId: 'room', token: lock.fencingToken })
      expect(await rows()).toEqual([])
    })

    it('rejects a token that was taken over, rolling back every statement of the batch', async () => {
      const old = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      await store.fencedWrite(old, [put('a', 'before')])
      expect(await store.forceRelease('room')).toBe(true)
      const current = won(await store.acquire({ doId: 'room', nodeId: 'b', ttlMs: 10_000 }))
      const error = await rejection(store.fencedWrite(old, [put('a', 'stale'), put('z', 'stale')]))
      expect(error).toBeInstanceOf(StaleFencingTokenError)
      // The old token under the new holder's node is no better.
      await expect(store.fencedWrite({ ...old, nodeId: 'b' }, [put('a', 'stale')])).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      expect(await rows()).toEqual([{ k: 'a', v: 'before' }])
      await store.fencedWrite(current, [put('a', 'after')])
      expect(await rows()).toEqual([{ k: 'a', v: 'after' }])
    })

    it('rejects an id never locked, while other ids hold unexpired leases', async () => {
      won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      await expect(
        store.fencedWrite({ doId: 'never-locked', nodeId: 'a', fencingToken: 1 }, [put('a', 'x')]),
      ).rejects.toBeInstanceOf(StaleFencingTokenError)
      expect(await rows()).toEqual([])
    })

    it('rejects the token of a lease that expired or was released, even if nobody took over', async () => {
      const short = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 40 }))
      await h.until(short.expiresAt)
      await expect(store.fencedWrite(short, [put('a', 'late')])).rejects.toBeInstanceOf(StaleFencingTokenError)
      const released = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      expect(await store.release(released)).toBe(true)
      await expect(store.fencedWrite(released, [put('a', 'late')])).rejects.toBeInstanceOf(StaleFencingTokenError)
      expect(await rows()).toEqual([])
    })

    it('sends the lock, statements and arguments it validated, each read once', async () => {
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      let reads = 0
      const shiftyLock = Object.defineProperty({ ...lock }, 'nodeId', { get: () => (reads++ === 0 ? 'a' : 'a\0b') })
      const statement = put('a', 'one')
      let sqlReads = 0
      const shiftyStatement = Object.defineProperty({ args: statement.args } as SqlStatement, 'sql', {
        enumerable: true,
        get: () => (sqlReads++ === 0 ? statement.sql : ''),
      })
      const args = ['b', 'two']
      let argReads = 0
      Object.defineProperty(args, 1, { get: () => (argReads++ === 0 ? 'two' : Number.NaN) })
      await store.fencedWrite(shiftyLock, [shiftyStatement, { sql: statement.sql, args }])
      expect(await rows()).toEqual([
        { k: 'a', v: 'one' },
        { k: 'b', v: 'two' },
      ])
    })

    it('refuses a hole in the statements or in their arguments, naming it, and writes nothing', async () => {
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      // eslint-disable-next-line no-sparse-arrays
      const holeInStatements = [put('a', 'one'), , put('b', 'two')] as never
      await expect(store.fencedWrite(lock, holeInStatements)).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'statements[1]',
      })
      // eslint-disable-next-line no-sparse-arrays
      const args = ['c', , 'x'] as never
      await expect(store.fencedWrite(lock, [{ sql: put('c', '').sql, args }])).rejects.toMatchObject({
        name: 'InvalidArgumentError',
        argument: 'statements[0].args[1]',
      })
      expect(await rows()).toEqual([])
    })

    it("rejects a paused old holder's write after its row was pruned and the id acquired again, by another node or its own", async () => {
      const old = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 40 }))
      await store.fencedWrite(old, [put('a', 'before')])
      await h.until(old.expiresAt + 1)
      expect((await store.prune({ olderThanMs: 0 })).removed).toBe(1)
      const other = won(await store.acquire({ doId: 'room', nodeId: 'b', ttlMs: 10_000 }))
      expect(other.fencingToken).toBeGreaterThan(old.fencingToken)
      await expect(store.fencedWrite(old, [put('a', 'stale')])).rejects.toBeInstanceOf(StaleFencingTokenError)
      // The same node taking the id again after another prune: a new token, so the paused write still fails.
      await store.release(other)
      await h.until(other.acquiredAt + 1)
      expect((await store.prune({ olderThanMs: 0 })).removed).toBe(1)
      const same = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      expect(same.fencingToken).toBeGreaterThan(other.fencingToken)
      await expect(store.fencedWrite(old, [put('a', 'stale')])).rejects.toBeInstanceOf(StaleFencingTokenError)
      expect(await rows()).toEqual([{ k: 'a', v: 'before' }])
    })

    it("replaces an earlier version's token-only fence when ensureSchema runs again", async () => {
      const t = store.sql.table
      // The database as an earlier version left it: a fence view and trigger that check the token only.
      await h.raw(`DROP VIEW "${store.sql.fenceView}"`)
      await h.raw(`CREATE VIEW "${t}_fence" AS SELECT do_id, fencing_token FROM "${t}"`)
      await h.raw(`CREATE TRIGGER "${t}_fence_check" INSTEAD OF INSERT ON "${t}_fence" BEGIN
        SELECT RAISE(ABORT, 'old fence') WHERE NOT EXISTS (SELECT 1 FROM "${t}" AS o
          WHERE o.do_id = NEW.do_id AND o.fencing_token = NEW.fencing_token); END`)
      await store.ensureSchema()
      const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
      await expect(store.fencedWrite({ ...lock, nodeId: 'b' }, [put('a', 'x')])).rejects.toBeInstanceOf(
        StaleFencingTokenError,
      )
      await store.fencedWrite(lock, [put('a', 'ok')])
      const left = await h.raw(
        `SELECT name FROM sqlite_master WHERE name IN ('${t}_fence', '${t}_fence_check') ORDER BY name`,
      )
      expect(left).toEqual([])
      expect(await rows()).toEqual([{ k: 'a', v: 'ok' }])
    })

    it('keeps triggers others attached to the fence view when ensureSchema runs again (idempotent)', async () => {
      const seen = `${store.sql.table}_seen`
      await h.raw(`CREATE TABLE "${seen}" (do_id TEXT, node_id TEXT, token INTEGER)`)
      try {
        await h.raw(`CREATE TRIGGER "${seen}_witness" INSTEAD OF INSERT ON "${store.sql.fenceView}" BEGIN
          INSERT INTO "${seen}" VALUES (NEW.do_id, NEW.node_id, NEW.fencing_token); END`)
        await store.ensureSchema()
        await store.ensureSchema()
        const lock = won(await store.acquire({ doId: 'room', nodeId: 'a', ttlMs: 10_000 }))
        await store.fencedWrite(lock, [put('a', 'x')])
        expect(await h.raw(`SELECT do_id, node_id, token FROM "${seen}"`)).toEqual([
          { do_id: 'room', node_id: 'a', token: lock.fencingToken },
        ])
      } finally {
        await h.raw(`DROP TABLE IF EXISTS "${seen}"`)
      }
    })
  })
}
