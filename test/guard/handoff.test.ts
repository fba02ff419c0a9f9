/**
 * One-request handoff (issue 13): a release by the guard while another of its callers waits for the id
 * passes the lease to that caller in ONE store request (`LockStore.handoff`: the next token, one
 * commit), instead of a release and the waiter's own acquire. The in-memory store and fake timers;
 * the same line over a store without `handoff` is specified in fair-waiting.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  HybridConsistencyGuard,
  MemoryLockStore,
  ShutdownError,
  StoreUnavailableError,
  type GuardEvent,
  type HybridConsistencyGuardOptions,
  type Lock,
} from '../../src/index.js'
import { clock, held, served } from './support/leases.js'
import { recordingStore, type RecordingStore } from './support/recording-store.js'

describe('HybridConsistencyGuard one-request handoff to its next waiter', () => {
  let inner: MemoryLockStore
  let recorder: RecordingStore
  let events: GuardEvent[]
  const guards: HybridConsistencyGuard[] = []
  const make = (overrides: Partial<HybridConsistencyGuardOptions> = {}) => {
    const guard = new HybridConsistencyGuard({
      store: recorder.store,
      nodeId: 'node-a',
      ttlMs: 30_000,
      clock,
      random: () => 0.5,
      onEvent: (event) => events.push(event),
      ...overrides,
    })
    guards.push(guard)
    return guard
  }
  /** A guard holding 'x' with one caller already waiting for it (its first try made and lost). */
  const heldWithWaiter = async (overrides: Partial<HybridConsistencyGuardOptions> = {}) => {
    const guard = make(overrides)
    const lock = held(await guard.acquire('x'))
    const waiting = guard.acquire('x', { waitMs: 60_000 })
    await vi.advanceTimersByTimeAsync(0)
    return { guard, lock, waiting }
  }
  /** Store requests of each kind so far. */
  const counts = () => ({
    acquire: recorder.received.acquire.length,
    release: recorder.received.release.length,
    handoff: recorder.received.handoff.length,
  })

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    inner = new MemoryLockStore({ clock })
    recorder = recordingStore(inner)
    events = []
  })
  afterEach(async () => {
    vi.useRealTimers()
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it('hands the lease to the first waiter in one store request: no release, no acquire of its own', async () => {
    const { guard, lock, waiting } = await heldWithWaiter()
    const before = counts()
    expect(await guard.release(lock)).toBe(true)
    const next = held(await waiting)
    expect(counts()).toEqual({ ...before, handoff: before.handoff + 1 })
    expect(recorder.received.handoff[0]).toMatchObject({
      doId: 'x',
      nodeId: 'node-a',
      fencingToken: lock.fencingToken,
      toNodeId: 'node-a',
      ttlMs: 30_000,
    })
    expect(next.fencingToken).toBe(lock.fencingToken + 1)
    expect(lock.signal.aborted).toBe(true)
    expect(await inner.get('x')).toMatchObject({ held: true, nodeId: 'node-a', fencingToken: next.fencingToken })
  })

  it('serves waiters in arrival order, the caller that just released behind them, each with the token one above the last', async () => {
    const guard = make()
    const order: string[] = []
    let lock = held(await guard.acquire('x'))
    const tokens = [lock.fencingToken]
    const waiting = ['b', 'c', 'd', 'e'].map((label) => served(order, label, guard.acquire('x', { waitMs: 60_000 })))
    for (let i = 0; i < 4; i++) {
      await guard.release(lock)
      if (i === 0) waiting.push(served(order, 'a again', guard.acquire('x', { waitMs: 60_000 })))
      await vi.advanceTimersByTimeAsync(0)
      lock = await waiting[i]!
      tokens.push(lock.fencingToken)
    }
    await guard.release(lock)
    tokens.push((await waiting[4]!).fencingToken)
    expect(order).toEqual(['b', 'c', 'd', 'e', 'a again'])
    expect(tokens).toEqual([1, 2, 3, 4, 5, 6])
    expect(counts()).toEqual({ acquire: 1, release: 0, handoff: 5 })
  })

  it('releases plainly when nobody waits for the id, or the first in line does not wait (try-once) or wants a prefetch', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    expect(await guard.release(lock)).toBe(true)
    expect(counts()).toMatchObject({ release: 1, handoff: 0 })

    const again = held(await guard.acquire('x'))
    const withRows = guard.acquire('x', { waitMs: 60_000, prefetch: 10 })
    await vi.advanceTimersByTimeAsync(0)
    expect(await guard.release(again)).toBe(true)
    const rowsLock = held(await withRows) // its own acquire, which reads its rows in the same request
    expect(rowsLock.prefetched).toEqual({ entries: [], complete: true })
    expect(counts()).toMatchObject({ acquire: 3, release: 2, handoff: 0 })
  })

  it('gives the handed-over lease its own terms, heartbeat and events, as an acquire would', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    const waiting = guard.acquire('x', { waitMs: 60_000, ttlMs: 9_000, metadata: { by: 'waiter' } })
    await vi.advanceTimersByTimeAsync(0)
    events.length = 0
    await guard.release(lock)
    const next = held(await waiting)
    expect(next).toMatchObject({ ttlMs: 9_000, metadata: { by: 'waiter' }, fencingToken: 2 })
    expect(next.expiresAt - next.acquiredAt).toBe(9_000)
    expect(next.validUntil).toBeLessThanOrEqual(Date.now() + 9_000)
    expect(events).toHaveLength(2)
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'release', fencingToken: 1, released: true, handedOffToken: 2 }),
    )
    expect(events).toContainEqual(expect.objectContaining({ type: 'acquire', fencingToken: 2, attempts: 1 }))
    expect(guard.heldLocks).toEqual([next])
    await vi.advanceTimersByTimeAsync(3_000) // its heartbeat, at its own ttl / 3
    expect(recorder.received.refresh.map((r) => r.fencingToken)).toEqual([2])
    expect(await guard.validateLock(next)).toBe(true)
    expect(await guard.validateLock(lock)).toBe(false)
  })

  it('falls back to a release and the waiter’s own acquire when the store refuses the handoff', async () => {
    const { guard, lock, waiting } = await heldWithWaiter()
    recorder.faults.handoff = () => Promise.resolve(null) // refused, the lease untouched
    expect(await guard.release(lock)).toBe(true) // the plain release that followed freed it
    const next = held(await waiting)
    expect(next.fencingToken).toBe(2) // granted by its own acquire
    expect(counts()).toEqual({ acquire: 2, release: 1, handoff: 1 })
  })

  it('reports a release of a lease the store no longer had as false, and the waiter takes the id with its own acquire', async () => {
    const { guard, lock, waiting } = await heldWithWaiter()
    await inner.forceRelease('x') // an operator freed it; the guard has not noticed yet
    expect(await guard.release(lock)).toBe(false)
    expect(events.filter((e) => e.type === 'release')).toMatchObject([{ released: false, fencingToken: 1 }])
    expect(events.filter((e) => e.type === 'release' && 'handedOffToken' in e)).toEqual([])
    expect(held(await waiting).fencingToken).toBe(2)
    expect(counts()).toMatchObject({ acquire: 2, release: 1, handoff: 1 })
  })

  it('falls back when the handoff fails, reporting the error, and never hands the waiter a lease the store did not grant', async () => {
    const { guard, lock, waiting } = await heldWithWaiter()
    const failure = new StoreUnavailableError('disk I/O error', { retryable: true })
    recorder.faults.handoff = () => Promise.reject(failure)
    expect(await guard.release(lock)).toBe(true)
    expect(events).toContainEqual(expect.objectContaining({ type: 'error', operation: 'release', error: failure }))
    const next = held(await waiting)
    expect(next.fencingToken).toBe(2)
    expect(await inner.get('x')).toMatchObject({ held: true, fencingToken: 2 })
    expect(counts()).toEqual({ acquire: 2, release: 1, handoff: 1 })
  })

  it('gives back a lease handed over to a waiter that left before taking it, and the next in line gets the one after', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    const controller = new AbortController()
    const first = guard.acquire('x', { waitMs: 60_000, signal: controller.signal }).catch((e: unknown) => e)
    const second = guard.acquire('x', { waitMs: 60_000 })
    await vi.advanceTimersByTimeAsync(0)
    let answer: () => void = () => {}
    recorder.faults.handoff = async (request, real) => {
      const granted = await real(request)
      await new Promise<void>((resolve) => (answer = resolve))
      return granted
    }
    const released = guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    controller.abort(new Error('gone'))
    expect(await first).toMatchObject({ message: 'gone' })
    answer()
    expect(await released).toBe(true)
    const next = held(await second)
    // Token 2 went to the caller that left and was given back unused; nobody held it.
    expect(recorder.received.release.map((r) => r.fencingToken)).toEqual([2])
    expect(next.fencingToken).toBe(3)
  })

  it('gives back a handoff answered after requestTimeoutMs, and the waiter gets the next lease from the store', async () => {
    const { guard, lock, waiting } = await heldWithWaiter({ requestTimeoutMs: 1_000 })
    recorder.faults.handoff = async (request, real) => {
      const granted = await real(request) // committed at once; the answer comes too late
      await new Promise((resolve) => setTimeout(resolve, 5_000))
      return granted
    }
    const released = guard.release(lock)
    await vi.advanceTimersByTimeAsync(1_000)
    // Timed out: whether it committed is unknown, so the lease was released as without a waiter (the
    // store says no: the handoff did commit) and the waiter asks the store itself.
    expect(await released).toBe(false)
    await vi.advanceTimersByTimeAsync(4_000) // the late answer: token 2 is given back
    const next = held(await waiting)
    expect(next.fencingToken).toBe(3)
    expect(recorder.received.release.map((r) => r.fencingToken)).toEqual([1, 2])
    expect(await inner.get('x')).toMatchObject({ held: true, fencingToken: 3 })
  })

  it('gives the new lease back when the guard shuts down during the handoff, and shutdown waits for that', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    const waiting = guard.acquire('x', { waitMs: 60_000 }).catch((e: unknown) => e)
    await vi.advanceTimersByTimeAsync(0)
    let answer: () => void = () => {}
    recorder.faults.handoff = async (request, real) => {
      const granted = await real(request)
      await new Promise<void>((resolve) => (answer = resolve))
      return granted
    }
    void guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    const down = guard.shutdown()
    answer()
    await down
    expect(await waiting).toBeInstanceOf(ShutdownError)
    expect(await inner.get('x')).toMatchObject({ held: false, fencingToken: 2 })
  })
})

