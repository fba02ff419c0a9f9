/**
 * Store requests that never answer (in workerd, the I/O promise of a cancelled request can stay
 * pending for good): each counts as failed after requestTimeoutMs, and nothing waits on it forever.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  DEFAULT_REQUEST_TIMEOUT_MS,
  HybridConsistencyGuard,
  MemoryLockStore,
  StoreUnavailableError,
  type GuardEvent,
  type HybridConsistencyGuardOptions,
} from '../../src/index.js'
import { clock, held } from './support/leases.js'
import { never, recordingStore, type RecordingStore } from './support/recording-store.js'

/** Settles `promise` into a box the test can look at without awaiting (it may never settle). */
function watch<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown } {
  const box: { settled: boolean; value?: T; error?: unknown } = { settled: false }
  promise.then(
    (value) => Object.assign(box, { settled: true, value }),
    (error: unknown) => Object.assign(box, { settled: true, error }),
  )
  return box
}

describe('HybridConsistencyGuard request timeout', () => {
  let recorder: RecordingStore
  let events: GuardEvent[]
  const make = (options: Partial<HybridConsistencyGuardOptions> = {}) =>
    new HybridConsistencyGuard({
      store: recorder.store,
      nodeId: 'node-a',
      clock,
      random: () => 0.5,
      onEvent: (e) => events.push(e),
      ...options,
    })

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    recorder = recordingStore(new MemoryLockStore({ clock }))
    events = []
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('defaults to 10 s', () => {
    expect(DEFAULT_REQUEST_TIMEOUT_MS).toBe(10_000)
  })

  it('fails an acquire the store never answers with a retryable StoreUnavailableError, and shutdown does not wait for it', async () => {
    const guard = make()
    recorder.faults.acquire = () => never()
    const attempt = watch(guard.acquire('x'))
    await vi.advanceTimersByTimeAsync(DEFAULT_REQUEST_TIMEOUT_MS - 1)
    expect(attempt.settled).toBe(false)
    await vi.advanceTimersByTimeAsync(1)
    expect(attempt.error).toBeInstanceOf(StoreUnavailableError)
    expect(attempt.error).toMatchObject({ retryable: true, message: expect.stringMatching(/did not answer within/) })
    expect(events.at(-1)).toMatchObject({ type: 'error', operation: 'acquire', doId: 'x' })
    const shutdown = watch(guard.shutdown()) // no timeoutMs: it must not hang on the lost request
    await vi.advanceTimersByTimeAsync(0)
    expect(shutdown.value).toEqual({ released: 0, failed: 0, timedOut: false })
  })

  it('retries an unanswered acquire within waitMs', async () => {
    const guard = make({ requestTimeoutMs: 1_000 })
    recorder.faults.acquire = () => {
      recorder.faults.acquire = undefined // only the first request is lost
      return never()
    }
    const attempt = watch(guard.acquire('x', { waitMs: 5_000 }))
    await vi.advanceTimersByTimeAsync(1_100)
    expect(recorder.received.acquire).toHaveLength(2)
    expect(held(attempt.value!).fencingToken).toBe(1)
    await guard.shutdown()
  })

  it('gives back a lease granted by an answer that came after the timeout', async () => {
    const guard = make({ requestTimeoutMs: 1_000 })
    recorder.faults.acquire = async (request, real) => {
      const granted = await real(request) // the store takes the lease at once...
      await new Promise((resolve) => setTimeout(resolve, 5_000)) // ...but the answer is late
      return granted
    }
    const attempt = watch(guard.acquire('x'))
    await vi.advanceTimersByTimeAsync(1_000)
    expect(attempt.error).toBeInstanceOf(StoreUnavailableError)
    expect((await recorder.store.get('x'))?.held).toBe(true)
    await vi.advanceTimersByTimeAsync(4_000)
    expect(recorder.received.release).toEqual([{ doId: 'x', nodeId: 'node-a', fencingToken: 1 }])
    expect((await recorder.store.get('x'))?.held).toBe(false)
    expect(guard.heldLocks).toEqual([])
  })

  it('counts an unanswered heartbeat as failed and retries it within the validity', async () => {
    const guard = make({ requestTimeoutMs: 5_000 })
    const lock = held(await guard.acquire('x'))
    recorder.faults.refresh = () => {
      recorder.faults.refresh = undefined
      return never()
    }
    await vi.advanceTimersByTimeAsync(15_000) // heartbeat at 10 s, unanswered until 15 s
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'error', operation: 'refresh', error: expect.any(StoreUnavailableError) }),
    )
    await vi.advanceTimersByTimeAsync(1_000)
    expect(recorder.received.refresh.length).toBeGreaterThanOrEqual(2)
    expect(lock.expiresAt).toBeGreaterThan(lock.acquiredAt + 30_000)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(lock.signal.aborted).toBe(false)
    await guard.shutdown()
  })

  it('resolves a release the store never answers as not freed, and reports it', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    recorder.faults.release = () => never()
    const release = watch(guard.release(lock))
    await vi.advanceTimersByTimeAsync(DEFAULT_REQUEST_TIMEOUT_MS)
    expect(release.value).toBe(false)
    expect(events.at(-1)).toMatchObject({ type: 'error', operation: 'release', doId: 'x' })
    const shutdown = watch(guard.shutdown())
    await vi.advanceTimersByTimeAsync(0)
    expect(shutdown.value).toEqual({ released: 0, failed: 0, timedOut: false })
  })

  it('bounds a shutdown without timeoutMs by the request timeout', async () => {
    const guard = make()
    held(await guard.acquire('x'))
    recorder.faults.release = () => never()
    const shutdown = watch(guard.shutdown())
    await vi.advanceTimersByTimeAsync(DEFAULT_REQUEST_TIMEOUT_MS)
    expect(shutdown.value).toEqual({ released: 0, failed: 1, timedOut: false })
  })

  it('fails isAvailable and validateLock when the store never answers the read', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    recorder.faults.get = () => never()
    const available = watch(guard.isAvailable('x'))
    const valid = watch(guard.validateLock(lock))
    await vi.advanceTimersByTimeAsync(DEFAULT_REQUEST_TIMEOUT_MS)
    expect(available.error).toBeInstanceOf(StoreUnavailableError)
    expect(valid.error).toBeInstanceOf(StoreUnavailableError)
    recorder.faults.get = undefined
    await guard.shutdown()
  })
})
