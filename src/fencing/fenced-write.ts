/**
 * The caller-facing side of fenced writes. The check itself is enforced inside the database: the
 * `INSTEAD OF` trigger on the fence view in `src/store/sql.ts`, which the SQL stores insert into in the
 * same batch (one transaction) as the caller's statements (docs/design.md invariant 5). This module
 * only refuses, before any I/O, a lock whose signal already fired (invariant 7).
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import { throwIfLeaseEnded, type FenceLock } from '../store/lease-signal.js'
import type { SqlResult, SqlStatement } from '../store/sql-lock-store.js'

export type { FenceLock }

/** A store that can run statements in the same transaction as a token check (libSQL, D1). */
export interface FencedWriteStore {
  /**
   * Runs `statements` behind a check that `lock` (its node and token) still holds its lease, unexpired,
   * in one transaction.
   */
  fencedWrite(
    lock: { doId: string; nodeId: string; fencingToken: number },
    statements: SqlStatement[],
  ): Promise<SqlResult[]>
}

/**
 * Runs `statements` in ONE request and ONE transaction with a check that `lock.nodeId` still holds an
 * unexpired lease with `lock.fencingToken` (docs/design.md invariant 3). A stale holder (paused, partitioned, expired) gets
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
  const write = store !== null && typeof store === 'object' ? store.fencedWrite : undefined
  if (typeof write !== 'function') {
    throw new InvalidArgumentError('store', 'expected a store with fencedWrite (LibSQLLockStore or D1LockStore)')
  }
  if (lock === null || typeof lock !== 'object') throw new InvalidArgumentError('lock', 'expected a lock')
  // An early refusal only: the store reads and checks the lock again, once, for what it sends.
  throwIfLeaseEnded(lock)
  return write.call(store, lock, statements)
}
