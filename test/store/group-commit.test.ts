import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  LibSQLLockStore,
  SqlLockStore,
  StaleFencingTokenError,
  StoreUnavailableError,
  groupCommitDriver,
  type SqlDriver,
  type SqlResult,
  type SqlStatement,
  type StoreAcquireResult,
} from '../../src/index.js'
import { MAX_COMBINED_FLUSH_CHARS, MAX_COMBINED_FLUSH_STATEMENTS } from '../../src/store/libsql.js'
import { MAX_GROUP_COMMIT_CHARS } from '../../src/store/group-commit.js'
import { MAX_ROWS_PER_PUT } from '../../src/store/object-sql.js'
import { countingClient } from '../support/counting-client.js'
import { describeLockStoreContract } from './contract.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-group-commit-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let fileNo = 0
const freshFile = () => `file:${join(dir, `locks-${fileNo++}.db`)}`

describeLockStoreContract('LibSQLLockStore with group commit on :memory:', async () => {
  const counted = countingClient(createClient({ url: ':memory:' }))
  return {
    store: new LibSQLLockStore(counted.client, { groupCommit: true }),
    requests: counted.requests,
    close: () => counted.client.close(),
  }
})

describeLockStoreContract('LibSQLLockStore with group commit on a file: database (WAL)', async () => {
  const raw = createClient({ url: freshFile() })
  await raw.execute('PRAGMA journal_mode=WAL')
  await raw.execute('PRAGMA busy_timeout=5000')
  const counted = countingClient(raw)
  return {
    store: new LibSQLLockStore(counted.client, { groupCommit: true }),
    requests: counted.requests,
    close: () => raw.close(),
  }
})

// --- the decorator alone, over a scripted driver ------------------------------------------------

interface Call {
  method: 'execute' | 'batch'
  statements: SqlStatement[]
}

/** A driver that answers each statement with a row naming it (`{ sql, args }`), and records calls. */
function echoDriver(options: { fail?: (call: Call) => unknown; delayMs?: number; miscount?: boolean } = {}) {
  const calls: Call[] = []
  const answer = async (call: Call): Promise<SqlResult[]> => {
    calls.push(call)
    if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs))
    const failure = options.fail?.(call)
    if (failure) throw failure
    const results = call.statements.map((s) => ({ rows: [{ sql: s.sql, args: s.args ?? [] }], rowsAffected: 1 }))
    return options.miscount ? results.slice(1) : results
  }
  const driver: SqlDriver = {
    execute: async (statement) => (await answer({ method: 'execute', statements: [statement] }))[0]!,
    batch: (statements) => answer({ method: 'batch', statements }),
  }
  return { driver, calls }
}

const op = (name: string, n = 1): SqlStatement[] =>
  Array.from({ length: n }, (_, i) => ({ sql: `${name}#${i}`, args: [name] }))
const rowsOf = (results: SqlResult[]) => results.map((r) => r.rows[0])
const combinable = (statements: readonly SqlStatement[]) => statements.every((s) => !s.sql.startsWith('solo'))

