/**
 * Durable Object storage's key-value API (`ctx.storage.get/put/delete/list/deleteAll/transaction`) over
 * an {@link ObjectStore}: same names, arguments and results, so code written for `ctx.storage` runs
 * unchanged, with every write fenced by the lease (docs/design.md invariant 10).
 *
 * One `ObjectStorage` serves one lease (today: one turn). Reads go to the store once and are cached;
 * writes are buffered and reach the store in ONE `flush` (one request, one transaction with the lease
 * check and the lease's extension), which the owner sends when the turn ends and before it releases the
 * response (the output gate, invariant 12).
 *
 * This module is the public facade (`ObjectStorage`, and `Transaction` for a transaction's closure);
 * the cache, the write layers and the flush live in storage-core.ts.
 */
import { InvalidArgumentError } from '../errors.js'
import type { PrefetchedRows } from '../store/lock-store.js'
import type { FlushResult, ObjectLease, ObjectStore } from '../store/object-store.js'
import { assertDoId, assertNodeId, assertPositiveMs, assertToken, describe } from '../validate.js'
import { TransactionEndedError } from './errors.js'
import type { Layer } from './layer.js'
import { checkPrefetched } from './prefetched.js'
import type { StorageGetOptions, StorageListOptions, StoragePutOptions, StorageTransactionOptions } from './options.js'
import { StorageCore, type CacheState } from './storage-core.js'

/** Options of the {@link ObjectStorage} constructor. */
export interface ObjectStorageOptions {
  /** Where the object's rows live: the same database as its lease. */
  store: ObjectStore
  /**
   * The lease every call is made under (a guard `Lock` has every field). When `signal` fires (the lease
   * was lost or released), every later call rejects with its `LockLostError` before any I/O, and the
   * cache and buffered writes are dropped (docs/design.md invariants 7 and 11).
   */
  lease: ObjectLease & { signal?: AbortSignal }
  /**
   * The object's rows when the lease began, as the acquire read them (a guard `Lock`'s `prefetched`):
   * the cache starts with them, so reading them costs no request. When `complete`, they are every row
   * of the object: a key not among them is absent and `list()` is answered from the cache, with no
   * request either. Give only rows read under THIS lease, in its acquire (docs/design.md invariant 11).
   * @default none: every first read of a key goes to the store
   */
  prefetched?: PrefetchedRows
  /**
   * The cache of this object's PREVIOUS lease on this node ({@link ObjectStorage.snapshot}), to start
   * from instead of an empty cache. Accepted only for the lease whose token is the snapshot's + 1 on
   * the same store and object: tokens grow by exactly one per acquire, so nobody else held the object
   * in between and the cached rows are still the committed state (docs/design.md invariant 11). Any
   * other lease is refused (`InvalidArgumentError`). Rows in `prefetched` are newer and win.
   * @default none
   */
  resume?: StorageSnapshot
  /**
   * Called when a committed flush's answer says another node asked for the object
   * (`LockStore.requestHandover`): the owner may finish its queue and release. Errors are swallowed.
   * @default none
   */
  onHandoverRequested?: () => void
  /**
   * Whether each flush also extends the lease to store now + `lease.ttlMs`, in its transaction. Set
   * `false` when something else keeps the lease alive: a guard's lease has its heartbeat, and a
   * flush's extension never moves the guard's local validity (`lock.validUntil`), so for it the
   * extension is a write to the lock table (its row and its expiry index) on every flush that buys
   * nothing. The flush then carries the fence (same node, same token, unexpired) and the writes only:
   * still fenced, still one request. StatelessDO's activations and per-request leases set it `false`.
   * @default true
   */
  extendLease?: boolean
}

/**
 * What an {@link ObjectStorage} knew of its object when its lease ended, for the next lease of the same
 * object on this node ({@link ObjectStorageOptions.resume}). Opaque: only `snapshot()` makes one.
 */
export class StorageSnapshot {
  /** The object. */
  readonly doId: string
  /** The token of the lease it was taken under; only `fencingToken + 1` may resume from it. */
  readonly fencingToken: number

  /** Made by {@link ObjectStorage.snapshot} only (its rows are kept out of reach). */
  constructor(state: CacheState) {
    if (!snapshotMaking) throw new InvalidArgumentError('StorageSnapshot', 'made by ObjectStorage.snapshot() only')
    this.doId = state.doId
    this.fencingToken = state.fencingToken
    snapshots.set(this, state)
  }
}

