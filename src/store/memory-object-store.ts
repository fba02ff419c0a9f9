import { InvalidArgumentError, StaleFencingTokenError } from '../errors.js'
import { assertDoId } from '../validate.js'
import { checkKeys, checkLease, checkRange, checkWrites } from './object-requests.js'
import {
  MAX_KEYS_PER_REQUEST,
  compareKeys,
  type EncodedValue,
  type FlushResult,
  type ObjectLease,
  type ObjectListRange,
  type ObjectStore,
  type ObjectWrites,
} from './object-store.js'

/** The lease fields a lease check compares: same object, same holder, same token. */
export interface LeaseRef {
  /** The object. */
  doId: string
  /** The holder, as in `do_locks.node_id`. */
  nodeId: string
  /** The holder's token. */
  fencingToken: number
}

/**
 * What {@link MemoryObjectStore} needs from the lock store whose leases it judges. Both methods are
 * SYNCHRONOUS on purpose: the memory store checks the lease and applies the writes in one synchronous
 * step, with no `await` in between, which is what the SQL stores' single transaction gives
 * (docs/design.md invariant 10). A lock store in memory, `MemoryLockStore`, implements it
 * over its rows, with its own clock as the store clock.
 */
export interface LeaseCheck {
  /** True when `ref`'s lease is held (same node and token) and unexpired at store now. */
  holds(ref: LeaseRef): boolean
  /**
   * When `ref`'s lease is held and unexpired: extends it to store now + `ttlMs` and returns the new
   * `expiresAt` (store clock, ms). Otherwise changes nothing and returns `null`.
   */
  holdsAndExtend(ref: LeaseRef, ttlMs: number): number | null
  /**
   * Whether another node asked `ref`'s lease to let go (the lock store's hand-over request for this
   * token). Optional: without it, a flush never reports one.
   */
  handoverRequested?(ref: LeaseRef): boolean
}

/**
 * The {@link ObjectStore} contract in memory, for tests and single-process use. Every call checks the
 * lease through a synchronous {@link LeaseCheck} and then reads or writes in the same synchronous step,
 * so no other call can come between the check and the write: a stale holder's flush changes nothing
 * and rejects with `StaleFencingTokenError`, and so do its reads.
 *
 * It validates its arguments exactly as the SQL object store does (keys and values are strings without
 * NUL and lone surrogates, at most {@link MAX_KEYS_PER_REQUEST} keys per `get`, ...), so that what
 * passes here passes there.
 *
 * @example
 * ```ts
 * // `leases` judges leases against the rows of the lock store the guard uses (same process, same clock).
 * const objects = new MemoryObjectStore(leases)
 * const result = await guard.acquire('room-1')
 * if (result.acquired) await objects.flush(result.lock, { entries: new Map([['n', '[1]']]) })
 * ```
 */
export class MemoryObjectStore implements ObjectStore {
  readonly #leases: LeaseCheck
  /** doId -> key -> encoded value. */
  readonly #objects = new Map<string, Map<string, EncodedValue>>()

  /** @param leases - judges each call's lease (the lock store's rows, its clock). */
  constructor(leases: LeaseCheck) {
    if (
      leases === null ||
      typeof leases !== 'object' ||
      typeof leases.holds !== 'function' ||
      typeof leases.holdsAndExtend !== 'function'
    ) {
      throw new InvalidArgumentError('leases', 'expected a LeaseCheck with holds() and holdsAndExtend()')
    }
    this.#leases = leases
  }

  /** Nothing to create. */
  async ensureSchema(): Promise<void> {}

  /** See {@link ObjectStore.get}: the keys found, in key order; rejects when the lease does not hold. */
  async get(lease: ObjectLease, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    const ref = checkLease(lease)
    const wanted = checkKeys(keys)
    this.#hold(ref)
    return this.#found(ref.doId, wanted)
  }

  /** See {@link ObjectStore.getCommitted}: as `get`, with no lease. */
  async getCommitted(doId: string, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    assertDoId(doId)
    return this.#found(doId, checkKeys(keys))
  }