describe('groupCommitDriver', () => {
  it('sends operations issued in the same tick as ONE batch and gives each caller its own results, in order', async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const [a, b, c] = await Promise.all([gc.batch(op('a', 2)), gc.execute(op('b')[0]!), gc.batch(op('c', 3))])
    expect(calls).toHaveLength(1)
    expect(calls[0]!.method).toBe('batch')
    expect(calls[0]!.statements.map((s) => s.sql)).toEqual(['a#0', 'a#1', 'b#0', 'c#0', 'c#1', 'c#2'])
    expect(rowsOf(a)).toEqual([
      { sql: 'a#0', args: ['a'] },
      { sql: 'a#1', args: ['a'] },
    ])
    expect(b.rows[0]).toEqual({ sql: 'b#0', args: ['b'] })
    expect(rowsOf(c).map((r) => r?.sql)).toEqual(['c#0', 'c#1', 'c#2'])
  })

  it('sends a lone operation unchanged, through the method the caller used', async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    await gc.execute(op('x')[0]!)
    await gc.batch(op('y', 2))
    expect(calls.map((c) => [c.method, c.statements.length])).toEqual([
      ['execute', 1],
      ['batch', 2],
    ])
  })

  it('never combines what canCombine refuses, nor empty batches', async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const [solo, a, b, empty] = await Promise.all([
      gc.batch(op('solo', 2)),
      gc.batch(op('a')),
      gc.execute(op('b')[0]!),
      gc.batch([]),
    ])
    expect(rowsOf(solo).map((r) => r?.sql)).toEqual(['solo#0', 'solo#1'])
    expect(a[0]!.rows[0]).toMatchObject({ sql: 'a#0' })
    expect(b.rows[0]).toMatchObject({ sql: 'b#0' })
    expect(empty).toEqual([])
    const sent = calls.map((c) => c.statements.map((s) => s.sql))
    expect(sent).toContainEqual(['solo#0', 'solo#1'])
    expect(sent).toContainEqual(['a#0', 'b#0'])
    expect(sent).toContainEqual([])
    expect(calls).toHaveLength(3)
  })

  it('queues operations that arrive while a batch is in flight and sends them together when it returns', async () => {
    const { driver, calls } = echoDriver({ delayMs: 20 })
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const first = gc.batch(op('first'))
    await new Promise((r) => setTimeout(r, 5)) // `first` is in flight now
    const later = Promise.all([gc.batch(op('l1')), gc.execute(op('l2')[0]!), gc.batch(op('l3', 2))])
    expect(calls).toHaveLength(1)
    await first
    const [l1, l2, l3] = await later
    expect(calls.map((c) => c.statements.map((s) => s.sql))).toEqual([['first#0'], ['l1#0', 'l2#0', 'l3#0', 'l3#1']])
    expect(l1[0]!.rows[0]).toMatchObject({ sql: 'l1#0' })
    expect(l2.rows[0]).toMatchObject({ sql: 'l2#0' })
    expect(rowsOf(l3).map((r) => r?.sql)).toEqual(['l3#0', 'l3#1'])
  })

  it('stops holding the queue behind a batch that stays unanswered past stallMs; its callers still get its answer', async () => {
    let answerHung!: () => void
    const calls: string[][] = []
    const driver: SqlDriver = {
      execute: async () => {
        throw new Error('not used')
      },
      batch: async (statements) => {
        calls.push(statements.map((s) => s.sql))
        if (calls.length === 1) await new Promise<void>((r) => (answerHung = r)) // a request that hangs
        return statements.map((s) => ({ rows: [{ sql: s.sql }], rowsAffected: 1 }))
      },
    }
    const gc = groupCommitDriver(driver, { canCombine: combinable, stallMs: 30 })
    const hung = gc.batch(op('hung'))
    await new Promise((r) => setTimeout(r, 5))
    const behind = gc.batch(op('behind'))
    await new Promise((r) => setTimeout(r, 10))
    expect(calls).toHaveLength(1) // still waiting its turn, as group commit does
    expect((await behind)[0]!.rows[0]).toMatchObject({ sql: 'behind#0' }) // answered once the first stalled
    expect(calls).toEqual([['hung#0'], ['behind#0']])
    answerHung()
    expect((await hung)[0]!.rows[0]).toMatchObject({ sql: 'hung#0' })
    // The late answer frees nothing twice: the next operations still go out as one group.
    await Promise.all([gc.batch(op('x')), gc.batch(op('y'))])
    expect(calls.at(-1)).toEqual(['x#0', 'y#0'])
  })

  it('caps a batch at maxOperations and sends the rest in the next one', async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable, maxOperations: 3 })
    const results = await Promise.all(Array.from({ length: 7 }, (_, i) => gc.execute(op(`o${i}`)[0]!)))
    expect(calls.map((c) => c.statements.length)).toEqual([3, 3, 1])
    expect(results.map((r) => r.rows[0]?.sql)).toEqual(['o0#0', 'o1#0', 'o2#0', 'o3#0', 'o4#0', 'o5#0', 'o6#0'])
  })

  it(`caps a batch at ${MAX_GROUP_COMMIT_CHARS} characters of SQL and string arguments; a bigger operation still goes, alone`, async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const quarter = 'x'.repeat(MAX_GROUP_COMMIT_CHARS / 4 - 100)
    const sized = (name: string, text: string) => [{ sql: name, args: [text] }]
    await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => gc.batch(sized(`q${i}`, quarter))),
      gc.batch(sized('huge', 'x'.repeat(MAX_GROUP_COMMIT_CHARS + 1))),
      gc.batch(sized('small', 'x')),
    ])
    // Four quarters fill a batch; the huge one is sent on its own; the small one follows it.
    expect(calls.map((c) => c.statements.map((st) => st.sql))).toEqual([
      ['q0', 'q1', 'q2', 'q3'],
      ['q4', 'q5'],
      ['huge'],
      ['small'],
    ])
  })

  it('rejects EVERY caller of a failed combined batch with its error, then keeps working', async () => {
    const boom = new Error('SQLITE_BUSY: database is locked')
    let failNext = true
    const { driver, calls } = echoDriver({ fail: () => (failNext ? ((failNext = false), boom) : undefined) })
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const outcomes = await Promise.allSettled([gc.batch(op('a', 2)), gc.execute(op('b')[0]!), gc.batch(op('c'))])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected'])
    for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toBe(boom)
    expect(calls).toHaveLength(1)
    const again = await Promise.all([gc.batch(op('a', 2)), gc.execute(op('b')[0]!)])
    expect(again[1].rows[0]).toMatchObject({ sql: 'b#0' })
  })

  it('with retryAlone, sends each operation of a batch that failed in a statement again on its own, in order: only the failing one is rejected', async () => {
    const constraint = Object.assign(new Error('SQLITE_CONSTRAINT: bad row'), { code: 'SQLITE_CONSTRAINT' })
    const { driver, calls } = echoDriver({
      fail: (call) => (call.statements.some((s) => s.sql.startsWith('bad')) ? constraint : undefined),
    })
    const gc = groupCommitDriver(driver, { canCombine: combinable, retryAlone: (e) => e === constraint })
    const outcomes = await Promise.allSettled([gc.batch(op('a', 2)), gc.execute(op('bad')[0]!), gc.batch(op('c'))])
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled'])
    expect(rowsOf((outcomes[0] as PromiseFulfilledResult<SqlResult[]>).value)).toMatchObject([
      { sql: 'a#0' },
      { sql: 'a#1' },
    ])
    expect((outcomes[1] as PromiseRejectedResult).reason).toBe(constraint)
    expect(calls.map((c) => `${c.method}:${c.statements.map((s) => s.sql).join(',')}`)).toEqual([
      'batch:a#0,a#1,bad#0,c#0',
      'batch:a#0,a#1',
      'execute:bad#0',
      'batch:c#0',
    ])
  })

  it('does not send a failed batch again when retryAlone says no or throws (a remote batch may have committed)', async () => {
    const transport = new TypeError('fetch failed')
    for (const retryAlone of [
      () => false,
      () => {
        throw new Error('classifier broke')
      },
    ]) {
      const { driver, calls } = echoDriver({ fail: () => transport })
      const gc = groupCommitDriver(driver, { canCombine: combinable, retryAlone })
      const outcomes = await Promise.allSettled([gc.batch(op('a')), gc.execute(op('b')[0]!)])
      for (const o of outcomes) expect((o as PromiseRejectedResult).reason).toBe(transport)
      expect(calls).toHaveLength(1)
    }
  })

  it('rejects every caller, rather than guess, when the driver returns the wrong number of results', async () => {
    const { driver } = echoDriver({ miscount: true })
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const outcomes = await Promise.allSettled([gc.batch(op('a', 2)), gc.execute(op('b')[0]!)])
    for (const o of outcomes) {
      expect(o.status).toBe('rejected')
      expect(String((o as PromiseRejectedResult).reason)).toMatch(/2 results for 3 statements/)
    }
  })

  it('survives a driver that throws synchronously', async () => {
    let calls = 0
    const driver: SqlDriver = {
      execute: () => {
        throw new Error('sync execute')
      },
      batch: (statements) => {
        if (calls++ === 0) throw new Error('sync batch')
        return Promise.resolve(statements.map(() => ({ rows: [], rowsAffected: 0 })))
      },
    }
    const gc = groupCommitDriver(driver, { canCombine: () => true })
    await expect(Promise.all([gc.batch(op('a')), gc.batch(op('b'))])).rejects.toThrow('sync batch')
    await expect(gc.execute(op('c')[0]!)).rejects.toThrow('sync execute')
    await expect(Promise.all([gc.batch(op('a')), gc.batch(op('b'))])).resolves.toHaveLength(2)
  })

  it('copies the caller’s statement list, so reusing the array cannot change what is sent', async () => {
    const { driver, calls } = echoDriver()
    const gc = groupCommitDriver(driver, { canCombine: combinable })
    const list = op('a', 2)
    const pending = Promise.all([gc.batch(list), gc.batch(op('b'))])
    list.length = 0
    await pending
    expect(calls[0]!.statements.map((s) => s.sql)).toEqual(['a#0', 'a#1', 'b#0'])
  })

  it('validates its arguments', () => {
    const { driver } = echoDriver()
    expect(() => groupCommitDriver({} as SqlDriver, { canCombine: () => true })).toThrow(InvalidArgumentError)
    expect(() => groupCommitDriver(driver, {} as never)).toThrow(/canCombine/)
    for (const maxOperations of [0, -1, 1.5, Number.NaN]) {
      expect(() => groupCommitDriver(driver, { canCombine: () => true, maxOperations })).toThrow(/maxOperations/)
      expect(() => groupCommitDriver(driver, { canCombine: () => true, stallMs: maxOperations })).toThrow(/stallMs/)
    }
    expect(() => new LibSQLLockStore(createClient({ url: ':memory:' }), { groupCommit: 'yes' as never })).toThrow(
      /groupCommit/,
    )
    expect(() => new LibSQLLockStore(createClient({ url: ':memory:' }), { groupCommit: { maxOperations: 0 } })).toThrow(
      /maxOperations/,
    )
  })
})

