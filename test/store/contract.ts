/**
 * The LockStore contract: one suite, run unchanged against every store (memory, libSQL `:memory:` and
 * `file:`, D1 in workerd). Each `it` is a clause of the contract in docs/design.md.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  StaleFencingTokenError,
  MAX_PREFETCH_CHARS,
  MAX_PREFETCH_ROWS,
  type AcquireRequest,
  type HandoffRequest,
  type LockRecord,
  type LockStore,
  type ObjectStore,
  type StoreAcquireResult,
} from '../../src/index.js'
import { MAX_METADATA_DEPTH } from '../../src/validate.js'

export interface StoreHarness {
  store: LockStore
  /** Requests sent to the backing database so far, if the harness can count them. */
  requests?: () => number
  close?: () => Promise<void> | void
}

export interface ContractOptions {
  /** Extra slack for stores whose calls are slow (remote, workerd proxies). */
  slowMs?: number
  /**
   * The store has no database to send requests to (MemoryLockStore): the one-round-trip clause does
   * not apply. Every other harness must count requests, or the clause fails.
   */
  inProcess?: boolean
  /**
   * Resolves once the store's clock has reached `storeMs`. Without it, the suite sleeps (ttl + slack):
   * enough where the local timers and the store clock agree, not in workerd, whose timers were seen
   * to fire early against D1's clock on a loaded machine.
   */
  until?: (storeMs: number) => Promise<void>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function won(result: StoreAcquireResult): LockRecord {
  if (!result.acquired) throw new Error(`expected to acquire, but ${result.holder.nodeId} holds it`)
  return result.lock
}

export function describeLockStoreContract(
  name: string,
  create: () => Promise<StoreHarness>,
  options: ContractOptions = {},
): void {
  const slow = options.slowMs ?? 0
  /** Waits until `lock`'s lease has expired on the store clock. */
  const outlive = (lock: LockRecord, sleepMs: number): Promise<void> =>
    options.until ? options.until(lock.expiresAt) : sleep(sleepMs + slow)

  describe(`LockStore contract: ${name}`, () => {
    let h: StoreHarness
    let store: LockStore

    /** The store's object storage (every LockStore under the contract has `objects`). */
    const objectsOf = (): ObjectStore => {
      const objects = (store as { objects?: ObjectStore }).objects
      if (!objects) throw new Error('the store under test has no objects')
      return objects
    }
    /** Gives `doId` these storage rows, under a lease of its own that is released afterwards. */
    const writeRows = async (doId: string, rows: Record<string, string>, deleteAll = false) => {
      const lock = won(await store.acquire({ doId, nodeId: 'writer', ttlMs: 10_000 }))
      await objectsOf().flush({ ...lock, ttlMs: 10_000 }, { deleteAll, entries: new Map(Object.entries(rows)) })
      expect(await store.release(lock)).toBe(true)
    }

    beforeEach(async () => {
      h = await create()
      store = h.store
      await store.ensureSchema()
    })
    afterEach(async () => {
      await h.close?.()
    })

    describe('schema', () => {
      it('creates its table idempotently', async () => {
        await store.ensureSchema()
        await store.ensureSchema()
        expect(won(await store.acquire({ doId: 'a', nodeId: 'n1', ttlMs: 1000 })).fencingToken).toBe(1)
      })
    })

    describe('acquire', () => {
      it('takes a never-seen id with token 1 and a lease of exactly ttlMs on the store clock', async () => {
        const lock = won(await store.acquire({ doId: 'room-1', nodeId: 'node-a', ttlMs: 30_000 }))
        expect(lock).toMatchObject({ doId: 'room-1', nodeId: 'node-a', fencingToken: 1 })
        expect(lock.expiresAt - lock.acquiredAt).toBe(30_000)
        expect(Math.abs(lock.acquiredAt - Date.now())).toBeLessThan(60_000)
      })

      it('does not take a held id and reports the holder and how long it still holds', async () => {
        const first = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        const second = await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 10_000 })
        expect(second.acquired).toBe(false)
        if (second.acquired) return
        expect(second.holder).toMatchObject({
          nodeId: 'node-a',
          fencingToken: first.fencingToken,
          expiresAt: first.expiresAt,
        })
        expect(second.holder.expiresAt - second.storeNow).toBeGreaterThan(0)
        expect(second.holder.expiresAt - second.storeNow).toBeLessThanOrEqual(10_000)
      })

      it('is not re-entrant: the holding node cannot take its own held id again', async () => {
        won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        const again = await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 })
        expect(again.acquired).toBe(false)
        expect((await store.get('x'))?.fencingToken).toBe(1)
      })

      it('takes an expired lease and increments the token', async () => {
        const first = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 30 }))
        await outlive(first, 60)
        const second = won(await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 1000 }))
        expect(second.nodeId).toBe('node-b')
        expect(second.fencingToken).toBe(first.fencingToken + 1)
      })

      it('lets exactly one of many concurrent acquirers win', async () => {
        const results = await Promise.all(
          Array.from({ length: 25 }, (_, i) => store.acquire({ doId: 'hot', nodeId: `node-${i}`, ttlMs: 10_000 })),
        )
        const winners = results.filter((r) => r.acquired)
        expect(winners).toHaveLength(1)
        const winner = won(winners[0]!)
        for (const r of results) {
          if (!r.acquired) expect(r.holder).toMatchObject({ nodeId: winner.nodeId, fencingToken: winner.fencingToken })
        }
      })

      it('keeps ids independent', async () => {
        won(await store.acquire({ doId: 'a', nodeId: 'n1', ttlMs: 10_000 }))
        const b = won(await store.acquire({ doId: 'b', nodeId: 'n2', ttlMs: 10_000 }))
        expect(b.fencingToken).toBe(1)
      })

      it('round-trips metadata as JSON', async () => {
        const metadata = { region: 'weur', tags: ['a', 'b'], n: 3, nested: { ok: true, none: null } }
        const lock = won(await store.acquire({ doId: 'm', nodeId: 'n1', ttlMs: 10_000, metadata }))
        expect(lock.metadata).toEqual(metadata)
        expect((await store.get('m'))?.metadata).toEqual(metadata)
        const refused = await store.acquire({ doId: 'm', nodeId: 'n2', ttlMs: 10_000 })
        expect(!refused.acquired && refused.holder.metadata).toEqual(metadata)
      })

      it('round-trips every JSON value exactly: null-prototype objects, floats, negatives, big numbers, unicode, null', async () => {
        const bare = Object.assign(Object.create(null) as Record<string, unknown>, { k: 'v' })
        const metadata = { bare, f: 0.1, neg: -3.5, big: 1e21, small: 5e-324, s: '😀 \u2028', n: null, e: [], o: {} }
        const lock = won(await store.acquire({ doId: 'm', nodeId: 'n1', ttlMs: 10_000, metadata }))
        expect(lock.metadata).toEqual({ ...metadata, bare: { k: 'v' } })
        expect((await store.get('m'))?.metadata).toEqual({ ...metadata, bare: { k: 'v' } })
        const top = won(await store.acquire({ doId: 'null', nodeId: 'n1', ttlMs: 10_000, metadata: null }))
        expect(top.metadata).toBeNull()
      })

      it('accepts metadata nested up to MAX_METADATA_DEPTH (and keeps refreshing it), and refuses deeper, naming the path', async () => {
        const nest = (levels: number): unknown => (levels === 0 ? 1 : { a: nest(levels - 1) })
        const lock = won(
          await store.acquire({ doId: 'deep', nodeId: 'n1', ttlMs: 10_000, metadata: nest(MAX_METADATA_DEPTH) }),
        )
        expect(await store.refresh({ ...lock, ttlMs: 10_000 })).not.toBeNull()
        expect((await store.list()).map((l) => l.doId)).toContain('deep')
        const error = await store
          .acquire({ doId: 'deeper', nodeId: 'n1', ttlMs: 10_000, metadata: nest(MAX_METADATA_DEPTH + 1) })
          .catch((e: unknown) => e)
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect((error as InvalidArgumentError).argument).toBe(`metadata${'.a'.repeat(MAX_METADATA_DEPTH)}`)
      })

      it('stores no metadata when none is given', async () => {
        const lock = won(await store.acquire({ doId: 'm', nodeId: 'n1', ttlMs: 10_000 }))
        expect(lock.metadata).toBeUndefined()
      })
    })

    // Each clause uses ids of its own: a harness may drop only the lock table between tests, not the
    // storage table beside it.
    describe('acquire with prefetch (invariant 13: a cold start in one round trip)', () => {
      const prefetched = (result: StoreAcquireResult) => (result.acquired ? result.prefetched : undefined)

      it("returns the object's rows in code point order, values as stored, and no other object's", async () => {
        await writeRows('rows-order', { b: '"2"', a: '"1"', '\u{1F600}': '"emoji"', '\uFF5E': '"tilde"' })
        await writeRows('rows-order-2', { a: '"other"' })
        await writeRows('rows-orde', { z: '"other"' })
        const result = await store.acquire({ doId: 'rows-order', nodeId: 'n1', ttlMs: 10_000, prefetch: 10 })
        expect(result.acquired && result.lock).toMatchObject({ doId: 'rows-order', nodeId: 'n1', fencingToken: 2 })
        expect(prefetched(result)).toEqual({
          entries: [
            ['a', '"1"'],
            ['b', '"2"'],
            ['\uFF5E', '"tilde"'],
            ['\u{1F600}', '"emoji"'],
          ],
          complete: true,
        })
      })

      it('says complete when the object has at most prefetch rows, and gives only the first prefetch when it has more', async () => {
        await writeRows('rows-limit', { c: '3', a: '1', b: '2' })
        const all = ['a', 'b', 'c'].map((k, i) => [k, String(i + 1)])
        for (const [prefetch, complete] of [
          [3, true],
          [MAX_PREFETCH_ROWS, true],
          [2, false],
          [1, false],
        ] as const) {
          const result = await store.acquire({ doId: 'rows-limit', nodeId: 'n1', ttlMs: 10_000, prefetch })
          expect(prefetched(result)).toEqual({ entries: all.slice(0, prefetch), complete })
          await store.release(won(result))
        }
      })

      it('stops, not complete, before the rows that would take it past MAX_PREFETCH_CHARS', async () => {
        // Five rows of ~300 Ki characters: only three fit in the 1 Mi budget, whatever prefetch asked for.
        const big = `"${'x'.repeat(300_000)}"`
        await writeRows('rows-bytes', { a: big, b: big, c: big, d: big, e: big })
        const result = await store.acquire({ doId: 'rows-bytes', nodeId: 'n1', ttlMs: 10_000, prefetch: 100 })
        const got = prefetched(result)
        expect(got?.complete).toBe(false)
        expect(got?.entries.map(([k]) => k)).toEqual(['a', 'b', 'c'])
        expect(3 * (1 + big.length)).toBeLessThanOrEqual(MAX_PREFETCH_CHARS)
        expect(4 * (1 + big.length)).toBeGreaterThan(MAX_PREFETCH_CHARS)
      })

      it('gives an object without rows (never written, or emptied) no entries, complete', async () => {
        const fresh = await store.acquire({ doId: 'rows-none', nodeId: 'n1', ttlMs: 10_000, prefetch: 5 })
        expect(prefetched(fresh)).toEqual({ entries: [], complete: true })
        await store.release(won(fresh))
        await writeRows('rows-none', { k: 'v' })
        await writeRows('rows-none', {}, true)
        const emptied = await store.acquire({ doId: 'rows-none', nodeId: 'n2', ttlMs: 10_000, prefetch: 5 })
        expect(prefetched(emptied)).toEqual({ entries: [], complete: true })
      })

      it('takes an expired lease the same way: the rows the previous holder committed', async () => {
        // A long lease to flush under (a loaded machine must not let it run out first); the flush
        // itself shortens it to 200 ms, which is then waited out.
        const old = won(await store.acquire({ doId: 'rows-expired', nodeId: 'a', ttlMs: 10_000 }))
        const { expiresAt } = await objectsOf().flush({ ...old, ttlMs: 200 }, { entries: new Map([['n', '7']]) })
        await outlive({ ...old, expiresAt }, 250)
        const next = await store.acquire({ doId: 'rows-expired', nodeId: 'b', ttlMs: 10_000, prefetch: 1 })
        expect(next.acquired && next.lock.fencingToken).toBe(old.fencingToken + 1)
        expect(prefetched(next)).toEqual({ entries: [['n', '7']], complete: true })
      })

      it('returns no rows to an acquire that lost, and none without prefetch', async () => {
        await writeRows('rows-lost', { secret: '"s"' })
        const holder = await store.acquire({ doId: 'rows-lost', nodeId: 'a', ttlMs: 10_000 })
        expect(holder.acquired).toBe(true)
        expect(holder).not.toHaveProperty('prefetched')
        const lost = await store.acquire({ doId: 'rows-lost', nodeId: 'b', ttlMs: 10_000, prefetch: 10 })
        expect(lost.acquired).toBe(false)
        expect(lost).not.toHaveProperty('prefetched')
        expect(JSON.stringify(lost)).not.toContain('secret')
      })
    })

    describe('release', () => {
      it('frees the lease but keeps the row, so the next token is higher (never reset)', async () => {
        const first = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        expect(await store.release(first)).toBe(true)
        const row = await store.get('x')
        expect(row).toMatchObject({ held: false, fencingToken: first.fencingToken })
        const second = won(await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 10_000 }))
        expect(second.fencingToken).toBe(first.fencingToken + 1)
      })

      it('refuses a release from another node or with another token, changing nothing', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        expect(await store.release({ ...lock, nodeId: 'node-b' })).toBe(false)
        expect(await store.release({ ...lock, fencingToken: lock.fencingToken + 1 })).toBe(false)
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'node-a', expiresAt: lock.expiresAt })
      })

      it('refuses a late release from a holder whose lease expired and was taken over', async () => {
        const old = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 30 }))
        await outlive(old, 60)
        const current = won(await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 10_000 }))
        expect(await store.release(old)).toBe(false)
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'node-b', fencingToken: current.fencingToken })
      })

      it('refuses a late release from an expired holder even when nobody took over', async () => {
        const old = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 30 }))
        await outlive(old, 60)
        expect(await store.release(old)).toBe(false)
      })

      it('is idempotent: a second release says false', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        expect(await store.release(lock)).toBe(true)
        expect(await store.release(lock)).toBe(false)
      })
    })

    describe('refresh', () => {
      it('extends the holder lease to the store clock now + ttl', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 1000 }))
        await (options.until ? options.until(lock.acquiredAt + 30) : sleep(30))
        const before = (await store.get('x'))!.storeNow
        expect(before).toBeGreaterThan(lock.acquiredAt) // the store's clock moved
        // The same ttl, bracketed by the store's clock: only "now + ttl" fits (not acquired_at + ttl,
        // which is below the bracket, nor expires_at + ttl, which is above it).
        const refreshed = await store.refresh({ ...lock, ttlMs: 1000 })
        expect(refreshed).not.toBeNull()
        const info = (await store.get('x'))!
        expect(refreshed!.expiresAt).toBeGreaterThanOrEqual(before + 1000)
        expect(refreshed!.expiresAt).toBeLessThanOrEqual(info.storeNow + 1000)
        expect(refreshed!.fencingToken).toBe(lock.fencingToken)
        expect(refreshed!.acquiredAt).toBe(lock.acquiredAt)
        expect(info.expiresAt).toBe(refreshed!.expiresAt)
      })

      it('refuses another node, another token, and an expired holder', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 40 }))
        expect(await store.refresh({ ...lock, nodeId: 'node-b', ttlMs: 1000 })).toBeNull()
        expect(await store.refresh({ ...lock, fencingToken: 99, ttlMs: 1000 })).toBeNull()
        await outlive(lock, 80)
        expect(await store.refresh({ ...lock, ttlMs: 1000 })).toBeNull()
        const next = won(await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 1000 }))
        expect(next.fencingToken).toBe(lock.fencingToken + 1)
      })

      it('refuses a refresh after release', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 1000 }))
        await store.release(lock)
        expect(await store.refresh({ ...lock, ttlMs: 1000 })).toBeNull()
      })
    })

    describe('hand-over requests (invariant 14)', () => {
      const requestHandover = (doId: string, nodeId: string) => {
        expect(store.requestHandover, 'every store under the contract has hand-over').toBeTypeOf('function')
        return store.requestHandover!({ doId, nodeId })
      }

      it("records a request for another node's live lease, and the holder's next refresh reports it", async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        expect((await store.refresh({ ...lock, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
        expect(await requestHandover('x', 'b')).toBe(lock.fencingToken)
        const refreshed = await store.refresh({ ...lock, ttlMs: 10_000 })
        expect(refreshed?.handoverRequested).toBe(true)
        // Asking changes nothing of the lease: it is still held, by the same node and token.
        expect(refreshed).toMatchObject({ nodeId: 'a', fencingToken: lock.fencingToken })
        expect((await store.get('x'))?.held).toBe(true)
      })

      it('records nothing for a free, released or expired object, or for the holder itself', async () => {
        expect(await requestHandover('never', 'b')).toBeNull()
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        expect(await requestHandover('x', 'a')).toBeNull()
        expect((await store.refresh({ ...lock, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
        await store.release(lock)
        expect(await requestHandover('x', 'b')).toBeNull()
        const short = won(await store.acquire({ doId: 'y', nodeId: 'a', ttlMs: 50 }))
        await outlive(short, 80)
        expect(await requestHandover('y', 'b')).toBeNull()
      })

      it("is for the holder's token only: the next lease of the object does not inherit it", async () => {
        const first = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        await requestHandover('x', 'b')
        await store.release(first)
        const second = won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
        expect((await store.refresh({ ...second, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
        // The same node taking it back with a new token does not inherit it either.
        await store.release(second)
        const third = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        expect((await store.refresh({ ...third, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
      })

      it("is reported by the holder's object-store flush, in the same request", async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        const flush = () => objectsOf().flush({ ...lock, ttlMs: 10_000 }, { entries: new Map([['k', '"v"']]) })
        expect((await flush()).handoverRequested ?? false).toBe(false)
        await requestHandover('x', 'b')
        expect((await flush()).handoverRequested).toBe(true)
      })

      it('refuses bad input by name before any I/O', async () => {
        const ask = (request: unknown) => store.requestHandover!(request as { doId: string; nodeId: string })
        await expect(ask(null)).rejects.toBeInstanceOf(InvalidArgumentError)
        await expect(ask({ doId: '', nodeId: 'b' })).rejects.toThrow(/doId/)
        await expect(ask({ doId: 'x', nodeId: 7 })).rejects.toThrow(/nodeId/)
      })

      it('is forgotten by prune once its lease is no longer held, and never stops a later grant', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        await requestHandover('x', 'b')
        await store.release(lock)
        await store.prune({ olderThanMs: 0 })
        const again = won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
        expect(again.fencingToken).toBeGreaterThan(lock.fencingToken)
        expect((await store.refresh({ ...again, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
      })
    })

    describe('handoff: release + the next acquire in one request', () => {
      const handoff = (request: HandoffRequest) => {
        expect(store.handoff, 'every store under the contract has handoff').toBeTypeOf('function')
        return store.handoff!(request)
      }
      const flush = (lock: LockRecord, value: string) =>
        objectsOf().flush({ ...lock, ttlMs: 10_000 }, { entries: new Map([['k', JSON.stringify(value)]]) })

      it('issues the next token (old + 1) to the next holder, with a fresh lease of exactly ttlMs and its metadata', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000, metadata: { by: 'a' } }))
        const next = await handoff({ ...lock, toNodeId: 'b', ttlMs: 20_000, metadata: { by: 'b' } })
        expect(next).toMatchObject({
          doId: 'x',
          nodeId: 'b',
          fencingToken: lock.fencingToken + 1,
          metadata: { by: 'b' },
        })
        expect(next!.expiresAt - next!.acquiredAt).toBe(20_000)
        expect(next!.acquiredAt).toBeGreaterThanOrEqual(lock.acquiredAt)
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'b', fencingToken: next!.fencingToken })
        // To the same node (the next caller of one guard): still a new token, and no metadata unless given.
        const { doId, nodeId, fencingToken } = next!
        const again = await handoff({ doId, nodeId, fencingToken, toNodeId: 'b', ttlMs: 10_000 })
        expect(again).toMatchObject({ nodeId: 'b', fencingToken: lock.fencingToken + 2 })
        expect(again).not.toHaveProperty('metadata')
      })

      it('refuses the old token afterwards: refresh null, release false, handoff null, a flush StaleFencingTokenError', async () => {
        const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        const next = (await handoff({ ...old, toNodeId: 'a', ttlMs: 10_000 }))!
        expect(next.fencingToken).toBe(old.fencingToken + 1)
        expect(await store.refresh({ ...old, ttlMs: 10_000 })).toBeNull()
        expect(await store.release(old)).toBe(false)
        expect(await handoff({ ...old, toNodeId: 'c', ttlMs: 10_000 })).toBeNull()
        await expect(flush(old, 'stale')).rejects.toBeInstanceOf(StaleFencingTokenError)
        // The new holder is untouched by all of that, and its own writes go through.
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'a', fencingToken: next.fencingToken })
        await flush(next, 'current')
        expect(await store.refresh({ ...next, ttlMs: 10_000 })).not.toBeNull()
        expect(await store.release(next)).toBe(true)
      })

      it('refuses another node, another token, and a released lease, changing nothing', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        const before = await store.get('x')
        expect(await handoff({ ...lock, nodeId: 'b', toNodeId: 'b', ttlMs: 10_000 })).toBeNull()
        expect(await handoff({ ...lock, fencingToken: lock.fencingToken + 1, toNodeId: 'b', ttlMs: 10_000 })).toBeNull()
        expect(await handoff({ doId: 'never', nodeId: 'a', fencingToken: 1, toNodeId: 'b', ttlMs: 10_000 })).toBeNull()
        expect(await store.get('never')).toBeNull()
        const after = await store.get('x')
        expect({ ...after, storeNow: 0 }).toEqual({ ...before, storeNow: 0 })
        expect(await store.release(lock)).toBe(true)
        expect(await handoff({ ...lock, toNodeId: 'b', ttlMs: 10_000 })).toBeNull()
        expect(await store.get('x')).toMatchObject({ held: false, nodeId: 'a', fencingToken: lock.fencingToken })
        // The refused handoffs issued no token: the next acquire gets old + 1.
        expect(won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 })).fencingToken).toBe(
          lock.fencingToken + 1,
        )
      })

      it('treats an expired lease as release + acquire would: the handoff is refused, and the next acquire gets old + 1', async () => {
        const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 30 }))
        await outlive(old, 60)
        expect(await handoff({ ...old, toNodeId: 'a', ttlMs: 10_000 })).toBeNull()
        expect(await store.get('x')).toMatchObject({ held: false, nodeId: 'a', fencingToken: old.fencingToken })
        const taken = won(await store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))
        expect(taken.fencingToken).toBe(old.fencingToken + 1)
        // And once someone else took the expired lease over, a late handoff leaves their lease alone.
        expect(await handoff({ ...old, toNodeId: 'a', ttlMs: 10_000 })).toBeNull()
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'b', fencingToken: taken.fencingToken })
      })

      it('keeps tokens strictly increasing, one per grant, across handoffs, releases, expiries and prune', async () => {
        let lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        const tokens = [lock.fencingToken]
        for (let i = 0; i < 5; i++) {
          lock = (await handoff({ ...lock, toNodeId: `n${i % 2}`, ttlMs: 10_000 }))!
          tokens.push(lock.fencingToken)
        }
        expect(await store.release(lock)).toBe(true)
        const probe = won(await store.acquire({ doId: 'clock-probe', nodeId: 'n', ttlMs: 1 }))
        await (options.until ? options.until(probe.expiresAt + 1) : sleep(5 + slow))
        expect((await store.prune({ olderThanMs: 0 })).removed).toBeGreaterThanOrEqual(1)
        lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        tokens.push(lock.fencingToken)
        lock = (await handoff({ ...lock, toNodeId: 'b', ttlMs: 10_000 }))!
        tokens.push(lock.fencingToken)
        expect(tokens.slice(0, 6)).toEqual([1, 2, 3, 4, 5, 6])
        for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!)
        expect(tokens[7]).toBe(tokens[6]! + 1)
      })

      it('does not pass on a hand-over request: it was for the old token', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        expect(await store.requestHandover!({ doId: 'x', nodeId: 'b' })).toBe(lock.fencingToken)
        const next = (await handoff({ ...lock, toNodeId: 'a', ttlMs: 10_000 }))!
        expect((await store.refresh({ ...next, ttlMs: 10_000 }))?.handoverRequested ?? false).toBe(false)
      })

      it('refuses bad input by name before any I/O', async () => {
        const ref = { doId: 'x', nodeId: 'a', fencingToken: 1, toNodeId: 'b', ttlMs: 1000 }
        const cases: Array<[unknown, string]> = [
          [null, 'lock'],
          [{ ...ref, doId: '' }, 'doId'],
          [{ ...ref, nodeId: 'a\0' }, 'nodeId'],
          [{ ...ref, fencingToken: 0 }, 'fencingToken'],
          [{ ...ref, toNodeId: '' }, 'toNodeId'],
          [{ ...ref, toNodeId: undefined }, 'toNodeId'],
          [{ ...ref, ttlMs: 0 }, 'ttlMs'],
          [{ ...ref, metadata: { n: Number.NaN } }, 'metadata.n'],
        ]
        for (const [request, argument] of cases) {
          const before = h.requests?.()
          const error = await handoff(request as HandoffRequest).then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(error, argument).toBeInstanceOf(InvalidArgumentError)
          expect((error as InvalidArgumentError).argument).toBe(argument)
          expect(h.requests?.()).toBe(before)
        }
      })

      it('uses the fields it validated, not what a getter answers later', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        let reads = 0
        const request = Object.defineProperty<HandoffRequest>({ ...lock, toNodeId: 'b', ttlMs: 0 }, 'ttlMs', {
          enumerable: true,
          get: () => (reads++ === 0 ? 1000 : 8e15),
        })
        const next = await handoff(request)
        expect(next!.expiresAt - next!.acquiredAt).toBe(1000)
      })
    })

    describe('get, list and forceRelease', () => {
      it('get returns null for an id never acquired', async () => {
        expect(await store.get('nobody')).toBeNull()
      })

      it('list returns only unexpired leases, ordered by id, filtered by node and limited', async () => {
        won(await store.acquire({ doId: 'c', nodeId: 'n1', ttlMs: 10_000 }))
        won(await store.acquire({ doId: 'a', nodeId: 'n2', ttlMs: 10_000 }))
        won(await store.acquire({ doId: 'b', nodeId: 'n1', ttlMs: 10_000 }))
        const released = won(await store.acquire({ doId: 'd', nodeId: 'n1', ttlMs: 10_000 }))
        await store.release(released)
        expect((await store.list()).map((l) => l.doId)).toEqual(['a', 'b', 'c'])
        expect((await store.list({ nodeId: 'n1' })).map((l) => l.doId)).toEqual(['b', 'c'])
        expect((await store.list({ limit: 1 })).map((l) => l.doId)).toEqual(['a'])
        expect((await store.list()).every((l) => l.held && l.expiresAt > l.storeNow)).toBe(true)
      })

      it('orders list by code point, as SQLite orders UTF-8 text, also past U+FFFF', async () => {
        // In UTF-16 code units the emoji (a surrogate pair, 0xD83D...) sorts before U+FF5E; by code point after.
        for (const doId of ['\u{1F600}-emoji', '\uFF5E-fullwidth-tilde', 'a'])
          won(await store.acquire({ doId, nodeId: 'n', ttlMs: 10_000 }))
        expect((await store.list()).map((l) => l.doId)).toEqual(['a', '\uFF5E-fullwidth-tilde', '\u{1F600}-emoji'])
        expect((await store.list({ limit: 2 })).map((l) => l.doId)).toEqual(['a', '\uFF5E-fullwidth-tilde'])
      })

      it('forceRelease frees a held lease, keeps the token, and locks out the evicted holder', async () => {
        const evicted = won(await store.acquire({ doId: 'x', nodeId: 'node-a', ttlMs: 10_000 }))
        expect(await store.forceRelease('x')).toBe(true)
        expect(await store.forceRelease('x')).toBe(false)
        expect(await store.refresh({ ...evicted, ttlMs: 1000 })).toBeNull()
        expect(await store.release(evicted)).toBe(false)
        const next = won(await store.acquire({ doId: 'x', nodeId: 'node-b', ttlMs: 10_000 }))
        expect(next.fencingToken).toBe(evicted.fencingToken + 1)
      })
    })

    describe('prune', () => {
      /** Acquires `doId` and releases it at once; returns its token. */
      const cycle = async (doId: string, nodeId = 'n1') => {
        const lock = won(await store.acquire({ doId, nodeId, ttlMs: 10_000 }))
        expect(await store.release(lock)).toBe(true)
        return lock.fencingToken
      }
      /** Waits until the store clock is past every time recorded so far. */
      const tick = async () => {
        const probe = won(await store.acquire({ doId: 'clock-probe', nodeId: 'n', ttlMs: 1 }))
        await (options.until ? options.until(probe.expiresAt + 1) : sleep(5 + slow))
      }

      it('removes rows nobody has held for longer than olderThanMs, and only those', async () => {
        for (let i = 0; i < 3; i++) await cycle('a')
        await cycle('b')
        won(await store.acquire({ doId: 'held', nodeId: 'n1', ttlMs: 60_000 }))
        expect(await store.prune({ olderThanMs: 3_600_000 })).toEqual({ removed: 0 })
        await tick()
        const { removed } = await store.prune({ olderThanMs: 0 })
        expect(removed).toBe(3) // a, b and the clock probe; never the held row
        expect(await store.get('a')).toBeNull()
        expect(await store.get('b')).toBeNull()
        expect(await store.get('held')).toMatchObject({ held: true, fencingToken: 1 })
      })

      it('keeps tokens strictly increasing per id after rows are removed: a new row starts above every removed token', async () => {
        let highest = 0
        for (let i = 0; i < 3; i++) highest = Math.max(highest, await cycle('a'))
        highest = Math.max(highest, await cycle('b'))
        await tick()
        expect((await store.prune({ olderThanMs: 0 })).removed).toBeGreaterThanOrEqual(2)
        const again = won(await store.acquire({ doId: 'b', nodeId: 'n2', ttlMs: 10_000 }))
        expect(again.fencingToken).toBeGreaterThan(highest)
        const fresh = won(await store.acquire({ doId: 'never-seen', nodeId: 'n2', ttlMs: 10_000 }))
        expect(fresh.fencingToken).toBeGreaterThan(highest)
        // The mark never goes down: a later prune of lower tokens leaves new rows above it still.
        await store.release(again)
        await tick()
        await store.prune({ olderThanMs: 0 })
        expect(won(await store.acquire({ doId: 'b', nodeId: 'n3', ttlMs: 10_000 })).fencingToken).toBeGreaterThan(
          again.fencingToken,
        )
      })

      it("refuses a removed row's old holder: refresh null, release false", async () => {
        const old = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 30 }))
        await outlive(old, 60)
        await tick()
        expect((await store.prune({ olderThanMs: 0 })).removed).toBeGreaterThanOrEqual(1)
        expect(await store.get('x')).toBeNull()
        expect(await store.refresh({ ...old, ttlMs: 10_000 })).toBeNull()
        expect(await store.release(old)).toBe(false)
        const same = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 }))
        expect(same.fencingToken).toBeGreaterThan(old.fencingToken)
        expect(await store.release(old)).toBe(false)
        expect(await store.get('x')).toMatchObject({ held: true, fencingToken: same.fencingToken })
      })

      it('removes at most limit rows per call, lowest ids first', async () => {
        for (const doId of ['c', 'a', 'b']) await cycle(doId)
        await tick()
        expect(await store.prune({ olderThanMs: 0, limit: 2 })).toEqual({ removed: 2 })
        expect(await store.get('a')).toBeNull()
        expect(await store.get('b')).toBeNull()
        expect(await store.get('c')).not.toBeNull()
      })
    })

    describe('fencing tokens (invariant 2)', () => {
      it('strictly increase over 1,000 acquire/release/expire cycles', async () => {
        let last = 0
        for (let i = 0; i < 1000; i++) {
          const kind = i % 4
          const ttlMs = kind === 2 ? 1 : 10_000
          let result = await store.acquire({ doId: 'cycle', nodeId: `node-${i % 3}`, ttlMs })
          // A 1 ms lease from the previous cycle may still be live on the store clock: wait it out.
          while (!result.acquired) {
            await sleep(2)
            result = await store.acquire({ doId: 'cycle', nodeId: `node-${i % 3}`, ttlMs })
          }
          const lock = won(result)
          expect(lock.fencingToken).toBeGreaterThan(last)
          last = lock.fencingToken
          if (kind === 0 || kind === 3) expect(await store.release(lock)).toBe(true)
          if (kind === 1) expect(await store.forceRelease('cycle')).toBe(true)
          // kind 2: the 1 ms lease simply expires.
        }
        expect(last).toBe(1000)
      }, 60_000)
    })

    describe('bad input (invariant 8)', () => {
      const bad: Array<[string, () => Promise<unknown>, string]> = [
        ['empty doId', () => store.acquire({ doId: '', nodeId: 'n', ttlMs: 1 }), 'doId'],
        ['overlong doId', () => store.acquire({ doId: 'x'.repeat(1025), nodeId: 'n', ttlMs: 1 }), 'doId'],
        ['non-string doId', () => store.acquire({ doId: 42 as never, nodeId: 'n', ttlMs: 1 }), 'doId'],
        [
          'doId with a NUL (drivers read it back cut short)',
          () => store.acquire({ doId: 'a\0b', nodeId: 'n', ttlMs: 1 }),
          'doId',
        ],
        [
          'doId with a lone high surrogate (stored as U+FFFD)',
          () => store.acquire({ doId: 'x\uD800', nodeId: 'n', ttlMs: 1 }),
          'doId',
        ],
        ['doId with a lone low surrogate', () => store.get('\uDC00x'), 'doId'],
        ['nodeId with a NUL', () => store.acquire({ doId: 'x', nodeId: 'n\0', ttlMs: 1 }), 'nodeId'],
        ['empty nodeId', () => store.acquire({ doId: 'x', nodeId: '', ttlMs: 1 }), 'nodeId'],
        ['zero ttl', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 0 }), 'ttlMs'],
        ...([0, -1, 1.5, MAX_PREFETCH_ROWS + 1, Number.NaN, '5', null] as unknown[]).map(
          (prefetch) =>
            [
              `prefetch ${typeof prefetch === 'string' ? `'${prefetch}'` : String(prefetch)}`,
              () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1, prefetch: prefetch as number }),
              'prefetch',
            ] as [string, () => Promise<unknown>, string],
        ),
        ['negative ttl', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: -5 }), 'ttlMs'],
        ['NaN ttl', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: Number.NaN }), 'ttlMs'],
        ['infinite ttl', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: Infinity }), 'ttlMs'],
        ['fractional ttl', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1.5 }), 'ttlMs'],
        [
          'cyclic metadata',
          () => {
            const m: Record<string, unknown> = {}
            m.self = m
            return store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1, metadata: m })
          },
          'metadata.self',
        ],
        [
          'bigint metadata',
          () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1, metadata: { n: 1n } }),
          'metadata.n',
        ],
        ['function metadata', () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1, metadata: () => 1 }), 'metadata'],
        ...(
          [
            ['a Date in metadata', { when: new Date(0) }, 'metadata.when'],
            ['a Map as metadata', new Map([['a', 1]]), 'metadata'],
            ['a Set in metadata', { tags: new Set(['a']) }, 'metadata.tags'],
            ['NaN in metadata', { n: Number.NaN }, 'metadata.n'],
            ['Infinity in metadata', [Infinity], 'metadata[0]'],
            ['undefined inside an array in metadata', { tags: ['a', undefined] }, 'metadata.tags[1]'],
            ['an undefined property in metadata', { gone: undefined }, 'metadata.gone'],
            ['-0 in metadata', { z: -0 }, 'metadata.z'],
            ['a function inside an object in metadata', { deep: { f: () => 1 } }, 'metadata.deep.f'],
            ['a hole in an array in metadata', { a: [1, , 3] }, 'metadata.a[1]'],
            [
              'a class instance in metadata',
              {
                p: new (class Point {
                  x = 1
                })(),
              },
              'metadata.p',
            ],
            ['a symbol key in metadata', { [Symbol('s')]: 1 }, 'metadata'],
            ['a key that needs quoting, with a bad value', { 'a b': Number.NaN }, 'metadata["a b"]'],
            ['a boxed string in metadata', { s: new String('x') }, 'metadata.s'],
            ['an object with toJSON in metadata', { t: { toJSON: () => 'x' } }, 'metadata.t.toJSON'],
          ] as Array<[string, unknown, string]>
        ).map(
          ([what, metadata, argument]) =>
            [what, () => store.acquire({ doId: 'x', nodeId: 'n', ttlMs: 1, metadata }), argument] as [
              string,
              () => Promise<unknown>,
              string,
            ],
        ),
        ['zero token on release', () => store.release({ doId: 'x', nodeId: 'n', fencingToken: 0 }), 'fencingToken'],
        [
          'fractional token on refresh',
          () => store.refresh({ doId: 'x', nodeId: 'n', fencingToken: 1.5, ttlMs: 10 }),
          'fencingToken',
        ],
        [
          'NaN ttl on refresh',
          () => store.refresh({ doId: 'x', nodeId: 'n', fencingToken: 1, ttlMs: Number.NaN }),
          'ttlMs',
        ],
        ['null lock on release', () => store.release(null as never), 'lock'],
        ['non-string id on get', () => store.get(undefined as never), 'doId'],
        ['empty id on forceRelease', () => store.forceRelease(''), 'doId'],
        ['zero list limit', () => store.list({ limit: 0 }), 'filter.limit'],
        ['empty list node', () => store.list({ nodeId: '' }), 'filter.nodeId'],
        ['no prune options', () => store.prune(undefined as never), 'options'],
        ['negative prune bound', () => store.prune({ olderThanMs: -1 }), 'olderThanMs'],
        ['fractional prune bound', () => store.prune({ olderThanMs: 1.5 }), 'olderThanMs'],
        ['zero prune limit', () => store.prune({ olderThanMs: 0, limit: 0 }), 'limit'],
      ]
      it('accepts any well-formed Unicode id, astral characters included, and gives it back unchanged', async () => {
        for (const doId of ['😀 room', 'ünïcödé', '\uD83D\uDE00', 'tab\there']) {
          const r = await store.acquire({ doId, nodeId: 'n', ttlMs: 10_000 })
          expect(r.acquired && r.lock.doId).toBe(doId)
        }
      })

      for (const [what, call, argument] of bad) {
        it(`rejects ${what} with an InvalidArgumentError naming ${argument}, before any I/O`, async () => {
          const before = h.requests?.()
          const error = await call().then(
            () => undefined,
            (e: unknown) => e,
          )
          expect(error).toBeInstanceOf(InvalidArgumentError)
          expect((error as InvalidArgumentError).argument).toBe(argument)
          expect((error as Error).message).toContain(argument)
          expect(h.requests?.()).toBe(before)
        })
      }
    })

    describe('each request field is read once (invariant 8)', () => {
      /** A copy of `base` whose `key` answers `first` on the first read and `later` on every other. */
      const shifty = <T extends object>(base: T, key: keyof T, first: unknown, later: unknown): T => {
        let reads = 0
        return Object.defineProperty({ ...base }, key, { enumerable: true, get: () => (reads++ === 0 ? first : later) })
      }

      it('acquire uses the ttlMs, doId and nodeId it validated, not what a getter answers later', async () => {
        for (const later of [8e15, -5]) {
          const lock = won(
            await store.acquire(shifty({ doId: `t${later}`, nodeId: 'a', ttlMs: 0 }, 'ttlMs', 1000, later)),
          )
          expect(lock.expiresAt - lock.acquiredAt).toBe(1000)
        }
        const long = won(
          await store.acquire(shifty({ doId: '', nodeId: 'a', ttlMs: 1000 }, 'doId', 'x', 'y'.repeat(2_000_000))),
        )
        expect(long.doId).toBe('x')
        expect(await store.get('x')).toMatchObject({ held: true, nodeId: 'a' })
        const nul = won(await store.acquire(shifty({ doId: 'n', nodeId: '', ttlMs: 1000 }, 'nodeId', 'a', 'a\0b')))
        expect(nul.nodeId).toBe('a')
        expect(await store.get('n')).toMatchObject({ held: true, nodeId: 'a' })
      })

      it('acquire uses the prefetch it validated', async () => {
        const result = await store.acquire(
          shifty<AcquireRequest>({ doId: 'rows-once', nodeId: 'a', ttlMs: 1000 }, 'prefetch', 1, 0),
        )
        expect(result.acquired && result.prefetched).toEqual({ entries: [], complete: true })
      })

      it('refresh and release use the fields they validated', async () => {
        const lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 1000 }))
        const refreshed = await store.refresh(shifty({ ...lock, ttlMs: 0 }, 'ttlMs', 1000, 8e15))
        expect(refreshed).not.toBeNull()
        expect(refreshed!.expiresAt - (await store.get('x'))!.storeNow).toBeLessThanOrEqual(1000)
        expect(await store.release(shifty(lock, 'fencingToken', lock.fencingToken, lock.fencingToken + 1))).toBe(true)
        expect(await store.get('x')).toMatchObject({ held: false })
      })

      it('list uses the limit and node it validated', async () => {
        won(await store.acquire({ doId: 'a', nodeId: 'n1', ttlMs: 10_000 }))
        won(await store.acquire({ doId: 'b', nodeId: 'n1', ttlMs: 10_000 }))
        expect((await store.list(shifty({ limit: 0 }, 'limit', 1, 100_000_000))).map((l) => l.doId)).toEqual(['a'])
        expect((await store.list(shifty({ nodeId: '' }, 'nodeId', 'n1', 'n2'))).map((l) => l.doId)).toEqual(['a', 'b'])
      })
    })

    // Not registered at all for an in-process store: there is no round trip to count.
    if (!options.inProcess)
      describe('one round trip per operation (invariant 6)', () => {
        it('sends exactly one request for each of acquire (won and lost, with and without prefetch), refresh, release, get, list, forceRelease, handoff', async () => {
          expect(h.requests, 'the harness must count requests').toBeTypeOf('function')
          const count = async (op: () => Promise<unknown>) => {
            const before = h.requests!()
            await op()
            return h.requests!() - before
          }
          let lock: LockRecord | undefined
          expect(
            await count(async () => (lock = won(await store.acquire({ doId: 'x', nodeId: 'a', ttlMs: 10_000 })))),
          ).toBe(1)
          expect(await count(() => store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000 }))).toBe(1)
          expect(await count(() => store.acquire({ doId: 'x', nodeId: 'b', ttlMs: 10_000, prefetch: 10 }))).toBe(1)
          await writeRows('rows-count', { k: 'v' })
          const withRows = await count(async () => {
            const r = await store.acquire({ doId: 'rows-count', nodeId: 'a', ttlMs: 10_000, prefetch: 10 })
            expect(r.acquired && r.prefetched).toEqual({ entries: [['k', 'v']], complete: true })
          })
          expect(withRows).toBe(1)
          expect(await count(() => store.refresh({ ...lock!, ttlMs: 10_000 }))).toBe(1)
          expect(await count(() => store.get('x'))).toBe(1)
          expect(await count(() => store.list())).toBe(1)
          expect(await count(() => store.release(lock!))).toBe(1)
          expect(await count(() => store.forceRelease('x'))).toBe(1)
          expect(await count(() => store.ensureSchema())).toBe(1)
          expect(await count(() => store.prune({ olderThanMs: 0 }))).toBe(1)
          const held = won(await store.acquire({ doId: 'asked', nodeId: 'a', ttlMs: 10_000 }))
          expect(await count(() => store.requestHandover!({ doId: 'asked', nodeId: 'b' }))).toBe(1)
          expect(await count(() => store.refresh({ ...held, ttlMs: 10_000 }))).toBe(1)
          let next: LockRecord | null = null
          expect(
            await count(async () => (next = await store.handoff!({ ...held, toNodeId: 'a', ttlMs: 10_000 }))),
          ).toBe(1)
          expect(next).toMatchObject({ fencingToken: held.fencingToken + 1 })
          expect(await count(() => store.handoff!({ ...held, toNodeId: 'a', ttlMs: 10_000 }))).toBe(1) // refused
        })
      })
  })
}
