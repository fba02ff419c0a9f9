/**
 * Fair local waiting (issue 13): the callers of one guard that want the same DO id are served in
 * arrival order, only the first in line asks the store, and a release by the guard wakes the next at
 * once. Timing and request counts with the in-memory store and fake timers, over a store WITHOUT
 * `handoff` (each handoff a release and the next acquire; the one-request handoff has its own suite,
 * handoff.test.ts); throughput, fairness and token order over real libSQL in real time, with and
 * without it.
 */
import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  MemoryLockStore,
  ShutdownError,
  StoreUnavailableError,
  type HybridConsistencyGuardOptions,
  type LockStore,
} from '../../src/index.js'
import { clock, held, served } from './support/leases.js'
import { recordingStore, type RecordingStore } from './support/recording-store.js'

describe('HybridConsistencyGuard fair local waiting', () => {
  let recorder: RecordingStore
  const guards: HybridConsistencyGuard[] = []
  const make = (overrides: Partial<HybridConsistencyGuardOptions> = {}) => {
    const guard = new HybridConsistencyGuard({
      store: recorder.store,
      nodeId: 'node-a',
      ttlMs: 30_000,
      clock,
      random: () => 0.5,
      ...overrides,
    })
    guards.push(guard)
    return guard
  }
  /** Acquire requests that reached the store so far. */
  const requests = () => recorder.received.acquire.length

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    recorder = recordingStore(new MemoryLockStore({ clock }), { handoff: false })
  })
  afterEach(async () => {
    vi.useRealTimers()
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  it('serves callers waiting for one id in arrival order, the one that just released behind them', async () => {
    const guard = make()
    const order: string[] = []
    let lock = held(await guard.acquire('x'))
    const waiting = ['b', 'c', 'd', 'e'].map((label) => served(order, label, guard.acquire('x', { waitMs: 60_000 })))
    for (let i = 0; i < 4; i++) {
      await guard.release(lock)
      // The caller that released comes back at once, and must queue behind those already waiting.
      if (i === 0) waiting.push(served(order, 'a again', guard.acquire('x', { waitMs: 60_000 })))
      await vi.advanceTimersByTimeAsync(0)
      lock = await waiting[i]!
    }
    await guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    const last = await waiting[4]!
    expect(order).toEqual(['b', 'c', 'd', 'e', 'a again'])
    expect(last.fencingToken).toBe(6)
  })

  it('sends no request while the lease is this guard’s own: one per handoff, at the release', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x'))
    const before = requests()
    const first = guard.acquire('x', { waitMs: 60_000 })
    const rest = Array.from({ length: 4 }, () => guard.acquire('x', { waitMs: 60_000 }).catch((e: unknown) => e))
    await vi.advanceTimersByTimeAsync(10_000)
    expect(requests()).toBe(before) // nobody polled its own node's lease
    await guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    const next = held(await first)
    expect(requests()).toBe(before + 1)
    expect(next.fencingToken).toBe(2)
    await guard.shutdown()
    for (const outcome of await Promise.all(rest)) expect(outcome).toBeInstanceOf(ShutdownError)
  })

  it('wakes the first in line as soon as the release is sent, not at its next poll', async () => {
    // A backoff that would sleep 30 s: only a local wake-up can hand the lease over sooner.
    const guard = make({ retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
    const lock = held(await guard.acquire('x'))
    const waiting = guard.acquire('x', { waitMs: 120_000 })
    await vi.advanceTimersByTimeAsync(1_000)
    const releasedAt = Date.now()
    await guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    const next = held(await waiting)
    expect(Date.now() - releasedAt).toBe(0) // fake time did not move: no timer was needed
    expect(next.fencingToken).toBe(2)
  })

  it('waits for the release’s answer, without polling, when it asked before the release arrived', async () => {
    const guard = make({ retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
    const lock = held(await guard.acquire('x'))
    let answerRelease: () => void = () => {}
    recorder.faults.release = (request, real) => {
      recorder.faults.release = undefined
      // The release reaches the store only later, as over a network that does not keep order.
      return new Promise((resolve) => (answerRelease = () => resolve(real(request))))
    }
    const waiting = guard.acquire('x', { waitMs: 120_000 })
    const before = requests()
    void guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    expect(requests()).toBe(before + 1) // asked at once: the store still names lock 1 as holder
    await vi.advanceTimersByTimeAsync(5_000) // (within requestTimeoutMs, after which the release failed)
    expect(requests()).toBe(before + 1) // and did not poll our own release
    answerRelease()
    await vi.advanceTimersByTimeAsync(0)
    expect(held(await waiting).fencingToken).toBe(2)
    expect(requests()).toBe(before + 2)
  })

  it('lets only the first in line poll a lease held by another node', async () => {
    const other = make({ nodeId: 'node-b' })
    held(await other.acquire('x'))
    const pollsOf = async (callers: number) => {
      const guard = make()
      const before = requests()
      const controller = new AbortController()
      const waiting = Array.from({ length: callers }, () =>
        guard.acquire('x', { waitMs: 60_000, signal: controller.signal }).catch(() => undefined),
      )
      await vi.advanceTimersByTimeAsync(5_000)
      const polls = requests() - before
      controller.abort()
      await Promise.all(waiting)
      return polls
    }
    const alone = await pollsOf(1)
    expect(alone).toBeGreaterThan(3) // backoff 25, 50, 100, ... with random 0.5
    expect(await pollsOf(6)).toBe(alone)
  })

  it('removes an aborted waiter from the middle of the line and serves the rest in order', async () => {
    const guard = make()
    const order: string[] = []
    const lock = held(await guard.acquire('x'))
    const controller = new AbortController()
    const b = served(order, 'b', guard.acquire('x', { waitMs: 60_000 }))
    const c = guard.acquire('x', { waitMs: 60_000, signal: controller.signal }).catch((e: unknown) => e)
    const d = served(order, 'd', guard.acquire('x', { waitMs: 60_000 }))
    controller.abort(new Error('client went away'))
    expect(await c).toMatchObject({ message: 'client went away' })
    await guard.release(lock)
    await vi.advanceTimersByTimeAsync(0)
    await guard.release(await b)
    await vi.advanceTimersByTimeAsync(0)
    expect((await d).fencingToken).toBe(3)
    expect(order).toEqual(['b', 'd'])
  })

  it('wakes the next in line when the first one gives up, aborted or out of time', async () => {
    const other = make({ nodeId: 'node-b' })
    const theirs = held(await other.acquire('x'))
    const guard = make({ retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
    const controller = new AbortController()
    const first = guard.acquire('x', { waitMs: 60_000, signal: controller.signal }).catch((e: unknown) => e)
    const second = guard.acquire('x', { waitMs: 1_000 })
    const third = guard.acquire('x', { waitMs: 120_000 })
    await vi.advanceTimersByTimeAsync(0)
    expect(requests()).toBe(2) // other's acquire, and the first in line's
    controller.abort(new Error('gone'))
    expect(await first).toMatchObject({ message: 'gone' })
    await vi.advanceTimersByTimeAsync(0)
    expect(requests()).toBe(3) // the second asked at once, not after the first's 30 s backoff
    await vi.advanceTimersByTimeAsync(1_000) // the second's last try, at its deadline
    const timedOut = await second
    expect(timedOut).toMatchObject({ acquired: false, attempts: 2, holder: { nodeId: 'node-b' } })
    await vi.advanceTimersByTimeAsync(0)
    expect(requests()).toBe(5) // and then the third asked
    await other.release(theirs)
    await vi.advanceTimersByTimeAsync(30_000) // the third's backoff: node-b is not this guard
    expect(held(await third).fencingToken).toBe(2)
  })

  it('answers a caller whose wait ends before its turn without a request, naming the holder', async () => {
    const guard = make()
    const lock = held(await guard.acquire('x', { metadata: { by: 'first' } }))
    const before = requests()
    const waiting = guard.acquire('x', { waitMs: 500 })
    const tryOnce = await guard.acquire('x') // behind a waiter: it does not jump the line
    expect(tryOnce).toMatchObject({
      acquired: false,
      attempts: 0,
      holder: { nodeId: 'node-a', fencingToken: lock.fencingToken, metadata: { by: 'first' } },
    })
    await vi.advanceTimersByTimeAsync(500)
    const r = await waiting
    expect(r).toMatchObject({ acquired: false, attempts: 0, holder: { nodeId: 'node-a', fencingToken: 1 } })
    expect(!r.acquired && r.retryAfterMs).toBeGreaterThan(20_000) // until the lease's local validity ends
    expect(requests()).toBe(before)
  })

  it('tries once as before when nobody of the guard waits for the id', async () => {
    const other = make({ nodeId: 'node-b' })
    held(await other.acquire('x'))
    const guard = make()
    const r = await guard.acquire('x')
    expect(r).toMatchObject({ acquired: false, attempts: 1, holder: { nodeId: 'node-b' } })
  })

  it('passes the turn on when the first in line fails, and the next asks the store itself', async () => {
    const other = make({ nodeId: 'node-b' })
    const theirs = held(await other.acquire('x'))
    const guard = make()
    let failures = 1
    recorder.faults.acquire = (request, real) =>
      failures-- > 0 ? Promise.reject(new StoreUnavailableError('disk I/O error', { retryable: false })) : real(request)
    const first = guard.acquire('x', { waitMs: 60_000 }).catch((e: unknown) => e)
    const second = guard.acquire('x', { waitMs: 60_000 })
    expect(await first).toBeInstanceOf(StoreUnavailableError)
    await other.release(theirs)
    await vi.advanceTimersByTimeAsync(100) // the second's first backoff (node-b is not this guard)
    expect(held(await second).fencingToken).toBe(2)
  })

  it('wakes the next in line when a lease granted to a caller that gave up has been given back', async () => {
    const guard = make({ retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
    const controller = new AbortController()
    let grant: () => void = () => {}
    recorder.faults.acquire = async (request, real) => {
      const result = await real(request)
      recorder.faults.acquire = undefined
      await new Promise<void>((resolve) => (grant = resolve)) // the answer arrives after the caller left
      return result
    }
    let answerRelease: () => void = () => {}
    recorder.faults.release = (request, real) => {
      recorder.faults.release = undefined
      return new Promise((resolve) => (answerRelease = () => resolve(real(request))))
    }
    const first = guard.acquire('x', { waitMs: 60_000, signal: controller.signal }).catch((e: unknown) => e)
    const second = guard.acquire('x', { waitMs: 120_000 })
    await vi.advanceTimersByTimeAsync(0)
    controller.abort(new Error('gone'))
    grant()
    expect(await first).toMatchObject({ message: 'gone' })
    await vi.advanceTimersByTimeAsync(0)
    // The second asked at once, while the grant it cannot use was still being given back.
    expect(requests()).toBe(2)
    expect(recorder.received.release.map((r) => r.fencingToken)).toEqual([1])
    const givenBackAt = Date.now()
    answerRelease()
    await vi.advanceTimersByTimeAsync(0)
    const next = held(await second) // woken by the give-back, not by its 30 s backoff
    expect(next.fencingToken).toBe(2)
    expect(Date.now()).toBe(givenBackAt)
  })

  it('wakes the next in line when the guard’s lease is lost, without waiting for a poll', async () => {
    const guard = make({ ttlMs: 3_000, retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 } })
    const lock = held(await guard.acquire('x'))
    const waiting = guard.acquire('x', { waitMs: 120_000 })
    await recorder.store.forceRelease('x') // an operator freed it: the next heartbeat finds it gone
    await vi.advanceTimersByTimeAsync(1_000) // heartbeat at ttl / 3
    expect(lock.signal.aborted).toBe(true)
    expect(held(await waiting).fencingToken).toBe(2)
  })

  it('rejects every waiter with a ShutdownError on shutdown and keeps no line', async () => {
    const guard = make()
    held(await guard.acquire('x'))
    const waiting = Array.from({ length: 3 }, () => guard.acquire('x', { waitMs: 60_000 }).catch((e: unknown) => e))
    await guard.shutdown()
    for (const outcome of await Promise.all(waiting)) expect(outcome).toBeInstanceOf(ShutdownError)
  })
})

describe('HybridConsistencyGuard fair local waiting on libSQL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'stateless-do-fair-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))
  const clients: Client[] = []
  afterEach(() => clients.splice(0).forEach((c) => c.close()))

  async function libsqlStore(url: string, handoff = true): Promise<LockStore> {
    const client = createClient({ url })
    clients.push(client)
    if (url !== ':memory:') await client.execute('PRAGMA journal_mode = WAL')
    const store = new LibSQLLockStore(client)
    await store.ensureSchema()
    return handoff ? store : recordingStore(store, { handoff: false }).store
  }

  /**
   * `callers` loop acquire -> release on one id through one guard until `acquisitions` were made;
   * checks that no two ever hold at once and that tokens strictly increase.
   */
  async function contend(store: LockStore, callers: number, acquisitions: number) {
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    const perCaller = new Array<number>(callers).fill(0)
    const tokens: number[] = []
    let holding: number | undefined
    let total = 0
    const started = performance.now()
    await Promise.all(
      perCaller.map(async (_, i) => {
        while (total < acquisitions) {
          const lock = held(await guard.acquire('hot', { waitMs: 30_000, heartbeat: false }))
          expect(holding).toBeUndefined()
          holding = i
          tokens.push(lock.fencingToken)
          if (total++ < acquisitions) perCaller[i]!++
          holding = undefined
          await guard.release(lock)
        }
      }),
    )
    const seconds = (performance.now() - started) / 1000
    await guard.shutdown()
    return { perCaller, tokens, seconds }
  }

  it.each([
    [':memory:', 'one-request handoff'],
    ['file:', 'one-request handoff'],
    [':memory:', 'release + acquire'],
    ['file:', 'release + acquire'],
  ])(
    'serves 8 callers of one guard on one id (%s, %s) evenly: each gets at least 8% of the handoffs',
    async (kind, how) => {
      const url = kind === ':memory:' ? ':memory:' : `file:${join(dir, `fair-${how.length}.db`)}`
      const store = await libsqlStore(url, how === 'one-request handoff')
      const { perCaller, tokens } = await contend(store, 8, 400)
      const total = perCaller.reduce((a, b) => a + b, 0)
      expect(total).toBe(400)
      expect(Math.min(...perCaller) / total).toBeGreaterThanOrEqual(0.08)
      // Served in turn: a fair line gives each exactly its share.
      expect(Math.max(...perCaller) - Math.min(...perCaller)).toBeLessThanOrEqual(1)
      for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBe(tokens[i - 1]! + 1)
    },
    60_000,
  )

  it('keeps serving, one holder at a time, while waiters abort and time out around it, and leaves no line behind', async () => {
    const store = await libsqlStore(`file:${join(dir, 'churn.db')}`)
    const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
    let holding = false
    let lastToken = 0
    let served = 0
    let gaveUp = 0
    const caller = async (i: number) => {
      const controller = new AbortController()
      // Every third caller gives up by abort, every third by a short waitMs; the rest wait for good.
      if (i % 3 === 0) setTimeout(() => controller.abort(new Error('gone')), (i % 7) * 3)
      const waitMs = i % 3 === 1 ? (i % 5) * 4 : 30_000
      try {
        const result = await guard.acquire('x', { waitMs, heartbeat: false, signal: controller.signal })
        if (!result.acquired) return void gaveUp++
        expect(holding).toBe(false)
        expect(result.lock.fencingToken).toBeGreaterThan(lastToken)
        holding = true
        lastToken = result.lock.fencingToken
        await new Promise((resolve) => setTimeout(resolve, 1))
        holding = false
        served++
        await guard.release(result.lock)
      } catch (error) {
        expect(error).toMatchObject({ message: 'gone' })
        gaveUp++
      }
    }
    await Promise.all(Array.from({ length: 60 }, (_, i) => caller(i)))
    expect(served).toBeGreaterThanOrEqual(20) // everyone who waited for good
    expect(served + gaveUp).toBe(60)
    // Nobody is left in line: a try-once asks the store itself, and wins.
    const after = await guard.acquire('x')
    expect(after).toMatchObject({ acquired: true, lock: { fencingToken: lastToken + 1 } })
    await guard.shutdown()
  }, 60_000)

  it('hands over between callers of one guard at the store’s pace, not a poll interval', async () => {
    const store = await libsqlStore(`file:${join(dir, 'pace.db')}`)
    const guard = new HybridConsistencyGuard({
      store,
      nodeId: 'node-a',
      // Any handoff that had to wait for a poll would take at least 200 ms.
      retry: { initialDelayMs: 400, maxDelayMs: 400 },
      random: () => 0.5,
    })
    let lock = held(await guard.acquire('x'))
    const gaps: number[] = []
    for (let i = 0; i < 20; i++) {
      const next = guard.acquire('x', { waitMs: 30_000, heartbeat: false })
      const releasedAt = performance.now()
      void guard.release(lock)
      lock = held(await next)
      gaps.push(performance.now() - releasedAt)
    }
    await guard.shutdown()
    gaps.sort((a, b) => a - b)
    expect(gaps[10]).toBeLessThan(100) // generous: a release and an acquire take ~2 ms here
  }, 60_000)
})