/** Set only while {@link ObjectStorage.readOnly} constructs one. */
let readOnlyConstruction = false

/** The rows behind each snapshot, out of reach of the caller that holds it. */
const snapshots = new WeakMap<StorageSnapshot, CacheState>()
let snapshotMaking = false

/** The cache state of `snapshot`, once checked against the lease that resumes it. */
function resumedState(snapshot: unknown, store: ObjectStore, doId: string, fencingToken: number): CacheState {
  const state = snapshot instanceof StorageSnapshot ? snapshots.get(snapshot) : undefined
  if (!state) throw new InvalidArgumentError('options.resume', `expected a StorageSnapshot, got ${describe(snapshot)}`)
  if (state.store !== store || state.doId !== doId || state.fencingToken + 1 !== fencingToken) {
    throw new InvalidArgumentError(
      'options.resume',
      `was taken under "${state.doId}" token ${state.fencingToken}${state.store === store ? '' : ' of another store'}; ` +
        `only token ${state.fencingToken + 1} of that object and store may resume it, not "${doId}" token ${fencingToken}`,
    )
  }
  return state
}

/**
 * Durable Object storage for one lease: `get`, `put`, `delete`, `list`, `deleteAll` and `transaction`
 * with Durable Objects' arguments, results and errors, plus {@link flush} for the owner.
 *
 * **Writes are buffered.** `put`/`delete`/`deleteAll` change the turn's view at once (every later read
 * sees them, read-your-writes) and resolve as soon as they are buffered, as in Durable Objects, where
 * `await put()` resolves once the write is in the object's memory. Nobody outside the turn can observe
 * them before {@link flush} commits them: the owner flushes when the turn ends and releases the response
 * only afterwards, which is what Durable Objects' output gate guarantees (invariant 12). A turn's
 * writes, transactions included, go in ONE flush: one request, one store transaction with the lease
 * check and, unless `extendLease` is `false`, the lease's extension (invariant 13: a warm write costs one
 * round trip).
 *
 * **Reads are cached** for as long as this lease is held (invariant 11): the first `get` of a key costs
 * one request (all keys of one `get(keys)` together), later ones none; `list()` reads the committed rows
 * once and merges the turn's unflushed writes and deletes into them (limit, reverse and `deleteAll()`
 * included). `delete()` of a key not yet read costs one read too: it answers whether the key existed.
 *
 * **Values** are stored as structured clones (see `encodeValue`): `put` copies the value at once, so
 * changing the object afterwards changes nothing stored, and every `get` returns a new copy, as in
 * Durable Objects (two `get`s of one key are never the same object).
 *
 * **Failure.** A store call that fails (a lost lease: `StaleFencingTokenError`; an unreachable store:
 * `StoreUnavailableError`) ends this storage: it rejects, the buffered writes are dropped (a failed flush
 * wrote nothing), and every later call rejects with the same error. The turn failed; a new turn gets a
 * new `ObjectStorage`.
 *
 * Where it differs from Durable Objects (each checked against real `ctx.storage` in
 * test/workers/storage-semantics.test.ts): the limits are the KV backend's, stricter than a
 * SQLite-backed object's (src/storage/limits.ts); a key with NUL is refused and two different lone
 * surrogates name one key (`toKey`); a few values are refused or kept differently (`encodeValue`); a
 * transaction's writes are durable at the turn's flush ({@link transaction}). Not provided: alarms
 * (`getAlarm`/`setAlarm`/`deleteAlarm`), `transactionSync`, `sql`, `kv`, bookmarks.
 *
 * @example
 * ```ts
 * const result = await guard.acquire(doId)
 * if (!result.acquired) return busy(result)
 * const storage = new ObjectStorage({ store: objects, lease: result.lock })
 * const n = ((await storage.get<number>('n')) ?? 0) + 1 // one request; a second get costs none
 * await storage.put('n', n) // buffered
 * await storage.flush() // one request: lease check + write + lease extension
 * return new Response(String(n)) // only now is the write acknowledged
 * ```
 */
export class ObjectStorage {
  readonly #core: StorageCore

