/**
 * The guard's options and their defaults, validated in one place before any I/O (docs/design.md
 * invariant 8): the constructor's, each acquire's and shutdown's.
 */
import { systemClock, type Clock } from '../clock.js'
import { InvalidArgumentError } from '../errors.js'
import type { LockStore } from '../store/lock-store.js'
import { assertNodeId, assertPositiveMs, describe } from '../validate.js'
import { resolveBackoff, type Backoff } from './backoff.js'
import {
  DEFAULT_TTL_MS,
  defaultDriftMs,
  defaultHeartbeatMs,
  timingsForTtl,
  type GuardTimings,
  type LeaseTimings,
} from './lease-rules.js'
import type { AcquireOptions, AffinityRing, GuardEvent, RetryOptions } from './types.js'

/** Settings of a `HybridConsistencyGuard`; only `store` and `nodeId` are required. */
export interface HybridConsistencyGuardOptions {
  /** Where leases live. */
  store: LockStore
  /** This node's id, as recorded in `do_locks.node_id`. */
  nodeId: string
  /**
   * Routing affinity; without one, `getAffinityNode` answers this node.
   * @default undefined
   */
  ring?: AffinityRing
  /**
   * Lease length, ms (at most one day).
   * @default 30_000 ({@link DEFAULT_TTL_MS})
   */
  ttlMs?: number
  /**
   * Heartbeat period, ms; must be less than `ttlMs - driftMs`, when a lease's local validity ends.
   * @default ttlMs / 3, at least 1 ms (10 000 for a 30 s lease; {@link defaultHeartbeatMs})
   */
  heartbeatMs?: number
  /**
   * Safety margin subtracted from the lease when computing `validUntil`, for clock-rate drift and
   * timer lateness, ms.
   * @default 1% of ttlMs + 2 ms, at most half the ttl (302 for a 30 s lease; {@link defaultDriftMs})
   */
  driftMs?: number
  /**
   * Backoff for waiting acquires and refresh retries.
   * @default { initialDelayMs: 25, maxDelayMs: 1000, factor: 2 } (`DEFAULT_BACKOFF`)
   */
  retry?: RetryOptions
  /**
   * Time seam (monotonic time for lease validity).
   * @default systemClock
   */
  clock?: Clock
  /**
   * Observability hook; exceptions it throws are swallowed.
   * @default undefined
   */
  onEvent?: (event: GuardEvent) => void
  /**
   * Randomness for jitter (tests make it deterministic).
   * @default Math.random
   */
  random?: () => number
}

/** A guard's options, validated, with defaults filled in (see {@link HybridConsistencyGuardOptions}). */
export interface GuardSettings {
  /** `store`. */
  readonly store: LockStore
  /** `nodeId`. */
  readonly nodeId: string
  /** `ring`. */
  readonly ring: AffinityRing | undefined
  /** `ttlMs`, `heartbeatMs`, `driftMs`, and which of them were given. */
  readonly timings: GuardTimings
  /** `clock`. */
  readonly clock: Clock
  /** `retry`. */
  readonly backoff: Backoff
  /** `onEvent`. */
  readonly onEvent: ((event: GuardEvent) => void) | undefined
  /** `random`. */
  readonly random: () => number
}

/** One acquire's options, validated, with the guard's settings filled in (see {@link AcquireOptions}). */
export interface AcquireSettings {
  /** `waitMs`. */
  readonly waitMs: number
  /** The lease's ttl with the heartbeat and drift margin that follow from it. */
  readonly timings: LeaseTimings
  /** `heartbeat`. */
  readonly heartbeat: boolean
  /** `retry`, or the guard's. */
  readonly backoff: Backoff
  /** `signal`. */
  readonly signal: AbortSignal | undefined
  /** `metadata`. */
  readonly metadata: unknown
}

