import { InvalidArgumentError, StaleFencingTokenError, StoreUnavailableError } from '../errors.js'
import { assertDoId, describe } from '../validate.js'
import { checkKeys, checkLease, checkRange, checkWrites } from './object-requests.js'
import {
  type EncodedValue,
  type FlushResult,
  type ObjectLease,
  type ObjectListRange,
  type ObjectStore,
  type ObjectWrites,
} from './object-store.js'
import {
  DEFAULT_OBJECT_TABLE,
  MAX_JSON_ARGUMENT_BYTES,
  MAX_ROWS_PER_PUT,
  objectTableSql,
  prefixSuccessor,
  type ListShape,
  type ObjectTableSql,
} from './object-sql.js'
import { DEFAULT_TABLE, assertTableName, lockTableSql, type LockTableSql } from './sql.js'
import { mentionsStaleToken, toStoreError } from './sql-errors.js'
import { isTrue, toInt } from './sql-rows.js'
import type { SqlDriver, SqlResult, SqlStatement, SqlValue } from './sql-driver.js'

/** Where a {@link SqlObjectStore} keeps its rows, and which lock table's leases it judges. */
export interface SqlObjectStoreOptions {
  /** Storage table name, validated as an SQL identifier. Default `do_storage`. */
  table?: string
  /** The lock table whose leases the calls are made under (the lock store's `table`). Default `do_locks`. */
  lockTable?: string
}

/**
 * An {@link ObjectStore} over any SQLite-dialect database reachable through a {@link SqlDriver}: the
 * storage table (`do_storage`) beside the lock table in the same database, its statements in
 * `src/store/object-sql.ts`.
 *
 * Each call is ONE request: `get` and `list` one SELECT that also judges the lease (no write lock);
 * `flush` one `driver.batch` (one transaction) of lease extension (unless `writes.extend` is false),
 * fence, and the writes, so a stale holder's flush writes nothing and extends nothing (docs/design.md
 * invariant 10).
 *
 * Keys and values are strings without NUL (U+0000) and without lone surrogates: SQLite drivers read text
 * back cut at a NUL, and store a lone surrogate as U+FFFD, so neither would come back as written. They are
 * refused with an {@link InvalidArgumentError} before any I/O (docs/design.md invariant 8).
 *
 * @example
 * ```ts
 * const objects = new SqlObjectStore(driver, { lockTable: 'do_locks' })
 * await objects.ensureSchema()
 * const lease = { doId: lock.doId, nodeId: lock.nodeId, fencingToken: lock.fencingToken, ttlMs: 30_000 }
 * const { expiresAt } = await objects.flush(lease, { entries: new Map([['n', '1']]) })
 * ```
 */
export class SqlObjectStore implements ObjectStore {
  /** The statements this store runs over its table (useful for audits, benchmarks and schema wiring). */
  readonly sql: ObjectTableSql
  /** The lock table's statements whose `extend` every flush sends. */
  readonly lockSql: LockTableSql
  readonly #driver: SqlDriver

  constructor(driver: SqlDriver, options: SqlObjectStoreOptions = {}) {
    if (
      driver === null ||
      typeof driver !== 'object' ||
      typeof driver.execute !== 'function' ||
      typeof driver.batch !== 'function'
    ) {
      throw new InvalidArgumentError('driver', 'expected a SqlDriver with execute() and batch()')
    }
    if (options === null || typeof options !== 'object') {
      throw new InvalidArgumentError('options', `expected an object, got ${describe(options)}`)
    }
    const { table = DEFAULT_OBJECT_TABLE, lockTable = DEFAULT_TABLE } = options
    try {
      assertTableName(lockTable)
    } catch (error) {
      // Named as this constructor's option, not as the lock store's `table`.
      throw error instanceof InvalidArgumentError
        ? new InvalidArgumentError('lockTable', error.message.replace(/^invalid table: /, ''))
        : error
    }
    this.lockSql = lockTableSql(lockTable)
    this.sql = objectTableSql(table, this.lockSql)
    this.#driver = driver
  }

  /** Creates the storage table if missing, in one batch (`sql.schema`). Idempotent. */
  async ensureSchema(): Promise<void> {
    await this.#batch(this.sql.schema.map((sql) => ({ sql })))
  }