describe('HybridConsistencyGuard one-request handoff in Cloudflare Workers', () => {
  afterEach(() => {
    vi.useRealTimers()
    vi.unstubAllGlobals()
    vi.resetModules()
  })

  it('delivers the handed-over lease through the waiter’s own timer, not by resolving its wait from the releasing caller', async () => {
    vi.stubGlobal('navigator', { userAgent: 'Cloudflare-Workers' })
    vi.resetModules()
    // Loaded afresh, so local-waiters.ts sees the Workers user agent.
    const lib = await import('../../src/index.js')
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    const recorder = recordingStore(new lib.MemoryLockStore({ clock }))
    const guard = new lib.HybridConsistencyGuard({ store: recorder.store, nodeId: 'node-a', clock })
    const lock = held(await guard.acquire('x'))
    let next: Lock | undefined
    void guard.acquire('x', { waitMs: 60_000 }).then((r) => (next = held(r)))
    await vi.advanceTimersByTimeAsync(0)
    expect(await guard.release(lock)).toBe(true)
    await Promise.resolve()
    expect(next).toBeUndefined() // the handoff committed; the waiter has not been resumed from here
    expect(recorder.received.handoff).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1) // its own 1 ms timer reads the flag and adopts the lease
    expect(next?.fencingToken).toBe(2)
    expect(recorder.received.acquire).toHaveLength(1)
    await guard.shutdown()
  })
})
