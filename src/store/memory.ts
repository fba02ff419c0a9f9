import { systemClock, type Clock } from '../clock.js'
import { MemoryObjectStore } from './memory-object-store.js'
import { MAX_PREFETCH_CHARS } from './object-sql.js'
import { InvalidArgumentError } from '../errors.js'
import { assertDoId } from '../validate.js'
import {
  checkAcquire,
  checkHandoff,
  checkHandover,
  checkListFilter,
  checkPrune,
  checkRef,
  checkRefresh,
} from './requests.js'
import {
  type AcquireRequest,
  type HandoffRequest,
  type HandoverRequest,
  type ListFilter,
  type LockInfo,
  type LockRecord,
  type LockRef,
  type LockStore,
  type PruneOptions,
  type PruneResult,
  type RefreshRequest,
  type RefreshedLock,
  type StoreAcquireResult,
} from './lock-store.js'

interface Row {
  nodeId: string
  acquiredAt: number
  expiresAt: number
  fencingToken: number
  metadata: string | null
}

/** Options of {@link MemoryLockStore}. */
export interface MemoryLockStoreOptions {
  /**
   * The store's clock (`now()` is used, rounded to whole ms).
   *
   * @default systemClock
   */
  clock?: Clock
}

/**
 * The {@link LockStore} contract in memory, for one process: unit tests, examples, single-node use.
 * The process is the store, so its clock is the store clock. Every call is atomic (JavaScript runs one
 * call at a time), which is what a real store's transaction gives.
 */
export class MemoryLockStore implements LockStore {
  readonly #rows = new Map<string, Row>()
  /** The highest token prune removed; new rows start above it (invariant 2). */
  #highWater = 0
  /** Hand-over requests: id -> the holder's token they were made for. */
  readonly #handover = new Map<string, number>()
  readonly #clock: Clock
  /**
   * The objects' key-value rows, judged against this store's leases in the same synchronous step as
   * each write (the in-memory equivalent of the SQL stores' fence in the flush's transaction).
   */
  readonly objects: MemoryObjectStore

  constructor(options: MemoryLockStoreOptions = {}) {
    const clock = options.clock ?? systemClock
    if (typeof clock?.now !== 'function') throw new InvalidArgumentError('clock', 'expected a Clock with now()')
    this.#clock = clock
    this.objects = new MemoryObjectStore({
      holds: (ref) => this.#held(ref, this.#now()) !== undefined,
      holdsAndExtend: (ref, ttlMs) => {
        const now = this.#now()
        const row = this.#held(ref, now)
        if (!row) return null
        row.expiresAt = now + ttlMs
        return row.expiresAt
      },
      handoverRequested: (ref) => this.#handover.get(ref.doId) === ref.fencingToken,
    })
  }

  /** Nothing to create: resolves at once. */
  async ensureSchema(): Promise<void> {}