  /**
   * The committed values of `keys` (at most 128), keys not stored absent: one SELECT that also checks the
   * lease, rejecting with {@link StaleFencingTokenError} when it does not hold.
   */
  async get(lease: ObjectLease, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    const { doId, nodeId, fencingToken } = checkLease(lease)
    const wanted = checkKeys(keys)
    const result = await this.#execute({
      sql: this.sql.get,
      args: [doId, nodeId, fencingToken, JSON.stringify(wanted)],
    })
    return new Map(rowsUnderLease(result, doId, fencingToken))
  }

  /**
   * The committed entries within `range`, in code point order (reversed with `range.reverse`): one SELECT
   * that also checks the lease, rejecting with {@link StaleFencingTokenError} when it does not hold.
   */
  async list(lease: ObjectLease, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    const { doId, nodeId, fencingToken } = checkLease(lease)
    const { shape, bounds } = rangeSql(range)
    const args: SqlValue[] = [doId, nodeId, fencingToken, ...bounds]
    const result = await this.#execute({ sql: this.sql.list(shape), args })
    return rowsUnderLease(result, doId, fencingToken)
  }

  /** See {@link ObjectStore.getCommitted}: one SELECT, no lease. */
  async getCommitted(doId: string, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    assertDoId(doId)
    const wanted = checkKeys(keys)
    const result = await this.#execute({ sql: this.sql.getCommitted, args: [doId, null, null, JSON.stringify(wanted)] })
    return new Map(committedRows(result, doId))
  }

  /** See {@link ObjectStore.listCommitted}: one SELECT, no lease. */
  async listCommitted(doId: string, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    assertDoId(doId)
    const { shape, bounds } = rangeSql(range)
    const result = await this.#execute({ sql: this.sql.listCommitted(shape), args: [doId, null, null, ...bounds] })
    return committedRows(result, doId)
  }

  /**
   * Extends the lease to store now + `lease.ttlMs` and applies `writes`, in ONE batch and transaction:
   * all of it or, when the lease does not hold, nothing ({@link StaleFencingTokenError}). Resolves the
   * new expiry (store clock). An empty `writes` is a fenced heartbeat. With `writes.extend` false: the
   * fence, a read of the lease row (its expiry, a hand-over request) and the writes, no extension.
   */
  async flush(lease: ObjectLease, writes: ObjectWrites): Promise<FlushResult> {
    const { doId, nodeId, fencingToken, ttlMs } = checkLease(lease)
    const { deleteAll, puts, deletes, extend } = splitWrites(writes)
    // Extension first, then the fence that fails unless that extension happened (object-sql.ts,
    // extendedFence): all or nothing, the extension included. An empty flush is a fenced heartbeat.
    // Without extension the same fence checks the lease as it is; the lease row is then only read.
    const statements: SqlStatement[] = extend
      ? [
          { sql: this.lockSql.extend, args: [doId, nodeId, fencingToken, ttlMs] },
          { sql: this.sql.extendedFence, args: [doId, nodeId, fencingToken] },
        ]
      : [
          { sql: this.sql.extendedFence, args: [doId, nodeId, fencingToken] },
          { sql: this.sql.leaseState, args: [doId, fencingToken] },
        ]
    if (deleteAll) statements.push({ sql: this.sql.deleteAll, args: [doId] })
    // Keys of one flush are distinct (a Map), so deletes before puts leaves what applying them in order
    // would. After deleteAll, the deletes have nothing left to delete.
    if (!deleteAll) {
      for (const chunk of jsonChunks(deletes)) statements.push({ sql: this.sql.delete, args: [doId, chunk] })
    }
    for (let i = 0; i < puts.length; i += MAX_ROWS_PER_PUT) {
      const rows = puts.slice(i, i + MAX_ROWS_PER_PUT)
      statements.push({ sql: this.sql.put(rows.length), args: [doId, ...rows.flat()] })
    }
    let results: SqlResult[]
    try {
      results = await this.#batch(statements)
    } catch (error) {
      if (error instanceof StoreUnavailableError && mentionsStaleToken(error.cause)) {
        throw new StaleFencingTokenError(doId, fencingToken)
      }
      throw error
    }
    const row = results[extend ? 0 : 1]?.rows[0]
    if (!row) {
      // The fence aborts the batch whenever extend changes nothing, so only a driver that dropped the
      // RETURNING row gets here.
      throw new StoreUnavailableError(`object store flush of "${doId}" returned no lease row`, { retryable: false })
    }
    const expiresAt = toInt(row, doId, 'expires_at')
    return isTrue(row.handover_requested) ? { expiresAt, handoverRequested: true } : { expiresAt }
  }

  async #execute(statement: SqlStatement): Promise<SqlResult> {
    try {
      return await this.#driver.execute(statement)
    } catch (error) {
      throw toStoreError(error, 'object store')
    }
  }

  async #batch(statements: SqlStatement[]): Promise<SqlResult[]> {
    try {
      return await this.#driver.batch(statements)
    } catch (error) {
      throw toStoreError(error, 'object store')
    }
  }
}

