/**
 * Reading what the lock store's statements return: lease rows (src/store/sql.ts) checked column by
 * column, so a row the library could not have written is a {@link CorruptLockRowError} naming the
 * column, and the storage rows an acquire prefetched (src/store/object-sql.ts, `prefetch`).
 *
 * @module
 */
import { CorruptLockRowError } from '../errors.js'
import type { LockInfo, LockRecord, PrefetchedRows } from './lock-store.js'
import type { EncodedValue } from './object-store.js'
import type { SqlResult } from './sql-driver.js'
import { MAX_PREFETCH_CHARS } from './object-sql.js'

/**
 * Drivers may return integers as number, bigint or string (libSQL intMode); accept all, exactly. The
 * statements return NULL for a stored value that is not a safe integer, with its SQLite type in
 * `<column>_type` (src/store/sql.ts), so the driver never has to read one.
 */
export function toInt(row: Record<string, unknown>, doId: string, column: string): number {
  const value = row[column]
  const n =
    typeof value === 'bigint'
      ? Number(value)
      : typeof value === 'string' && /^-?\d+$/.test(value)
        ? Number(value)
        : value
  if (typeof n === 'number' && Number.isSafeInteger(n)) return n
  const stored = row[`${column}_type`] ?? typeof value
  throw new CorruptLockRowError(
    doId,
    column,
    stored === 'integer'
      ? 'is an integer beyond ±(2^53 - 1), which JavaScript cannot hold exactly'
      : `is not an integer (${String(stored)})`,
  )
}

/** A SQL boolean as drivers return it (1, 1n, '1' or true). */
export function isTrue(value: unknown): boolean {
  return value === 1 || value === 1n || value === '1' || value === true
}

/** A lease row as a {@link LockRecord}; throws {@link CorruptLockRowError} for a column the library could not have written. */
export function parseRecord(row: Record<string, unknown>, doId: string): LockRecord {
  if (typeof row.do_id !== 'string') throw new CorruptLockRowError(doId, 'do_id', 'is not text')
  if (typeof row.node_id !== 'string') throw new CorruptLockRowError(doId, 'node_id', 'is not text')
  const record: LockRecord = {
    doId: row.do_id,
    nodeId: row.node_id,
    fencingToken: toInt(row, doId, 'fencing_token'),
    acquiredAt: toInt(row, doId, 'acquired_at'),
    expiresAt: toInt(row, doId, 'expires_at'),
  }
  const raw = row.metadata
  if (raw !== null && raw !== undefined) {
    if (typeof raw !== 'string') throw new CorruptLockRowError(doId, 'metadata', 'is not text')
    try {
      record.metadata = JSON.parse(raw)
    } catch {
      throw new CorruptLockRowError(doId, 'metadata', 'is not valid JSON')
    }
  }
  return record
}

/** A lease row with the store's verdict at `store_now`. */
export function parseInfo(row: Record<string, unknown>, doId: string): LockInfo {
  const record = parseRecord(row, doId)
  const storeNow = toInt(row, doId, 'store_now')
  return { ...record, held: record.expiresAt > storeNow, storeNow }
}

/**
 * The rows of an acquire's `prefetch` statement (asked for `limit + 1`): the first `limit`, and whether
 * that is all of them. It stops before a row whose key or value is not text (someone else's SQL wrote
 * it): the rows before it, not complete, so that reading that key goes to the object store, which
 * reports the corrupt row, instead of failing an acquire whose lease is already taken.
 */
export function parsePrefetched(result: SqlResult | undefined, limit: number): PrefetchedRows {
  const rows = result?.rows ?? []
  const entries: Array<[string, EncodedValue]> = []
  for (let i = 0; i < Math.min(limit, rows.length); i++) {
    const { key, value, upto } = rows[i]!
    if (typeof key !== 'string' || typeof value !== 'string') return { entries, complete: false }
    // Past the byte budget (MAX_PREFETCH_CHARS): the statement sent this row only to say so.
    if (Number(upto) > MAX_PREFETCH_CHARS) return { entries, complete: false }
    entries.push([key, value])
  }
  return { entries, complete: rows.length <= limit }
}
