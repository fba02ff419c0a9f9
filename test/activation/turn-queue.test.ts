/**
 * TurnQueue: one turn at a time per object, FIFO, bounded queue and wait, throw isolation,
 * blockConcurrencyWhile and abort (docs/design.md invariant 9).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ActivationEndedError, QueueFullError, TurnQueue, TurnTimeoutError } from '../../src/activation/index.js'
import { InvalidArgumentError, LockError } from '../../src/index.js'

/** A promise the test settles by hand. */
function gate<T = void>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Records enter/exit of every turn and fails on overlap. */
function recorder() {
  const log: string[] = []
  let inside = 0
  let maxInside = 0
  const turn =
    <T>(name: string, body: () => Promise<T> | T = () => undefined as T) =>
    async () => {
      inside++
      maxInside = Math.max(maxInside, inside)
      log.push(`enter ${name}`)
      try {
        return await body()
      } finally {
        log.push(`exit ${name}`)
        inside--
      }
    }
  return { log, turn, maxInside: () => maxInside }
}

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

describe('TurnQueue', () => {
  describe('one turn at a time', () => {
    it('never lets two turns overlap, under random async delays', async () => {
      const queue = new TurnQueue()
      const { log, turn, maxInside } = recorder()
      const runs = Array.from({ length: 50 }, (_, i) =>
        queue.run(
          turn(String(i), async () => {
            for (let k = 0; k < (i * 7) % 4; k++) await tick()
            return i
          }),
        ),
      )
      expect(await Promise.all(runs)).toEqual(Array.from({ length: 50 }, (_, i) => i))
      expect(maxInside()).toBe(1)
      const expected = Array.from({ length: 50 }, (_, i) => [`enter ${i}`, `exit ${i}`]).flat()
      expect(log).toEqual(expected)
    })

    it('starts turns in arrival order (FIFO), whatever their durations', async () => {
      const queue = new TurnQueue()
      const started: number[] = []
      const first = gate()
      const runs = [queue.run(() => first.promise)]
      for (let i = 1; i <= 5; i++) runs.push(queue.run(() => void started.push(i)))
      await tick()
      expect(started).toEqual([])
      first.resolve()
      await Promise.all(runs)
      expect(started).toEqual([1, 2, 3, 4, 5])
    })

    it('starts a turn at once, inside run(), when the queue is idle', async () => {
      const queue = new TurnQueue()
      let ran = false
      const run = queue.run(() => (ran = true))
      expect(ran).toBe(true)
      expect(queue.busy).toBe(true) // until its promise settles
      await run
      expect(queue.busy).toBe(false)
    })

    it('reports queued turns and whether it is busy', async () => {
      const queue = new TurnQueue()
      const hold = gate()
      const a = queue.run(() => hold.promise)
      const b = queue.run(() => 'b')
      expect(queue.busy).toBe(true)
      expect(queue.queued).toBe(1)
      hold.resolve()
      await Promise.all([a, b])
      expect(queue.busy).toBe(false)
      expect(queue.queued).toBe(0)
    })
  })

  describe('throw isolation', () => {
    it('fails only the turn that throws (synchronously or not); the next ones run', async () => {
      const queue = new TurnQueue()
      const boom = new Error('boom')
      const sync = queue.run(() => {
        throw boom
      })
      const async = queue.run(async () => {
        await tick()
        throw boom
      })
      const after = queue.run(() => 'after')
      await expect(sync).rejects.toBe(boom)
      await expect(async).rejects.toBe(boom)
      await expect(after).resolves.toBe('after')
    })

    it('rejects a turn that is not a function without touching the queue', async () => {
      const queue = new TurnQueue()
      await expect(queue.run(42 as never)).rejects.toBeInstanceOf(InvalidArgumentError)
      await expect(queue.run(() => 1)).resolves.toBe(1)
    })
  })

  describe('bounded queue', () => {
    it('refuses a turn at once when maxQueued turns wait, with a 503 and a Retry-After', async () => {
      const queue = new TurnQueue({ doId: 'room-1', maxQueued: 2, retryAfterMs: 1500 })
      const hold = gate()
      const running = queue.run(() => hold.promise)
      const queued = [queue.run(() => 1), queue.run(() => 2)]
      const ran = vi.fn()
      const error = await queue.run(ran).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(QueueFullError)
      expect(error).toBeInstanceOf(LockError)
      expect(error).toMatchObject({ doId: 'room-1', maxQueued: 2, retryAfterMs: 1500, status: 503 })
      expect((error as QueueFullError).retryAfterSeconds).toBe(2)
      const response = (error as QueueFullError).toResponse()
      expect(response.status).toBe(503)
      expect(response.headers.get('Retry-After')).toBe('2')
      expect(await response.json()).toEqual({ error: 'queue_full', doId: 'room-1', retryAfterMs: 1500 })
      hold.resolve()
      await Promise.all([running, ...queued])
      expect(ran).not.toHaveBeenCalled()
    })

    it('with maxQueued 0 refuses every turn that would wait', async () => {
      const queue = new TurnQueue({ maxQueued: 0 })
      const hold = gate()
      const running = queue.run(() => hold.promise)
      await expect(queue.run(() => 1)).rejects.toBeInstanceOf(QueueFullError)
      hold.resolve()
      await running
      await expect(queue.run(() => 2)).resolves.toBe(2)
    })
  })

  describe('bounded wait', () => {
    beforeEach(() => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    })
    afterEach(() => {
      vi.useRealTimers()
    })

    it('rejects a turn still queued after maxWaitMs with a 503, and never runs it later', async () => {
      const queue = new TurnQueue({ doId: 'room-1', maxWaitMs: 100, retryAfterMs: 1000 })
      const hold = gate()
      const running = queue.run(() => hold.promise)
      const late = vi.fn()
      const waiting = queue.run(late)
      const outcome = waiting.catch((e: unknown) => e)
      await vi.advanceTimersByTimeAsync(99)
      expect(queue.queued).toBe(1)
      await vi.advanceTimersByTimeAsync(1)
      const error = await outcome
      expect(error).toBeInstanceOf(TurnTimeoutError)
      expect(error).toMatchObject({ doId: 'room-1', waitedMs: 100, status: 503, retryAfterMs: 1000 })
      expect((error as TurnTimeoutError).toBody()).toEqual({
        error: 'turn_timeout',
        doId: 'room-1',
        retryAfterMs: 1000,
      })
      expect(queue.queued).toBe(0)
      hold.resolve()
      await running
      await vi.advanceTimersByTimeAsync(1000)
      expect(late).not.toHaveBeenCalled()
    })

    it('does not time out a turn that started in time, however long it runs', async () => {
      const queue = new TurnQueue({ maxWaitMs: 100 })
      const first = gate()
      const second = gate<string>()
      const a = queue.run(() => first.promise)
      const b = queue.run(() => second.promise)
      await vi.advanceTimersByTimeAsync(50)
      first.resolve()
      await a
      await vi.advanceTimersByTimeAsync(500)
      second.resolve('done')
      await expect(b).resolves.toBe('done')
    })
  })

  describe('abort', () => {
    it('drops a queued turn whose caller went away, without running it; the next one runs', async () => {
      const queue = new TurnQueue()
      const hold = gate()
      const running = queue.run(() => hold.promise)
      const caller = new AbortController()
      const dropped = vi.fn()
      const aborted = queue.run(dropped, { signal: caller.signal })
      const next = queue.run(() => 'next')
      const reason = new Error('client went away')
      caller.abort(reason)
      await expect(aborted).rejects.toBe(reason)
      expect(queue.queued).toBe(1)
      hold.resolve()
      await running
      await expect(next).resolves.toBe('next')
      expect(dropped).not.toHaveBeenCalled()
    })

    it('refuses a turn whose signal is already aborted', async () => {
      const queue = new TurnQueue()
      const ran = vi.fn()
      const reason = new Error('gone')
      await expect(queue.run(ran, { signal: AbortSignal.abort(reason) })).rejects.toBe(reason)
      expect(ran).not.toHaveBeenCalled()
    })

    it('does not interrupt a running turn when its caller goes away', async () => {
      const queue = new TurnQueue()
      const caller = new AbortController()
      const hold = gate<string>()
      const running = queue.run(() => hold.promise, { signal: caller.signal })
      caller.abort()
      hold.resolve('finished')
      await expect(running).resolves.toBe('finished')
    })
  })

  describe('blockConcurrencyWhile', () => {
    it('called while idle (an onStart), holds back every turn that arrives until fn settles', async () => {
      const queue = new TurnQueue()
      const { log, turn, maxInside } = recorder()
      const init = gate()
      const blocked = queue.blockConcurrencyWhile(turn('init', () => init.promise.then(() => 'ready')))
      const a = queue.run(turn('a'))
      const b = queue.run(turn('b'))
      await tick()
      expect(log).toEqual(['enter init'])
      init.resolve()
      await expect(blocked).resolves.toBe('ready')
      await Promise.all([a, b])
      expect(log).toEqual(['enter init', 'exit init', 'enter a', 'exit a', 'enter b', 'exit b'])
      expect(maxInside()).toBe(1)
    })

    it('called from a turn, runs at once, and the next turn waits for fn even after the caller ended', async () => {
      const queue = new TurnQueue()
      const log: string[] = []
      const work = gate()
      let inner: Promise<void> | undefined
      const caller = queue.run(() => {
        log.push('caller')
        inner = queue.blockConcurrencyWhile(async () => {
          log.push('fn start')
          await work.promise
          log.push('fn end')
        })
        return 'caller done' // does not await fn
      })
      const next = queue.run(() => void log.push('next'))
      await expect(caller).resolves.toBe('caller done')
      await tick()
      expect(log).toEqual(['caller', 'fn start'])
      work.resolve()
      await inner
      await next
      expect(log).toEqual(['caller', 'fn start', 'fn end', 'next'])
    })

    it('nests: an inner call from within fn runs at once', async () => {
      const queue = new TurnQueue()
      const result = await queue.blockConcurrencyWhile(() => queue.blockConcurrencyWhile(() => 7))
      expect(result).toBe(7)
      await expect(queue.run(() => 8)).resolves.toBe(8)
    })

    it('if fn throws: rejects with its error, closes the queue, refuses the waiting turns (reset), reports it', async () => {
      const onBlockFailed = vi.fn()
      const queue = new TurnQueue({ doId: 'room-1', onBlockFailed })
      const boom = new Error('init failed')
      const init = gate()
      const blocked = queue.blockConcurrencyWhile(() => init.promise)
      const waiting = vi.fn()
      const queued = queue.run(waiting)
      init.reject(boom)
      await expect(blocked).rejects.toBe(boom)
      const error = await queued.catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ActivationEndedError)
      expect(error).toMatchObject({ reason: 'reset', doId: 'room-1', cause: boom, status: 503 })
      expect(waiting).not.toHaveBeenCalled()
      expect(onBlockFailed).toHaveBeenCalledWith(boom)
      expect(queue.closed).toBe(true)
      await expect(queue.run(() => 1)).rejects.toBeInstanceOf(ActivationEndedError)
    })
  })

  describe('close', () => {
    it('as a drain: refuses new turns, still runs the queued ones in order, then is idle', async () => {
      const queue = new TurnQueue()
      const hold = gate()
      const order: string[] = []
      const a = queue.run(() => hold.promise.then(() => void order.push('a')))
      const b = queue.run(() => void order.push('b'))
      const refusal = new Error('draining')
      queue.close(refusal)
      await expect(queue.run(() => 'c')).rejects.toBe(refusal)
      let idle = false
      const whenIdle = queue.whenIdle().then(() => (idle = true))
      await tick()
      expect(idle).toBe(false)
      hold.resolve()
      await Promise.all([a, b, whenIdle])
      expect(order).toEqual(['a', 'b'])
    })

    it('dropping the queued turns: rejects them with the error; the running one finishes', async () => {
      const queue = new TurnQueue()
      const hold = gate<string>()
      const running = queue.run(() => hold.promise)
      const dropped = vi.fn()
      const queued = queue.run(dropped)
      const lost = new Error('lease lost')
      queue.close(lost, { dropQueued: true })
      await expect(queued).rejects.toBe(lost)
      hold.resolve('done')
      await expect(running).resolves.toBe('done')
      expect(dropped).not.toHaveBeenCalled()
    })
  })

  it('calls onIdle each time it falls idle, and whenIdle resolves at once when idle', async () => {
    const onIdle = vi.fn()
    const queue = new TurnQueue({ onIdle })
    await queue.whenIdle()
    await Promise.all([queue.run(() => 1), queue.run(() => 2)])
    expect(onIdle).toHaveBeenCalledTimes(1)
    await queue.run(() => 3)
    expect(onIdle).toHaveBeenCalledTimes(2)
  })

  it('validates its options before any turn', () => {
    expect(() => new TurnQueue({ maxQueued: -1 })).toThrow(InvalidArgumentError)
    expect(() => new TurnQueue({ maxWaitMs: 0 })).toThrow(/maxWaitMs/)
    expect(() => new TurnQueue({ retryAfterMs: Number.NaN })).toThrow(/retryAfterMs/)
    expect(() => new TurnQueue({ onIdle: 'x' as never })).toThrow(/onIdle/)
    expect(() => new TurnQueue(null as never)).toThrow(/options/)
  })
})
