/**
 * OutputGate: results held until the flush carrying every earlier write committed, flushes
 * group-committed, failures fail exactly the turns that may depend on them (docs/design.md
 * invariant 12). The flusher is a fake whose flushes the test commits or fails by hand.
 */
import { describe, expect, it, vi } from 'vitest'
import { OutputGate, type Flusher } from '../../src/activation/index.js'
import { InvalidArgumentError, LockLostError, StaleFencingTokenError, StoreUnavailableError } from '../../src/index.js'

/** A write buffer with flushes the test settles: `flushes[i]` carries the writes snapshotted by the i-th flush. */
class FakeFlusher implements Flusher {
  buffer: string[] = []
  readonly flushes: Array<{ writes: string[]; commit(): void; fail(error: unknown): void }> = []

  write(key: string): void {
    this.buffer.push(key)
  }

  hasPendingWrites(): boolean {
    return this.buffer.length > 0
  }

  flush(): Promise<void> {
    const writes = this.buffer.splice(0) // the snapshot, taken inside the call
    return new Promise((resolve, reject) => this.flushes.push({ writes, commit: resolve, fail: reject }))
  }
}

const ok = <T>(value: T): PromiseSettledResult<T> => ({ status: 'fulfilled', value })

/** Observes a promise without awaiting it: `state()` is 'pending' until it settles. */
function watch<T>(promise: Promise<T>) {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending'
  let value: T | undefined
  let error: unknown
  promise.then(
    (v) => {
      state = 'resolved'
      value = v
    },
    (e: unknown) => {
      state = 'rejected'
      error = e
    },
  )
  return { state: () => state, value: () => value, error: () => error }
}

const settle = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