// --- LibSQLLockStore with group commit, against real libSQL databases ---------------------------

describe('LibSQLLockStore with groupCommit', () => {
  const clients: Client[] = []
  const open = (url = ':memory:') => {
    const c = createClient({ url })
    clients.push(c)
    return c
  }
  afterEach(() => {
    while (clients.length) clients.pop()!.close()
  })
  const won = (r: StoreAcquireResult) => {
    if (!r.acquired) throw new Error(`held by ${r.holder.nodeId}`)
    return r.lock
  }

  it('answers 50 concurrent acquires of one id in ONE request: exactly one wins, the rest see it as holder', async () => {
    const counted = countingClient(open())
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    counted.reset()
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => store.acquire({ doId: 'x', nodeId: `n${i}`, ttlMs: 10_000 })),
    )
    expect(counted.requests()).toBe(1)
    const winners = results.filter((r) => r.acquired)
    expect(winners).toHaveLength(1)
    const lock = won(winners[0]!)
    expect(lock).toMatchObject({ nodeId: 'n0', fencingToken: 1 })
    for (const r of results.slice(1)) {
      expect(r.acquired).toBe(false)
      if (!r.acquired) expect(r.holder).toMatchObject({ nodeId: 'n0', fencingToken: 1 })
    }
  })

  it('applies combined operations in call order, as if sent one by one', async () => {
    const counted = countingClient(open())
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    const a = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
    const b0 = won(await store.acquire({ doId: 'y', nodeId: 'b', ttlMs: 10_000 }))
    counted.reset()
    const [refreshed, released, taken, lateRelease, stale, other] = await Promise.all([
      store.refresh({ doId: 'x', nodeId: 'a', fencingToken: a.fencingToken, ttlMs: 20_000 }),
      store.release({ doId: 'x', nodeId: 'a', fencingToken: a.fencingToken }),
      store.acquire({ doId: 'x', nodeId: 'c', ttlMs: 10_000 }),
      store.release({ doId: 'x', nodeId: 'a', fencingToken: a.fencingToken }),
      store.refresh({ doId: 'x', nodeId: 'a', fencingToken: a.fencingToken, ttlMs: 10_000 }),
      store.acquire({ doId: 'y', nodeId: 'd', ttlMs: 10_000 }),
    ])
    expect(counted.requests()).toBe(1)
    expect(refreshed?.expiresAt).toBeGreaterThan(a.expiresAt)
    expect(released).toBe(true)
    expect(won(taken)).toMatchObject({ nodeId: 'c', fencingToken: 2 })
    expect(lateRelease).toBe(false)
    expect(stale).toBeNull()
    expect(other.acquired).toBe(false)
    if (!other.acquired) expect(other.holder).toMatchObject({ nodeId: 'b', fencingToken: b0.fencingToken })
    expect(await store.get('x')).toMatchObject({ nodeId: 'c', fencingToken: 2, held: true })
  })

  it('never combines a fenced write: a stale one fails alone while the lock operations beside it succeed', async () => {
    const client = open()
    const counted = countingClient(client)
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    await client.execute('CREATE TABLE counter (id TEXT PRIMARY KEY, n INTEGER)')
    await client.execute("INSERT INTO counter VALUES ('c', 0)")
    const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
    await store.forceRelease('x')
    won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
    counted.reset()
    const update = { sql: "UPDATE counter SET n = n + 1 WHERE id = 'c'" }
    const [fenced, y, z] = await Promise.allSettled([
      store.fencedWrite(old, [update]),
      store.acquire({ doId: 'y', nodeId: 'a', ttlMs: 10_000 }),
      store.acquire({ doId: 'z', nodeId: 'a', ttlMs: 10_000 }),
    ])
    expect(counted.requests()).toBe(2) // the fenced write alone, the two acquires together
    expect(fenced.status === 'rejected' && fenced.reason).toBeInstanceOf(StaleFencingTokenError)
    expect(y.status === 'fulfilled' && y.value.acquired).toBe(true)
    expect(z.status === 'fulfilled' && z.value.acquired).toBe(true)
    expect((await client.execute("SELECT n FROM counter WHERE id = 'c'")).rows[0]?.n).toBe(0)
  })

  describe('object flushes', () => {
    const lease = (lock: { doId: string; nodeId: string; fencingToken: number }) => ({
      doId: lock.doId,
      nodeId: lock.nodeId,
      fencingToken: lock.fencingToken,
      ttlMs: 10_000,
    })
    const entries = (o: Record<string, string>) => new Map(Object.entries(o))
    const stored = async (store: LibSQLLockStore, lock: Parameters<typeof lease>[0], keys: string[]) =>
      Object.fromEntries(await store.objects.get(lease(lock), keys))

    it('share ONE request and commit with each other and with lock operations, with and without extension', async () => {
      const counted = countingClient(open())
      const store = new LibSQLLockStore(counted.client, { groupCommit: true })
      await store.ensureSchema()
      const locks = await Promise.all(
        ['a', 'b', 'c'].map(async (id) => won(await store.acquire({ doId: id, nodeId: 'n', ttlMs: 10_000 }))),
      )
      const [a, b, c] = locks as [(typeof locks)[0], (typeof locks)[0], (typeof locks)[0]]
      counted.reset()
      const [fa, fb, fc, heartbeat, other] = await Promise.all([
        store.objects.flush(lease(a), { entries: entries({ k: 'a1', l: 'a2' }) }),
        store.objects.flush(lease(b), { entries: entries({ k: 'b1' }), extend: false }),
        store.objects.flush(lease(c), { deleteAll: true, entries: entries({ k: 'c1' }) }),
        store.refresh({ ...a, ttlMs: 10_000 }),
        store.acquire({ doId: 'd', nodeId: 'n', ttlMs: 10_000 }),
      ])
      expect(counted.requests()).toBe(1)
      expect(fa.expiresAt).toBeGreaterThanOrEqual(a.expiresAt)
      expect(fb.expiresAt).toBe(b.expiresAt) // not extended
      expect(fc.expiresAt).toBeGreaterThanOrEqual(c.expiresAt)
      expect(heartbeat?.fencingToken).toBe(a.fencingToken)
      expect(other.acquired).toBe(true)
      expect(await stored(store, a, ['k', 'l'])).toEqual({ k: 'a1', l: 'a2' })
      expect(await stored(store, b, ['k'])).toEqual({ k: 'b1' })
      expect(await stored(store, c, ['k'])).toEqual({ k: 'c1' })
    })

    it('a stale flush among them fails alone and writes nothing; every other object’s writes commit', async () => {
      const counted = countingClient(open())
      const store = new LibSQLLockStore(counted.client, { groupCommit: true })
      await store.ensureSchema()
      const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
      await store.forceRelease('x')
      const successor = won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
      const y = won(await store.acquire({ doId: 'y', nodeId: 'a', ttlMs: 10_000 }))
      const z = won(await store.acquire({ doId: 'z', nodeId: 'a', ttlMs: 10_000 }))
      counted.reset()
      const [stale, fy, fz] = await Promise.allSettled([
        store.objects.flush(lease(old), { entries: entries({ k: 'stale' }) }),
        store.objects.flush(lease(y), { entries: entries({ k: 'y1' }) }),
        store.objects.flush(lease(z), { entries: entries({ k: 'z1' }), extend: false }),
      ])
      expect(counted.requests()).toBe(4) // the combined batch, rolled back by the fence, then each alone
      expect(stale.status === 'rejected' && stale.reason).toBeInstanceOf(StaleFencingTokenError)
      expect(fy.status).toBe('fulfilled')
      expect(fz.status).toBe('fulfilled')
      expect(await stored(store, successor, ['k'])).toEqual({})
      expect(await stored(store, y, ['k'])).toEqual({ k: 'y1' })
      expect(await stored(store, z, ['k'])).toEqual({ k: 'z1' })
    })

    it('on the local engine too: the stale flush fails alone, the others commit, all concurrent', async () => {
      const store = new LibSQLLockStore(freshFile(), { groupCommit: true })
      try {
        await store.ensureSchema()
        const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        await store.forceRelease('x')
        won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
        const others = await Promise.all(
          Array.from({ length: 16 }, async (_, i) =>
            won(await store.acquire({ doId: `o${i}`, nodeId: 'a', ttlMs: 10_000 })),
          ),
        )
        const [stale, ...rest] = await Promise.allSettled([
          store.objects.flush(lease(old), { entries: entries({ k: 'stale' }) }),
          ...others.map((o) => store.objects.flush(lease(o), { entries: entries({ k: o.doId }) })),
        ])
        expect(stale!.status === 'rejected' && stale!.reason).toBeInstanceOf(StaleFencingTokenError)
        expect(rest.map((r) => r.status)).toEqual(others.map(() => 'fulfilled'))
        for (const o of others) expect(await stored(store, o, ['k'])).toEqual({ k: o.doId })
      } finally {
        store.close()
      }
    })

    it(`sends a flush alone past ${MAX_COMBINED_FLUSH_STATEMENTS} statements or ${MAX_COMBINED_FLUSH_CHARS} characters of arguments`, async () => {
      const counted = countingClient(open())
      const store = new LibSQLLockStore(counted.client, { groupCommit: true })
      await store.ensureSchema()
      const [a, b, c] = await Promise.all(
        ['a', 'b', 'c'].map(async (id) => won(await store.acquire({ doId: id, nodeId: 'n', ttlMs: 10_000 }))),
      )
      // Puts go out in rows of MAX_ROWS_PER_PUT: this many keys need more statements than a combined flush may have.
      const manyKeys = Object.fromEntries(
        Array.from({ length: MAX_ROWS_PER_PUT * (MAX_COMBINED_FLUSH_STATEMENTS - 1) }, (_, i) => [`k${i}`, 'v']),
      )
      const big = 'x'.repeat(MAX_COMBINED_FLUSH_CHARS)
      counted.reset()
      await Promise.all([
        store.objects.flush(lease(a!), { entries: entries(manyKeys) }),
        store.objects.flush(lease(b!), { entries: entries({ k: big }) }),
        store.objects.flush(lease(c!), { entries: entries({ k: 'small' }) }),
        store.refresh({ ...c!, ttlMs: 10_000 }),
      ])
      expect(counted.requests()).toBe(3) // the two big flushes alone, the small one with the refresh
      expect((await stored(store, b!, ['k'])).k).toHaveLength(MAX_COMBINED_FLUSH_CHARS)
      expect(Object.keys(await store.objects.list(lease(a!), {}))).toHaveLength(Object.keys(manyKeys).length)
    })
  })

  it('does not combine get with acquires (same SELECT as the holder query, sent alone)', async () => {
    const counted = countingClient(open())
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    counted.reset()
    await Promise.all([
      store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }),
      store.acquire({ doId: 'y', nodeId: 'a', ttlMs: 10_000 }),
      store.get('x'),
    ])
    expect(counted.requests()).toBe(2)
    expect(await store.get('x')).toMatchObject({ nodeId: 'a', held: true })
  })

  it('rejects every caller of a combined batch that hit a locked database, commits nothing, and recovers', async () => {
    const url = freshFile()
    const other = open(url)
    await other.execute('PRAGMA journal_mode=WAL')
    const client = open(url)
    await client.execute('PRAGMA busy_timeout = 50')
    const store = new LibSQLLockStore(client, { groupCommit: true })
    await store.ensureSchema()
    const tx = await other.transaction('write')
    await tx.execute("INSERT INTO do_locks VALUES ('other', 'n', 0, 0, 1, NULL)")
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c'].map((doId) => store.acquire({ doId, nodeId: 'n1', ttlMs: 10_000 })),
    )
    for (const o of outcomes) {
      expect(o.status).toBe('rejected')
      expect((o as PromiseRejectedResult).reason).toBeInstanceOf(StoreUnavailableError)
      expect((o as PromiseRejectedResult).reason.retryable).toBe(true)
    }
    await tx.rollback()
    expect((await other.execute('SELECT count(*) AS n FROM do_locks')).rows[0]?.n).toBe(0)
    const again = await Promise.all(['a', 'b', 'c'].map((doId) => store.acquire({ doId, nodeId: 'n1', ttlMs: 10_000 })))
    expect(again.map((r) => r.acquired && r.lock.fencingToken)).toEqual([1, 1, 1])
    // Committed, as seen from another connection (a SQLITE_BUSY can leave libsql's connection stuck).
    const seen = await other.execute("SELECT do_id FROM do_locks WHERE node_id = 'n1' ORDER BY do_id")
    expect(seen.rows.map((r) => r.do_id)).toEqual(['a', 'b', 'c'])
  })

  it('rejects every caller when the client is closed', async () => {
    const client = open()
    const store = new LibSQLLockStore(client, { groupCommit: true })
    await store.ensureSchema()
    client.close()
    const outcomes = await Promise.allSettled([
      store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1000 }),
      store.release({ doId: 'y', nodeId: 'a', fencingToken: 1 }),
    ])
    for (const o of outcomes) expect(o.status === 'rejected' && o.reason).toBeInstanceOf(StoreUnavailableError)
  })

  it('without retryAlone, when one statement of a combined batch raises, rolls back the others and rejects every caller', async () => {
    // The store only combines statements that cannot raise; a driver told to combine anything shows
    // what would happen if one did: nobody gets an answer, and nobody's write is kept.
    const client = open()
    const raw: SqlDriver = {
      execute: async (s) =>
        (await client.batch([{ sql: s.sql, args: s.args ?? [] }], 'write'))[0] as unknown as SqlResult,
      batch: async (ss) =>
        (await client.batch(
          ss.map((s) => ({ sql: s.sql, args: s.args ?? [] })),
          'write',
        )) as unknown as SqlResult[],
    }
    const store = new SqlLockStore(raw)
    await store.ensureSchema()
    const gc = groupCommitDriver(raw, { canCombine: () => true })
    const { sql } = store
    const outcomes = await Promise.allSettled([
      gc.batch([
        { sql: sql.acquire, args: ['x', 'a', 10_000, null] },
        { sql: sql.holder, args: ['x'] },
      ]),
      gc.execute({ sql: 'INSERT INTO no_such_table VALUES (1)' }),
      gc.execute({ sql: sql.release, args: ['x', 'a', 1] }),
    ])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected'])
    for (const o of outcomes) expect(String((o as PromiseRejectedResult).reason)).toMatch(/no_such_table/)
    expect(await store.get('x')).toBeNull()
  })

  it('answers the other operations of a combined batch when one reads a corrupt row (an integer past 2^53, default intMode)', async () => {
    const client = open()
    const counted = countingClient(client)
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    const x = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
    const z = won(await store.acquire({ doId: 'z', nodeId: 'a', ttlMs: 10_000 }))
    won(await store.acquire({ doId: 'bad', nodeId: 'a', ttlMs: 10_000 }))
    await client.execute("UPDATE do_locks SET acquired_at = 1152921504606846976 WHERE do_id = 'bad'")
    counted.reset()
    const [bad, y, heartbeat, released] = await Promise.allSettled([
      store.acquire({ doId: 'bad', nodeId: 'b', ttlMs: 10_000 }),
      store.acquire({ doId: 'y', nodeId: 'b', ttlMs: 10_000 }),
      store.refresh({ ...x, ttlMs: 10_000 }),
      store.release(z),
    ])
    expect(counted.requests()).toBe(1)
    expect(bad.status === 'rejected' && bad.reason).toMatchObject({
      name: 'CorruptLockRowError',
      column: 'acquired_at',
    })
    expect(y.status === 'fulfilled' && y.value.acquired).toBe(true)
    expect(heartbeat.status === 'fulfilled' && heartbeat.value?.fencingToken).toBe(x.fencingToken)
    expect(released.status === 'fulfilled' && released.value).toBe(true)
  })

  it('sends the operations of a combined batch that failed in one statement again one by one: only that one is rejected', async () => {
    const client = open()
    const counted = countingClient(client)
    const store = new LibSQLLockStore(counted.client, { groupCommit: true })
    await store.ensureSchema()
    const x = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
    const z = won(await store.acquire({ doId: 'z', nodeId: 'a', ttlMs: 10_000 }))
    await store.release(won(await store.acquire({ doId: 'poison', nodeId: 'a', ttlMs: 10_000 })))
    // Something of the database's own (a trigger, a constraint) refuses the takeover of one row.
    await client.execute(`CREATE TRIGGER poison BEFORE UPDATE ON do_locks WHEN OLD.do_id = 'poison'
      BEGIN SELECT RAISE(ABORT, 'poisoned row'); END`)
    counted.reset()
    const [poison, y, heartbeat, released] = await Promise.allSettled([
      store.acquire({ doId: 'poison', nodeId: 'b', ttlMs: 10_000 }),
      store.acquire({ doId: 'y', nodeId: 'b', ttlMs: 10_000 }),
      store.refresh({ ...x, ttlMs: 10_000 }),
      store.release(z),
    ])
    expect(counted.requests()).toBe(5) // the combined batch, then each operation alone
    expect(poison.status === 'rejected' && poison.reason).toMatchObject({
      name: 'StatementError',
      sqliteCode: expect.stringMatching(/^SQLITE_CONSTRAINT/),
      message: expect.stringMatching(/poisoned row/),
    })
    expect(y.status === 'fulfilled' && y.value.acquired && y.value.lock.fencingToken).toBe(1)
    expect(heartbeat.status === 'fulfilled' && heartbeat.value?.fencingToken).toBe(x.fencingToken)
    expect(released.status === 'fulfilled' && released.value).toBe(true)
    expect(await store.get('poison')).toMatchObject({ held: false, fencingToken: 1 })
  })

  it('keeps tokens strictly increasing under concurrent acquire/release churn on shared ids', async () => {
    const url = freshFile()
    const setup = open(url)
    await setup.execute('PRAGMA journal_mode=WAL')
    const connections = [open(url), open(url)]
    for (const c of connections) await c.execute('PRAGMA busy_timeout = 5000')
    const [s1, s2] = connections.map((c) => new LibSQLLockStore(c, { groupCommit: true })) as [
      LibSQLLockStore,
      LibSQLLockStore,
    ]
    await s1.ensureSchema()
    const tokens = new Map<string, number[]>()
    const worker = async (store: LibSQLLockStore, node: string) => {
      for (let i = 0; i < 40; i++) {
        const doId = `id-${i % 4}`
        const r = await store.acquire({ doId, nodeId: node, ttlMs: 10_000 })
        if (!r.acquired) continue
        tokens.set(doId, [...(tokens.get(doId) ?? []), r.lock.fencingToken])
        expect(await store.release(r.lock)).toBe(true)
      }
    }
    await Promise.all(Array.from({ length: 8 }, (_, w) => worker(w % 2 ? s1 : s2, `node-${w}`)))
    for (const [, list] of tokens) {
      const sorted = [...list].sort((a, b) => a - b)
      expect(new Set(list).size).toBe(list.length) // never issued twice
      expect(sorted[sorted.length - 1]).toBe(list.length) // 1..n, none skipped
    }
  })
})