/** A range as the shape of its statement and the values its placeholders take. */
function rangeSql(range: ObjectListRange): { shape: ListShape; bounds: SqlValue[] } {
  const { start, startAfter, end, prefix, reverse, limit } = checkRange(range)
  const bounds: SqlValue[] = []
  const bound = (value: string | undefined): boolean => {
    if (value === undefined) return false
    bounds.push(value)
    return true
  }
  const shape: ListShape = {
    start: bound(start),
    startAfter: bound(startAfter),
    end: bound(end),
    prefix: false,
    reverse,
    limit: false,
  }
  if (prefix !== undefined && prefix !== '') {
    const successor = prefixSuccessor(prefix)
    bounds.push(prefix)
    if (successor !== undefined) bounds.push(successor)
    shape.prefix = successor === undefined ? 'from' : 'range'
  }
  if (limit !== undefined) {
    bounds.push(limit)
    shape.limit = true
  }
  return { shape, bounds }
}

/** A flush's checked writes split for its statements: puts and deletes (a Map's keys are distinct). */
function splitWrites(writes: ObjectWrites): {
  deleteAll: boolean
  puts: Array<[string, string]>
  deletes: string[]
  extend: boolean
} {
  const { deleteAll, entries, extend } = checkWrites(writes)
  const puts: Array<[string, string]> = []
  const deletes: string[] = []
  for (const [key, value] of entries) {
    if (value === null) deletes.push(key)
    else puts.push([key, value])
  }
  return { deleteAll, puts, deletes, extend }
}

/** JSON arrays of `keys`, each small enough for one bound argument ({@link MAX_JSON_ARGUMENT_BYTES}). */
function* jsonChunks(keys: readonly string[]): Generator<string> {
  let chunk: string[] = []
  let bytes = 2
  for (const key of keys) {
    const json = JSON.stringify(key)
    // At most 3 UTF-8 bytes per UTF-16 code unit; the comma too.
    const size = 3 * json.length + 1
    if (chunk.length > 0 && bytes + size > MAX_JSON_ARGUMENT_BYTES) {
      yield `[${chunk.join(',')}]`
      chunk = []
      bytes = 2
    }
    chunk.push(json)
    bytes += size
  }
  if (chunk.length > 0) yield `[${chunk.join(',')}]`
}

/** The storage rows of a read, or StaleFencingTokenError when it came back without the lease row. */
function rowsUnderLease(result: SqlResult, doId: string, fencingToken: number): Array<[string, EncodedValue]> {
  if (result.rows.length === 0) throw new StaleFencingTokenError(doId, fencingToken)
  return committedRows(result, doId)
}

/** The (key, value) rows of a read, checked to be text; a NULL key is the lease row alone (nothing matched). */
function committedRows(result: SqlResult, doId: string): Array<[string, EncodedValue]> {
  const entries: Array<[string, EncodedValue]> = []
  for (const row of result.rows) {
    const { key, value } = row
    if (key === null || key === undefined) continue // the lease row alone: held, nothing matched
    if (typeof key !== 'string' || typeof value !== 'string') {
      throw new StoreUnavailableError(
        `object row of "${doId}" is corrupt: key is ${typeof key}, value is ${value === null ? 'null' : typeof value} (expected text)`,
        { retryable: false },
      )
    }
    entries.push([key, value])
  }
  return entries
}
