/**
 * Activation: one object under one real lease (HybridConsistencyGuard over MemoryLockStore), a fake
 * storage, fake timers. How it runs turns, when it ends, and what every turn is told when it ends.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { Activation, ActivationEndedError, type ActivationOptions } from '../../src/activation/index.js'
import {
  HybridConsistencyGuard,
  InvalidArgumentError,
  LockLostError,
  MemoryLockStore,
  StaleFencingTokenError,
  StoreUnavailableError,
  type Clock,
  type Lock,
} from '../../src/index.js'
import { FakeStorage } from './fake-storage.js'

const clock: Clock = { now: () => Date.now(), monotonic: () => Date.now() }

/** Observes a promise without awaiting it. */
function watch<T>(promise: Promise<T>) {
  const seen: { state: 'pending' | 'resolved' | 'rejected'; value?: T; error?: unknown } = { state: 'pending' }
  promise.then(
    (value) => Object.assign(seen, { state: 'resolved', value }),
    (error: unknown) => Object.assign(seen, { state: 'rejected', error }),
  )
  return seen
}

function gate<T = void>() {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((res) => (resolve = res))
  return { promise, resolve }
}

const flushMicrotasks = () => vi.advanceTimersByTimeAsync(0)

describe('Activation', () => {
  let store: MemoryLockStore
  let guard: HybridConsistencyGuard
  const activations: Activation[] = []

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: new Date('2026-01-01T00:00:00Z') })
    store = new MemoryLockStore({ clock })
    guard = new HybridConsistencyGuard({ store, nodeId: 'node-a', ttlMs: 30_000, clock, random: () => 0.5 })
  })
  afterEach(async () => {
    for (const a of activations.splice(0)) void a.shutdown()
    await vi.advanceTimersByTimeAsync(100)
    await guard.shutdown()
    vi.useRealTimers()
  })

  async function lease(options: { heartbeat?: boolean; ttlMs?: number } = {}): Promise<Lock> {
    const result = await guard.acquire('room-1', options)
    if (!result.acquired) throw new Error('expected the lease')
    return result.lock
  }

  async function activate(overrides: Partial<ActivationOptions<FakeStorage>> = {}) {
    const storage = overrides.flusher ?? new FakeStorage({ manual: true })
    const lock = overrides.lock ?? (await lease())
    const activation = new Activation<FakeStorage>({
      lock,
      guard,
      flusher: storage,
      discard: () => storage.discard(),
      idleMs: 1000,
      clock,
      ...overrides,
    })
    activations.push(activation)
    return { activation, storage, lock }
  }

  const isFree = async () => !(await store.get('room-1'))?.held

  describe('turns', () => {
    it('runs one turn at a time and releases each result only once its flush committed', async () => {
      const { activation, storage } = await activate()
      const log: string[] = []
      const hold = gate()
      const writer = watch(
        activation.run(async () => {
          log.push('enter writer')
          storage.put('n', 1)
          await hold.promise
          log.push('exit writer')
          return 'wrote'
        }),
      )
      const reader = watch(
        activation.run(() => {
          log.push('enter reader')
          const n = storage.get('n')
          log.push('exit reader')
          return n
        }),
      )
      hold.resolve()
      await flushMicrotasks()
      expect(log).toEqual(['enter writer', 'exit writer', 'enter reader', 'exit reader'])
      // The reader ran while the writer's flush was in flight and saw its write: both wait for it.
      expect(storage.flushes).toHaveLength(1)
      expect([writer.state, reader.state]).toEqual(['pending', 'pending'])
      storage.flushes[0]!.commit()
      await flushMicrotasks()
      expect(writer).toMatchObject({ state: 'resolved', value: 'wrote' })
      expect(reader).toMatchObject({ state: 'resolved', value: 1 })
      expect(activation.flushes).toBe(1)
    })

    it('a turn that throws fails only itself', async () => {
      const { activation } = await activate({ flusher: new FakeStorage() })
      const boom = new Error('handler bug')
      const failing = activation.run(() => {
        throw boom
      })
      const next = activation.run(() => 'fine')
      await expect(failing).rejects.toBe(boom)
      await expect(next).resolves.toBe('fine')
      expect(activation.state).toBe('active')
    })

    it('refuses to start a turn once the lease is past its local validity, even before the guard noticed', async () => {
      const lock = await lease()
      const skewed: Clock = { now: clock.now, monotonic: () => Date.now() + lock.ttlMs } // past validUntil
      const { activation, storage } = await activate({ lock, clock: skewed })
      const ran = vi.fn()
      const error = await activation.run(ran).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(LockLostError)
      expect(ran).not.toHaveBeenCalled()
      expect(activation.endReason).toBe('lease_lost')
      expect(storage.discarded).toBe(1)
    })
  })

  describe('idle', () => {
    it('ends after idleMs without a turn: flushes what is pending, releases the lease', async () => {
      const { activation, storage } = await activate({ flusher: new FakeStorage({ rttMs: 5 }) })
      const turn = activation.run(() => storage.put('n', 1))
      await vi.advanceTimersByTimeAsync(5)
      await turn
      // A write made outside any turn (a timer, an onStart) is still flushed before the release.
      storage.put('late', 2)
      await vi.advanceTimersByTimeAsync(994)
      expect(activation.state).toBe('active')
      await vi.advanceTimersByTimeAsync(1)
      expect(activation.state).toBe('draining')
      expect(activation.endReason).toBe('idle')
      await vi.advanceTimersByTimeAsync(10)
      await activation.ended
      expect(activation.state).toBe('ended')
      expect(storage.committed.get('late')).toBe(2)
      expect(await isFree()).toBe(true)
      expect(guard.heldLocks).toHaveLength(0)
    })

    it('a turn resets the idle timer', async () => {
      const { activation } = await activate({ flusher: new FakeStorage() })
      for (let i = 0; i < 5; i++) {
        await vi.advanceTimersByTimeAsync(900)
        await activation.run(() => i)
      }
      await vi.advanceTimersByTimeAsync(900)
      expect(activation.state).toBe('active')
      await vi.advanceTimersByTimeAsync(200)
      expect(activation.state).not.toBe('active')
    })

    it('counts idle from when the last flush settled, not from when the handler returned', async () => {
      // A flush slower than idleMs: ending at the timer would end the activation after every write.
      const { activation, storage } = await activate({ flusher: new FakeStorage({ rttMs: 50 }), idleMs: 10 })
      const turn = activation.run(() => storage.put('n', 1))
      await vi.advanceTimersByTimeAsync(30)
      expect(activation.state).toBe('active') // the flush is still in flight
      await vi.advanceTimersByTimeAsync(20)
      await turn
      await vi.advanceTimersByTimeAsync(5)
      expect(activation.state).toBe('active') // 5 ms after the flush settled, less than idleMs
      await vi.advanceTimersByTimeAsync(10)
      expect(activation.endReason).toBe('idle')
    })

    it('does not end while a turn runs, however long it takes', async () => {
      const { activation } = await activate({ flusher: new FakeStorage() })
      const hold = gate()
      const running = activation.run(() => hold.promise)
      await vi.advanceTimersByTimeAsync(5000)
      expect(activation.state).toBe('active')
      hold.resolve()
      await running
      await vi.advanceTimersByTimeAsync(1000)
      expect(activation.endReason).toBe('idle')
    })
  })

  describe('lease lost', () => {
    it('fails the queued and running turns typed, drops unflushed writes, keeps every acknowledged write', async () => {
      const lock = await lease({ heartbeat: false, ttlMs: 3000 }) // its signal fires at validUntil
      const { activation, storage } = await activate({ lock, idleMs: 60_000 })
      const acked = activation.run(() => storage.put('acked', 1))
      await flushMicrotasks()
      storage.flushes[0]!.commit()
      await acked // acknowledged: committed
      const hold = gate()
      const running = watch(
        activation.run(async () => {
          storage.put('unacked', 2)
          await hold.promise
        }),
      )
      const queuedTurn = vi.fn()
      const queued = [watch(activation.run(queuedTurn)), watch(activation.run(queuedTurn))]
      await vi.advanceTimersByTimeAsync(3000)
      expect(lock.signal.aborted).toBe(true)
      for (const turn of queued) {
        expect(turn.state).toBe('rejected')
        expect(turn.error).toBeInstanceOf(LockLostError)
        expect((turn.error as LockLostError).toResponse().status).toBe(503)
        expect((turn.error as LockLostError).toBody()).toEqual({ error: 'lease_lost', doId: 'room-1' })
      }
      expect(queuedTurn).not.toHaveBeenCalled()
      expect(storage.discarded).toBe(1)
      expect(activation.endReason).toBe('lease_lost')
      await activation.ended // does not wait for the running turn
      hold.resolve()
      await flushMicrotasks()
      expect(running.state).toBe('rejected')
      expect(running.error).toBeInstanceOf(LockLostError)
      expect(storage.flushes).toHaveLength(1) // 'unacked' was never sent
      expect(storage.committed).toEqual(new Map([['acked', 1]]))
      await expect(activation.run(() => 1)).rejects.toBeInstanceOf(LockLostError)
    })

    it('lets a flush in flight when the lease is lost decide its own turns', async () => {
      const lock = await lease({ heartbeat: false, ttlMs: 3000 })
      const { activation, storage } = await activate({ lock, idleMs: 60_000 })
      const inFlight = watch(activation.run(() => storage.put('a', 1)))
      const next = watch(activation.run(() => storage.put('b', 2)))
      await flushMicrotasks()
      expect(storage.flushes).toHaveLength(1)
      await vi.advanceTimersByTimeAsync(3000) // lost while 'a' is in flight and 'b' waits for the next flush
      expect(next.state).toBe('rejected')
      expect(activation.state).toBe('draining') // until the flush in flight settles
      storage.flushes[0]!.commit()
      await flushMicrotasks()
      expect(inFlight.state).toBe('resolved') // committed under the fence: durable, so it may be told
      await activation.ended
      expect(storage.flushes).toHaveLength(1)
    })

    it('treats a signal that fired before construction as a lost lease', async () => {
      const lock = await lease()
      await guard.release(lock)
      const { activation, storage } = await activate({ lock })
      expect(activation.endReason).toBe('lease_lost')
      expect(storage.discarded).toBe(1)
      await expect(activation.run(() => 1)).rejects.toBeInstanceOf(LockLostError)
    })
  })

  describe('flush failure', () => {
    it.each([
      ['flush_failed', new StoreUnavailableError('store down')],
      ['lease_lost', new StaleFencingTokenError('room-1', 1, 2)],
    ] as const)(
      'ends the activation (%s): turns in and after the flush fail with its error, the lease is given back',
      async (reason, failure) => {
        const { activation, storage } = await activate()
        const first = watch(activation.run(() => storage.put('a', 1)))
        const hold = gate()
        const second = watch(
          activation.run(async () => {
            storage.put('b', 2)
            await hold.promise
          }),
        )
        const queued = watch(activation.run(() => 'never'))
        await flushMicrotasks()
        storage.flushes[0]!.fail(failure)
        await flushMicrotasks()
        expect(first.error).toBe(failure)
        expect(queued.error).toBe(failure)
        expect(activation.endReason).toBe(reason)
        expect(storage.discarded).toBe(1)
        await activation.ended
        expect(await isFree()).toBe(true)
        hold.resolve()
        await flushMicrotasks()
        expect(second.error).toBe(failure)
        expect(storage.flushes).toHaveLength(1)
      },
    )
  })

  describe('graceful ends', () => {
    it.each(['requestHandover', 'shutdown'] as const)(
      '%s: finishes the queued turns, flushes, then releases the lease off their response path',
      async (method) => {
        const log: string[] = []
        const original = guard.release.bind(guard)
        const release = vi.spyOn(guard, 'release').mockImplementation((lock) => {
          log.push('release')
          return original(lock)
        })
        const { activation, storage } = await activate()
        const hold = gate()
        const running = activation.run(async () => {
          storage.put('a', 1)
          await hold.promise
        })
        const queued = activation.run(() => storage.put('b', 2))
        void running.then(() => log.push('running released'))
        void queued.then(() => log.push('queued released'))
        const ended = activation[method]()
        expect(activation.state).toBe('draining')
        const refused = await activation.run(() => 'late').catch((e: unknown) => e)
        expect(refused).toBeInstanceOf(ActivationEndedError)
        expect(refused).toMatchObject({ reason: method === 'shutdown' ? 'shutdown' : 'handover', status: 503 })
        hold.resolve()
        await flushMicrotasks()
        storage.flushes[0]!.commit()
        await flushMicrotasks()
        storage.flushes[1]!.commit()
        await ended
        log.push('ended')
        expect(log).toEqual(['running released', 'queued released', 'release', 'ended'])
        expect(release).toHaveBeenCalledTimes(1)
        expect(storage.committed).toEqual(
          new Map([
            ['a', 1],
            ['b', 2],
          ]),
        )
        expect(await isFree()).toBe(true)
        expect(activation.state).toBe('ended')
      },
    )

    it('releases the lease only after the last flush committed', async () => {
      const { activation, storage, lock } = await activate()
      const turn = activation.run(() => storage.put('a', 1))
      const ended = activation.requestHandover()
      await flushMicrotasks()
      expect(lock.signal.aborted).toBe(false) // not released: the flush is in flight
      storage.flushes[0]!.commit()
      await turn
      await ended
      expect(lock.signal.aborted).toBe(true)
    })

    it('a lease lost while draining turns the drain into an abrupt end', async () => {
      const lock = await lease({ heartbeat: false, ttlMs: 3000 })
      const { activation, storage } = await activate({ lock })
      const hold = gate()
      const running = watch(activation.run(() => hold.promise))
      const queued = watch(activation.run(() => storage.put('x', 1)))
      void activation.requestHandover()
      await vi.advanceTimersByTimeAsync(3000)
      expect(queued.error).toBeInstanceOf(LockLostError)
      expect(activation.endReason).toBe('lease_lost')
      await activation.ended
      hold.resolve()
      await flushMicrotasks()
      expect(running.error).toBeInstanceOf(LockLostError)
    })
  })

  describe('blockConcurrencyWhile', () => {
    it('holds turns back until fn settles', async () => {
      const { activation, storage } = await activate({ flusher: new FakeStorage() })
      const init = gate()
      const order: string[] = []
      const blocked = activation.blockConcurrencyWhile(async () => {
        await init.promise
        storage.put('ready', 1)
        order.push('init')
      })
      const turn = activation.run(() => {
        order.push('turn')
        return storage.get('ready')
      })
      init.resolve()
      await blocked
      await vi.advanceTimersByTimeAsync(5)
      await expect(turn).resolves.toBe(1)
      expect(order).toEqual(['init', 'turn'])
    })

    it('if fn throws, the activation ends (reset): queued turns fail, writes dropped, lease released', async () => {
      const { activation, storage } = await activate()
      const boom = new Error('onStart failed')
      const init = gate()
      const blocked = activation.blockConcurrencyWhile(async () => {
        storage.put('half-done', 1)
        await init.promise
        throw boom
      })
      const queued = activation.run(() => 'never')
      const outcome = queued.catch((e: unknown) => e)
      init.resolve()
      await expect(blocked).rejects.toBe(boom)
      const error = await outcome
      expect(error).toBeInstanceOf(ActivationEndedError)
      expect(error).toMatchObject({ reason: 'reset', cause: boom })
      expect(activation.endReason).toBe('reset')
      expect(storage.discarded).toBe(1)
      await activation.ended
      expect(storage.flushes).toHaveLength(0)
      expect(await isFree()).toBe(true)
    })
  })

  it('reports its end once, with the reason', async () => {
    const onEnd = vi.fn()
    const { activation } = await activate({ onEnd })
    await activation.shutdown()
    await activation.shutdown()
    expect(onEnd).toHaveBeenCalledTimes(1)
    expect(onEnd).toHaveBeenCalledWith('shutdown', undefined)
  })

  it('validates its options', async () => {
    const lock = await lease()
    const storage = new FakeStorage()
    const base = { lock, guard, flusher: storage, discard: () => {} }
    expect(() => new Activation({ ...base, lock: {} as Lock })).toThrow(InvalidArgumentError)
    expect(() => new Activation({ ...base, guard: {} as never })).toThrow(/guard/)
    expect(() => new Activation({ ...base, discard: undefined as never })).toThrow(/discard/)
    expect(() => new Activation({ ...base, idleMs: 0 })).toThrow(/idleMs/)
    expect(() => new Activation({ ...base, flusher: {} as never })).toThrow(/flusher/)
    expect(() => new Activation({ ...base, maxQueued: -1 })).toThrow(/maxQueued/)
  })
})