/** Validates a guard's options; throws {@link InvalidArgumentError} naming the first bad one. */
export function resolveGuardOptions(options: HybridConsistencyGuardOptions): GuardSettings {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const { store, ring } = options
  if (store === null || typeof store !== 'object' || typeof store.acquire !== 'function') {
    throw new InvalidArgumentError('store', 'expected a LockStore')
  }
  if (ring !== undefined && typeof ring?.getNode !== 'function') {
    throw new InvalidArgumentError('ring', 'expected a ring with getNode(key)')
  }
  assertNodeId(options.nodeId)
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS
  assertPositiveMs('ttlMs', ttlMs)
  const heartbeatMs = options.heartbeatMs ?? defaultHeartbeatMs(ttlMs)
  assertPositiveMs('heartbeatMs', heartbeatMs)
  if (heartbeatMs >= ttlMs) {
    throw new InvalidArgumentError('heartbeatMs', `must be less than ttlMs (${ttlMs}), got ${heartbeatMs}`)
  }
  const driftMs = options.driftMs ?? defaultDriftMs(ttlMs)
  if (typeof driftMs !== 'number' || !Number.isFinite(driftMs) || driftMs < 0 || driftMs >= ttlMs) {
    throw new InvalidArgumentError(
      'driftMs',
      `must be a number from 0 to below ttlMs (${ttlMs}), got ${describe(driftMs)}`,
    )
  }
  if (options.heartbeatMs !== undefined && heartbeatMs >= ttlMs - driftMs) {
    // The first heartbeat would come after the lease's local validity ends: every lease would be lost.
    throw new InvalidArgumentError(
      'heartbeatMs',
      `must be less than ttlMs - driftMs (${ttlMs} - ${driftMs} = ${ttlMs - driftMs}), when local validity ends; got ${heartbeatMs}`,
    )
  }
  const clock = options.clock ?? systemClock
  if (typeof clock?.monotonic !== 'function')
    throw new InvalidArgumentError('clock', 'expected a Clock with monotonic()')
  if (options.onEvent !== undefined && typeof options.onEvent !== 'function') {
    throw new InvalidArgumentError('onEvent', 'expected a function')
  }
  if (options.random !== undefined && typeof options.random !== 'function') {
    throw new InvalidArgumentError('random', 'expected a function returning a number in [0, 1)')
  }
  return {
    store,
    nodeId: options.nodeId,
    ring,
    timings: {
      ttlMs,
      heartbeatMs,
      driftMs,
      explicitHeartbeat: options.heartbeatMs !== undefined,
      explicitDrift: options.driftMs !== undefined,
    },
    clock,
    backoff: resolveBackoff(options.retry),
    onEvent: options.onEvent,
    random: options.random ?? Math.random,
  }
}

/** Validates one acquire's options against the guard's settings, before any I/O. */
export function resolveAcquireOptions(options: AcquireOptions, guard: GuardSettings): AcquireSettings {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const waitMs = options.waitMs ?? 0
  if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0) {
    throw new InvalidArgumentError('options.waitMs', `must be a finite number >= 0, got ${describe(waitMs)}`)
  }
  const ttlMs = options.ttlMs ?? guard.timings.ttlMs
  assertPositiveMs('options.ttlMs', ttlMs)
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('options.signal', 'expected an AbortSignal')
  }
  if (options.heartbeat !== undefined && typeof options.heartbeat !== 'boolean') {
    throw new InvalidArgumentError('options.heartbeat', 'expected a boolean')
  }
  return {
    waitMs,
    timings: timingsForTtl(guard.timings, ttlMs),
    heartbeat: options.heartbeat ?? true,
    backoff: options.retry ? resolveBackoff(options.retry, 'options.retry') : guard.backoff,
    signal: options.signal,
    metadata: options.metadata,
  }
}

/** Validates `shutdown`'s options. */
export function resolveShutdownOptions(options: { timeoutMs?: number }): { timeoutMs: number | undefined } {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const { timeoutMs } = options
  if (timeoutMs !== undefined) assertPositiveMs('options.timeoutMs', timeoutMs, Number.MAX_SAFE_INTEGER)
  return { timeoutMs }
}
