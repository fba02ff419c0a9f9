import type { EncodedValue } from './object-store.js'

/**
 * The storage seam. A `LockStore` keeps one lease row per DO id and decides every question about
 * expiry with ITS OWN clock (docs/design.md invariant 4): callers pass durations, never timestamps.
 *
 * Contract (checked by `test/store/contract.ts` against every implementation):
 * - every method is exactly one request to the store (invariant 6);
 * - at most one unexpired lease per id at any store-clock instant (invariant 1);
 * - fencing tokens strictly increase per id on every successful acquire, across releases, expiries,
 *   restarts and {@link LockStore.prune} (invariant 2);
 * - refresh and release succeed only for the same node AND token while the lease is unexpired
 *   (invariant 3);
 * - arguments are validated before any I/O (invariant 8);
 * - an acquire with `prefetch` that wins returns the object's first rows as they were when the lease
 *   began, in the same request (invariant 13); one that loses returns none;
 * - a {@link LockStore.handoff} is a release and the next acquire in one request: the next token
 *   (old + 1, never one issued before), or nothing changed at all.
 */
export interface LockStore {
  /** Creates the lock table (and anything else the store needs) if missing. Idempotent. */
  ensureSchema(): Promise<void>

  /** Takes the lease on `doId` if it is free, released or expired; otherwise reports the holder. */
  acquire(request: AcquireRequest): Promise<StoreAcquireResult>

  /**
   * Extends a lease the caller still holds to `store now + ttlMs`; `null` if it is no longer held.
   * The record says `handoverRequested: true` when another node asked this lease to let go
   * ({@link LockStore.requestHandover}); a store without hand-over never says so.
   */
  refresh(request: RefreshRequest): Promise<RefreshedLock | null>

  /** Marks a held lease free (the row and its token stay). `false` if the caller no longer held it. */
  release(request: LockRef): Promise<boolean>

  /** The row for `doId` with the store's verdict on whether it is held, or `null` if never acquired. */
  get(doId: string): Promise<LockInfo | null>

  /** Current holders (unexpired leases), ordered by `doId`, optionally filtered. */
  list(filter?: ListFilter): Promise<LockInfo[]>

  /**
   * Administrative: frees a lease whoever holds it (the token stays, so the evicted holder's fenced
   * writes are rejected once someone re-acquires). `true` if a held lease was freed.
   */
  forceRelease(doId: string): Promise<boolean>

  /**
   * Maintenance: removes up to `limit` rows nobody has held for more than `olderThanMs`, so the table
   * does not keep a row for every id ever locked. Tokens keep strictly increasing per id: the store
   * remembers the highest token it removed (a high-water mark, raised in the same transaction), and a
   * new row starts above it, so an id acquired again after its row was removed gets a token above
   * every token issued before for any id. A stale holder of a removed row is refused like any other
   * (refresh `null`, release `false`, fenced write `StaleFencingTokenError`). Held rows, corrupt rows
   * and rows whose token has no safe successor are never removed. One request.
   *
   * "Free for" counts from the lease's end for a lease that ran out, and from its grant for a released
   * one (a release records no time), so a row released soon after a long lease may go sooner than
   * `olderThanMs` after its release. Call it periodically (e.g. hourly with a day) and again while it
   * returns `removed === limit`.
   *
   * @example
   * ```ts
   * let r
   * do r = await store.prune({ olderThanMs: 86_400_000 })
   * while (r.removed === DEFAULT_PRUNE_LIMIT)
   * ```
   */
  prune(options: PruneOptions): Promise<PruneResult>

  /**
   * Asks whoever holds `doId` (another node, unexpired) to let go: the request is kept for the
   * holder's current token, and the holder sees it in the answer of its next refresh (and object-store
   * flush) as `handoverRequested`, at no extra round trip (docs/design.md invariant 14). Whether it
   * lets go is the holder's call (an activation finishes its queued turns, flushes and releases).
   * Resolves the token asked for, or `null` when nobody else holds the object (nothing recorded).
   * Optional: a store without it has no hand-over, and contenders just wait. One request.
   */
  requestHandover?(request: HandoverRequest): Promise<number | null>

  /**
   * Passes a lease its holder still holds straight to the next holder, in one request and one commit:
   * what `release` followed by the next holder's `acquire` would do, without the row ever being free
   * in between. The new lease gets the next token (`fencingToken + 1`, the rule every acquire follows),
   * `ttlMs` from the store's now, its own metadata, and no hand-over request (those are for a token).
   * From then on the old token is refused like any stale one (refresh `null`, release `false`, fenced
   * writes `StaleFencingTokenError`). Resolves the new lease, or `null` when the caller no longer held
   * it (expired, released, taken over, another node or token), or when its token has no safe successor:
   * then nothing changed, exactly as a refused release changes nothing.
   *
   * Optional: a guard uses it to serve the next of its own callers waiting for the id with one commit
   * instead of two, and falls back to `release` + `acquire` without it. One request.
   *
   * @example
   * ```ts
   * const next = await store.handoff({ ...lock, toNodeId: lock.nodeId, ttlMs: 30_000 })
   * if (next) console.log(next.fencingToken === lock.fencingToken + 1) // true
   * ```
   */
  handoff?(request: HandoffRequest): Promise<LockRecord | null>
}

/** What {@link LockStore.handoff} is asked for: the lease as its holder knows it, and the next lease. */
export interface HandoffRequest extends LockRef {
  /** The node taking the lease over (recorded as `node_id`); the same node for a caller of one guard. */
  toNodeId: string
  /** The new lease's length in whole ms from the store's now, 1 to one day (`MAX_TTL_MS`). */
  ttlMs: number
  /** Stored with the new lease, as an acquire's `metadata` (same rules); absent: none. */
  metadata?: unknown
}

