/**
 * Delays past setTimeout's 2^31 - 1 ms limit: chained instead of firing at once, for the helper and
 * for the guard's own long waits (shutdown deadlines, backoff).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { HybridConsistencyGuard, MemoryLockStore, type Clock } from '../../src/index.js'
import { clock } from './support/leases.js'
import { MAX_TIMER_DELAY_MS, setLongTimeout } from '../../src/guard/timers.js'
import { never, recordingStore } from './support/recording-store.js'

const DAY = 86_400_000

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
})
afterEach(() => {
  vi.useRealTimers()
})

describe('setLongTimeout', () => {
  it.each([
    [0],
    [1],
    [1_000],
    [MAX_TIMER_DELAY_MS],
    [MAX_TIMER_DELAY_MS + 1],
    [3e9],
    [30 * DAY],
    [3 * MAX_TIMER_DELAY_MS + 5],
  ])('fires after %i ms, not before', async (delay) => {
    const fired = vi.fn()
    setLongTimeout(fired, delay)
    if (delay > 0) {
      await vi.advanceTimersByTimeAsync(delay - 1)
      expect(fired).not.toHaveBeenCalled()
    }
    await vi.advanceTimersByTimeAsync(1)
    expect(fired).toHaveBeenCalledTimes(1)
  })

  it.each([[-5], [Number.NaN]])('treats a delay of %s as 0', async (delay) => {
    const fired = vi.fn()
    setLongTimeout(fired, delay)
    await vi.advanceTimersByTimeAsync(0)
    expect(fired).toHaveBeenCalledTimes(1)
  })

  it('can be cancelled before it fires, also between the timers it chains', async () => {
    const early = vi.fn()
    setLongTimeout(early, 3e9).cancel()
    const late = vi.fn()
    const timer = setLongTimeout(late, 3e9)
    await vi.advanceTimersByTimeAsync(MAX_TIMER_DELAY_MS + 10) // the second timer of the chain is armed
    timer.cancel()
    timer.cancel()
    await vi.advanceTimersByTimeAsync(3e9)
    expect(early).not.toHaveBeenCalled()
    expect(late).not.toHaveBeenCalled()
  })
})

describe('HybridConsistencyGuard long waits', () => {
  it('waits a 30-day shutdown deadline in full instead of giving up at once', async () => {
    const recorder = recordingStore(new MemoryLockStore({ clock }))
    // A store request may stay unanswered longer than the deadline (not by default: requestTimeoutMs).
    const requestTimeoutMs = 60 * DAY
    const guard = new HybridConsistencyGuard({ store: recorder.store, nodeId: 'node-a', clock, requestTimeoutMs })
    expect((await guard.acquire('x')).acquired).toBe(true)
    recorder.faults.release = () => never()
    let result: unknown
    void guard.shutdown({ timeoutMs: 30 * DAY }).then((r) => (result = r))
    await vi.advanceTimersByTimeAsync(DAY)
    expect(result).toBeUndefined()
    await vi.advanceTimersByTimeAsync(29 * DAY)
    expect(result).toEqual({ released: 0, failed: 1, timedOut: true })
  })

  it('sleeps a backoff longer than 2^31 - 1 ms instead of polling the store every millisecond', async () => {
    const store = new MemoryLockStore({ clock })
    const holder = new HybridConsistencyGuard({ store, nodeId: 'node-a', clock })
    expect((await holder.acquire('x', { heartbeat: false })).acquired).toBe(true)
    const recorder = recordingStore(store)
    const guard = new HybridConsistencyGuard({
      store: recorder.store,
      nodeId: 'node-b',
      clock,
      random: () => 0.9,
      retry: { initialDelayMs: 3e9, maxDelayMs: 3e9 },
    })
    const waiting = guard.acquire('x', { waitMs: 1e10, heartbeat: false })
    await vi.advanceTimersByTimeAsync(60_000)
    expect(recorder.received.acquire).toHaveLength(1) // still asleep: 0.9 * 3e9 ms
    await vi.advanceTimersByTimeAsync(2.7e9)
    expect(recorder.received.acquire).toHaveLength(2) // the holder's lease ran out meanwhile
    expect(await waiting).toMatchObject({ acquired: true, lock: { nodeId: 'node-b', fencingToken: 2 } })
    await Promise.all([guard.shutdown(), holder.shutdown()])
  })
})
