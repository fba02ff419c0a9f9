/**
 * The guard's options and their defaults, validated in one place before any I/O (docs/design.md
 * invariant 8): the constructor's, each acquire's and shutdown's.
 */
import { systemClock, type Clock } from '../clock.js'
import { InvalidArgumentError } from '../errors.js'
import type { LockStore } from '../store/lock-store.js'
import { assertPrefetch } from '../store/requests.js'
import { assertNodeId, assertPositiveMs, describe, serializeMetadata } from '../validate.js'
import { resolveBackoff, type Backoff } from './backoff.js'
import {
  DEFAULT_TTL_MS,
  defaultDriftMs,
  defaultHeartbeatMs,
  DEFAULT_HEARTBEATS_PER_TTL,
  heartbeatFits,
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
   * Lease length, ms: at most one day, and long enough for a heartbeat before local validity ends
   * (at least 3 ms with the default heartbeat and drift margin).
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
   * timer lateness, ms. With the default heartbeat it must stay below `ttlMs - ttlMs / 3`, so that the
   * first heartbeat comes before local validity ends.
   * @default 1% of ttlMs + 2 ms, at most half the ttl (302 for a 30 s lease; {@link defaultDriftMs})
   */
  driftMs?: number
  /**
   * Backoff for waiting acquires and refresh retries.
   * @default { initialDelayMs: 25, maxDelayMs: 1000, factor: 2 } (`DEFAULT_BACKOFF`)
   */
  retry?: RetryOptions
  /**
   * How long a store request (acquire, refresh, release, read) may go unanswered before it counts as
   * failed, ms: it then fails with a retryable `StoreUnavailableError` (an acquire is retried within
   * `waitMs`, a heartbeat within the lease's validity), and a lease granted by a late answer is given
   * back.
   * @default 10_000 ({@link DEFAULT_REQUEST_TIMEOUT_MS})
   */
  requestTimeoutMs?: number
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

/** How long a store request may go unanswered by default, ms (`requestTimeoutMs`). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

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
  /** `requestTimeoutMs`. */
  readonly requestTimeoutMs: number
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
  /** `metadata`, as a copy of the JSON the store keeps. */
  readonly metadata: unknown
  /** `prefetch` (0: none). */
  readonly prefetch: number
}

/**
 * Validates a guard's options; throws {@link InvalidArgumentError} naming the first bad one. Each
 * option is read once, and only the copy that was validated is used: a getter or Proxy answering
 * something else the second time cannot get past validation.
 */
export function resolveGuardOptions(options: HybridConsistencyGuardOptions): GuardSettings {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const { store, nodeId, ring, ttlMs, heartbeatMs, driftMs, retry, onEvent, random } = options
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS
  const clock = options.clock ?? systemClock
  if (store === null || typeof store !== 'object' || typeof store.acquire !== 'function') {
    throw new InvalidArgumentError('store', 'expected a LockStore')
  }
  if (ring !== undefined && typeof ring?.getNode !== 'function') {
    throw new InvalidArgumentError('ring', 'expected a ring with getNode(key)')
  }
  assertNodeId(nodeId)
  const timings = resolveGuardTimings(ttlMs, heartbeatMs, driftMs)
  assertPositiveMs('requestTimeoutMs', requestTimeoutMs, Number.MAX_SAFE_INTEGER)
  if (typeof clock?.monotonic !== 'function')
    throw new InvalidArgumentError('clock', 'expected a Clock with monotonic()')
  if (onEvent !== undefined && typeof onEvent !== 'function') {
    throw new InvalidArgumentError('onEvent', 'expected a function')
  }
  if (random !== undefined && typeof random !== 'function') {
    throw new InvalidArgumentError('random', 'expected a function returning a number in [0, 1)')
  }
  return {
    store,
    nodeId,
    ring,
    timings,
    clock,
    backoff: resolveBackoff(retry),
    requestTimeoutMs,
    onEvent,
    random: random ?? Math.random,
  }
}

/**
 * The guard's ttl, heartbeat and drift margin, validated as the combination they make: whether set or
 * defaulted, the heartbeat must come before local validity (`ttl - drift`) ends, or every lease would
 * be lost before its first heartbeat. A bad combination is blamed on what the caller set.
 */