  /** See {@link ObjectStore.listCommitted}: as `list`, with no lease. */
  async listCommitted(doId: string, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    assertDoId(doId)
    return this.#listed(doId, rangeFilter(range))
  }

  #found(doId: string, wanted: string[]): Map<string, EncodedValue> {
    const rows = this.#objects.get(doId)
    const found = new Map<string, EncodedValue>()
    for (const key of [...new Set(wanted)].sort(compareKeys)) {
      const value = rows?.get(key)
      if (value !== undefined) found.set(key, value)
    }
    return found
  }

  /** See {@link ObjectStore.list}: every bound given applies; rejects when the lease does not hold. */
  async list(lease: ObjectLease, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    const ref = checkLease(lease)
    const filter = rangeFilter(range)
    this.#hold(ref)
    return this.#listed(ref.doId, filter)
  }

  #listed(doId: string, { inRange, reverse, limit }: ReturnType<typeof rangeFilter>): Array<[string, EncodedValue]> {
    const entries = [...(this.#objects.get(doId) ?? [])].filter(([key]) => inRange(key))
    entries.sort(([a], [b]) => (reverse ? compareKeys(b, a) : compareKeys(a, b)))
    return limit === undefined ? entries : entries.slice(0, limit)
  }

  /**
   * See {@link ObjectStore.flush}: lease check, extension and writes in one synchronous step. It extends
   * also with `writes.extend` false (which allows it): in memory the extension costs nothing.
   */
  async flush(lease: ObjectLease, writes: ObjectWrites): Promise<FlushResult> {
    const ref = checkLease(lease)
    const { deleteAll, entries } = checkWrites(writes)
    // Check, extend and write in one synchronous step (invariant 10): nothing can run in between.
    const expiresAt = this.#leases.holdsAndExtend(ref, ref.ttlMs)
    if (expiresAt === null) throw new StaleFencingTokenError(ref.doId, ref.fencingToken)
    let rows = this.#objects.get(ref.doId)
    if (deleteAll) rows?.clear()
    for (const [key, value] of entries) {
      if (value === null) {
        rows?.delete(key)
      } else {
        if (!rows) this.#objects.set(ref.doId, (rows = new Map()))
        rows.set(key, value)
      }
    }
    if (rows?.size === 0) this.#objects.delete(ref.doId)
    return this.#leases.handoverRequested?.(ref) ? { expiresAt, handoverRequested: true } : { expiresAt }
  }

  /**
   * The object's first `count` committed rows in key order, read synchronously under `lease` (throws
   * `StaleFencingTokenError` when it does not hold). For `MemoryLockStore`'s acquire, which reads them
   * in the same synchronous step as it grants the lease: the SQL stores' `prefetch` in the acquire's
   * transaction. Arguments are the lock store's, already validated.
   */
  firstRows(lease: LeaseRef, count: number): Array<[string, EncodedValue]> {
    this.#hold(lease)
    const rows = [...(this.#objects.get(lease.doId) ?? [])].sort(([a], [b]) => compareKeys(a, b))
    return rows.slice(0, count)
  }

  #hold(ref: LeaseRef): void {
    if (!this.#leases.holds(ref)) throw new StaleFencingTokenError(ref.doId, ref.fencingToken)
  }
}

// Validation, argument for argument as the SQL object store's (src/store/sql-object-store.ts), so both
// reject the same input with the same argument names (the shared contract suite checks them).

/** A range's bounds as a test on keys (every bound present applies). */
function rangeFilter(range: ObjectListRange): {
  inRange: (key: string) => boolean
  reverse: boolean
  limit: number | undefined
} {
  const { start, startAfter, end, prefix, reverse, limit } = checkRange(range)
  const inRange = (key: string) =>
    (start === undefined || compareKeys(key, start) >= 0) &&
    (startAfter === undefined || compareKeys(key, startAfter) > 0) &&
    (end === undefined || compareKeys(key, end) < 0) &&
    (prefix === undefined || key.startsWith(prefix))
  return { inRange, reverse, limit }
}
