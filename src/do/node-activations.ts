/**
 * The activations a StatelessDO class keeps on a node: one registry per guard (a guard is a node: one
 * per isolate or process), shared by every instance and request that uses that guard, so that all the
 * requests for one object on this node become turns of ONE activation (docs/design.md invariant 9).
 *
 * @module
 */
import { Activations, type ActivationFlusher } from '../activation/activations.js'
import { InvalidArgumentError } from '../errors.js'
import { beforeShutdown } from '../guard/before-shutdown.js'
import type { ConsistencyGuard, Lock } from '../guard/types.js'
import { ObjectStorage, StorageSnapshot } from '../storage/object-storage.js'
import type { LockStore } from '../store/lock-store.js'
import type { ObjectStore } from '../store/object-store.js'
import { assertPrefetch } from '../store/requests.js'

/**
 * How long objects stay active on a node between requests, and how requests queue for them
 * (`StatelessDO.activationOptions`).
 */
export interface StatelessDOActivationOptions {
  /**
   * An object with no request for this long ends its activation: its writes are flushed and its
   * lease released, so another node may take it.
   * @default 10_000 (the Durable Object setting: the platform routes an object's requests to one
   * instance, so a warm lease is the point; the same where activations are turned on without `ctx.id`,
   * e.g. one Node process). Where every isolate or process is a node and requests for an object land
   * on any of them (plain Workers, a cluster behind a random load balancer), set 1: let go as soon as
   * the queue is empty, as a per-request lease would (bench:do's modes; plain Workers default to a
   * lease per request, see `StatelessDO.activationOptions`)
   */
  idleMs?: number
  /**
   * Requests that may wait behind the running one; one more is answered 503 `queue_full`.
   * @default 1000
   */
  maxQueued?: number
  /**
   * How long a request may wait for its turn, ms; past it, 503 `turn_timeout`.
   * @default 10_000
   */
  maxWaitMs?: number
  /**
   * How many of the object's storage rows a cold start reads with its acquire, in the same request
   * (docs/design.md invariant 13: a cold activation costs one round trip). An object with at most this
   * many rows then answers every read of its first turn from memory, absent keys and `list()`
   * included; a larger one has its first rows in key order cached. 0 to `MAX_PREFETCH_ROWS` (1000);
   * 0 reads none. Applies when `this.storage` is the guard's lock store's own `objects` (the default
   * `objectStore()`): the rows are read from that table.
   * @default 128
   */
  prefetch?: number
}

/** How long an object stays active with no request, unless `idleMs` says otherwise. */
export const DEFAULT_IDLE_MS = 10_000

/** Storage rows a cold start reads with its acquire unless `prefetch` says otherwise. */
export const DEFAULT_PREFETCH_ROWS = 128

/** The storage of an activation of an object that has none: nothing to flush, nothing to drop. */
const NO_STORAGE: ActivationFlusher = {
  flush: async () => undefined,
  hasPendingWrites: () => false,
  discard: () => {},
}

const registries = new WeakMap<object, { registry: Activations; objects: ObjectStore | undefined }>()

/**
 * The registry of `guard`'s node, created on first use with `options` (later callers share it, so
 * one guard's objects share one set of settings: give classes with other settings their own guard).
 */
export function activationsFor(
  guard: ConsistencyGuard,
  options: StatelessDOActivationOptions,
  objects: ObjectStore | undefined,
  /** Omitted by callers that only look the registry up (it must exist then). */
  check: 'objects' | 'lookup' = 'objects',
): Activations {
  const known = registries.get(guard)
  if (known) {
    // One registry per guard serves every class on it with the storage it was made with: a class whose
    // objectStore() differs would read and write another class's rows (or none) without a word.
    if (check === 'objects' && known.objects !== objects) {
      throw new InvalidArgumentError(
        'objectStore',
        "another class on this guard uses another object store: one guard's objects share one; give this class its own guard",
      )
    }
    return known.registry
  }
  {
    // The rows come from the lock store's objects: only an ObjectStorage over that same store may
    // start from them (another object store has other rows).
    const own = objects !== undefined && (guard as { store?: { objects?: unknown } }).store?.objects === objects
    const { prefetch = DEFAULT_PREFETCH_ROWS, ...rest } = options
    assertPrefetch('prefetch', prefetch, 0)
    const nodeId = (guard as { nodeId?: string }).nodeId
    const store = (guard as { store?: Pick<LockStore, 'requestHandover'> }).store
    const ask = store?.requestHandover
    const registry: Activations = new Activations({
      guard,
      ...rest,
      prefetch: own ? prefetch : 0,
      // A contender asks the holder to let go; the holder hears it in its next flush's or heartbeat's
      // answer (docs/design.md invariant 14).
      ...(ask && nodeId !== undefined ? { requestHandover: (doId: string) => ask.call(store, { doId, nodeId }) } : {}),
      createFlusher: (lock: Lock, { requestHandover, resume }) => {
        if (!objects) return NO_STORAGE
        const { prefetched } = lock
        return new ObjectStorage({
          store: objects,
          lease: lock,
          // The guard's heartbeat keeps the lease; a flush's extension would not move its validity.
          extendLease: false,
          onHandoverRequested: requestHandover,
          ...(own && prefetched ? { prefetched } : {}),
          ...(resume instanceof StorageSnapshot ? { resume } : {}),
        })
      },
    })
    registries.set(guard, { registry, objects })
    // guard.shutdown() lets the activations drain first (queued turns, flushes, their own releases).
    beforeShutdown(guard, () => registry.shutdown())
    return registry
  }
}
