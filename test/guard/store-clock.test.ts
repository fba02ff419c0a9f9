/**
 * The store's wall clock decides expiry (docs/design.md invariant 4), and it can step forward (NTP, a
 * VM resuming): leases renewed by the clock before the step then expire sooner than their local
 * validity says. Every acquire and refresh answer carries the store's time; the guard checks its
 * leases against it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { HybridConsistencyGuard, LockLostError, MemoryLockStore, type Clock, type GuardEvent } from '../../src/index.js'
import { held } from './support/leases.js'
import { recordingStore, type RecordingStore } from './support/recording-store.js'

describe('HybridConsistencyGuard and a store clock that steps forward', () => {
  let skew: number
  let recorder: RecordingStore
  let events: GuardEvent[]
  let t0: number
  const local: Clock = { now: () => Date.now(), monotonic: () => Date.now() }
  const guards: HybridConsistencyGuard[] = []
  const make = (nodeId = 'node-a') => {
    const guard = new HybridConsistencyGuard({
      store: recorder.store,
      nodeId,
      clock: local,
      random: () => 0.5,
      onEvent: (e) => events.push(e),
    })
    guards.push(guard)
    return guard
  }
  /** Local time since the test began. */
  const at = (ms: number) => vi.advanceTimersByTimeAsync(t0 + ms - Date.now())

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    t0 = Date.now()
    skew = 0
    // The store's clock: ours, plus whatever step the test applies.
    recorder = recordingStore(new MemoryLockStore({ clock: { now: () => Date.now() + skew, monotonic: () => 0 } }))
    events = []
  })
  afterEach(async () => {
    skew = 0
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
    vi.useRealTimers()
  })

  it("shortens a lease's validity when another lease's answer shows the store's clock jumped, and fires its signal before the store's expiry", async () => {
    const guard = make()
    const b = held(await guard.acquire('b', { heartbeat: false })) // store expiry: 30 s
    await at(5_000)
    held(await guard.acquire('a')) // heartbeats from 15 s on
    await at(7_000)
    skew = 10_000 // by the store's clock, b now expires at our 20 s, not 30 s
    await at(15_000) // a's heartbeat answers with the stepped clock
    expect(b.validUntil).toBe(t0 + 30_000 - 10_000 - 302)
    expect(b.signal.aborted).toBe(false)
    await at(20_000 - 302)
    expect(b.signal.aborted).toBe(true)
    expect(b.signal.reason).toBeInstanceOf(LockLostError)
    // Another node can indeed take it now: until then, b was still held by the store's clock.
    await at(20_000)
    expect(held(await make('node-c').acquire('b'))).toMatchObject({ nodeId: 'node-c', fencingToken: 2 })
  })

  it('fires the signal at once when the step already took the lease past its expiry by the store clock', async () => {
    const guard = make()
    const b = held(await guard.acquire('b', { heartbeat: false }))
    await at(5_000)
    held(await guard.acquire('a'))
    skew = 15_000 // b expires at the store's 30 s = our 15 s
    await at(15_000)
    expect(b.signal.aborted).toBe(true)
    expect((b.signal.reason as LockLostError).message).toMatch(/store's clock jumped 15000 ms ahead/)
    expect(events).toContainEqual(expect.objectContaining({ type: 'lost', doId: 'b' }))
    expect(guard.heldLocks.map((l) => l.doId)).toEqual(['a'])
  })

  it('brings forward the heartbeat of a lease the step shortened', async () => {
    const guard = make()
    held(await guard.acquire('a')) // heartbeat at 10 s
    await at(5_000)
    held(await guard.acquire('b')) // heartbeat due at 15 s
    await at(7_000)
    skew = 18_000 // b now expires at our 17 s
    await at(10_000)
    const refreshesOfB = () => recorder.received.refresh.filter((r) => r.doId === 'b').length
    await at(12_300)
    expect(refreshesOfB()).toBe(1) // well before 15 s, and before the store's expiry
    await at(60_000)
    expect(guard.heldLocks.map((l) => l.doId).sort()).toEqual(['a', 'b'])
  })

  it('keeps the full validity of a lease its own refresh renewed after the step (the store renewed it by its new clock)', async () => {
    const guard = make()
    const a = held(await guard.acquire('a'))
    await at(3_000)
    skew = 5_000
    await at(10_000)
    expect(a.validUntil).toBe(t0 + 10_000 + 30_000 - 302)
    expect(a.expiresAt).toBe(t0 + 10_000 + 5_000 + 30_000)
  })

  it('leaves validity alone when the store clock moved by less than the drift margin', async () => {
    const guard = make()
    const b = held(await guard.acquire('b', { heartbeat: false }))
    await at(5_000)
    held(await guard.acquire('a'))
    skew = 300 // the default margin of a 30 s lease is 302 ms
    await at(15_000)
    expect(b.validUntil).toBe(t0 + 30_000 - 302)
  })

  it('notices the step from a contended acquire too', async () => {
    const guard = make()
    const b = held(await guard.acquire('b', { heartbeat: false }))
    held(await make('node-z').acquire('z'))
    await at(5_000)
    skew = 10_000
    expect((await guard.acquire('z')).acquired).toBe(false) // the store's answer carries its clock
    expect(b.validUntil).toBe(t0 + 30_000 - 10_000 - 302)
  })
})