function resolveGuardTimings(ttl: unknown, heartbeat: unknown, drift: unknown): GuardTimings {
  const ttlMs = ttl ?? DEFAULT_TTL_MS
  assertPositiveMs('ttlMs', ttlMs)
  if (heartbeat !== undefined) {
    assertPositiveMs('heartbeatMs', heartbeat)
    if (heartbeat >= ttlMs) {
      throw new InvalidArgumentError('heartbeatMs', `must be less than ttlMs (${ttlMs}), got ${heartbeat}`)
    }
  }
  if (drift !== undefined && (typeof drift !== 'number' || !Number.isFinite(drift) || drift < 0 || drift >= ttlMs)) {
    throw new InvalidArgumentError(
      'driftMs',
      `must be a number from 0 to below ttlMs (${ttlMs}), got ${describe(drift)}`,
    )
  }
  const timings: GuardTimings = {
    ttlMs,
    heartbeatMs: heartbeat ?? defaultHeartbeatMs(ttlMs),
    driftMs: (drift as number | undefined) ?? defaultDriftMs(ttlMs),
    explicitHeartbeat: heartbeat !== undefined,
    explicitDrift: drift !== undefined,
  }
  if (heartbeatFits(timings)) return timings
  const window = `ttlMs - driftMs (${ttlMs} - ${timings.driftMs} = ${ttlMs - timings.driftMs})`
  if (timings.explicitHeartbeat) {
    throw new InvalidArgumentError(
      'heartbeatMs',
      `must be less than ${window}, when local validity ends; got ${heartbeat}`,
    )
  }
  if (timings.explicitDrift) {
    throw new InvalidArgumentError(
      'driftMs',
      `must be less than ${ttlMs - timings.heartbeatMs} ms: local validity, ${window}, would end before the default heartbeat (ttlMs / ${DEFAULT_HEARTBEATS_PER_TTL} = ${timings.heartbeatMs} ms), losing every lease; set heartbeatMs lower, or driftMs`,
    )
  }
  throw new InvalidArgumentError(
    'ttlMs',
    `must be at least ${shortestDefaultTtl()} ms with the default heartbeat and drift margin: a ${ttlMs} ms lease would end its local validity, ${window}, before its first heartbeat (${timings.heartbeatMs} ms)`,
  )
}

/** The shortest ttl whose default heartbeat comes before its default drift margin ends local validity. */
function shortestDefaultTtl(): number {
  let ttlMs = 1
  while (!heartbeatFits({ ttlMs, heartbeatMs: defaultHeartbeatMs(ttlMs), driftMs: defaultDriftMs(ttlMs) })) ttlMs++
  return ttlMs
}

/**
 * Validates one acquire's options against the guard's settings, before any I/O. Like the guard's,
 * each option is read once and only the validated copy is used; `metadata` is copied as the JSON the
 * store will keep, so every attempt sends the same value.
 */
export function resolveAcquireOptions(options: AcquireOptions, guard: GuardSettings): AcquireSettings {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const { signal, retry, metadata } = options
  const waitMs = options.waitMs ?? 0
  const ttlMs = options.ttlMs ?? guard.timings.ttlMs
  const heartbeat: unknown = options.heartbeat
  const prefetch = options.prefetch ?? 0
  if (typeof waitMs !== 'number' || !Number.isFinite(waitMs) || waitMs < 0) {
    throw new InvalidArgumentError('options.waitMs', `must be a finite number >= 0, got ${describe(waitMs)}`)
  }
  assertPositiveMs('options.ttlMs', ttlMs)
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new InvalidArgumentError('options.signal', 'expected an AbortSignal')
  }
  if (heartbeat !== undefined && typeof heartbeat !== 'boolean') {
    throw new InvalidArgumentError('options.heartbeat', 'expected a boolean')
  }
  assertPrefetch('options.prefetch', prefetch, 0)
  const timings = timingsForTtl(guard.timings, ttlMs)
  if (heartbeat !== false && !heartbeatFits(timings)) {
    throw new InvalidArgumentError(
      'options.ttlMs',
      `${ttlMs} ms is too short: the lease's local validity (ttl - drift = ${ttlMs - timings.driftMs} ms) would end before its first heartbeat (${timings.heartbeatMs} ms); use a longer ttl, or heartbeat: false`,
    )
  }
  const backoff = retry === undefined ? guard.backoff : resolveBackoff(retry, 'options.retry')
  const json = serializeMetadata(metadata)
  return {
    waitMs,
    timings,
    heartbeat: heartbeat ?? true,
    backoff,
    signal,
    metadata: json === null ? undefined : JSON.parse(json),
    prefetch,
  }
}

/** Validates `shutdown`'s options. */
export function resolveShutdownOptions(options: { timeoutMs?: number }): { timeoutMs: number | undefined } {
  if (options === null || typeof options !== 'object') throw new InvalidArgumentError('options', 'expected an object')
  const { timeoutMs } = options
  if (timeoutMs !== undefined) assertPositiveMs('options.timeoutMs', timeoutMs, Number.MAX_SAFE_INTEGER)
  return { timeoutMs }
}
