/**
 * Durable Object storage's key-value API (`ctx.storage.get/put/delete/list/deleteAll/transaction`) over
 * an {@link ObjectStore}: same names, arguments and results, so code written for `ctx.storage` runs
 * unchanged, with every write fenced by the lease (docs/design.md invariant 10).
 *
 * One `ObjectStorage` serves one lease (today: one turn). Reads go to the store once and are cached;
 * writes are buffered and reach the store in ONE `flush` (one request, one transaction with the lease
 * check and the lease's extension), which the owner sends when the turn ends and before it releases the
 * response (the output gate, invariant 12).
 */
import { InvalidArgumentError, LockLostError } from '../errors.js'
import { throwIfLeaseEnded } from '../store/lease-signal.js'
import {
  compareKeys,
  type EncodedValue,
  type FlushResult,
  type ObjectLease,
  type ObjectListRange,
  type ObjectStore,
} from '../store/object-store.js'
import { assertDoId, assertNodeId, assertPositiveMs, assertToken, describe } from '../validate.js'
import { TransactionEndedError } from './errors.js'
import { checkKeyCount, checkValueSize, toKey } from './limits.js'
import {
  toListQuery,
  toOptions,
  type ListQuery,
  type StorageGetOptions,
  type StorageListOptions,
  type StoragePutOptions,
  type StorageTransactionOptions,
} from './options.js'
import { decodeValue, encodeValue } from './serializer.js'

/** A key's state in a layer or the cache: its encoded value, or `null` for deleted / known absent. */
type Slot = EncodedValue | null

/**
 * Writes not yet committed: the turn's own (the base layer), or a transaction's (a layer over its
 * parent). `cleared` marks a `deleteAll()`: nothing under this layer counts any more.
 */
