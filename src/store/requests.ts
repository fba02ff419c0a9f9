/**
 * Argument checks shared by every LockStore, run before any I/O (docs/design.md invariant 8).
 *
 * Each check reads every field of the caller's object exactly once and returns the values it
 * validated; the store then uses only that copy. Reading a field again (a getter, a Proxy) could answer
 * something that never passed validation.
 */
import { InvalidArgumentError } from '../errors.js'
import {
  assertDoId,
  assertNodeId,
  assertNonNegativeInteger,
  assertPositiveMs,
  assertToken,
  describe,
  serializeMetadata,
} from '../validate.js'
import {
  DEFAULT_LIST_LIMIT,
  DEFAULT_PRUNE_LIMIT,
  MAX_LIST_LIMIT,
  MAX_PREFETCH_ROWS,
  MAX_PRUNE_LIMIT,
  type PruneOptions,
  type AcquireRequest,
  type HandoffRequest,
  type HandoverRequest,
  type ListFilter,
  type LockRef,
  type RefreshRequest,
} from './lock-store.js'

/** An acquire request as validated: metadata already serialized to JSON (or null). */
export interface CheckedAcquire {
  /** The id to lock, validated. */
  readonly doId: string
  /** The node taking it, validated. */
  readonly nodeId: string
  /** Lease length in ms, validated. */
  readonly ttlMs: number
  /** The metadata as JSON, or null for none. */
  readonly metadata: string | null
  /** How many storage rows to read with the lease, or `undefined` for none. */
  readonly prefetch: number | undefined
}

/** Validates an acquire request; returns the values it validated. */
export function checkAcquire(request: AcquireRequest): CheckedAcquire {
  if (request === null || typeof request !== 'object') throw new InvalidArgumentError('request', 'expected an object')
  const { doId, nodeId, ttlMs, metadata, prefetch } = request
  assertDoId(doId)
  assertNodeId(nodeId)
  assertPositiveMs('ttlMs', ttlMs)
  if (prefetch !== undefined) assertPrefetch('prefetch', prefetch, 1)
  return { doId, nodeId, ttlMs, metadata: serializeMetadata(metadata), prefetch }
}

/**
 * A prefetch row count: a whole number from `min` to {@link MAX_PREFETCH_ROWS} (the store takes 1 and
 * up; the guard and the activations also take 0, for none).
 */
export function assertPrefetch(argument: string, value: unknown, min: 0 | 1): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > MAX_PREFETCH_ROWS) {
    throw new InvalidArgumentError(
      argument,
      `must be a whole number from ${min} to ${MAX_PREFETCH_ROWS}, got ${describe(value)}`,
    )
  }
}

/** Validates a lease reference (release); returns the values it validated. */
export function checkRef(ref: LockRef): LockRef {
  if (ref === null || typeof ref !== 'object') throw new InvalidArgumentError('lock', 'expected a lock object')
  const { doId, nodeId, fencingToken } = ref
  assertDoId(doId)
  assertNodeId(nodeId)
  assertToken(fencingToken)
  return { doId, nodeId, fencingToken }
}

/** Validates a hand-over request; returns the values it validated. */
export function checkHandover(request: HandoverRequest): HandoverRequest {
  if (request === null || typeof request !== 'object') {
    throw new InvalidArgumentError('request', 'expected { doId, nodeId }')
  }
  const { doId, nodeId } = request
  assertDoId(doId)
  assertNodeId(nodeId)
  return { doId, nodeId }
}

/** A hand-off request as validated: the next lease's metadata already serialized to JSON (or null). */
export interface CheckedHandoff extends LockRef {
  /** The node taking the lease over, validated. */
  readonly toNodeId: string
  /** The new lease's length in ms, validated. */
  readonly ttlMs: number
  /** The new lease's metadata as JSON, or null for none. */
  readonly metadata: string | null
}

/** Validates a hand-off request; returns the values it validated. */
export function checkHandoff(request: HandoffRequest): CheckedHandoff {
  if (request === null || typeof request !== 'object') throw new InvalidArgumentError('lock', 'expected a lock object')
  const { doId, nodeId, fencingToken, toNodeId, ttlMs, metadata } = request
  assertDoId(doId)
  assertNodeId(nodeId)
  assertToken(fencingToken)
  assertNodeId(toNodeId, 'toNodeId')
  assertPositiveMs('ttlMs', ttlMs)
  return { doId, nodeId, fencingToken, toNodeId, ttlMs, metadata: serializeMetadata(metadata) }
}

/** Validates a refresh request; returns the values it validated. */
export function checkRefresh(request: RefreshRequest): RefreshRequest {
  if (request === null || typeof request !== 'object') throw new InvalidArgumentError('lock', 'expected a lock object')
  const { doId, nodeId, fencingToken, ttlMs } = request
  assertDoId(doId)
  assertNodeId(nodeId)
  assertToken(fencingToken)
  assertPositiveMs('ttlMs', ttlMs)
  return { doId, nodeId, fencingToken, ttlMs }
}

/** A list filter as validated: the effective limit, and the node (if any). */
export interface CheckedListFilter {
  /** Only this node's leases; `undefined`: every node's. */
  readonly nodeId: string | undefined
  /** At most this many rows. */
  readonly limit: number
}

/** Validates a list filter; returns the node (if any) and the effective limit. */
export function checkListFilter(filter: ListFilter): CheckedListFilter {
  if (filter === null || typeof filter !== 'object') throw new InvalidArgumentError('filter', 'expected an object')
  const { nodeId, limit = DEFAULT_LIST_LIMIT } = filter
  if (nodeId !== undefined) assertNodeId(nodeId, 'filter.nodeId')
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidArgumentError('filter.limit', `must be a whole number from 1 to ${MAX_LIST_LIMIT}`)
  }
  return { nodeId, limit }
}

/** Validates prune options; returns the bound and the effective limit. */
export function checkPrune(options: PruneOptions): Required<PruneOptions> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError('options', 'expected { olderThanMs, limit? }')
  }
  const { olderThanMs, limit = DEFAULT_PRUNE_LIMIT } = options
  assertNonNegativeInteger('olderThanMs', olderThanMs)
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PRUNE_LIMIT) {
    throw new InvalidArgumentError('limit', `must be a whole number from 1 to ${MAX_PRUNE_LIMIT}`)
  }
  return { olderThanMs, limit }
}
