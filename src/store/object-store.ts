/**
 * The storage seam of the object layer: an object's key-value rows, kept in the SAME database as its
 * lease, so that a write and the check of the lease that makes it share one transaction
 * (docs/design.md invariant 10).
 *
 * An `ObjectStore` knows nothing of value types: it moves encoded values (the serializer's output,
 * `src/storage/`) and judges the lease with the store's own clock. The Durable Object storage API that
 * users program against (`get`/`put`/`list`/`transaction`, the cache, read-your-writes) is built on it
 * in `src/storage/`.
 *
 * Contract (checked by `test/storage/object-store-contract.ts` against every implementation):
 * - every method is exactly one request to the database;
 * - `flush` is one transaction holding the lease check (same do_id, node_id and fencing_token,
 *   unexpired at store time), the writes in order, and the extension of the lease: all or nothing; a
 *   stale holder's flush changes nothing and rejects with `StaleFencingTokenError`;
 * - reads (`get`, `list`) check the same lease in the same request and reject with
 *   `StaleFencingTokenError` when it no longer holds, so a holder that lost its lease never serves
 *   state another node may have changed;
 * - keys are compared as SQLite's BINARY collation compares UTF-8 text (code point order).
 */
export interface ObjectStore {
  /** Creates the storage table (and anything else it needs) if missing. Idempotent. */
  ensureSchema(): Promise<void>

  /** The committed values of `keys` (at most {@link MAX_KEYS_PER_REQUEST}); keys not stored are absent. */
  get(lease: ObjectLease, keys: readonly string[]): Promise<Map<string, EncodedValue>>

  /** Committed entries of the object in key order (reversed with `range.reverse`), within `range`. */
  list(lease: ObjectLease, range: ObjectListRange): Promise<Array<[string, EncodedValue]>>

  /**
   * Applies `writes` under the lease in ONE transaction that also extends the lease to store now +
   * `lease.ttlMs` (unless `writes.extend` is `false`). Resolves the lease's `expiresAt` afterwards
   * (store clock); rejects with `StaleFencingTokenError` (nothing written, nothing extended) when the
   * lease no longer holds.
   */
  flush(lease: ObjectLease, writes: ObjectWrites): Promise<FlushResult>

  /**
   * The committed values of `keys` (as {@link ObjectStore.get}) WITHOUT a lease: what a read-only
   * request reads on a node that does not hold the object. One statement, so one committed snapshot;
   * a flush committing meanwhile is either wholly in it or not at all. Optional: a store without it
   * serves no read-only requests.
   */
  getCommitted?(doId: string, keys: readonly string[]): Promise<Map<string, EncodedValue>>

  /** The committed entries within `range` (as {@link ObjectStore.list}) WITHOUT a lease; see {@link ObjectStore.getCommitted}. */
  listCommitted?(doId: string, range: ObjectListRange): Promise<Array<[string, EncodedValue]>>
}

/** The lease an object-store call is made under: who holds it, and for how long a flush extends it. */
export interface ObjectLease {
  /** The object. */
  doId: string
  /** The holder, as in `do_locks.node_id`. */
  nodeId: string
  /** The holder's token; every call checks that the lease still carries it, unexpired. */
  fencingToken: number
  /** How long a flush extends the lease from store now, ms. */
  ttlMs: number
}

/** A value as the serializer encoded it; the store keeps it verbatim. */
export type EncodedValue = string

/** The writes of one flush. */
export interface ObjectWrites {
  /** Delete every key of the object first (`deleteAll()`), then apply `entries`. */
  deleteAll?: boolean
  /** Key -> new encoded value, or `null` to delete the key. Applied in iteration order. */
  entries: ReadonlyMap<string, EncodedValue | null>
  /**
   * Whether the flush also extends the lease to store now + `ttlMs`. `false` when something else
   * keeps the lease alive (a guard's heartbeat: a flush's extension never moves the guard's local
   * validity, so for its leases it is a write to the lock table that buys nothing): the flush then
   * carries the lease check and the writes only, and the store may leave the expiry as it is.
   * @default true
   */
  extend?: boolean
}

/** What a committed flush reports. */
export interface FlushResult {
  /**
   * The lease's expiry after the flush, store clock, ms since the epoch: the new one, or with
   * `extend: false` the one the flush found (a store may extend anyway).
   */
  expiresAt: number
  /**
   * True when another node asked this lease to let go (`LockStore.requestHandover`), read in the
   * flush's own transaction: the holder learns it at no extra round trip. Absent otherwise.
   */
  handoverRequested?: boolean
}

/** Bounds of a `list`, as Durable Object storage's `list()` takes them (validated by `src/storage/`). */
export interface ObjectListRange {
  /** First key included (inclusive). */
  start?: string
  /** Exclusive lower bound (how it combines with `start` follows Durable Objects; `src/storage/` checks it). */
  startAfter?: string
  /** Keys before this one (exclusive upper bound). */
  end?: string
  /** Only keys that begin with this string. */
  prefix?: string
  /** Descending key order. */
  reverse?: boolean
  /** At most this many entries. */
  limit?: number
}

/** The most keys one `get` request carries (Durable Object storage's limit per call). */
export const MAX_KEYS_PER_REQUEST = 128

/**
 * Orders keys as every {@link ObjectStore} must: by code point, which is the order of SQLite's BINARY
 * collation over UTF-8 and of Durable Object storage (UTF-16 code-unit order, JavaScript's `<`, differs
 * past U+FFFF: an astral key sorts after U+FFFF here). Shared by the memory store and by the merge of
 * committed rows with unflushed writes in `src/storage/`.
 *
 * @example
 * ```ts
 * ['\u{1F600}', '\uFFFF', 'a'].sort(compareKeys) // ['a', '\uFFFF', '\u{1F600}']
 * ```
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    // Only where a surrogate meets a non-surrogate at or above U+E000 does code-unit order lie: the
    // surrogate starts an astral code point, which sorts after every BMP one.
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs !== ys && (xs ? y >= 0xe000 : x >= 0xe000)) return xs ? 1 : -1
    return x - y
  }
  return a.length - b.length
}
