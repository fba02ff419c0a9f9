import { CorruptLockRowError, InvalidArgumentError, StaleFencingTokenError, StoreUnavailableError } from '../errors.js'
import { throwIfLeaseEnded, type FenceLock } from './lease-signal.js'
import { mentionsStaleToken, toStoreError } from './sql-errors.js'
import { assertDoId, assertNodeId, assertToken, describe } from '../validate.js'
import {
  checkAcquire,
  checkHandoff,
  checkHandover,
  checkListFilter,
  checkPrune,
  checkRef,
  checkRefresh,
} from './requests.js'
import {
  type AcquireRequest,
  type HandoffRequest,
  type HandoverRequest,
  type ListFilter,
  type LockInfo,
  type LockRecord,
  type LockRef,
  type LockStore,
  type PruneOptions,
  type PruneResult,
  type RefreshRequest,
  type RefreshedLock,
  type StoreAcquireResult,
} from './lock-store.js'
import { DEFAULT_TABLE, lockTableSql, type LockTableSql } from './sql.js'
import type { SqlDriver, SqlResult, SqlStatement, SqlValue } from './sql-driver.js'
import { objectTableFor } from './object-sql.js'
import { SqlObjectStore } from './sql-object-store.js'
import { isTrue, parseInfo, parsePrefetched, parseRecord, toInt } from './sql-rows.js'

export type { SqlDriver, SqlResult, SqlStatement, SqlValue } from './sql-driver.js'

/** Options of {@link SqlLockStore} (and of the libSQL and D1 stores built on it). */
export interface SqlLockStoreOptions {
  /**
   * Lock table name: a plain SQL identifier (letters, digits, underscore; at most 56 characters), not
   * `sqlite` or `sqlite_*`. The index, fence view and high-water table are named after it.
   *
   * @default 'do_locks'
   */
  table?: string
  /**
   * Object storage table (the `storage` of a `StatelessDO`), in the same database so a flush's writes
   * and its lease check share one transaction. A plain SQL identifier like `table`.
   *
   * @default 'do_storage' with the default lock table, else `<table>_storage` (so two lock tables in one
   * database never share objects' rows)
   */
  objectTable?: string
}

/**
 * A {@link LockStore} over any SQLite-dialect database reachable through a {@link SqlDriver}.
 * {@link LibSQLLockStore} and `D1LockStore` are this class with their driver plugged in.
 */
export class SqlLockStore implements LockStore {
  /** The statements this store runs (useful for audits and benchmarks). */
  readonly sql: LockTableSql
  /**
   * The objects' key-value rows (`do_storage`), over the same database and driver: what
   * `ObjectStorage` (a `StatelessDO`'s `storage`) reads and flushes under this store's leases.
   */
  readonly objects: SqlObjectStore
  readonly #driver: SqlDriver

  constructor(driver: SqlDriver, options: SqlLockStoreOptions = {}) {
    if (
      driver === null ||
      typeof driver !== 'object' ||
      typeof driver.execute !== 'function' ||
      typeof driver.batch !== 'function'
    ) {
      throw new InvalidArgumentError('client', 'expected a database client with execute() and batch()')
    }
    this.sql = lockTableSql(options.table ?? DEFAULT_TABLE)
    this.objects = new SqlObjectStore(driver, {
      table: objectTableFor(this.sql.table, options.objectTable),
      lockTable: this.sql.table,
    })
    this.#driver = driver
  }

  /**
   * Creates the lock table, its index, the high-water mark, the fence view + trigger and the object
   * storage table if missing; upgrades an earlier fence. One batch.
   */
  async ensureSchema(): Promise<void> {
    await this.#batch([...this.sql.schema, ...this.objects.sql.schema].map((sql) => ({ sql })))
  }