  /**
   * The storage of a read-only request: `get` and `list` read the object's COMMITTED state with no
   * lease (the store's `getCommitted`/`listCommitted`: one statement each, so one committed snapshot
   * per call), and every write rejects with {@link ReadOnlyStorageError}. Nothing is buffered, nothing
   * is flushed. Reads of separate calls may see different commits (there is no lease to hold the
   * object still): read what must agree in one `get(keys)` or `list()`.
   *
   * @param store - the object store; it must have `getCommitted` and `listCommitted`.
   * @param doId - the object.
   */
  static readOnly(store: ObjectStore, doId: string): ObjectStorage {
    if (typeof store?.getCommitted !== 'function' || typeof store.listCommitted !== 'function') {
      throw new InvalidArgumentError('store', 'expected an ObjectStore with getCommitted() and listCommitted()')
    }
    assertDoId(doId)
    readOnlyConstruction = true
    try {
      // A lease no store ever grants (token 0): only its doId is used, and only for reads.
      return new ObjectStorage({ store, lease: { doId, nodeId: 'read-only', fencingToken: 0, ttlMs: 1 } })
    } finally {
      readOnlyConstruction = false
    }
  }

  /** @param options - the store and the lease; validated here, before any I/O. */
  constructor(options: ObjectStorageOptions) {
    const readOnly = readOnlyConstruction
    readOnlyConstruction = false
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('options', `expected { store, lease }, got ${describe(options)}`)
    }
    const { store, lease, prefetched } = options
    if (
      store === null ||
      typeof store !== 'object' ||
      typeof store.get !== 'function' ||
      typeof store.list !== 'function' ||
      typeof store.flush !== 'function'
    ) {
      throw new InvalidArgumentError('options.store', 'expected an ObjectStore with get(), list() and flush()')
    }
    if (lease === null || typeof lease !== 'object') {
      throw new InvalidArgumentError(
        'options.lease',
        `expected { doId, nodeId, fencingToken, ttlMs }, got ${describe(lease)}`,
      )
    }
    const { doId, nodeId, fencingToken, ttlMs, signal } = lease
    assertDoId(doId, 'options.lease.doId')
    assertNodeId(nodeId, 'options.lease.nodeId')
    if (!readOnly) assertToken(fencingToken, 'options.lease.fencingToken')
    assertPositiveMs('options.lease.ttlMs', ttlMs)
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError('options.lease.signal', `expected an AbortSignal, got ${describe(signal)}`)
    }
    const rows = prefetched === undefined ? undefined : checkPrefetched(prefetched)
    const { resume, onHandoverRequested, extendLease = true } = options
    if (typeof extendLease !== 'boolean') {
      throw new InvalidArgumentError('options.extendLease', `expected a boolean, got ${describe(extendLease)}`)
    }
    const resumed = resume === undefined ? undefined : resumedState(resume, store, doId, fencingToken)
    if (onHandoverRequested !== undefined && typeof onHandoverRequested !== 'function') {
      throw new InvalidArgumentError(
        'options.onHandoverRequested',
        `expected a function, got ${describe(onHandoverRequested)}`,
      )
    }
    // A copy: the store is always asked under the lease this storage was made for.
    this.#core = new StorageCore(
      store,
      { doId, nodeId, fencingToken, ttlMs },
      signal,
      rows,
      resumed,
      onHandoverRequested,
      readOnly,
      extendLease,
    )
  }

  /**
   * The committed cache, for this object's next lease on this node ({@link ObjectStorageOptions.resume}):
   * `undefined` unless every write was committed (no unflushed write, no flush in flight, no open
   * transaction) and this storage has not ended. Take it before releasing the lease: the release
   * fires the lease's signal, which drops the cache.
   */
  snapshot(): StorageSnapshot | undefined {
    const state = this.#core.snapshot()
    if (!state) return undefined
    snapshotMaking = true
    try {
      return new StorageSnapshot(state)
    } finally {
      snapshotMaking = false
    }
  }

  /**
   * The value of `key`, or `undefined` when it is not stored. A non-string key is converted with
   * `String()`, as in Durable Objects (`get(1)` reads `'1'`).
   */
  get<T = unknown>(key: string, options?: StorageGetOptions): Promise<T | undefined>
  /**
   * The values of `keys` (at most 128), in a Map holding only the keys found, in key order (code point
   * order of the keys, whatever the order asked), each key once.
   */
  get<T = unknown>(keys: readonly string[], options?: StorageGetOptions): Promise<Map<string, T>>
  /** Either of the above, by the type of `keys` (an array: many). */
  async get(keys: unknown, options?: StorageGetOptions): Promise<unknown> {
    return this.#core.get(undefined, keys, options)
  }

  /**
   * Stores `value` (a structured clone of it, taken now) under `key`. `undefined` is refused (Durable
   * Objects: `put() called with undefined value.`); delete the key instead.
   */
  put<T>(key: string, value: T, options?: StoragePutOptions): Promise<void>
  /**
   * Stores each own enumerable property of `entries` (at most 128) as a key; properties whose value is
   * `undefined` are skipped, as in Durable Objects.
   */
  put<T>(entries: Record<string, T>, options?: StoragePutOptions): Promise<void>
  /** Either of the above: an object (not an array) as first argument is `entries`, as in Durable Objects. */
  async put(keyOrEntries: unknown, value?: unknown, options?: unknown): Promise<void> {
    return this.#core.put(undefined, keyOrEntries, value, options, arguments.length)
  }

  /** Deletes `key`; true when it existed. */
  delete(key: string, options?: StoragePutOptions): Promise<boolean>
  /** Deletes `keys` (at most 128); how many of them existed (each key counted once). */
  delete(keys: readonly string[], options?: StoragePutOptions): Promise<number>
  /** Either of the above, by the type of `keys` (an array: many). */
  async delete(keys: unknown, options?: StoragePutOptions): Promise<boolean | number> {
    return this.#core.delete(undefined, keys, options)
  }

  /**
   * The entries within the bounds, in key order (code point order; descending with `reverse`), at most
   * `limit`: the committed ones with this turn's unflushed writes and deletes applied.
   */
  async list<T = unknown>(options?: StorageListOptions): Promise<Map<string, T>> {
    return this.#core.list(undefined, options) as Promise<Map<string, T>>
  }

  /**
   * Deletes every key of the object (buffered like any write: the flush deletes them all first, then
   * applies what was written after). Refused inside a transaction, as in Durable Objects.
   */
  async deleteAll(options?: StoragePutOptions): Promise<void> {
    return this.#core.deleteAll(undefined, options)
  }

  /**
   * Runs `closure` with a {@link StorageTransaction}: its reads see its own writes; `txn.rollback()` or
   * a throw discards them (a throw rejects with the closure's error); otherwise they join the turn's
   * writes when the closure's promise settles, and this resolves with the closure's result.
   *
   * A transaction is part of the turn's single flush, not a request of its own: the turn's writes reach
   * the store all together or not at all anyway, so the transaction is as atomic as in Durable Objects,
   * and the turn still costs one round trip. Its writes are durable when the turn's flush commits, not
   * when this resolves (nobody outside the turn can tell the difference: the response waits for the
   * flush). As in SQLite-backed Durable Objects, calls on this storage itself while the closure runs
   * belong to the (innermost) open transaction; transactions nest.
   *
   * Transactions started together by the same code (`Promise.all(keys.map((k) => storage.transaction(...)))`)
   * run one after another, each after the one before it ended, as in Durable Objects; what that code
   * calls next, before it awaits, is outside them. Unlike Durable Objects, a call made after an await
   * while a transaction is open is taken as part of the innermost open one (without an async context
   * nothing tells it from a call by that transaction's closure): it sees that transaction's writes, and
   * its own writes, a nested transaction's included, are discarded if that transaction rolls back or
   * throws. A nested transaction that ends after its parent commits into the turn.
   */
  async transaction<T>(
    closure: (txn: StorageTransaction) => Promise<T> | T,
    _options?: StorageTransactionOptions,
  ): Promise<T> {
    return this.#core.transaction(closure, (layer) => new Transaction(this.#core, layer))
  }

  /**
   * Durable Objects: resolves once every earlier write is durable. Here: {@link flush}es now (one
   * request if anything is buffered).
   */
  async sync(): Promise<void> {
    await this.#core.flush()
  }

  /**
   * Sends every buffered write of the turn (transactions that completed included) in ONE `store.flush`:
   * one request, one transaction holding the lease check, the writes and the lease's extension. Resolves
   * the lease's new expiry, or `undefined` when nothing was buffered (then nothing is sent). The owner
   * calls it when the turn ends, before it releases the response (docs/design.md invariant 12).
   *
   * On failure (`StaleFencingTokenError`: the lease is gone and nothing was written;
   * `StoreUnavailableError`) the buffered writes are dropped and this storage rejects every later call
   * with the same error: the turn failed.
   *
   * Flush also when the handler threw: Durable Objects keep the writes a request made before it failed.
   * Multiple flushes reach the store in call order; a flush with nothing new settles with the one in
   * flight, so that it still means "every earlier write is durable".
   */
  flush(): Promise<FlushResult | undefined> {
    return this.#core.flush()
  }

  /**
   * Whether writes are buffered that no {@link flush} has taken yet. A turn that ends with none costs no
   * flush (a warm read costs no round trip, invariant 13). Writes of a transaction still open are not
   * counted: they join the buffer when it completes.
   */
  hasPendingWrites(): boolean {
    return this.#core.hasPendingWrites()
  }

  /**
   * Ends this storage without flushing: drops the cache and every unflushed write (invariant 11), and
   * every later call rejects with `reason` (default: a `LockLostError` saying it was discarded). For the
   * owner, when the activation ends.
   */
  discard(reason?: unknown): void {
    this.#core.discard(reason ?? this.#core.discardedError())
  }
}

