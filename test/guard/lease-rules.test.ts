/**
 * The local lease rules as tables: defaults, tiny and huge ttls, explicit settings scaled per acquire,
 * and the edges of the validity window (docs/design.md invariant 4).
 */
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_DRIFT_FIXED_MS,
  DEFAULT_DRIFT_RATIO,
  DEFAULT_HEARTBEATS_PER_TTL,
  DEFAULT_TTL_MS,
  answeredAfterSafeWindow,
  defaultDriftMs,
  defaultHeartbeatMs,
  heartbeatFits,
  nextHeartbeatDelay,
  validityAfterStoreClockStep,
  timingsForTtl,
  validityEnd,
  type GuardTimings,
} from '../../src/guard/lease-rules.js'

const DAY = 86_400_000

describe('lease rules', () => {
  it('default to a 30 s lease, a heartbeat every third of it and a drift margin of 1% + 2 ms', () => {
    expect([DEFAULT_TTL_MS, DEFAULT_HEARTBEATS_PER_TTL, DEFAULT_DRIFT_RATIO, DEFAULT_DRIFT_FIXED_MS]).toEqual([
      30_000, 3, 0.01, 2,
    ])
  })

  describe('default heartbeat', () => {
    it.each([
      // ttl, heartbeat
      [30_000, 10_000],
      [10_000, 3_333],
      [3, 1],
      [2, 1], // never 0: at least 1 ms
      [1, 1],
      [DAY, DAY / 3],
    ])('for a ttl of %i ms is %i ms', (ttl, heartbeat) => {
      expect(defaultHeartbeatMs(ttl)).toBe(heartbeat)
    })
  })

  describe('default drift margin', () => {
    it.each([
      // ttl, drift
      [30_000, 302],
      [1_000, 12],
      [100, 3],
      [6, 3], // 1% + 2 ms = 3, and half of 6 is 3
      [5, 2], // capped at half the lease
      [3, 1],
      [1, 0],
      [DAY, 864_002],
    ])('for a ttl of %i ms is %i ms', (ttl, drift) => {
      expect(defaultDriftMs(ttl)).toBe(drift)
    })
  })

  describe('validity window', () => {
    const timings = { ttlMs: 30_000, heartbeatMs: 10_000, driftMs: 302 }
    it.each([
      // sent at, answered at, after the safe window?
      [0, 0, false],
      [0, 29_697, false],
      [0, 29_698, true], // the window's end is already outside it
      [1_000, 30_697, false],
      [1_000, 40_000, true],
    ])('a lease sent at %i and answered at %i: too late = %s', (sentAt, answeredAt, late) => {
      expect(validityEnd(sentAt, timings)).toBe(sentAt + 29_698)
      expect(answeredAfterSafeWindow(sentAt, answeredAt, timings)).toBe(late)
    })
  })

  describe('per-acquire timings', () => {
    const defaults: GuardTimings = {
      ttlMs: 30_000,
      heartbeatMs: 10_000,
      driftMs: 302,
      explicitHeartbeat: false,
      explicitDrift: false,
    }
    const explicit: GuardTimings = {
      ttlMs: 30_000,
      heartbeatMs: 1_000,
      driftMs: 600,
      explicitHeartbeat: true,
      explicitDrift: true,
    }
    it.each([
      // name, guard, per-acquire ttl, heartbeat, drift
      ['the guard ttl keeps the guard timings', explicit, 30_000, 1_000, 600],
      ['defaults are recomputed for a day', defaults, DAY, DAY / 3, 864_002],
      ['defaults are recomputed for a tiny ttl', defaults, 300, 100, 5],
      ['explicit settings scale with a longer ttl', explicit, 60_000, 2_000, 1_200],
      ['explicit settings scale with a shorter ttl', explicit, 3_000, 100, 60],
      ['an explicit drift is capped at half the lease', { ...explicit, driftMs: 20_000 }, 10, 1, 5],
      [
        'an explicit heartbeat keeps its place in the window ttl - drift, not in the ttl',
        { ...defaults, heartbeatMs: 29_600, explicitHeartbeat: true },
        300,
        294,
        5,
      ],
      ['an explicit heartbeat never drops below 1 ms', explicit, 4, 1, 1],
    ])('%s', (_name, guard, ttlMs, heartbeatMs, driftMs) => {
      expect(timingsForTtl(guard, ttlMs)).toEqual({ ttlMs, heartbeatMs, driftMs })
    })
  })

  describe('next heartbeat', () => {
    const timings = { ttlMs: 30_000, heartbeatMs: 10_000, driftMs: 302 }
    it.each([
      // name, sent at, now, valid until, delay
      ['a quick answer waits a whole period', 0, 0, 29_698, 10_000],
      ['the period counts from the request, not the answer', 0, 4_000, 29_698, 6_000],
      ['an answer later than the period: at once', 0, 21_000, 29_698, 0],
      ['an answer past the validity: at once, never negative', 0, 40_000, 29_698, 0],
      ['a validity cut to half the window: half the period', 0, 0, 14_849, 5_000],
      ['a validity already over: at once', 0, 0, -1, 0],
    ])('%s', (_name, sentAt, now, validUntil, delay) => {
      expect(nextHeartbeatDelay(timings, sentAt, now, validUntil)).toBeCloseTo(delay, 6)
    })

    it('keeps an explicit heartbeat late in the window where it was set', () => {
      const late = { ttlMs: 30_000, heartbeatMs: 29_600, driftMs: 302 }
      expect(nextHeartbeatDelay(late, 1_000, 1_000, 1_000 + 29_698)).toBe(29_600)
    })
  })

  describe('validity after a store clock step', () => {
    // A 30 s lease renewed by a refresh sent at our 30 000 that the store read at its 31 000 (its clock
    // at most 1 000 ms ahead): store expiry 61 000, local validity 30 000 + 29 698.
    const lease = { validUntil: 59_698, storeExpiresAt: 61_000, storeOffsetCeiling: 1_000, driftMs: 302 }
    it.each([
      // name, offset now seen (floor), validity after
      ['no step: the floor is below the ceiling', 900, 59_698],
      ['a step within the drift margin', 1_302, 59_698],
      ['a step just past the margin shrinks by the whole step', 1_303, 61_000 - 1_303 - 302],
      ['a 10 s step', 11_000, 61_000 - 11_000 - 302],
      ['a step past the expiry leaves a deadline already passed', 70_000, 61_000 - 70_000 - 302],
      ['a backward step changes nothing', -50_000, 59_698],
      ['no store time (NaN) changes nothing', Number.NaN, 59_698],
    ])('%s', (_name, floor, validUntil) => {
      expect(validityAfterStoreClockStep(lease, floor)).toBe(validUntil)
    })

    it('never lengthens a validity that was already shorter', () => {
      expect(validityAfterStoreClockStep({ ...lease, validUntil: 40_000 }, 11_000)).toBe(40_000)
    })
  })

  describe('heartbeat placement', () => {
    it.each([
      // ttl, heartbeat, drift, fits?
      [30_000, 10_000, 302, true],
      [1_000, 899, 100, true],
      [1_000, 900, 100, false], // comes exactly when local validity ends
      [1_000, 500, 600, false], // an explicit drift above half the lease with the default-like heartbeat
      [3, 1, 1, true],
      [2, 1, 1, false],
      [1, 1, 0, false],
    ])('ttl %i, heartbeat %i, drift %i: fits = %s', (ttlMs, heartbeatMs, driftMs, fits) => {
      expect(heartbeatFits({ ttlMs, heartbeatMs, driftMs })).toBe(fits)
    })
  })
})
