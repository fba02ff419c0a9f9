import type { LockRecord } from '../store/lock-store.js'

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
  /** Lease length requested, ms. */
  readonly ttlMs: number
  /**
   * Local monotonic deadline (`clock.monotonic()` units): start of the acquire or last refresh + ttl -
   * drift margin. Until then the lease is certainly still held, whatever the clocks of other nodes say.
   */
  readonly validUntil: number
  /** Fires when the lease is lost or released; its `reason` is a `LockLostError` or `ShutdownError`. */
  readonly signal: AbortSignal
  [Symbol.asyncDispose](): Promise<void>
}

/** Who holds a contended lease. */
export interface LockHolder {
  nodeId: string
  fencingToken: number
  /** Store clock. */
  expiresAt: number
  metadata?: unknown
}

export type LockResult =
  | { acquired: true; lock: Lock }
  | {
      acquired: false
      /** The holder at the last attempt. */
      holder?: LockHolder
      /** How long until the holder's lease runs out (>= 1): put `ceil(ms / 1000)` in `Retry-After`. */
      retryAfterMs: number
      /** Attempts made (1 for try-once). */
      attempts: number
    }

export interface RetryOptions {
  /** First backoff cap, ms. Default 25. */
  initialDelayMs?: number
  /** Largest backoff cap, ms. Default 1000. */
  maxDelayMs?: number
  /** Cap growth per attempt. Default 2. */
  factor?: number
}

export interface AcquireOptions {
  /**
   * How long to keep trying while the lease is held elsewhere (or the store is busy), ms.
   * 0 (default) tries once. Retries use exponential backoff with full jitter.
   */
  waitMs?: number
  retry?: RetryOptions
  /** Cancels waiting; the acquire then rejects with `signal.reason`. */
  signal?: AbortSignal
  /** Stored with the lease (JSON). */
  metadata?: unknown
  /** Override the guard's lease length for this lock. */
  ttlMs?: number
  /** Keep the lease alive with heartbeats until release (default true). */
  heartbeat?: boolean
}

/**
 * The coordination interface of the spike. `HybridConsistencyGuard` implements it over any
 * `LockStore` and an optional routing ring.
 */
export interface ConsistencyGuard {
  acquire(doId: string, options?: AcquireOptions): Promise<LockResult>
  release(lock: Lock): Promise<boolean>
  refresh(lock: Lock): Promise<Lock | null>
  isAvailable(doId: string): Promise<boolean>
  getAffinityNode(doId: string): string
  validateLock(lock: Lock): Promise<boolean>
}

/** What the guard reports to `onEvent`, for metrics and logs. Durations are ms of local monotonic time. */
export type GuardEvent =
  | { type: 'acquire'; doId: string; nodeId: string; fencingToken: number; durationMs: number; attempts: number }
  | {
      type: 'contended'
      doId: string
      nodeId: string
      holder?: LockHolder
      retryAfterMs: number
      durationMs: number
      attempts: number
    }
  | { type: 'refresh'; doId: string; nodeId: string; fencingToken: number; durationMs: number }
  | { type: 'lost'; doId: string; nodeId: string; fencingToken: number; reason: string }
  | { type: 'release'; doId: string; nodeId: string; fencingToken: number; durationMs: number; released: boolean }
  | { type: 'error'; doId?: string; nodeId: string; fencingToken?: number; operation: GuardOperation; error: unknown }

export type GuardOperation = 'acquire' | 'refresh' | 'release' | 'shutdown'

/** The part of a routing ring the guard needs (`ConsistentHashRing` has it). */
export interface AffinityRing {
  getNode(key: string): string
}