/**
 * The `txn` a {@link ObjectStorage.transaction} closure gets: `get`, `put`, `delete`, `list` as on the
 * storage, reading through this transaction's writes, plus {@link StorageTransaction.rollback}. Once the
 * transaction ended (rolled back, or its closure settled), every call rejects with a
 * {@link TransactionEndedError}, as in Durable Objects.
 */
export interface StorageTransaction {
  /** As {@link ObjectStorage.get}, seeing this transaction's writes. */
  get<T = unknown>(key: string, options?: StorageGetOptions): Promise<T | undefined>
  /** As {@link ObjectStorage.get}, seeing this transaction's writes. */
  get<T = unknown>(keys: readonly string[], options?: StorageGetOptions): Promise<Map<string, T>>
  /** As {@link ObjectStorage.put}, into this transaction. */
  put<T>(key: string, value: T, options?: StoragePutOptions): Promise<void>
  /** As {@link ObjectStorage.put}, into this transaction. */
  put<T>(entries: Record<string, T>, options?: StoragePutOptions): Promise<void>
  /** As {@link ObjectStorage.delete}, into this transaction. */
  delete(key: string, options?: StoragePutOptions): Promise<boolean>
  /** As {@link ObjectStorage.delete}, into this transaction. */
  delete(keys: readonly string[], options?: StoragePutOptions): Promise<number>
  /** As {@link ObjectStorage.list}, seeing this transaction's writes. */
  list<T = unknown>(options?: StorageListOptions): Promise<Map<string, T>>
  /** Refused, as in Durable Objects: `Cannot call deleteAll() within a transaction`. */
  deleteAll(options?: StoragePutOptions): Promise<void>
  /**
   * Discards this transaction's writes; the closure's result is still returned. Later calls on this
   * `txn` reject. Calling it twice is harmless.
   */
  rollback(): void
}

