import { InvalidArgumentError, LockLostError } from '../errors.js'
import type { SqlResult, SqlStatement } from '../store/sql-lock-store.js'

/** A store that can run statements in the same transaction as a token check (libSQL, D1). */
export interface FencedWriteStore {
  fencedWrite(lock: { doId: string; fencingToken: number }, statements: SqlStatement[]): Promise<SqlResult[]>
}

/** The lock fields a fenced write needs; a guard `Lock` has them all. */
export interface FenceLock {
  doId: string
  fencingToken: number
  /** When present and aborted, the write is refused before any I/O (docs/design.md invariant 7). */
  signal?: AbortSignal
}

/**
 * Runs `statements` in ONE request and ONE transaction with a check that `lock` still holds an
 * unexpired lease with its token. A stale holder (paused, partitioned, expired) gets
 * `StaleFencingTokenError` and nothing it sent is written (docs/design.md invariant 5). A lock whose
 * signal already fired gets `LockLostError` without touching the store.
 *
 * @example
 * ```ts
 * await fencedWrite(store, lock, [
 *   { sql: 'UPDATE counters SET n = n + 1 WHERE id = ?', args: [lock.doId] },
 * ])
 * ```
 */
export async function fencedWrite(
  store: FencedWriteStore,
  lock: FenceLock,
  statements: SqlStatement[],
): Promise<SqlResult[]> {
  if (store === null || typeof store !== 'object' || typeof store.fencedWrite !== 'function') {
    throw new InvalidArgumentError('store', 'expected a store with fencedWrite (LibSQLLockStore or D1LockStore)')
  }
  if (lock === null || typeof lock !== 'object') throw new InvalidArgumentError('lock', 'expected a lock')
  throwIfLeaseEnded(lock)
  return store.fencedWrite(lock, statements)
}

/** Refuses a lock whose signal fired (invariant 7), with the signal's `LockLostError` when it has one. */
export function throwIfLeaseEnded(lock: FenceLock): void {
  const signal = lock.signal
  if (!(signal instanceof AbortSignal) || !signal.aborted) return
  const reason: unknown = signal.reason
  throw reason instanceof LockLostError
    ? reason
    : new LockLostError(lock.doId, lock.fencingToken, 'lease signal fired', { cause: reason })
}