/** What {@link LockStore.requestHandover} is asked for. */
export interface HandoverRequest {
  /** The object wanted. */
  doId: string
  /** The node that wants it (never the holder itself: a node does not ask itself). */
  nodeId: string
}

/** A lease as a refresh extended it. */
export interface RefreshedLock extends LockRecord {
  /**
   * True when another node asked this lease to let go ({@link LockStore.requestHandover}) and the
   * request was for this token. Absent (or false) otherwise.
   */
  handoverRequested?: boolean
}

/** What {@link LockStore.prune} removes. */
export interface PruneOptions {
  /** Only rows nobody has held for more than this many ms (store clock). 0: every row nobody holds. */
  olderThanMs: number
  /** At most this many rows per call (one transaction). Default {@link DEFAULT_PRUNE_LIMIT}. */
  limit?: number
}

/** What {@link LockStore.prune} did. */
export interface PruneResult {
  /** Rows removed; when it equals the limit, more may be waiting. */
  removed: number
}

/** A lease as the store recorded it. Times are the STORE's clock, ms since the epoch. */
export interface LockRecord {
  /** The object the lease is for. */
  doId: string
  /** The node that holds (or last held) the lease. */
  nodeId: string
  /** The lease's token: higher than every token issued before for this id (invariant 2). */
  fencingToken: number
  /** When the lease was granted (store clock). Refresh does not change it. */
  acquiredAt: number
  /** When the lease ends (store clock); 0 once released. The lease is held while this is after now. */
  expiresAt: number
  /** The metadata given at acquire, as JSON gave it back; absent when none was given. */
  metadata?: unknown
}

/** A row plus the store's judgement at read time. */
export interface LockInfo extends LockRecord {
  /** True if the lease was unexpired at `storeNow`. */
  held: boolean
  /** The store's clock when the row was read. */
  storeNow: number
}

/** Names one lease: refresh and release act only if this node still holds the id with this token. */
export interface LockRef {
  /** The object the lease is for. */
  doId: string
  /** The node that holds the lease. */
  nodeId: string
  /** The token the lease was granted with. */
  fencingToken: number
}

/** What {@link LockStore.acquire} is asked for. Durations only: the store's clock decides when. */
export interface AcquireRequest {
  /** The object to lock: 1 to 1024 UTF-16 code units of well-formed Unicode, no NUL. */
  doId: string
  /** The node taking the lease (recorded as `node_id`): 1 to 256 code units, same rules. */
  nodeId: string
  /** Lease length in whole ms, 1 to one day (`MAX_TTL_MS`). */
  ttlMs: number
  /**
   * Stored with the lease and returned to whoever reads it. Must come back from JSON exactly as given
   * (plain objects, arrays, strings, finite numbers, booleans, null); anything else is refused naming
   * its path (`metadata.tags[1]`). At most 65,536 characters as JSON.
   */
  metadata?: unknown
  /**
   * Also read up to this many of the object's storage rows (its `objects`, in key order) in the same
   * request and transaction as the acquire: a whole number from 1 to {@link MAX_PREFETCH_ROWS}. A won
   * acquire returns them as `prefetched` (docs/design.md invariant 13: a cold start in one round trip);
   * a lost one returns none. Default: no rows are read.
   */
  prefetch?: number
}

/**
 * An object's storage rows as they were when a lease began: read in the acquire's own transaction,
 * right after the lease was taken, so they are exactly the committed state the new holder starts from
 * (nobody else can write under its new token).
 */
export interface PrefetchedRows {
  /** The rows in key order (code point order), at most the `prefetch` asked for; values as encoded. */
  readonly entries: ReadonlyArray<readonly [string, EncodedValue]>
  /**
   * True when `entries` are ALL the object's rows: a key not among them is not stored. False when the
   * object has more rows than were asked for (only the first ones came).
   */
  readonly complete: boolean
}

/** What {@link LockStore.refresh} is asked for: the lease, and its new length from the store's now. */
export interface RefreshRequest extends LockRef {
  /** New lease length in whole ms from the store's now, 1 to one day. */
  ttlMs: number
}

/** The outcome of {@link LockStore.acquire}: contention is a result, not an error. */
export type StoreAcquireResult =
  | {
      /** The lease is the caller's. */
      acquired: true
      /** The lease as granted. */
      lock: LockRecord
      /** The object's rows when the lease began; present when the request asked for a `prefetch`. */
      prefetched?: PrefetchedRows
    }
  | {
      /** Someone else holds it. */
      acquired: false
      /** The current holder. */
      holder: LockRecord
      /** The store's clock when the decision was made; `holder.expiresAt - storeNow` is the wait. */
      storeNow: number
    }

/** Which leases {@link LockStore.list} returns. */
export interface ListFilter {
  /** Only leases held by this node. */
  nodeId?: string
  /**
   * At most this many rows, 1 to {@link MAX_LIST_LIMIT}.
   *
   * @default DEFAULT_LIST_LIMIT (1000)
   */
  limit?: number
}

/** Default page size for `list`. */
export const DEFAULT_LIST_LIMIT = 1000
/** Largest page size `list` accepts. */
export const MAX_LIST_LIMIT = 100_000
/** Default number of rows one `prune` removes at most. */
export const DEFAULT_PRUNE_LIMIT = 1000
/** Largest `prefetch` an acquire accepts: the most storage rows one acquire reads. */
export const MAX_PREFETCH_ROWS = 1000
/** Largest `limit` `prune` accepts (one transaction holds the write lock while it deletes). */
export const MAX_PRUNE_LIMIT = 100_000
