/** Argument checks shared by every LockStore, run before any I/O (docs/design.md invariant 8). */
import { InvalidArgumentError } from '../errors.js'
import { assertDoId, assertNodeId, assertPositiveMs, assertToken, serializeMetadata } from '../validate.js'
import { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, type AcquireRequest, type ListFilter, type LockRef } from './lock-store.js'

/** Validates an acquire request; returns the metadata serialized to JSON (or null). */
export function checkAcquire(request: AcquireRequest): string | null {
  if (request === null || typeof request !== 'object') throw new InvalidArgumentError('request', 'expected an object')
  assertDoId(request.doId)
  assertNodeId(request.nodeId)
  assertPositiveMs('ttlMs', request.ttlMs)
  return serializeMetadata(request.metadata)
}

export function checkRef(ref: LockRef): void {
  if (ref === null || typeof ref !== 'object') throw new InvalidArgumentError('lock', 'expected a lock object')
  assertDoId(ref.doId)
  assertNodeId(ref.nodeId)
  assertToken(ref.fencingToken)
}

export function checkRefresh(ref: LockRef & { ttlMs: number }): void {
  checkRef(ref)
  assertPositiveMs('ttlMs', ref.ttlMs)
}

/** Validates a list filter; returns the effective limit. */
export function checkListFilter(filter: ListFilter): number {
  if (filter === null || typeof filter !== 'object') throw new InvalidArgumentError('filter', 'expected an object')
  if (filter.nodeId !== undefined) assertNodeId(filter.nodeId, 'filter.nodeId')
  const limit = filter.limit ?? DEFAULT_LIST_LIMIT
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidArgumentError('filter.limit', `must be a whole number from 1 to ${MAX_LIST_LIMIT}`)
  }
  return limit
}
