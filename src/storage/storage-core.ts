/**
 * The state behind one {@link ObjectStorage} and its transactions: the cache of committed rows, the
 * layers of buffered writes, and the flushes that send them. `ObjectStorage` and `Transaction` are thin
 * facades over it; every call of either lands here with the layer it targets (`undefined`: the
 * innermost open one).
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
import { describe } from '../validate.js'
import { ReadOnlyStorageError } from './errors.js'
import type { Layer, Slot } from './layer.js'
import { checkKeyCount, toKey } from './limits.js'
import { mergeListed, rangeTest, storeRange } from './list-merge.js'
import { toListQuery, toOptions } from './options.js'
import { toWrites } from './put-arguments.js'
import { decodeValue } from './serializer.js'

/** What a storage knew of the store when its lease ended: see {@link StorageCore.snapshot}. */
export interface CacheState {
  /** The store the rows were read from (a snapshot serves only a storage over the same store). */
  readonly store: ObjectStore
  /** The lease they were read under. */
  readonly doId: string
  /** Its token: only the lease with the next token may start from them. */
  readonly fencingToken: number
  /** Committed rows (`null`: known absent). */
  readonly committed: ReadonlyMap<string, Slot>
  /** `committed` is every key of the object. */
  readonly complete: boolean
}

/** A transaction started in the current synchronous run: see {@link StorageCore.transaction}. */
interface Started {
  /** The layer its caller's calls go to, so also the parent of a sibling started after it. */
  readonly parent: Layer
  /** Settles once it ended (committed, rolled back, or failed). */
  readonly ended: Promise<void>
}

/** The state shared by an {@link ObjectStorage} and its transactions. */
export class StorageCore {
  readonly #store: ObjectStore
  readonly #lease: ObjectLease
  readonly #signal: AbortSignal | undefined
  /** What the store holds, as far as this lease has read or flushed it (`null`: known absent). */
  readonly #committed = new Map<string, Slot>()
  /**
   * `#committed` knows every key of the object (after a flushed `deleteAll`, or a complete prefetch): no
   * read needs the store.
   */
  #complete = false
  /** Bumped by every committed flush: a read that began before one must not fill the cache. */
  #epoch = 0
  /** The turn's unflushed writes. */
  readonly #base: Layer = { writes: new Map(), cleared: false, parent: undefined, state: 'open' }
  /** Open transactions, innermost last. */
  readonly #transactions: Layer[] = []
  /**
   * The transactions whose closure is running synchronously now, innermost last: a call made meanwhile
   * is that closure's. Once a closure awaited, nothing tells its calls from anyone else's (workerd has
   * no AsyncLocalStorage without nodejs_compat).
   */
  readonly #running: Layer[] = []
  /**
   * The last transaction started in the current synchronous run by each caller (the closure running
   * then, or `null` for code outside any), until a microtask queued before any of the run's closures
   * was called: that microtask runs before any of their continuations, so no code that sees an entry
   * runs inside the entry's closure, and a later call from the same caller is outside it.
   */
  #started: Map<Layer | null, Started> | undefined
  /** Transactions waiting for a sibling to end (they have no layer yet, and will write). */
  #queued = 0
  /** Snapshots taken by `flush()` and not yet committed, oldest first: still the truth for reads. */
  #flushing: Layer[] = []
  /** The last flush: the next one is sent after it (flushes reach the store in call order). */
  #lastFlush: Promise<unknown> = Promise.resolve()
  /** Why this storage ended; every call rejects with it. */
  #ended: unknown
  /** A read-only request's storage: reads committed state with no lease, refuses every write. */
  readonly #readOnly: boolean
  /** Told when a committed flush's answer says another node asked for the object. */
  readonly #onHandoverRequested: (() => void) | undefined
  /** Whether flushes extend the lease (`ObjectStorageOptions.extendLease`). */
  readonly #extend: boolean

