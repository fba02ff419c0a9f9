import type { LockRecord, PrefetchedRows } from '../store/lock-store.js'

/**
 * A lease held through a {@link ConsistencyGuard}. The guard keeps it current: `expiresAt` and
 * `validUntil` move forward on every successful heartbeat, and `signal` fires once the lease can no
 * longer be trusted (lost, refresh failed past its validity, released, or the guard shut down).
 *
 * Releases itself with `await using`:
 * ```ts
 * const r = await guard.acquire('room-1')
 * if (r.acquired) { await using lock = r.lock; await work(lock.signal) }
 * ```
 */
export interface Lock extends LockRecord {
  /** Lease length requested, ms (the acquire's `ttlMs`, or the guard's). */
  readonly ttlMs: number
  /**
   * Local monotonic deadline (`clock.monotonic()` units): start of the acquire or last refresh + ttl -
   * drift margin. Until then the lease is certainly still held, whatever the clocks of other nodes say,
   * as long as the store's clock runs steadily. When a store answer (an acquire's, a refresh's, for any
   * lease of the guard) shows the store's clock jumped ahead by more than the drift margin since this
   * lease was renewed, `validUntil` shrinks by the jump, and the signal fires at once if nothing is
   * left. What remains: a jump is seen only at the guard's next store answer, so for up to a heartbeat
   * period after it `validUntil` can still be too late; fenced writes are refused by the store anyway.
   */
  readonly validUntil: number
  /** Fires when the lease is lost or released; its `reason` is a `LockLostError` or `ShutdownError`. */
  readonly signal: AbortSignal
  /**
   * Fires (once) when another node asked for the object (`LockStore.requestHandover`), as a heartbeat
   * refresh's answer reported: the holder may finish what it is doing and release. The lease is still
   * held; nothing is taken away. A lock from a guard without heartbeats, or a store without hand-over,
   * never fires it.
   */
  readonly handover: AbortSignal
  /**
   * The object's storage rows when this lease began (values encoded, as the object store keeps them),
   * read by the acquire in the same request; present when the acquire asked for a `prefetch`.
   * `complete`: they are every row of the object (any other key is absent); otherwise only the first
   * `prefetch` rows in key order. Not updated afterwards: the lease's own writes are not in it.
   */
  readonly prefetched?: PrefetchedRows
  /** Releases the lease (`guard.release(lock)`), for `await using lock = r.lock`. */
  [Symbol.asyncDispose](): Promise<void>
}

/** Who holds a contended lease. */
export interface LockHolder {
  /** The holding node's id (`do_locks.node_id`). */
  nodeId: string
  /** The holder's fencing token. */
  fencingToken: number
  /** When the holder's lease runs out unless refreshed, ms since the epoch by the store's clock. */
  expiresAt: number
  /** The metadata the holder stored with its lease, if any. */
  metadata?: unknown
}

/**
 * What `acquire` resolves: the lease, or who holds it. Contention is a result, not an error (only
 * `withLock` turns it into a `LockContendedError`).
 */
export type LockResult =
  | {
      /** The lease was taken. */
      acquired: true
      /** The lease; release it (or `await using` it) when done. */
      lock: Lock
    }
  | {
      /** Someone else held the lease at the last attempt. */
      acquired: false
      /**
       * The holder at the last attempt. Optional: absent when the call never reached the store (its
       * wait ended while it queued behind other callers of this guard for the id, `attempts` 0) and the
       * guard knew of no holder. Check it before use.
       */
      holder?: LockHolder
      /** How long until the holder's lease runs out (>= 1): put `ceil(ms / 1000)` in `Retry-After`. */
      retryAfterMs: number
      /**
       * Attempts made (1 for try-once; 0 when the wait ended, or a try-once came, while other callers of
       * this guard were ahead for the id: answered without a request).
       */
      attempts: number
    }

/**
 * Exponential backoff with full jitter: attempt `n` waits a uniform delay in
 * `[0, min(maxDelayMs, initialDelayMs * factor ** n)]`.
 */
export interface RetryOptions {
  /**
   * First backoff cap, ms.
   * @default 25
   */
  initialDelayMs?: number
  /**
   * Largest backoff cap, ms; at least `initialDelayMs`.
   * @default 1000
   */
  maxDelayMs?: number
  /**
   * Cap growth per attempt; at least 1.
   * @default 2
   */
  factor?: number
}

/** Options of one `acquire` (and `withLock`). */
export interface AcquireOptions {
  /**
   * How long to keep trying while the lease is held elsewhere (or the store is busy), ms. 0 tries
   * once. Retries use exponential backoff with full jitter.
   * @default 0
   */
  waitMs?: number
  /**
   * Backoff between attempts of this acquire.
   * @default the guard's `retry`
   */
  retry?: RetryOptions
  /**
   * Cancels the acquire, also during a request in flight; it then rejects with `signal.reason` (a
   * lease the store granted meanwhile is given back).
   * @default undefined
   */
  signal?: AbortSignal
  /**
   * Stored with the lease (JSON-serializable) and shown to contenders as `holder.metadata`.
   * @default undefined
   */
  metadata?: unknown
  /**
   * This lease's length, ms; its heartbeat and drift margin follow it (see the README's
   * "Per-acquire ttlMs"). With heartbeats on, it must leave room for one before local validity ends.
   * @default the guard's `ttlMs`
   */
  ttlMs?: number
  /**
   * Keep the lease alive with heartbeats until release; without them it ends at `validUntil`.
   * @default true
   */
  heartbeat?: boolean
  /**
   * Also read up to this many of the object's storage rows (the lock store's `objects`, in key order)
   * in the acquire's own request, and hand them out as `lock.prefetched`: a cold start that needs no
   * further request for reads (docs/design.md invariant 13). A whole number from 0 to
   * `MAX_PREFETCH_ROWS` (1000); 0 reads none.
   * @default 0
   */
  prefetch?: number
}

