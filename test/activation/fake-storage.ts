/**
 * A stand-in for the object storage (`src/storage/`), as activations drive it: a write buffer, a
 * double-buffered flush (reads see the writes of a flush in flight) and `discard()`. Flushes commit
 * after `rttMs` (a timer) or, with `manual`, when the test says so.
 */
import type { ActivationFlusher } from '../../src/activation/index.js'

export interface PendingFlush {
  writes: Map<string, number>
  commit(): void
  fail(error: unknown): void
}

export class FakeStorage implements ActivationFlusher {
  /** What the "store" has: shared by every FakeStorage of one object when passed in. */
  readonly committed: Map<string, number>
  readonly flushes: PendingFlush[] = []
  /** Set to make the next flush fail with this error. */
  failNext: unknown
  discarded = 0
  #buffer = new Map<string, number>()
  #inFlight: Map<string, number> | undefined

  constructor(readonly options: { manual?: boolean; rttMs?: number; committed?: Map<string, number> } = {}) {
    this.committed = options.committed ?? new Map()
  }

  get(key: string): number | undefined {
    this.#check()
    return this.#buffer.get(key) ?? this.#inFlight?.get(key) ?? this.committed.get(key)
  }

  put(key: string, value: number): void {
    this.#check()
    this.#buffer.set(key, value)
  }

  hasPendingWrites(): boolean {
    return this.#buffer.size > 0
  }

  flush(): Promise<void> {
    this.#check()
    const writes = this.#buffer
    this.#buffer = new Map()
    this.#inFlight = new Map([...(this.#inFlight ?? []), ...writes])
    return new Promise<void>((resolve, reject) => {
      const flush: PendingFlush = {
        writes,
        commit: () => {
          for (const [k, v] of writes) this.committed.set(k, v)
          this.#inFlight = undefined
          resolve()
        },
        fail: (error) => {
          this.#inFlight = undefined
          reject(error)
        },
      }
      this.flushes.push(flush)
      const failure = this.failNext
      this.failNext = undefined
      if (this.options.manual) return
      setTimeout(() => (failure === undefined ? flush.commit() : flush.fail(failure)), this.options.rttMs ?? 1)
    })
  }

  discard(): void {
    this.discarded++
    this.#buffer = new Map()
  }

  #check(): void {
    if (this.discarded) throw new Error('storage used after discard()')
  }
}
