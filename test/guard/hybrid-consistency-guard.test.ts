/**
 * HybridConsistencyGuard against the in-memory store with fake timers: heartbeat timing, lease loss,
 * waiting, shutdown. Real-database behaviour is in guard-libsql.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  ConsistentHashRing,
  HybridConsistencyGuard,
  InvalidArgumentError,
  LockContendedError,
  LockLostError,
  MemoryLockStore,
  ShutdownError,
  StoreUnavailableError,
  type GuardEvent,
  type HybridConsistencyGuardOptions,
} from '../../src/index.js'
import { clock, held } from './support/leases.js'

describe('HybridConsistencyGuard', () => {
  let store: MemoryLockStore
  let events: GuardEvent[]
  const guards: HybridConsistencyGuard[] = []
  const make = (overrides: Partial<HybridConsistencyGuardOptions> = {}) => {
    const g = new HybridConsistencyGuard({
      store,
      nodeId: 'node-a',
      ttlMs: 30_000,
      clock,
      random: () => 0.5,
      onEvent: (e) => events.push(e),
      ...overrides,
    })
    guards.push(g)
    return g
  }

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    store = new MemoryLockStore({ clock })
    events = []
  })
  afterEach(async () => {
    vi.useRealTimers()
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  describe('acquire', () => {
    it('hands out a lease with a token, a store expiry and a conservative local validity', async () => {
      const guard = make()
      const start = Date.now()
      const lock = held(await guard.acquire('room-1', { metadata: { by: 'test' } }))
      expect(lock).toMatchObject({
        doId: 'room-1',
        nodeId: 'node-a',
        fencingToken: 1,
        ttlMs: 30_000,
        metadata: { by: 'test' },
      })
      expect(lock.expiresAt).toBe(start + 30_000)
      // Default drift: 1% of the TTL + 2 ms.
      expect(guard.driftMs).toBe(302)
      expect(lock.validUntil).toBe(start + 30_000 - 302)
      expect(lock.signal.aborted).toBe(false)
      expect(events.at(-1)).toMatchObject({ type: 'acquire', doId: 'room-1', fencingToken: 1, attempts: 1 })
    })

    it('tries once by default and reports the holder and when to retry', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b' })
      held(await a.acquire('x'))
      await vi.advanceTimersByTimeAsync(5_000)
      const spy = vi.spyOn(store, 'acquire')
      const r = await b.acquire('x')
      expect(spy).toHaveBeenCalledTimes(1)
      expect(r).toMatchObject({ acquired: false, attempts: 1, holder: { nodeId: 'node-a', fencingToken: 1 } })
      // a's heartbeat at 10 s has not run yet: 25 s of the lease remain.
      expect(!r.acquired && r.retryAfterMs).toBe(25_000)
      expect(events.at(-1)).toMatchObject({ type: 'contended', doId: 'x', retryAfterMs: 25_000 })
    })

    it('waits with backoff until the holder releases, when waitMs is given', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b' })
      const lock = held(await a.acquire('x'))
      const waiting = b.acquire('x', { waitMs: 5_000 })
      await vi.advanceTimersByTimeAsync(300)
      await a.release(lock)
      await vi.advanceTimersByTimeAsync(1_000)
      const r = await waiting
      expect(held(r)).toMatchObject({ nodeId: 'node-b', fencingToken: 2 })
      expect(events.find((e) => e.type === 'acquire' && e.nodeId === 'node-b')).toMatchObject({
        attempts: expect.any(Number),
      })
    })

    it('gives up after waitMs with the last holder and the number of attempts', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b', retry: { initialDelayMs: 100, maxDelayMs: 400 } })
      held(await a.acquire('x'))
      const waiting = b.acquire('x', { waitMs: 2_000 })
      await vi.advanceTimersByTimeAsync(2_100)
      const r = await waiting
      expect(r.acquired).toBe(false)
      if (r.acquired) return
      expect(r.attempts).toBeGreaterThan(3)
      expect(r.holder?.nodeId).toBe('node-a')
    })

    it('stops waiting when the caller aborts, rejecting with the abort reason', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b' })
      held(await a.acquire('x'))
      const controller = new AbortController()
      const waiting = b.acquire('x', { waitMs: 60_000, signal: controller.signal })
      const outcome = waiting.catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(500)
      controller.abort(new Error('client went away'))
      expect(await outcome).toMatchObject({ message: 'client went away' })
    })

    it('retries a busy store within waitMs, and fails fast without waitMs', async () => {
      const guard = make()
      const real = store.acquire.bind(store)
      let failures = 2
      vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        if (failures-- > 0) throw new StoreUnavailableError('SQLITE_BUSY', { retryable: true })
        return real(req)
      })
      const waiting = guard.acquire('x', { waitMs: 1_000 })
      await vi.advanceTimersByTimeAsync(1_000)
      expect(held(await waiting).fencingToken).toBe(1)
      failures = 1
      await expect(guard.acquire('y')).rejects.toBeInstanceOf(StoreUnavailableError)
      expect(events.at(-1)).toMatchObject({ type: 'error', operation: 'acquire', doId: 'y' })
    })

    it('rejects with the abort reason, and gives the lease back, when the caller aborts during a winning attempt', async () => {
      const guard = make()
      const real = store.acquire.bind(store)
      const controller = new AbortController()
      vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        const result = await real(req) // the store grants the lease...
        controller.abort(new Error('client went away')) // ...while the caller gives up
        return result
      })
      await expect(guard.acquire('x', { signal: controller.signal })).rejects.toThrow('client went away')
      expect(guard.heldLocks).toEqual([])
      await vi.advanceTimersByTimeAsync(0)
      expect((await store.get('x'))?.held).toBe(false)
    })

    it('rejects with the abort reason, not "contended", when the caller aborts during the last attempt', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b' })
      held(await a.acquire('x'))
      const real = store.acquire.bind(store)
      const controller = new AbortController()
      vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        controller.abort(new Error('client went away'))
        return real(req)
      })
      await expect(b.acquire('x', { signal: controller.signal })).rejects.toThrow('client went away')
    })

    it('does not hand out a lease the store granted after its safe window; it gives it back and reports a retryable store error', async () => {
      const guard = make({ ttlMs: 300 })
      const real = store.acquire.bind(store)
      const slow = vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        const result = await real(req)
        await new Promise((res) => setTimeout(res, 400)) // the answer travels longer than the lease
        return result
      })
      const attempt = guard.acquire('x').catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(400)
      const error = await attempt
      expect(error).toBeInstanceOf(StoreUnavailableError)
      expect(error).toMatchObject({ retryable: true, message: expect.stringMatching(/safe window/) })
      expect(guard.heldLocks).toEqual([])
      // Within waitMs it is retried like any retryable store failure, and a timely answer is taken.
      slow.mockImplementation(real)
      expect(held(await guard.acquire('x', { waitMs: 1_000 })).fencingToken).toBeGreaterThan(1)
    })

    it('does not retry a store error that is not retryable', async () => {
      const guard = make()
      const spy = vi
        .spyOn(store, 'acquire')
        .mockRejectedValue(new StoreUnavailableError('no such table', { retryable: false }))
      await expect(guard.acquire('x', { waitMs: 10_000 })).rejects.toThrow(/no such table/)
      expect(spy).toHaveBeenCalledTimes(1)
    })
  })

  describe('heartbeat', () => {
    it('refreshes every ttl/3 by default, moving expiresAt and validUntil forward', async () => {
      const guard = make()
      const refresh = vi.spyOn(store, 'refresh')
      const lock = held(await guard.acquire('x'))
      expect(guard.heartbeatMs).toBe(10_000)
      await vi.advanceTimersByTimeAsync(9_999)
      expect(refresh).toHaveBeenCalledTimes(0)
      await vi.advanceTimersByTimeAsync(1)
      expect(refresh).toHaveBeenCalledTimes(1)
      expect(lock.expiresAt).toBe(Date.now() + 30_000)
      expect(lock.validUntil).toBe(Date.now() + 30_000 - 302)
      await vi.advanceTimersByTimeAsync(60_000)
      expect(refresh).toHaveBeenCalledTimes(7)
      expect(lock.signal.aborted).toBe(false)
      expect(events.filter((e) => e.type === 'refresh')).toHaveLength(7)
    })

    it('never overlaps heartbeats even when the store is slow', async () => {
      const guard = make({ ttlMs: 3_000 })
      const real = store.refresh.bind(store)
      let inFlight = 0
      let maxInFlight = 0
      vi.spyOn(store, 'refresh').mockImplementation(async (req) => {
        inFlight++
        maxInFlight = Math.max(maxInFlight, inFlight)
        await new Promise((r) => setTimeout(r, 1_500)) // slower than the 1 s heartbeat period
        inFlight--
        return real(req)
      })
      const lock = held(await guard.acquire('x'))
      // A manual refresh during a heartbeat joins it instead of sending a second request.
      await vi.advanceTimersByTimeAsync(1_100)
      const manual = guard.refresh(lock)
      await vi.advanceTimersByTimeAsync(10_000)
      expect(await manual).toBe(lock)
      expect(maxInFlight).toBe(1)
    })

    it('retries a failed refresh within the remaining validity and then fires the signal', async () => {
      const guard = make({ ttlMs: 3_000 })
      const refresh = vi.spyOn(store, 'refresh').mockRejectedValue(new StoreUnavailableError('network down'))
      const lock = held(await guard.acquire('x'))
      const validUntil = lock.validUntil
      await vi.advanceTimersByTimeAsync(validUntil - Date.now() - 1)
      expect(lock.signal.aborted).toBe(false)
      expect(refresh.mock.calls.length).toBeGreaterThan(2)
      await vi.advanceTimersByTimeAsync(1)
      expect(lock.signal.aborted).toBe(true)
      expect(lock.signal.reason).toBeInstanceOf(LockLostError)
      expect(events.some((e) => e.type === 'lost' && /validity ran out/.test(e.reason))).toBe(true)
      expect(events.some((e) => e.type === 'error' && e.operation === 'refresh')).toBe(true)
      const calls = refresh.mock.calls.length
      await vi.advanceTimersByTimeAsync(10_000)
      expect(refresh.mock.calls.length).toBe(calls) // no heartbeats for a lost lease
    })

    it('counts the next heartbeat from a manual refresh (and so restarts a heartbeat loop that had given up)', async () => {
      const guard = make()
      const lock = held(await guard.acquire('x'))
      await vi.advanceTimersByTimeAsync(5_000)
      expect(await guard.refresh(lock)).toBe(lock)
      const refresh = vi.spyOn(store, 'refresh')
      await vi.advanceTimersByTimeAsync(10_000 - 1)
      expect(refresh).not.toHaveBeenCalled()
      await vi.advanceTimersByTimeAsync(1)
      expect(refresh).toHaveBeenCalledTimes(1)
    })

    it("ends and hands back a lease whose validity ran out even if its timer never fired (workerd drops a cancelled request's timers)", async () => {
      let t = 0
      const guard = make({ clock: { now: () => Date.now(), monotonic: () => t } })
      const lock = held(await guard.acquire('x'))
      t = lock.validUntil // no timer advanced: only the clock moved
      expect(guard.heldLocks).toEqual([])
      expect(lock.signal.aborted).toBe(true)
      expect(lock.signal.reason).toBeInstanceOf(LockLostError)
      await vi.advanceTimersByTimeAsync(0)
      expect((await store.get('x'))?.held).toBe(false)
    })

    it('hands back a lease it stopped trusting once the store answers again', async () => {
      const guard = make({ ttlMs: 3_000 })
      const b = make({ nodeId: 'node-b' })
      const down = vi.spyOn(store, 'refresh').mockRejectedValue(new StoreUnavailableError('network down'))
      const release = vi.spyOn(store, 'release')
      const lock = held(await guard.acquire('x'))
      // Local validity (3 s - drift) runs out before the store's lease (3 s from the acquire).
      await vi.advanceTimersByTimeAsync(lock.validUntil - Date.now())
      expect(lock.signal.aborted).toBe(true)
      expect(release).toHaveBeenCalledWith({ doId: 'x', nodeId: 'node-a', fencingToken: 1 })
      down.mockRestore()
      // The store's lease was freed at once, not left to expire: another node takes it right away.
      expect(held(await b.acquire('x')).fencingToken).toBe(2)
    })

    it('sends the first heartbeat at once when the acquire answered late, before the validity counted from the request ends', async () => {
      const guard = make({ requestTimeoutMs: 60_000 })
      const real = store.acquire.bind(store)
      vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        const result = await real(req)
        await new Promise((res) => setTimeout(res, 21_000)) // a healthy but slow store: 21 s of a 30 s lease
        return result
      })
      const refresh = vi.spyOn(store, 'refresh')
      const attempt = guard.acquire('x')
      await vi.advanceTimersByTimeAsync(21_000)
      const lock = held(await attempt)
      expect(lock.validUntil).toBe(lock.acquiredAt + 30_000 - 302) // counted from when the request was sent
      await vi.advanceTimersByTimeAsync(1) // a timer set during a tick fires 1 ms later at the earliest
      // The period (10 s) counts from the request too: the heartbeat is overdue, so it goes out now,
      // not at 31 s, after the validity (29.698 s) it was meant to extend.
      expect(refresh).toHaveBeenCalledTimes(1)
      await vi.advanceTimersByTimeAsync(20_000)
      expect(lock.signal.aborted).toBe(false)
      expect(events.some((e) => e.type === 'lost')).toBe(false)
    })

    it('counts the next heartbeat from when a slow refresh was sent, not from its answer', async () => {
      const guard = make({ requestTimeoutMs: 60_000 })
      const lock = held(await guard.acquire('x'))
      await vi.advanceTimersByTimeAsync(11_000) // the first heartbeat, at 10 s, was quick
      const real = store.refresh.bind(store)
      const slow = vi.spyOn(store, 'refresh').mockImplementation(async (req) => {
        const result = await real(req)
        await new Promise((res) => setTimeout(res, 20_000))
        return result
      })
      const manual = guard.refresh(lock) // sent at 11 s, answered at 31 s: valid until 40.698 s
      await vi.advanceTimersByTimeAsync(20_000)
      expect(await manual).toBe(lock)
      expect(lock.validUntil).toBe(lock.acquiredAt + 11_000 + 30_000 - 302)
      slow.mockImplementation(real)
      // Due at 21 s (11 s + the period), so sent at once; counted from the answer it would come at
      // 41 s, after the validity ends.
      await vi.advanceTimersByTimeAsync(1)
      expect(slow).toHaveBeenCalledTimes(2)
      await vi.advanceTimersByTimeAsync(30_000)
      expect(lock.signal.aborted).toBe(false)
    })

    it('fires the signal at once when the store says the lease is gone', async () => {
      const guard = make()
      const lock = held(await guard.acquire('x'))
      await store.forceRelease('x')
      await vi.advanceTimersByTimeAsync(10_000)
      expect(lock.signal.aborted).toBe(true)
      expect((lock.signal.reason as LockLostError).message).toMatch(/no longer has this lease/)
      expect(guard.heldLocks).toEqual([])
    })

    it('fires the signal when validity runs out even if heartbeats are off', async () => {
      const guard = make()
      const lock = held(await guard.acquire('x', { heartbeat: false }))
      await vi.advanceTimersByTimeAsync(30_000 - 302)
      expect(lock.signal.aborted).toBe(true)
    })

    it('gives a per-acquire ttl the default drift and heartbeat of that ttl when the guard uses defaults', async () => {
      const guard = make()
      const refresh = vi.spyOn(store, 'refresh')
      const day = 86_400_000
      const lock = held(await guard.acquire('x', { ttlMs: day }))
      // 1% + 2 ms of a day, not the 302 ms margin of the guard's 30 s lease.
      expect(lock.validUntil - Date.now()).toBe(day - 864_002)
      await vi.advanceTimersByTimeAsync(day / 3 - 1)
      expect(refresh).not.toHaveBeenCalled()
      await vi.advanceTimersByTimeAsync(1)
      expect(refresh).toHaveBeenCalledTimes(1)
    })

    it('scales an explicit heartbeat and drift with a per-acquire ttl', async () => {
      const guard = make({ heartbeatMs: 1_000, driftMs: 600 })
      const refresh = vi.spyOn(store, 'refresh')
      const lock = held(await guard.acquire('x', { ttlMs: 60_000 }))
      expect(lock.validUntil - Date.now()).toBe(60_000 - 1_200)
      await vi.advanceTimersByTimeAsync(2_000 - 1)
      expect(refresh).not.toHaveBeenCalled()
      await vi.advanceTimersByTimeAsync(1)
      expect(refresh).toHaveBeenCalledTimes(1)
    })

    it("keeps an explicit heartbeat inside a per-acquire lease's validity window (the default drift is not proportional)", async () => {
      // At its own 30 s ttl this guard refreshes 98 ms before validity ends; scaled by the ttl alone, a
      // 300 ms lease would get a 296 ms heartbeat after its 295 ms validity.
      const guard = make({ heartbeatMs: 29_600 })
      const refresh = vi.spyOn(store, 'refresh')
      const lock = held(await guard.acquire('x', { ttlMs: 300 }))
      expect(lock.validUntil - Date.now()).toBe(295)
      await vi.advanceTimersByTimeAsync(1_000)
      expect(lock.signal.aborted).toBe(false)
      expect(refresh.mock.calls.length).toBeGreaterThanOrEqual(3)
    })

    it('scales heartbeat and drift to a per-acquire ttl', async () => {
      const guard = make()
      const refresh = vi.spyOn(store, 'refresh')
      const lock = held(await guard.acquire('x', { ttlMs: 300 }))
      expect(lock.validUntil - Date.now()).toBeGreaterThanOrEqual(150)
      await vi.advanceTimersByTimeAsync(1_000)
      expect(refresh.mock.calls.length).toBeGreaterThanOrEqual(9)
      expect(lock.signal.aborted).toBe(false)
    })
  })

  describe('release', () => {
    it('frees the lease, stops the heartbeat at once and fires the signal', async () => {
      const guard = make()
      const refresh = vi.spyOn(store, 'refresh')
      const lock = held(await guard.acquire('x'))
      expect(await guard.release(lock)).toBe(true)
      expect(lock.signal.aborted).toBe(true)
      expect((await store.get('x'))?.held).toBe(false)
      await vi.advanceTimersByTimeAsync(60_000)
      expect(refresh).not.toHaveBeenCalled()
      expect(events.at(-1)).toMatchObject({ type: 'release', released: true })
      expect(await guard.release(lock)).toBe(false)
    })

    it('gives an already-fired signal to a caller who first looks after the release', async () => {
      const guard = make()
      const lock = held(await guard.acquire('x'))
      await guard.release(lock)
      expect(lock.signal.aborted).toBe(true)
      expect(lock.signal.reason).toBeInstanceOf(LockLostError)
      expect((lock.signal.reason as LockLostError).message).toMatch(/released/)
    })

    it('never throws a store failure at the caller; it reports it through onEvent', async () => {
      const guard = make()
      const lock = held(await guard.acquire('x'))
      vi.spyOn(store, 'release').mockRejectedValue(new StoreUnavailableError('network down'))
      expect(await guard.release(lock)).toBe(false)
      expect(events.at(-1)).toMatchObject({ type: 'error', operation: 'release', doId: 'x' })
    })

    it('releases through await using', async () => {
      const guard = make()
      {
        await using lock = held(await guard.acquire('x'))
        expect(lock.fencingToken).toBe(1)
      }
      expect((await store.get('x'))?.held).toBe(false)
    })

    it('rejects something that is not a lock with a typed error', async () => {
      const guard = make()
      await expect(guard.release(null as never)).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(guard.refresh('x' as never)).rejects.toBeInstanceOf(InvalidArgumentError)
    })
  })

  describe('withLock', () => {
    it('runs the function under the lease with its signal, then releases', async () => {
      const guard = make()
      const out = await guard.withLock(
        'x',
        async (lock, signal) => {
          expect((await store.get('x'))?.held).toBe(true)
          expect(signal).toBe(lock.signal)
          return lock.fencingToken * 10
        },
        { awaitRelease: true },
      )
      expect(out).toBe(10)
      expect((await store.get('x'))?.held).toBe(false)
    })

    it('releases when the function throws', async () => {
      const guard = make()
      await expect(
        guard.withLock(
          'x',
          () => {
            throw new Error('boom')
          },
          { awaitRelease: true },
        ),
      ).rejects.toThrow('boom')
      expect((await store.get('x'))?.held).toBe(false)
    })

    it('rejects with LockContendedError carrying the holder and retryAfterMs', async () => {
      make({ nodeId: 'node-b' })
      held(await guards[0]!.acquire('x'))
      const error = await make()
        .withLock('x', () => 1)
        .catch((e) => e)
      expect(error).toBeInstanceOf(LockContendedError)
      expect(error).toMatchObject({ doId: 'x', holder: { nodeId: 'node-b' }, retryAfterMs: 30_000 })
    })
  })

  describe('shutdown', () => {
    it('stops heartbeats, releases every lease, refuses new acquires and stops waiters', async () => {
      const guard = make()
      const other = make({ nodeId: 'node-b' })
      const locks = [held(await guard.acquire('a')), held(await guard.acquire('b'))]
      held(await other.acquire('c'))
      const waiter = guard.acquire('c', { waitMs: 60_000 }).catch((e) => e)
      const refresh = vi.spyOn(store, 'refresh')
      expect(await guard.shutdown()).toEqual({ released: 2, failed: 0, timedOut: false })
      expect(await waiter).toBeInstanceOf(ShutdownError)
      expect(locks.every((l) => l.signal.aborted && l.signal.reason instanceof ShutdownError)).toBe(true)
      expect((await store.list()).map((l) => l.doId)).toEqual(['c'])
      await expect(guard.acquire('d')).rejects.toBeInstanceOf(ShutdownError)
      await vi.advanceTimersByTimeAsync(60_000)
      expect(refresh.mock.calls.every(([r]) => r.nodeId === 'node-b')).toBe(true)
    })

    it('waits for background releases already in flight', async () => {
      const guard = make()
      const lock = held(await guard.acquire('a'))
      const real = store.release.bind(store)
      vi.spyOn(store, 'release').mockImplementation(async (r) => {
        await new Promise((res) => setTimeout(res, 500))
        return real(r)
      })
      void guard.release(lock)
      const done = guard.shutdown()
      await vi.advanceTimersByTimeAsync(500)
      await done
      expect((await store.get('a'))?.held).toBe(false)
    })
  })

  describe('shutdown with a deadline', () => {
    it('returns after timeoutMs when the store does not answer, counting the unfinished release as failed', async () => {
      const guard = make()
      held(await guard.acquire('a'))
      held(await guard.acquire('b'))
      const real = store.release.bind(store)
      let answerLate!: (released: boolean) => void
      vi.spyOn(store, 'release').mockImplementation(async (r) =>
        r.doId === 'a' ? real(r) : new Promise<boolean>((res) => (answerLate = res)),
      )
      const done = guard.shutdown({ timeoutMs: 1_000 })
      let result: unknown
      void done.then((r) => (result = r))
      await vi.advanceTimersByTimeAsync(999)
      expect(result).toBeUndefined()
      await vi.advanceTimersByTimeAsync(1)
      expect(result).toEqual({ released: 1, failed: 1, timedOut: true })
      expect((await store.get('a'))?.held).toBe(false)
      answerLate(true) // the store answers at last; a shutdown without a deadline would have waited for this
      expect(await guard.shutdown()).toEqual({ released: 0, failed: 0, timedOut: false })
    })

    it('resolves as soon as everything settled, well before the deadline', async () => {
      const guard = make()
      held(await guard.acquire('a'))
      expect(await guard.shutdown({ timeoutMs: 60_000 })).toEqual({ released: 1, failed: 0, timedOut: false })
    })

    it('rejects a bad timeoutMs before doing anything', async () => {
      const guard = make()
      const lock = held(await guard.acquire('a'))
      await expect(guard.shutdown({ timeoutMs: -1 })).rejects.toMatchObject({ argument: 'options.timeoutMs' })
      expect(guard.isShuttingDown).toBe(false)
      expect(lock.signal.aborted).toBe(false)
    })
  })

  describe('shutdown with an acquire in flight', () => {
    it('waits for it and gives back the lease it took', async () => {
      const guard = make()
      const real = store.acquire.bind(store)
      vi.spyOn(store, 'acquire').mockImplementation(async (req) => {
        await new Promise((res) => setTimeout(res, 200))
        return real(req)
      })
      const attempt = guard.acquire('x').catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(50)
      let shutDown = false
      const done = guard.shutdown().then(() => (shutDown = true))
      await vi.advanceTimersByTimeAsync(0)
      expect(shutDown).toBe(false)
      await vi.advanceTimersByTimeAsync(150)
      await done
      expect(await attempt).toBeInstanceOf(ShutdownError)
      expect((await store.get('x'))?.held).toBe(false)
    })
  })

  describe('queries', () => {
    it('answers the affinity node from the ring, or this node without one', () => {
      expect(make().getAffinityNode('room-1')).toBe('node-a')
      const ring = new ConsistentHashRing()
      for (const n of ['n1', 'n2', 'n3']) ring.addNode(n)
      expect(make({ ring }).getAffinityNode('room-1')).toBe(ring.getNode('room-1'))
    })

    it('isAvailable and validateLock follow the store', async () => {
      const a = make()
      const b = make({ nodeId: 'node-b' })
      expect(await a.isAvailable('x')).toBe(true)
      const lock = held(await a.acquire('x', { heartbeat: false, ttlMs: 1_000 }))
      expect(await b.isAvailable('x')).toBe(false)
      expect(await a.validateLock(lock)).toBe(true)
      await vi.advanceTimersByTimeAsync(1_000)
      held(await b.acquire('x'))
      expect(await a.validateLock(lock)).toBe(false)
    })
  })

  describe('bad input (invariant 8)', () => {
    const cases: Array<[string, Partial<HybridConsistencyGuardOptions>, string]> = [
      ['an empty nodeId', { nodeId: '' }, 'nodeId'],
      ['a zero ttl', { ttlMs: 0 }, 'ttlMs'],
      ['a NaN ttl', { ttlMs: Number.NaN }, 'ttlMs'],
      ['a heartbeat equal to the ttl', { ttlMs: 1_000, heartbeatMs: 1_000 }, 'heartbeatMs'],
      ['a heartbeat above the ttl', { ttlMs: 1_000, heartbeatMs: 5_000 }, 'heartbeatMs'],
      ['a drift as long as the ttl', { ttlMs: 1_000, driftMs: 1_000 }, 'driftMs'],
      [
        'a heartbeat after local validity ends (ttl - drift)',
        { ttlMs: 1_000, driftMs: 100, heartbeatMs: 900 },
        'heartbeatMs',
      ],
      ['a store that is not a LockStore', { store: {} as never }, 'store'],
      ['a ring without getNode', { ring: {} as never }, 'ring'],
      ['a backoff with zero delay', { retry: { initialDelayMs: 0 } }, 'retry.initialDelayMs'],
      ['a random that is not a function', { random: 0.5 as never }, 'random'],
    ]
    for (const [what, options, argument] of cases) {
      it(`rejects ${what}, naming ${argument}`, () => {
        const error = (() => {
          try {
            make(options)
          } catch (e) {
            return e
          }
        })()
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect((error as InvalidArgumentError).argument).toBe(argument)
      })
    }

    it('accepts a very short ttl without an explicit drift (the default drift shrinks to fit)', () => {
      const guard = make({ ttlMs: 3 })
      expect(guard.driftMs).toBe(1)
      expect(guard.heartbeatMs).toBe(1)
    })

    it('rejects bad acquire arguments before touching the store', async () => {
      const guard = make()
      const spy = vi.spyOn(store, 'acquire')
      for (const [call, argument] of [
        [() => guard.acquire(''), 'doId'],
        [() => guard.acquire(7 as never), 'doId'],
        [() => guard.acquire('x'.repeat(2000)), 'doId'],
        [() => guard.acquire('x', { waitMs: -1 }), 'options.waitMs'],
        [() => guard.acquire('x', { waitMs: Number.NaN }), 'options.waitMs'],
        [() => guard.acquire('x', { ttlMs: 0 }), 'options.ttlMs'],
        [() => guard.acquire('x', { signal: 'nope' as never }), 'options.signal'],
        [() => guard.acquire('x', { retry: { factor: 0.5 } }), 'options.retry.factor'],
      ] as const) {
        await expect(call()).rejects.toMatchObject({ argument })
      }
      expect(() => guard.getAffinityNode('')).toThrow(InvalidArgumentError)
      expect(spy).not.toHaveBeenCalled()
    })
  })
})