  /**
   * Takes the lease if free, released or expired (token + 1); otherwise reports the holder. With
   * `prefetch`, a won lease comes with the object's first rows, read in the same synchronous step.
   */
  async acquire(request: AcquireRequest): Promise<StoreAcquireResult> {
    const { doId, nodeId, ttlMs, metadata, prefetch } = checkAcquire(request)
    const now = this.#now()
    const row = this.#rows.get(doId)
    if (row && row.expiresAt > now) return { acquired: false, holder: toRecord(doId, row), storeNow: now }
    const next: Row = {
      nodeId,
      acquiredAt: now,
      expiresAt: now + ttlMs,
      fencingToken: (row?.fencingToken ?? this.#highWater) + 1,
      metadata,
    }
    this.#rows.set(doId, next)
    const lock = toRecord(doId, next)
    if (prefetch === undefined) return { acquired: true, lock }
    // One row more than asked for, as the SQL stores read: if it exists, the prefetch is not complete.
    const rows = this.objects.firstRows(lock, prefetch + 1)
    // The same character budget as the SQL stores' prefetch statement.
    const entries: Array<[string, string]> = []
    let chars = 0
    for (const [key, value] of rows.slice(0, prefetch)) {
      chars += key.length + value.length
      if (chars > MAX_PREFETCH_CHARS) return { acquired: true, lock, prefetched: { entries, complete: false } }
      entries.push([key, value])
    }
    return { acquired: true, lock, prefetched: { entries, complete: rows.length <= prefetch } }
  }

  /** Extends the lease to now + ttl if that node still holds it with that token; `null` otherwise. */
  async refresh(request: RefreshRequest): Promise<RefreshedLock | null> {
    const ref = checkRefresh(request)
    const now = this.#now()
    const row = this.#held(ref, now)
    if (!row) return null
    row.expiresAt = now + ref.ttlMs
    const record: RefreshedLock = toRecord(ref.doId, row)
    if (this.#handover.get(ref.doId) === ref.fencingToken) record.handoverRequested = true
    return record
  }

  /** Records a hand-over request for another node's live lease on the id (see {@link LockStore.requestHandover}). */
  async requestHandover(request: HandoverRequest): Promise<number | null> {
    const { doId, nodeId } = checkHandover(request)
    const row = this.#rows.get(doId)
    if (!row || row.expiresAt <= this.#now() || row.nodeId === nodeId) return null
    this.#handover.set(doId, row.fencingToken)
    return row.fencingToken
  }

  /** Marks the lease free if that node still holds it with that token (the row and token stay). */
  async release(request: LockRef): Promise<boolean> {
    const row = this.#held(checkRef(request), this.#now())
    if (!row) return false
    row.expiresAt = 0
    return true
  }

  /**
   * Passes the lease to the next holder if that node still holds it with that token: the next token,
   * in the same synchronous step (see {@link LockStore.handoff}); `null` and nothing changed otherwise.
   */
  async handoff(request: HandoffRequest): Promise<LockRecord | null> {
    const { doId, nodeId, fencingToken, toNodeId, ttlMs, metadata } = checkHandoff(request)
    const now = this.#now()
    const row = this.#held({ doId, nodeId, fencingToken }, now)
    // The SQL stores' rule: a token whose successor is not a safe integer is not passed on.
    if (!row || row.fencingToken >= Number.MAX_SAFE_INTEGER) return null
    const next: Row = {
      nodeId: toNodeId,
      acquiredAt: now,
      expiresAt: now + ttlMs,
      fencingToken: row.fencingToken + 1,
      metadata,
    }
    this.#rows.set(doId, next)
    return toRecord(doId, next)
  }

  /** The row with the store's verdict, or `null` if the id has no row. */
  async get(doId: string): Promise<LockInfo | null> {
    assertDoId(doId)
    const row = this.#rows.get(doId)
    if (!row) return null
    const now = this.#now()
    return { ...toRecord(doId, row), held: row.expiresAt > now, storeNow: now }
  }

  /** Unexpired leases ordered by id (code point order, as SQLite orders text), optionally one node's. */
  async list(filter: ListFilter = {}): Promise<LockInfo[]> {
    const { nodeId, limit } = checkListFilter(filter)
    const now = this.#now()
    const held: LockInfo[] = []
    for (const [doId, row] of this.#rows) {
      if (row.expiresAt > now && (nodeId === undefined || row.nodeId === nodeId)) {
        held.push({ ...toRecord(doId, row), held: true, storeNow: now })
      }
    }
    // Same order as the SQL stores (ORDER BY do_id compares bytes; for these ids code units agree).
    held.sort((a, b) => byCodePoint(a.doId, b.doId))
    return held.slice(0, limit)
  }

  /** Administrative: frees a lease whoever holds it; the token stays. */
  async forceRelease(doId: string): Promise<boolean> {
    assertDoId(doId)
    const row = this.#rows.get(doId)
    if (!row || row.expiresAt <= this.#now()) return false
    row.expiresAt = 0
    return true
  }

  /** Removes rows nobody has held for more than `olderThanMs`; new rows start above the highest removed token. */
  async prune(options: PruneOptions): Promise<PruneResult> {
    const { olderThanMs, limit } = checkPrune(options)
    const cutoff = this.#now() - olderThanMs
    // The same rows, in the same order, as the SQL stores' prune.
    const gone = [...this.#rows]
      .filter(
        ([, row]) => Math.max(row.acquiredAt, row.expiresAt) < cutoff && row.fencingToken < Number.MAX_SAFE_INTEGER,
      )
      .map(([doId]) => doId)
      .sort(byCodePoint)
      .slice(0, limit)
    for (const doId of gone) {
      this.#highWater = Math.max(this.#highWater, this.#rows.get(doId)!.fencingToken)
      this.#rows.delete(doId)
    }
    const now = this.#now()
    for (const [doId, token] of this.#handover) {
      const row = this.#rows.get(doId)
      if (!row || row.fencingToken !== token || row.expiresAt <= now) this.#handover.delete(doId)
    }
    return { removed: gone.length }
  }

  #held(ref: LockRef, now: number): Row | undefined {
    const row = this.#rows.get(ref.doId)
    if (!row || row.nodeId !== ref.nodeId || row.fencingToken !== ref.fencingToken || row.expiresAt <= now)
      return undefined
    return row
  }

  // Integer ms like the SQL stores, so fake clocks with fractions behave the same.
  #now(): number {
    return Math.round(this.#clock.now())
  }
}

function toRecord(doId: string, row: Row): LockRecord {
  const record: LockRecord = {
    doId,
    nodeId: row.nodeId,
    fencingToken: row.fencingToken,
    acquiredAt: row.acquiredAt,
    expiresAt: row.expiresAt,
  }
  if (row.metadata !== null) record.metadata = JSON.parse(row.metadata)
  return record
}

/** The order of SQLite's BINARY collation on UTF-8 text; UTF-16 code-unit order differs past U+FFFF. */
function byCodePoint(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!
    const y = b.codePointAt(i)!
    if (x !== y) return x - y
    if (x > 0xffff) i++ // both strings have the same pair here
  }
  return a.length - b.length
}