  /**
   * `store`, `lease` and `prefetched` as `ObjectStorage`'s constructor validated them (`lease` is its
   * own copy): the prefetched rows are committed state, and with `complete` the whole of it.
   */
  constructor(
    store: ObjectStore,
    lease: ObjectLease,
    signal: AbortSignal | undefined,
    prefetched?: { entries: Iterable<[string, EncodedValue]>; complete: boolean },
    resumed?: CacheState,
    onHandoverRequested?: () => void,
    readOnly = false,
    extend = true,
  ) {
    this.#readOnly = readOnly
    this.#extend = extend
    this.#store = store
    this.#lease = lease
    this.#signal = signal
    this.#onHandoverRequested = onHandoverRequested
    if (resumed) {
      // Checked by the caller: the previous lease of this object on this store, token - 1.
      for (const [key, slot] of resumed.committed) this.#committed.set(key, slot)
      this.#complete = resumed.complete
    }
    if (prefetched) {
      // Read under this lease, so fresher than anything resumed; complete if either is.
      for (const [key, value] of prefetched.entries) this.#committed.set(key, value)
      this.#complete ||= prefetched.complete
    }
    signal?.addEventListener('abort', () => this.#end(this.#leaseError()), { once: true })
  }

  async get(scope: Layer | undefined, keys: unknown, options: unknown): Promise<unknown> {
    this.check()
    const { noCache } = toOptions('options', options)
    const layer = scope ?? this.#scope()
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
    this.checkWritable('put')
    const writes = toWrites(keyOrEntries, value, options, argumentCount)
    // Everything checked: buffer all or nothing, now (later calls see it whatever they await).
    const layer = scope ?? this.#scope()
    for (const [key, encoded] of writes) layer.writes.set(key, encoded)
  }

  async delete(scope: Layer | undefined, keys: unknown, options: unknown): Promise<boolean | number> {
    this.check()
    this.checkWritable('delete')
    toOptions('options', options)
    const many = Array.isArray(keys)
    if (many) checkKeyCount('keys', keys.length)
    const wanted = many
      ? [...new Set((keys as unknown[]).map((key, i) => toKey(`keys[${i}]`, key)))]
      : [toKey('key', keys)]
    const layer = scope ?? this.#scope()
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
    for (const layer of this.#layers(scope ?? this.#scope())) {
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
      committed = await this.#list(storeRange(query, overlay), query.noCache)
    }
    return mergeListed(committed, overlay, query)
  }

  async deleteAll(scope: Layer | undefined, options: unknown): Promise<void> {
    this.check()
    this.checkWritable('deleteAll')
    toOptions('options', options)
    const layer = scope ?? this.#scope()
    if (layer !== this.#base) throw new InvalidArgumentError('txn', 'Cannot call deleteAll() within a transaction')
    layer.writes.clear()
    layer.cleared = true
  }

  /**
   * Runs `closure` in a new transaction layer over the caller's ({@link #scope}). `open` makes what the
   * closure gets from the layer: the facade's `Transaction`, so that this module needs nothing of the
   * facade.
   *
   * A transaction called by the same caller, in the same synchronous run, as one started before it
   * (`Promise.all(keys.map((k) => storage.transaction(...)))`) is that one's sibling, not nested in it:
   * it starts once that one ended, as Durable Objects serialize them. Any other call is run at once
   * (nested in the innermost open transaction if it comes after an await): waiting there could wait for
   * a transaction that awaits this one.
   */
  async transaction<T, Txn>(closure: (txn: Txn) => Promise<T> | T, open: (layer: Layer) => Txn): Promise<T> {
    this.check()
    this.checkWritable('transaction')
    if (typeof closure !== 'function') {
      throw new InvalidArgumentError('closure', `expected a function, got ${describe(closure)}`)
    }
    const caller = this.#running[this.#running.length - 1] ?? null
    const parent = this.#scope()
    if (this.#started === undefined) {
      const started = new Map<Layer | null, Started>()
      this.#started = started
      queueMicrotask(() => {
        if (this.#started === started) this.#started = undefined
      })
    }
    const sibling = this.#started.get(caller)
    let ended!: () => void
    this.#started.set(caller, { parent, ended: new Promise<void>((resolve) => (ended = resolve)) })
    try {
      if (sibling !== undefined) {
        this.#queued++
        try {
          await sibling.ended
        } finally {
          this.#queued--
        }
        this.check()
      }
      return await this.#run(closure, open, parent)
    } finally {
      ended()
    }
  }

  /** One transaction's life: its layer over `parent`, its closure, then its commit or rollback. */
  async #run<T, Txn>(closure: (txn: Txn) => Promise<T> | T, open: (layer: Layer) => Txn, parent: Layer): Promise<T> {
    const layer: Layer = { writes: new Map(), cleared: false, parent, state: 'open' }
    this.#transactions.push(layer)
    const close = () => this.#transactions.splice(this.#transactions.indexOf(layer), 1)
    let result: T
    try {
      let returned: Promise<T> | T
      this.#running.push(layer)
      try {
        returned = closure(open(layer))
      } finally {
        this.#running.pop()
      }
      result = await returned
    } catch (error) {
      layer.state = 'rolled back'
      layer.writes.clear()
      close()
      throw error
    }
    close()
    if (layer.state === 'open') {
      layer.state = 'committed'
      // The storage may have ended meanwhile (it failed): then there is nothing to join.
      this.check()
      // Into the nearest layer still open: a parent that ended already (a nested transaction that
      // outlived it) has passed its writes on or dropped them, and would drop these.
      const into = this.#live(parent)
      for (const [key, slot] of layer.writes) into.writes.set(key, slot)
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

  /**
   * The committed cache, for the next lease of this object (token + 1, which proves nobody else held it
   * in between): `undefined` unless everything written was committed (no unflushed write, no flush in
   * flight, no open transaction) and the storage has not ended. Take it before the lease is released:
   * the release fires the lease's signal, which drops the cache.
   */
  snapshot(): CacheState | undefined {
    if (this.#ended !== undefined || this.hasPendingWrites() || this.#flushing.length > 0) return undefined
    if (this.#transactions.length > 0 || this.#queued > 0) return undefined
    return {
      store: this.#store,
      doId: this.#lease.doId,
      fencingToken: this.#lease.fencingToken,
      committed: new Map(this.#committed),
      complete: this.#complete,
    }
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
      result = await this.#store.flush(
        this.#lease,
        this.#extend
          ? { deleteAll: layer.cleared, entries: layer.writes }
          : { deleteAll: layer.cleared, entries: layer.writes, extend: false },
      )
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
    if (result.handoverRequested) {
      try {
        this.#onHandoverRequested?.()
      } catch {
        // the owner's hook must not turn a committed flush into a failed one
      }
    }
    // Committed under the lease even if the lease ended since: the writes are durable, say so.
    return result
  }

  /**
   * The layers a read at `layer` sees, innermost first: the open ones of its chain down to the base
   * (an ended one's writes are in the nearest open layer under it, or gone), then flushes in flight.
   */
  *#layers(layer: Layer): Generator<Layer> {
    for (let l: Layer | undefined = layer; l; l = l.parent) if (l.state === 'open') yield l
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

  /**
   * Where a call that names no transaction goes: the transaction whose closure is running now; else,
   * in the synchronous run that started a transaction, the layer its caller's calls go to (they are
   * outside it, as in Durable Objects); else the innermost open transaction, since the call may come
   * from its closure after an await (as in SQLite-backed Durable Objects, it is then part of it); else
   * the base.
   */
  #scope(): Layer {
    const running = this.#running[this.#running.length - 1]
    if (running !== undefined) return this.#live(running)
    const started = this.#started?.get(null)
    if (started !== undefined) return this.#live(started.parent)
    for (let i = this.#transactions.length - 1; i >= 0; i--) {
      if (this.#transactions[i]!.state === 'open') return this.#transactions[i]!
    }
    return this.#base
  }

  /** `layer`, or the nearest layer under it still open (the base always is). */
  #live(layer: Layer): Layer {
    let l = layer
    while (l.state !== 'open') l = l.parent!
    return l
  }

  /** One store `get` for keys no layer or cache knows; fills the cache (unless `noCache`). */
  async #read(keys: string[], noCache: boolean): Promise<Map<string, EncodedValue>> {
    const epoch = this.#epoch
    let found: Map<string, EncodedValue>
    try {
      found = this.#readOnly
        ? await this.#store.getCommitted!(this.#lease.doId, keys)
        : await this.#store.get(this.#lease, keys)
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
      rows = this.#readOnly
        ? await this.#store.listCommitted!(this.#lease.doId, range)
        : await this.#store.list(this.#lease, range)
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

  /** Throws {@link ReadOnlyStorageError} for `operation` in a read-only request's storage. */
  checkWritable(operation: string): void {
    if (this.#readOnly) throw new ReadOnlyStorageError(operation)
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