describe('OutputGate', () => {
  it('releases a turn that wrote nothing at once, without a flush, when nothing is in flight (warm read: 0 round trips)', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    await expect(gate.hold(ok('read'))).resolves.toBe('read')
    expect(flusher.flushes).toHaveLength(0)
    expect(gate.flushes).toBe(0)
  })

  it('holds a turn result until the flush carrying its writes committed', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    flusher.write('a')
    const result = watch(gate.hold(ok('wrote a')))
    expect(flusher.flushes).toHaveLength(1) // started at once, inside hold()
    expect(flusher.flushes[0]!.writes).toEqual(['a'])
    await settle()
    expect(result.state()).toBe('pending')
    flusher.flushes[0]!.commit()
    await settle()
    expect(result.state()).toBe('resolved')
    expect(result.value()).toBe('wrote a')
  })

  it('holds a turn that threw too, and rejects it with its own error once its writes committed', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    flusher.write('a')
    const boom = new Error('handler threw after writing')
    const result = watch(gate.hold({ status: 'rejected', reason: boom }))
    await settle()
    expect(result.state()).toBe('pending')
    flusher.flushes[0]!.commit()
    await settle()
    expect(result.error()).toBe(boom)
  })

  it('coalesces: turns ending during an in-flight flush join exactly one next flush, sent when it commits', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    flusher.write('t1')
    const t1 = watch(gate.hold(ok(1)))
    const later = [2, 3, 4].map((n) => {
      flusher.write(`t${n}`)
      return watch(gate.hold(ok(n)))
    })
    expect(flusher.flushes).toHaveLength(1)
    expect(gate.flushing).toBe(true)
    flusher.flushes[0]!.commit()
    await settle()
    expect(t1.state()).toBe('resolved')
    expect(later.map((t) => t.state())).toEqual(['pending', 'pending', 'pending'])
    expect(flusher.flushes).toHaveLength(2)
    expect(flusher.flushes[1]!.writes).toEqual(['t2', 't3', 't4'])
    flusher.flushes[1]!.commit()
    await settle()
    expect(later.map((t) => t.value())).toEqual([2, 3, 4])
    expect(gate.flushes).toBe(2)
    expect(gate.flushing).toBe(false)
  })

  it('holds a turn that wrote nothing until the in-flight flush carrying earlier writes committed', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    flusher.write('a')
    const writer = watch(gate.hold(ok('writer')))
    const reader = watch(gate.hold(ok('reader'))) // may have read 'a' from the cache
    await settle()
    expect(reader.state()).toBe('pending')
    flusher.flushes[0]!.commit()
    await settle()
    expect([writer.state(), reader.state()]).toEqual(['resolved', 'resolved'])
    expect(flusher.flushes).toHaveLength(1) // the reader caused no flush of its own
  })

  it('holds a turn that wrote nothing behind writes still waiting for the next flush', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    flusher.write('a')
    const first = watch(gate.hold(ok('first')))
    flusher.write('b')
    const second = watch(gate.hold(ok('second')))
    const reader = watch(gate.hold(ok('reader'))) // may have read 'b'
    flusher.flushes[0]!.commit()
    await settle()
    expect([first.state(), second.state(), reader.state()]).toEqual(['resolved', 'pending', 'pending'])
    flusher.flushes[1]!.commit()
    await settle()
    expect([second.state(), reader.state()]).toEqual(['resolved', 'resolved'])
  })

  it.each([
    ['LockLostError', new LockLostError('room-1', 3, 'taken over')],
    ['StaleFencingTokenError', new StaleFencingTokenError('room-1', 3, 4)],
    ['StoreUnavailableError', new StoreUnavailableError('store down')],
  ])(
    'when a flush fails (%s): rejects exactly the turns in it and after it, sends no further flush, reports once',
    async (_name, failure) => {
      const flusher = new FakeFlusher()
      const onFailure = vi.fn()
      const gate = new OutputGate({ flusher, onFailure })
      flusher.write('a')
      const committed = watch(gate.hold(ok('a')))
      flusher.write('b')
      const inFailing = watch(gate.hold(ok('b')))
      const readerOfB = watch(gate.hold(ok('reads b')))
      flusher.flushes[0]!.commit()
      await settle()
      expect(flusher.flushes).toHaveLength(2)
      flusher.write('c')
      const afterFailing = watch(gate.hold(ok('c'))) // waits for the flush after the failing one
      flusher.flushes[1]!.fail(failure)
      await settle()
      expect(committed.state()).toBe('resolved')
      for (const turn of [inFailing, readerOfB, afterFailing]) {
        expect(turn.state()).toBe('rejected')
        expect(turn.error()).toBe(failure)
      }
      expect(onFailure).toHaveBeenCalledTimes(1)
      expect(onFailure).toHaveBeenCalledWith(failure)
      expect(flusher.flushes).toHaveLength(2) // 'c' is never sent
      expect(gate.failure).toEqual({ error: failure })
      await expect(gate.hold(ok('later'))).rejects.toBe(failure)
      await expect(gate.whenDurable()).rejects.toBe(failure)
      expect(flusher.flushes).toHaveLength(2)
    },
  )

  it('treats a flush that throws synchronously as a failed flush', async () => {
    const boom = new StoreUnavailableError('driver threw')
    const onFailure = vi.fn()
    const gate = new OutputGate({
      flusher: {
        hasPendingWrites: () => true,
        flush: () => {
          throw boom
        },
      },
      onFailure,
    })
    await expect(gate.hold(ok(1))).rejects.toBe(boom)
    expect(onFailure).toHaveBeenCalledWith(boom)
  })

  describe('fail() (the lease was lost)', () => {
    it('lets the in-flight flush decide its own turns, and fails every turn after it without sending their writes', async () => {
      const flusher = new FakeFlusher()
      const onFailure = vi.fn()
      const gate = new OutputGate({ flusher, onFailure })
      flusher.write('a')
      const inFlight = watch(gate.hold(ok('a')))
      flusher.write('b')
      const waitingForNext = watch(gate.hold(ok('b')))
      const lost = new LockLostError('room-1', 3, 'validity ran out')
      gate.fail(lost)
      await settle()
      expect(waitingForNext.error()).toBe(lost)
      expect(inFlight.state()).toBe('pending')
      flusher.flushes[0]!.commit() // the fence held at commit: 'a' is durable, its turn may be told
      await settle()
      expect(inFlight.state()).toBe('resolved')
      expect(flusher.flushes).toHaveLength(1)
      expect(onFailure).not.toHaveBeenCalled()
      await expect(gate.hold(ok('later'))).rejects.toBe(lost)
    })

    it('keeps the first error', async () => {
      const gate = new OutputGate({ flusher: new FakeFlusher() })
      const first = new Error('first')
      gate.fail(first)
      gate.fail(new Error('second'))
      await expect(gate.whenDurable()).rejects.toBe(first)
    })
  })

  it('whenDurable() flushes what is pending; settled() waits for the flushes in flight, however they end', async () => {
    const flusher = new FakeFlusher()
    const gate = new OutputGate({ flusher })
    await gate.whenDurable() // nothing pending, nothing in flight
    expect(flusher.flushes).toHaveLength(0)
    flusher.write('a')
    const durable = watch(gate.whenDurable())
    flusher.write('b')
    void gate.hold(ok('b')).catch(() => {})
    const settled = watch(gate.settled())
    flusher.flushes[0]!.commit()
    await settle()
    expect(durable.state()).toBe('resolved')
    expect(settled.state()).toBe('pending') // the next flush ('b') is in flight now
    flusher.flushes[1]!.fail(new StoreUnavailableError('down'))
    await settle()
    expect(settled.state()).toBe('resolved')
  })

  it('validates its options', () => {
    expect(() => new OutputGate(undefined as never)).toThrow(InvalidArgumentError)
    expect(() => new OutputGate({ flusher: { flush: async () => {} } as never })).toThrow(/hasPendingWrites/)
    expect(() => new OutputGate({ flusher: new FakeFlusher(), onFailure: 1 as never })).toThrow(/onFailure/)
  })
})