interface Layer {
  readonly writes: Map<string, Slot>
  cleared: boolean
  readonly parent: Layer | undefined
  state: 'open' | 'rolled back' | 'committed'
}

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
 * check and the lease's extension (invariant 13: a warm write costs one round trip).
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

  /** @param options - the store and the lease; validated here, before any I/O. */
  constructor(options: ObjectStorageOptions) {
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('options', `expected { store, lease }, got ${describe(options)}`)
    }
    this.#core = new StorageCore(options.store, options.lease)
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
   */
  async transaction<T>(
    closure: (txn: StorageTransaction) => Promise<T> | T,
    _options?: StorageTransactionOptions,
  ): Promise<T> {
    return this.#core.transaction(closure)
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

/** The state shared by an {@link ObjectStorage} and its transactions. */
class StorageCore {
  readonly #store: ObjectStore
  readonly #lease: ObjectLease
  readonly #signal: AbortSignal | undefined
  /** What the store holds, as far as this lease has read or flushed it (`null`: known absent). */
  readonly #committed = new Map<string, Slot>()
  /** `#committed` knows every key of the object (after a flushed `deleteAll`): no read needs the store. */
  #complete = false
  /** Bumped by every committed flush: a read that began before one must not fill the cache. */
  #epoch = 0
  /** The turn's unflushed writes. */
  readonly #base: Layer = { writes: new Map(), cleared: false, parent: undefined, state: 'open' }
  /** Open transactions, innermost last. */
  readonly #transactions: Layer[] = []
  /** Snapshots taken by `flush()` and not yet committed, oldest first: still the truth for reads. */
  #flushing: Layer[] = []
  /** The last flush: the next one is sent after it (flushes reach the store in call order). */
  #lastFlush: Promise<unknown> = Promise.resolve()
  /** Why this storage ended; every call rejects with it. */
  #ended: unknown

  constructor(store: ObjectStore, lease: ObjectLease & { signal?: AbortSignal }) {
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
    assertToken(fencingToken, 'options.lease.fencingToken')
    assertPositiveMs('options.lease.ttlMs', ttlMs)
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new InvalidArgumentError('options.lease.signal', `expected an AbortSignal, got ${describe(signal)}`)
    }
    this.#store = store
    // A copy: the store is always asked under the lease this storage was made for.
    this.#lease = { doId, nodeId, fencingToken, ttlMs }
    this.#signal = signal
    signal?.addEventListener('abort', () => this.#end(this.#leaseError()), { once: true })
  }

  async get(scope: Layer | undefined, keys: unknown, options: unknown): Promise<unknown> {
    this.check()
    const { noCache } = toOptions('options', options)
    const layer = scope ?? this.#top()
    if (!Array.isArray(keys)) {
      const key = toKey('key', keys)
      const slot = this.#resolve(layer, key)
      if (slot !== undefined) return slot === null ? undefined : decodeValue(slot, key)
      const value = (await this.#read([key], Boolean(noCache))).get(key)
      return value === undefined ? undefined : decodeValue(value, key)
    }
    checkKeyCount('keys', keys.length)
    const wanted = [...new Set(keys.map((key, i) => toKey(`keys[${i}]`, key)))]
    const found = new Map<string, EncodedValue>()
    const missing: string[] = []
    for (const key of wanted) {
      const slot = this.#resolve(layer, key)
      if (slot === undefined) missing.push(key)
      else if (slot !== null) found.set(key, slot)
    }
    if (missing.length > 0)
      for (const [key, value] of await this.#read(missing, Boolean(noCache))) found.set(key, value)
    const result = new Map<string, unknown>()
    for (const key of [...found.keys()].sort(compareKeys)) result.set(key, decodeValue(found.get(key)!, key))
    return result
  }

  async put(
    scope: Layer | undefined,
    keyOrEntries: unknown,
    value: unknown,
    options: unknown,
    argumentCount: number,
  ): Promise<void> {
    this.check()
    const writes: Array<[string, EncodedValue]> = []
    if (typeof keyOrEntries === 'object' && keyOrEntries !== null && !Array.isArray(keyOrEntries)) {
      // put(entries, options?): the second argument, if any, must be the options.
      if (argumentCount > 1 && value !== undefined && (typeof value !== 'object' || value === null)) {
        throw new InvalidArgumentError(
          'options',
          'put() may only be called with a single key-value pair and optional options as put(key, value, options) or with multiple key-value pairs and optional options as put(entries, options)',
        )
      }
      toOptions('options', value)
      const entries = keyOrEntries as Record<string, unknown>
      for (const name of Object.keys(entries)) {
        const entry = entries[name]
        if (entry === undefined) continue // skipped silently, as Durable Objects do
        const argument = `entries[${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name)}]`
        const key = toKey(argument, name)
        const encoded = encodeValue(entry, key, argument)
        checkValueSize(argument, key, encoded)
        writes.push([key, encoded])
      }
      checkKeyCount('entries', writes.length)
    } else {
      toOptions('options', options)
      const key = toKey('key', keyOrEntries)
      if (value === undefined) throw new InvalidArgumentError('value', 'put() called with undefined value.')
      const encoded = encodeValue(value, key)
      checkValueSize('value', key, encoded)
      writes.push([key, encoded])
    }
    // Everything checked: buffer all or nothing, now (later calls see it whatever they await).
    const layer = scope ?? this.#top()
    for (const [key, encoded] of writes) layer.writes.set(key, encoded)
  }

  async delete(scope: Layer | undefined, keys: unknown, options: unknown): Promise<boolean | number> {
    this.check()
    toOptions('options', options)
    const many = Array.isArray(keys)
    if (many) checkKeyCount('keys', keys.length)
    const wanted = many
      ? [...new Set((keys as unknown[]).map((key, i) => toKey(`keys[${i}]`, key)))]
      : [toKey('key', keys)]
    const layer = scope ?? this.#top()
    let existed = 0
    const unknown: string[] = []
    for (const key of wanted) {
      const slot = this.#resolve(layer, key)
      if (slot === undefined) unknown.push(key)
      else if (slot !== null) existed++
      // Buffered now, before any read, so that calls made after this one see the key gone.
      layer.writes.set(key, null)
    }
    if (unknown.length > 0) existed += (await this.#read(unknown, false)).size
    return many ? existed : existed > 0
  }

  async list(scope: Layer | undefined, options: unknown): Promise<Map<string, unknown>> {
    this.check()
    const query = toListQuery(options)
    const inRange = rangeTest(query)
    // The turn's writes within the range, innermost layer first (it wins), as of this call.
    const overlay = new Map<string, Slot>()
    let cleared = false
    for (const layer of this.#layers(scope ?? this.#top())) {
      for (const [key, slot] of layer.writes) if (!overlay.has(key) && inRange(key)) overlay.set(key, slot)
      if (layer.cleared) {
        cleared = true
        break
      }
    }
    let committed: Array<[string, EncodedValue]> = []
    if (!cleared && this.#complete) {
      for (const [key, slot] of this.#committed) if (slot !== null && inRange(key)) committed.push([key, slot])
    } else if (!cleared) {
      // Each unflushed delete may hide one committed row: ask for that many more, so `limit` still fills.
      let hidden = 0
      for (const slot of overlay.values()) if (slot === null) hidden++
      const { start, startAfter, end, prefix, reverse, limit } = query
      committed = await this.#list(
        {
          ...(start === undefined ? {} : { start }),
          ...(startAfter === undefined ? {} : { startAfter }),
          ...(end === undefined ? {} : { end }),
          ...(prefix === undefined ? {} : { prefix }),
          ...(reverse ? { reverse } : {}),
          ...(limit === undefined ? {} : { limit: limit + hidden }),
        },
        query.noCache,
      )
    }
    const merged = new Map<string, EncodedValue>()
    for (const [key, value] of committed) if (!overlay.has(key)) merged.set(key, value)
    for (const [key, slot] of overlay) if (slot !== null) merged.set(key, slot)
    const keys = [...merged.keys()].sort(query.reverse ? (a, b) => compareKeys(b, a) : compareKeys)
    const result = new Map<string, unknown>()
    for (const key of query.limit === undefined ? keys : keys.slice(0, query.limit)) {
      result.set(key, decodeValue(merged.get(key)!, key))
    }
    return result
  }

  async deleteAll(scope: Layer | undefined, options: unknown): Promise<void> {
    this.check()
    toOptions('options', options)
    const layer = scope ?? this.#top()
    if (layer !== this.#base) throw new InvalidArgumentError('txn', 'Cannot call deleteAll() within a transaction')
    layer.writes.clear()
    layer.cleared = true
  }

  async transaction<T>(closure: (txn: StorageTransaction) => Promise<T> | T): Promise<T> {
    this.check()
    if (typeof closure !== 'function') {
      throw new InvalidArgumentError('closure', `expected a function, got ${describe(closure)}`)
    }
    const layer: Layer = { writes: new Map(), cleared: false, parent: this.#top(), state: 'open' }
    this.#transactions.push(layer)
    const close = () => this.#transactions.splice(this.#transactions.indexOf(layer), 1)
    let result: T
    try {
      result = await closure(new Transaction(this, layer))
    } catch (error) {
      layer.state = 'rolled back'
      layer.writes.clear()
      close()
      throw error
    }
    close()
    if (layer.state === 'open') {
      layer.state = 'committed'
      // The parent may have ended meanwhile (the storage failed): then there is nothing to join.
      this.check()
      for (const [key, slot] of layer.writes) layer.parent!.writes.set(key, slot)
    }
    return result
  }

  flush(): Promise<FlushResult | undefined> {
    try {
      this.check()
    } catch (error) {
      return Promise.reject(error)
    }
    const base = this.#base
    const previous = this.#lastFlush
    // Nothing new: settles with the flush in flight, so that "flushed" still means "every earlier write".
    if (base.writes.size === 0 && !base.cleared) return previous.then(() => undefined)
    // The snapshot is taken now, inside the call: writes made after it go to the next flush. The base
    // layer object stays (open transactions point at it) and starts empty; reads see the snapshot until
    // it committed (then it is the committed state).
    const layer: Layer = { writes: new Map(base.writes), cleared: base.cleared, parent: undefined, state: 'open' }
    base.writes.clear()
    base.cleared = false
    this.#flushing.push(layer)
    const flush = this.#send(layer, previous)
    this.#lastFlush = flush
    return flush
  }

  /** Whether writes are buffered that no {@link flush} has taken yet (open transactions' not counted). */
  hasPendingWrites(): boolean {
    return this.#ended === undefined && (this.#base.writes.size > 0 || this.#base.cleared)
  }

  /** Ends this storage: drops the cache and every unflushed write; later calls reject with `reason`. */
  discard(reason: unknown): void {
    this.#end(reason)
  }

  /** Sends one snapshot, after the flush before it committed (flushes reach the store in call order). */
  async #send(layer: Layer, previous: Promise<unknown>): Promise<FlushResult> {
    await previous // if it failed, this storage ended, and this snapshot is dropped with it
    this.check()
    let result: FlushResult
    try {
      result = await this.#store.flush(this.#lease, { deleteAll: layer.cleared, entries: layer.writes })
    } catch (error) {
      this.#end(error)
      throw error
    }
    if (this.#ended === undefined) {
      this.#flushing.shift()
      this.#epoch++
      if (layer.cleared) {
        this.#committed.clear()
        this.#complete = true
      }
      for (const [key, slot] of layer.writes) this.#committed.set(key, slot)
    }
    // Committed under the lease even if the lease ended since: the writes are durable, say so.
    return result
  }

  /** The layers a read at `layer` sees, innermost first: its chain down to the base, then flushes in flight. */
  *#layers(layer: Layer): Generator<Layer> {
    for (let l: Layer | undefined = layer; l; l = l.parent) yield l
    for (let i = this.#flushing.length - 1; i >= 0; i--) yield this.#flushing[i]!
  }

  /** A key's state as of now, without I/O: a slot, or `undefined` when only the store knows. */
  #resolve(layer: Layer, key: string): Slot | undefined {
    for (const l of this.#layers(layer)) {
      const slot = l.writes.get(key)
      if (slot !== undefined) return slot
      if (l.cleared) return null
    }
    const slot = this.#committed.get(key)
    if (slot !== undefined) return slot
    return this.#complete ? null : undefined
  }

  /** Where an untargeted call goes: the innermost open transaction (as in SQLite-backed Durable Objects), else the base. */
  #top(): Layer {
    for (let i = this.#transactions.length - 1; i >= 0; i--) {
      if (this.#transactions[i]!.state === 'open') return this.#transactions[i]!
    }
    return this.#base
  }

  /** One store `get` for keys no layer or cache knows; fills the cache (unless `noCache`). */
  async #read(keys: string[], noCache: boolean): Promise<Map<string, EncodedValue>> {
    const epoch = this.#epoch
    let found: Map<string, EncodedValue>
    try {
      found = await this.#store.get(this.#lease, keys)
    } catch (error) {
      this.#end(error)
      throw error
    }
    this.check()
    if (!noCache && epoch === this.#epoch) {
      for (const key of keys) if (!this.#committed.has(key)) this.#committed.set(key, found.get(key) ?? null)
    }
    return found
  }

  /** One store `list`; fills the cache (unless `noCache`). */
  async #list(range: ObjectListRange, noCache: boolean): Promise<Array<[string, EncodedValue]>> {
    const epoch = this.#epoch
    let rows: Array<[string, EncodedValue]>
    try {
      rows = await this.#store.list(this.#lease, range)
    } catch (error) {
      this.#end(error)
      throw error
    }
    this.check()
    if (!noCache && epoch === this.#epoch) {
      for (const [key, value] of rows) if (!this.#committed.has(key)) this.#committed.set(key, value)
    }
    return rows
  }

  /** Throws when this storage ended or its lease's signal fired (then ends it first). */
  check(): void {
    if (this.#ended !== undefined) throw this.#ended
    if (this.#signal?.aborted) {
      const error = this.#leaseError()
      this.#end(error)
      throw error
    }
  }

  discardedError(): LockLostError {
    return new LockLostError(this.#lease.doId, this.#lease.fencingToken, 'its storage was discarded')
  }

  #leaseError(): unknown {
    try {
      throwIfLeaseEnded({ ...this.#lease, signal: this.#signal })
    } catch (error) {
      return error
    }
    return new LockLostError(this.#lease.doId, this.#lease.fencingToken, 'lease signal fired')
  }

  /** Drops the cache and every unflushed write (invariant 11); later calls reject with `error`. */
  #end(error: unknown): void {
    if (this.#ended !== undefined) return
    this.#ended = error
    this.#committed.clear()
    this.#complete = false
    this.#base.writes.clear()
    this.#base.cleared = false
    this.#flushing = []
    for (const layer of this.#transactions) layer.writes.clear()
  }
}

/** Whether a key lies within a `list()` call's bounds (how Durable Objects combine them, by code point). */
function rangeTest(query: ListQuery): (key: string) => boolean {
  const { start, startAfter, end, prefix } = query
  return (key) =>
    (start === undefined || compareKeys(key, start) >= 0) &&
    (startAfter === undefined || compareKeys(key, startAfter) > 0) &&
    (end === undefined || compareKeys(key, end) < 0) &&
    (prefix === undefined || key.startsWith(prefix))
}
