/**
 * The CLI's own statements over the object storage table: read-only, and outside any lease, which the
 * library's reads (`src/store/object-sql.ts`) never are. An operator looks at what is committed;
 * nothing read here is acted on under a lease.
 *
 * @module
 */
import { assertTableName } from '../store/sql.js'

/** The two reads of `show`, for one storage table. */
export interface StorageInspectionSql {
  /**
   * The object's keys from `?2` (inclusive) up to `?3` (exclusive; NULL: no bound), in key order, at
   * most `?4`, each with its encoded value's size in UTF-8 bytes, and the value itself when asked.
   */
  readonly keys: string
  /** How many keys the same range holds, and their values' bytes in total. Args `?1 ?2 ?3`. */
  readonly totals: string
}

/** The statements for `table`, with or without the values. */
export function storageInspectionSql(table: string, withValues: boolean): StorageInspectionSql {
  assertTableName(table)
  const range = `s.do_id = ?1 AND s.key >= ?2 AND (?3 IS NULL OR s.key < ?3)`
  return {
    keys: `SELECT s.key AS key, length(CAST(s.value AS BLOB)) AS bytes${withValues ? ', s.value AS value' : ''}
      FROM "${table}" AS s WHERE ${range} ORDER BY s.key LIMIT ?4`,
    totals: `SELECT count(*) AS keys, coalesce(sum(length(CAST(s.value AS BLOB))), 0) AS bytes
      FROM "${table}" AS s WHERE ${range}`,
  }
}