/**
 * Who serves a DO id: leases with fencing tokens, and a routing hint. `HybridConsistencyGuard`
 * implements it over any `LockStore` and an optional routing ring; `StatelessDO` needs only this.
 */
export interface ConsistencyGuard {
  /** Takes the lease on `doId`, or reports who holds it (see `HybridConsistencyGuard.acquire`). */
  acquire(doId: string, options?: AcquireOptions): Promise<LockResult>
  /** Gives the lease back; `true` if the store freed it. Never rejects on store trouble. */
  release(lock: Lock): Promise<boolean>
  /** Extends the lease now; the same lock, or `null` if it was lost. */
  refresh(lock: Lock): Promise<Lock | null>
  /** Whether nobody holds `doId` right now, per the store. */
  isAvailable(doId: string): Promise<boolean>
  /** The node that should serve `doId`: a routing hint, no I/O. */
  getAffinityNode(doId: string): string
  /** Whether `lock` is locally valid and the store agrees (advisory). */
  validateLock(lock: Lock): Promise<boolean>
}

/**
 * What the guard reports to `onEvent`, for metrics and logs. Every event names the `doId` and this
 * guard's `nodeId`; durations are ms of local monotonic time, from the first request of the operation.
 */
export type GuardEvent =
  | {
      /** A lease was taken. */
      type: 'acquire'
      /** The object the lease is for. */
      doId: string
      /** This guard's node. */
      nodeId: string
      /** The new lease's token. */
      fencingToken: number
      /** From the call to the answer handed out, including waits between attempts. */
      durationMs: number
      /** Attempts made, the winning one included. */
      attempts: number
    }
  | {
      /** An attempt found the lease held elsewhere. */
      type: 'contended'
      /** The object the lease is for. */
      doId: string
      /** This guard's node. */
      nodeId: string
      /** The holder, as the store reported it. */
      holder?: LockHolder
      /** How long until the holder's lease runs out, ms (at least 1). */
      retryAfterMs: number
      /** From the call to this attempt's answer. */
      durationMs: number
      /** Attempts made so far. */
      attempts: number
    }
  | {
      /** A lease was extended (heartbeat or manual refresh). */
      type: 'refresh'
      /** The object the lease is for. */
      doId: string
      /** This guard's node. */
      nodeId: string
      /** The lease's token. */
      fencingToken: number
      /** The refresh request's round trip. */
      durationMs: number
    }
  | {
      /** A lease stopped being trusted: the store said it is gone, or its local validity ran out. */
      type: 'lost'
      /** The object the lease is for. */
      doId: string
      /** This guard's node. */
      nodeId: string
      /** The lease's token. */
      fencingToken: number
      /** Why, in words (also in the signal's `LockLostError`). */
      reason: string
    }
  | {
      /** The store answered a release. */
      type: 'release'
      /** The object the lease is for. */
      doId: string
      /** This guard's node. */
      nodeId: string
      /** The lease's token. */
      fencingToken: number
      /** The release request's round trip. */
      durationMs: number
      /** Whether the store freed it (`false`: it had already expired or been taken over). */
      released: boolean
      /**
       * Set when the release was a handoff (one store request) to another caller of this guard waiting
       * for the id: the token that caller was given. Absent for a plain release.
       */
      handedOffToken?: number
    }
  | {
      /** A store request failed. */
      type: 'error'
      /** The object concerned, when the operation had one. */
      doId?: string
      /** This guard's node. */
      nodeId: string
      /** The lease's token, when the operation concerned a held lease. */
      fencingToken?: number
      /** The operation that failed. */
      operation: GuardOperation
      /** What the store threw (usually a `StoreUnavailableError`). */
      error: unknown
    }

/** The guard operation an `error` event comes from; `shutdown` is a release made by `shutdown()`. */
export type GuardOperation = 'acquire' | 'refresh' | 'release' | 'shutdown'

/** The part of a routing ring the guard needs (`ConsistentHashRing` has it). */
export interface AffinityRing {
  /** The node that should serve `key`. */
  getNode(key: string): string
}

declare global {
  /**
   * `Symbol.asyncDispose`, declared here so that the package's types work whatever `lib` a project
   * sets: TypeScript's own declaration is in `lib.esnext.disposable` (ES2022 projects lack it), and
   * this one merges with it where it is there, as `@types/node`'s does.
   */
  interface SymbolConstructor {
    readonly asyncDispose: unique symbol
  }
}