  /**
   * Takes the lease if free, released or expired (token + 1); otherwise reports the holder and the
   * store's now. One batch: the upsert, the holder's row and, with `prefetch`, the object's first rows
   * (read in the same transaction, only if the lease was taken). A row the library could not have
   * written is reported as {@link CorruptLockRowError}.
   */
  async acquire(request: AcquireRequest): Promise<StoreAcquireResult> {
    const { doId, nodeId, ttlMs, metadata, prefetch } = checkAcquire(request)
    const statements: SqlStatement[] = [
      { sql: this.sql.acquire, args: [doId, nodeId, ttlMs, metadata] },
      { sql: this.sql.holder, args: [doId] },
    ]
    // One row more than asked for: if it comes, the object has rows the prefetch does not hold.
    if (prefetch !== undefined) statements.push({ sql: this.objects.sql.prefetch, args: [doId, prefetch + 1, nodeId] })
    const [taken, current, rows] = await this.#batch(statements)
    const won = taken?.rows[0]
    if (won) {
      const lock = parseRecord(won, doId)
      if (prefetch === undefined) return { acquired: true, lock }
      return { acquired: true, lock, prefetched: parsePrefetched(rows, prefetch) }
    }
    const row = current?.rows[0]
    if (!row) throw new StoreUnavailableError(`acquire of "${doId}" returned no row`, { retryable: true })
    const holder = parseRecord(row, doId)
    const storeNow = toInt(row, doId, 'store_now')
    if (holder.expiresAt <= storeNow && (holder.fencingToken < 0 || holder.fencingToken >= Number.MAX_SAFE_INTEGER)) {
      // Free, yet not taken: the upsert refuses a token below 0, or one whose successor would not be
      // a safe integer. Said once here, rather than "held" (with retryAfterMs 1) forever.
      throw new CorruptLockRowError(
        doId,
        'fencing_token',
        holder.fencingToken < 0
          ? `is negative (${holder.fencingToken})`
          : 'is at Number.MAX_SAFE_INTEGER: no later token can be issued exactly',
      )
    }
    return { acquired: false, holder, storeNow }
  }

  /** Extends the lease to store-now + ttl if that node still holds it with that token; `null` otherwise. One statement. */
  async refresh(request: RefreshRequest): Promise<RefreshedLock | null> {
    const { doId, nodeId, fencingToken, ttlMs } = checkRefresh(request)
    const result = await this.#execute({ sql: this.sql.refresh, args: [doId, nodeId, fencingToken, ttlMs] })
    const row = result.rows[0]
    if (!row) return null
    const record: RefreshedLock = parseRecord(row, doId)
    if (isTrue(row.handover_requested)) record.handoverRequested = true
    return record
  }

  /** Asks another node's live lease on the id to let go (see {@link LockStore.requestHandover}). One statement. */
  async requestHandover(request: HandoverRequest): Promise<number | null> {
    const { doId, nodeId } = checkHandover(request)
    const result = await this.#execute({ sql: this.sql.requestHandover, args: [doId, nodeId] })
    const row = result.rows[0]
    return row ? toInt(row, doId, 'fencing_token') : null
  }

  /** Marks the lease free if that node still holds it with that token (the row and token stay). One statement. */
  async release(request: LockRef): Promise<boolean> {
    const { doId, nodeId, fencingToken } = checkRef(request)
    const result = await this.#execute({ sql: this.sql.release, args: [doId, nodeId, fencingToken] })
    return result.rowsAffected > 0
  }

  /**
   * Passes the lease to the next holder if that node still holds it with that token: the next token,
   * in the same commit (see {@link LockStore.handoff}); `null` and nothing changed otherwise. One
   * statement.
   */
  async handoff(request: HandoffRequest): Promise<LockRecord | null> {
    const { doId, nodeId, fencingToken, toNodeId, ttlMs, metadata } = checkHandoff(request)
    const result = await this.#execute({
      sql: this.sql.handoff,
      args: [doId, nodeId, fencingToken, toNodeId, ttlMs, metadata],
    })
    const row = result.rows[0]
    return row ? parseRecord(row, doId) : null
  }

  /** The row with the store's verdict (`held`, `storeNow`), or `null` if the id has no row. One statement. */
  async get(doId: string): Promise<LockInfo | null> {
    assertDoId(doId)
    const result = await this.#execute({ sql: this.sql.get, args: [doId] })
    const row = result.rows[0]
    return row ? parseInfo(row, doId) : null
  }

  /** Unexpired leases ordered by id, optionally one node's; corrupt rows are skipped. One statement. */
  async list(filter: ListFilter = {}): Promise<LockInfo[]> {
    const { nodeId, limit } = checkListFilter(filter)
    const statement =
      nodeId === undefined ? { sql: this.sql.list, args: [limit] } : { sql: this.sql.listByNode, args: [limit, nodeId] }
    const result = await this.#execute(statement)
    return result.rows.map((row) => parseInfo(row, String(row.do_id)))
  }

  /** Administrative: frees a lease whoever holds it; the token stays. One statement. */
  async forceRelease(doId: string): Promise<boolean> {
    assertDoId(doId)
    const result = await this.#execute({ sql: this.sql.forceRelease, args: [doId] })
    return result.rowsAffected > 0
  }

  /**
   * Removes rows nobody has held for more than `olderThanMs`, raising the high-water mark in the same
   * transaction so tokens never repeat (see {@link LockStore.prune}). One batch.
   */
  async prune(options: PruneOptions): Promise<PruneResult> {
    const { olderThanMs, limit } = checkPrune(options)
    const args = [olderThanMs, limit]
    const [, removed] = await this.#batch([
      { sql: this.sql.pruneMark, args },
      { sql: this.sql.prune, args },
      { sql: this.sql.pruneHandover, args: [] },
    ])
    return { removed: removed?.rowsAffected ?? 0 }
  }

  /**
   * Runs `statements` in one transaction, in one request, after a check that `lock.nodeId` still holds
   * an unexpired lease with `lock.fencingToken` (docs/design.md invariant 3). If it does not, nothing is written and
   * {@link StaleFencingTokenError} is thrown (docs/design.md invariant 5). A guard `Lock` whose signal
   * already fired is refused with `LockLostError` before any I/O (invariant 7).
   */
  async fencedWrite(lock: FenceLock, statements: SqlStatement[]): Promise<SqlResult[]> {
    const checked = checkFenceLock(lock)
    const copies = checkStatements(statements)
    throwIfLeaseEnded(checked)
    const { doId, nodeId, fencingToken } = checked
    const fence = { sql: this.sql.fence, args: [doId, nodeId, fencingToken] }
    try {
      const results = await this.#batch([fence, ...copies])
      return results.slice(1)
    } catch (error) {
      if (error instanceof StoreUnavailableError && mentionsStaleToken(error.cause)) {
        throw new StaleFencingTokenError(doId, fencingToken)
      }
      throw error
    }
  }

  async #execute(statement: SqlStatement): Promise<SqlResult> {
    try {
      return await this.#driver.execute(statement)
    } catch (error) {
      throw toStoreError(error)
    }
  }

  async #batch(statements: SqlStatement[]): Promise<SqlResult[]> {
    try {
      return await this.#driver.batch(statements)
    } catch (error) {
      throw toStoreError(error)
    }
  }
}

