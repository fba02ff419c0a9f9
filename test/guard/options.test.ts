/**
 * The guard's options as a caller sees them: combinations that cannot work are refused up front,
 * naming what the caller set (docs/design.md invariant 8).
 */
import { describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  InvalidArgumentError,
  MemoryLockStore,
  type AcquireOptions,
  type HybridConsistencyGuardOptions,
} from '../../src/index.js'

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