/** The {@link StorageTransaction} of one layer. */
class Transaction implements StorageTransaction {
  readonly #core: StorageCore
  readonly #layer: Layer

  constructor(core: StorageCore, layer: Layer) {
    this.#core = core
    this.#layer = layer
  }

  get<T = unknown>(key: string, options?: StorageGetOptions): Promise<T | undefined>
  get<T = unknown>(keys: readonly string[], options?: StorageGetOptions): Promise<Map<string, T>>
  async get(keys: unknown, options?: StorageGetOptions): Promise<unknown> {
    this.#open('get')
    return this.#core.get(this.#layer, keys, options)
  }

  put<T>(key: string, value: T, options?: StoragePutOptions): Promise<void>
  put<T>(entries: Record<string, T>, options?: StoragePutOptions): Promise<void>
  async put(keyOrEntries: unknown, value?: unknown, options?: unknown): Promise<void> {
    this.#open('put')
    return this.#core.put(this.#layer, keyOrEntries, value, options, arguments.length)
  }

  delete(key: string, options?: StoragePutOptions): Promise<boolean>
  delete(keys: readonly string[], options?: StoragePutOptions): Promise<number>
  async delete(keys: unknown, options?: StoragePutOptions): Promise<boolean | number> {
    this.#open('delete')
    return this.#core.delete(this.#layer, keys, options)
  }

  async list<T = unknown>(options?: StorageListOptions): Promise<Map<string, T>> {
    this.#open('list')
    return this.#core.list(this.#layer, options) as Promise<Map<string, T>>
  }

  async deleteAll(_options?: StoragePutOptions): Promise<void> {
    this.#open('deleteAll')
    throw new InvalidArgumentError('txn', 'Cannot call deleteAll() within a transaction')
  }

  rollback(): void {
    if (this.#layer.state === 'committed') throw new TransactionEndedError('rollback', 'committed')
    this.#layer.state = 'rolled back'
    this.#layer.writes.clear()
  }

  #open(operation: string): void {
    this.#core.check()
    const { state } = this.#layer
    if (state !== 'open') throw new TransactionEndedError(operation, state)
  }
}