/** Reads each field of `lock` once and validates that copy (the store uses nothing else). */
function checkFenceLock(lock: FenceLock): FenceLock {
  if (lock === null || typeof lock !== 'object') throw new InvalidArgumentError('lock', 'expected a lock')
  const { doId, nodeId, fencingToken, signal } = lock
  assertDoId(doId, 'lock.doId')
  assertNodeId(nodeId, 'lock.nodeId')
  assertToken(fencingToken, 'lock.fencingToken')
  return signal === undefined ? { doId, nodeId, fencingToken } : { doId, nodeId, fencingToken, signal }
}

/**
 * Copies the caller's statements, reading each element and field once, and validates the copy: what
 * is sent is exactly what passed. A hole (`[a, , b]`) is refused by name, not skipped as `forEach`
 * would (a hole in `args` would be bound as NULL).
 */
function checkStatements(statements: unknown): SqlStatement[] {
  if (!Array.isArray(statements)) throw new InvalidArgumentError('statements', 'expected an array of statements')
  return copyArray(statements, 'statements', checkStatement)
}

function copyArray<T>(array: unknown[], name: string, check: (value: unknown, argument: string) => T): T[] {
  const length = array.length
  const copy: T[] = []
  for (let i = 0; i < length; i++) {
    if (!(i in array)) throw new InvalidArgumentError(`${name}[${i}]`, 'is a hole in the array (expected a value)')
    copy.push(check(array[i], `${name}[${i}]`))
  }
  return copy
}

function checkStatement(statement: unknown, argument: string): SqlStatement {
  if (statement === null || typeof statement !== 'object') {
    throw new InvalidArgumentError(argument, `expected a statement { sql, args? }, got ${describe(statement)}`)
  }
  const { sql, args } = statement as SqlStatement
  if (typeof sql !== 'string' || sql.trim() === '') {
    throw new InvalidArgumentError(`${argument}.sql`, 'expected a non-empty SQL string')
  }
  if (args === undefined) return { sql }
  if (!Array.isArray(args)) throw new InvalidArgumentError(`${argument}.args`, 'expected an array of values')
  return { sql, args: copyArray(args, `${argument}.args`, checkValue) }
}

function checkValue(value: unknown, argument: string): SqlValue {
  if (typeof value === 'number' && !Number.isFinite(value)) {
    // Drivers would bind it as NULL (D1) or a float SQLite cannot store: never what was meant.
    throw new InvalidArgumentError(argument, `expected a finite number, got ${value}`)
  }
  if (
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'bigint' ||
    typeof value === 'boolean' ||
    value instanceof Uint8Array ||
    value instanceof ArrayBuffer
  ) {
    return value
  }
  throw new InvalidArgumentError(
    argument,
    `expected a string, number, bigint, boolean, null, Uint8Array or ArrayBuffer, got ${describe(value)}`,
  )
}
