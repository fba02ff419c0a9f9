/**
 * The guard's options as a caller sees them: combinations that cannot work are refused up front,
 * naming what the caller set, and each argument is read once, so what was validated is what is used
 * (docs/design.md invariant 8).
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  InvalidArgumentError,
  MemoryLockStore,
  StoreUnavailableError,
  type AcquireOptions,
  type AcquireRequest,
  type HybridConsistencyGuardOptions,
  type LockResult,
} from '../../src/index.js'
import { held } from './support/leases.js'
import { recordingStore, shifty } from './support/recording-store.js'

function rejection(run: () => unknown): InvalidArgumentError {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentError)
    return error as InvalidArgumentError
  }
  throw new Error('expected an InvalidArgumentError')
}

const base = (): HybridConsistencyGuardOptions => ({ store: new MemoryLockStore(), nodeId: 'node-a' })

describe('HybridConsistencyGuard options', () => {
  describe('refuses combinations that would lose every lease before its first heartbeat', () => {
    it.each<[string, string, Partial<HybridConsistencyGuardOptions>, RegExp]>([
      [
        'an explicit drift above 2/3 of the ttl with the default heartbeat',
        'driftMs',
        { ttlMs: 30_000, driftMs: 20_001 },
        /less than 20000 ms.*default heartbeat \(ttlMs \/ 3 = 10000 ms\)/,
      ],
      ['a 1 ms ttl with the defaults (the caller never set heartbeatMs)', 'ttlMs', { ttlMs: 1 }, /at least 3 ms/],
      ['a 2 ms ttl with the defaults', 'ttlMs', { ttlMs: 2 }, /at least 3 ms.*before its first heartbeat/],
      [
        'an explicit heartbeat past ttl - drift',
        'heartbeatMs',
        { ttlMs: 1_000, driftMs: 100, heartbeatMs: 900 },
        /900/,
      ],
      ['an explicit heartbeat past a default drift', 'heartbeatMs', { ttlMs: 3, heartbeatMs: 2 }, /3 - 1 = 2/],
    ])('rejects %s, naming %s', (_what, argument, options, message) => {
      const error = rejection(() => new HybridConsistencyGuard({ ...base(), ...options }))
      expect(error.argument).toBe(argument)
      expect(error.message).toMatch(message)
    })

    it('accepts the largest drift that still leaves room for the default heartbeat', () => {
      const guard = new HybridConsistencyGuard({ ...base(), ttlMs: 30_000, driftMs: 19_999 })
      expect([guard.heartbeatMs, guard.driftMs]).toEqual([10_000, 19_999])
    })
  })

  describe('refuses a bad requestTimeoutMs, by name', () => {
    it.each([[0], [-1], [1.5], [Number.NaN], [Number.POSITIVE_INFINITY], ['10s']])('requestTimeoutMs: %s', (value) => {
      const error = rejection(() => new HybridConsistencyGuard({ ...base(), requestTimeoutMs: value as never }))
      expect(error.argument).toBe('requestTimeoutMs')
    })
  })

  describe('refuses a retry that is not an object, by name', () => {
    it.each([[5], ['fast'], [null], [true], [[1, 2]]])('retry: %j', (retry) => {
      expect(rejection(() => new HybridConsistencyGuard({ ...base(), retry: retry as never })).argument).toBe('retry')
    })
  })

  describe('per acquire', () => {
    it.each<[string, AcquireOptions, string]>([
      ['a retry that is a number', { retry: 5 as never }, 'options.retry'],
      ['a retry that is a string', { retry: 'fast' as never }, 'options.retry'],
      ['a retry of 0 (falsy, once ignored)', { retry: 0 as never }, 'options.retry'],
      ['a ttl too short for a heartbeat before its validity ends', { ttlMs: 2 }, 'options.ttlMs'],
      ['a 1 ms ttl', { ttlMs: 1 }, 'options.ttlMs'],
    ])('rejects %s before touching the store', async (_what, options, argument) => {
      const store = new MemoryLockStore()
      const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
      await expect(guard.acquire('x', options)).rejects.toMatchObject({ argument })
      expect(await store.get('x')).toBeNull()
      await guard.shutdown()
    })

    it('accepts a very short ttl without heartbeats (nothing has to fit before validity ends)', async () => {
      // A clock that stands still: the 1 ms validity must not run out while the store answers.
      const clock = { now: () => Date.now(), monotonic: () => 0 }
      const guard = new HybridConsistencyGuard({ store: new MemoryLockStore(), nodeId: 'node-a', clock })
      const r = await guard.acquire('x', { ttlMs: 2, heartbeat: false })
      expect(r.acquired).toBe(true)
      await guard.shutdown()
    })
  })
})

describe('HybridConsistencyGuard reads each argument once', () => {
  // A getter (or Proxy) that answers a valid value first and a bad one after must not get a bad
  // value past validation: the guard either rejects, or uses the first value throughout.
  const guards: HybridConsistencyGuard[] = []
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })
  const make = (options: HybridConsistencyGuardOptions) => {
    const guard = new HybridConsistencyGuard(options)
    guards.push(guard)
    return guard
  }

  it.each<[string, unknown, unknown, Partial<AcquireRequest>]>([
    ['nodeId', 'node-a', '', { nodeId: 'node-a' }],
    ['ttlMs', 1_000, -5, { ttlMs: 1_000 }],
    ['ttlMs', 1_000, 8e15, { ttlMs: 1_000 }],
    ['heartbeatMs', 100, 1e9, { ttlMs: 30_000 }],
    ['driftMs', 10, -1, { ttlMs: 30_000 }],
    ['retry', { initialDelayMs: 5 }, 5, { ttlMs: 30_000 }],
  ])('in the constructor: %s = %j, then %j', async (key, first, after, sent) => {
    const recorder = recordingStore(new MemoryLockStore())
    const { store } = recorder
    const guard = make(shifty({ store, nodeId: 'node-a' }, key, first, after))
    expect(held(await guard.acquire('x'))).toMatchObject({ nodeId: 'node-a' })
    expect(recorder.received.acquire).toEqual([expect.objectContaining(sent)])
    if (key === 'ttlMs') expect(guard.ttlMs).toBe(first)
    if (key === 'heartbeatMs') expect(guard.heartbeatMs).toBe(first)
    if (key === 'driftMs') expect(guard.driftMs).toBe(first)
  })

  it.each<[string, unknown, unknown]>([
    ['ttlMs', 1_000, 8e15],
    ['ttlMs', 1_000, -5],
    ['waitMs', 0, Number.NaN],
    ['signal', new AbortController().signal, 'nope'],
    ['heartbeat', false, 'yes'],
    ['retry', { initialDelayMs: 1, maxDelayMs: 1 }, 5],
    ['metadata', { by: 'first' }, () => 'not JSON'],
  ])('per acquire: %s = %j, then %j', async (key, first, after) => {
    const recorder = recordingStore(new MemoryLockStore())
    const { store } = recorder
    const guard = make({ store, nodeId: 'node-a' })
    const outcome = await guard.acquire('x', shifty({}, key, first, after)).catch((e: unknown) => e)
    if (outcome instanceof InvalidArgumentError) {
      expect(recorder.received.acquire).toEqual([]) // rejected before any I/O
      return
    }
    const lock = held(outcome as LockResult)
    for (const request of recorder.received.acquire) {
      expect(request.ttlMs).toBe(key === 'ttlMs' ? first : 30_000)
      if (key === 'metadata') expect(request.metadata).toEqual(first)
    }
    if (key === 'heartbeat') expect(lock.validUntil).toBeGreaterThan(0)
  })

  it('sends the same metadata on every attempt, even from an object whose getter changes', async () => {
    const recorder = recordingStore(new MemoryLockStore())
    const { store } = recorder
    let failures = 2
    recorder.faults.acquire = async (request, real) => {
      if (failures-- > 0) throw new StoreUnavailableError('SQLITE_BUSY', { retryable: true })
      return real(request)
    }
    const guard = make({ store, nodeId: 'node-a', retry: { initialDelayMs: 1, maxDelayMs: 1 } })
    let reads = 0
    const metadata = {
      get attempt() {
        return ++reads
      },
    }
    const lock = held(await guard.acquire('x', { waitMs: 5_000, metadata: shifty({}, 'inner', metadata, 'bad') }))
    expect(recorder.received.acquire.map((r) => r.metadata)).toEqual([
      { inner: { attempt: 1 } },
      { inner: { attempt: 1 } },
      { inner: { attempt: 1 } },
    ])
    expect(lock.metadata).toEqual({ inner: { attempt: 1 } })
  })

  it('uses the shutdown timeoutMs it validated', async () => {
    const recorder = recordingStore(new MemoryLockStore())
    const { store } = recorder
    const guard = make({ store, nodeId: 'node-a' })
    held(await guard.acquire('x'))
    // Slower than the deadline, but not forever: the test's own cleanup waits for it.
    recorder.faults.release = () => new Promise((resolve) => setTimeout(() => resolve(false), 500))
    const started = Date.now()
    const result = await guard.shutdown(shifty({}, 'timeoutMs', 50, -1))
    expect(result).toEqual({ released: 0, failed: 1, timedOut: true })
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
  })
})
