/**
 * An {@link ObjectStore} wrapper that counts requests per method and can be told to fail: the round
 * trips docs/design.md invariant 13 promises are counted through it.
 */
import type {
  EncodedValue,
  FlushResult,
  ObjectLease,
  ObjectListRange,
  ObjectStore,
  ObjectWrites,
} from '../../../src/index.js'

export class CountingObjectStore implements ObjectStore {
  readonly inner: ObjectStore
  readonly calls = { get: 0, list: 0, flush: 0 }
  /** What each call asked for, in order. */
  readonly log: Array<
    | { op: 'get'; keys: readonly string[] }
    | { op: 'list'; range: ObjectListRange }
    | { op: 'flush'; writes: ObjectWrites }
  > = []
  /** When set, the next calls reject with it (before reaching the inner store). */
  failWith: unknown
  /** When set, flushes wait for it before reaching the inner store (a flush in flight, held open). */
  holdFlush: Promise<void> | undefined

  constructor(inner: ObjectStore) {
    this.inner = inner
  }

  /** Requests sent so far, all methods together. */
  get requests(): number {
    return this.calls.get + this.calls.list + this.calls.flush
  }

  async ensureSchema(): Promise<void> {
    await this.inner.ensureSchema()
  }

  async get(lease: ObjectLease, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    this.calls.get++
    this.log.push({ op: 'get', keys: [...keys] })
    if (this.failWith !== undefined) throw this.failWith
    return this.inner.get(lease, keys)
  }

  async list(lease: ObjectLease, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    this.calls.list++
    this.log.push({ op: 'list', range: { ...range } })
    if (this.failWith !== undefined) throw this.failWith
    return this.inner.list(lease, range)
  }

  async flush(lease: ObjectLease, writes: ObjectWrites): Promise<FlushResult> {
    this.calls.flush++
    this.log.push({ op: 'flush', writes: { ...writes, entries: new Map(writes.entries) } })
    if (this.holdFlush) await this.holdFlush
    if (this.failWith !== undefined) throw this.failWith
    return this.inner.flush(lease, writes)
  }
}
