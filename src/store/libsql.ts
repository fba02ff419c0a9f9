import { InvalidArgumentError } from '../errors.js'
import { groupCommitDriver, type GroupCommitOptions } from './group-commit.js'
import {
  SqlLockStore,
  type SqlDriver,
  type SqlLockStoreOptions,
  type SqlResult,
  type SqlStatement,
  type SqlValue,
} from './sql-lock-store.js'
import { objectTableFor, objectTableSql } from './object-sql.js'
import { DEFAULT_TABLE, lockTableSql } from './sql.js'

/**
 * The slice of `@libsql/client`'s `Client` this store uses. Any client works: `@libsql/client`
 * (`file:`, `:memory:`, `libsql://`, `http://`) or `@libsql/client/web` inside Workers.
 */
export interface LibSQLClientLike {
  /**
   * `'file'` for local databases (including `:memory:`), `'http'`/`'ws'`/... for remote ones; see
   * {@link LibSQLLockStoreOptions.local} for a client that has none.
   */
  readonly protocol?: string
  /** Runs one statement (one request). */
  execute(statement: { sql: string; args: SqlValue[] }): Promise<{ rows: ArrayLike<unknown>; rowsAffected: number }>
  /** Runs the statements in one transaction (one request); the store always asks for `'write'`. */
  batch(
    statements: Array<{ sql: string; args: SqlValue[] }>,
    mode?: 'write' | 'read' | 'deferred',
  ): Promise<Array<{ rows: ArrayLike<unknown>; rowsAffected: number }>>
  /** Used only to replace a local connection that SQLITE_BUSY left unusable ({@link recoverLibSQLConnection}). */
  transaction?(mode?: 'write' | 'read' | 'deferred'): Promise<{ close(): void }>
}

/** Options of {@link LibSQLLockStore}: `table` (from {@link SqlLockStoreOptions}), `local`, `groupCommit`. */
export interface LibSQLLockStoreOptions extends SqlLockStoreOptions {
  /**
   * Whether the client talks to a local SQLite file (`file:`, `:memory:`). Locally every statement runs
   * inside a write batch, so a connection that SQLITE_BUSY left stuck fails loudly at `COMMIT` instead
   * of a write (a heartbeat) silently staying in a transaction nobody commits, and after SQLITE_BUSY
   * the store replaces the connection (which needs the client's `transaction()`: a wrapper that
   * forwards only `execute` and `batch` gets the loud failure, not the repair). Remotely a single
   * statement is sent as a plain `execute`.
   *
   * @default `client.protocol === 'file'`, and `true` when the client reports no `protocol` (a wrapper
   * may forward only `execute` and `batch`; the local treatment costs a remote client nothing but a
   * batch per statement, still one request). Set `false` for such a wrapper around a remote client.
   */
  local?: boolean
  /**
   * Group commit (default off). Acquire, refresh and release operations issued concurrently (in the
   * same tick, or while a combined batch is in flight) go to the database as ONE batch: one request,
   * one transaction and one commit for all of them. Each caller gets only its own statements' results,
   * computed as if the operations had run one after the other. If the combined batch fails in one of
   * its statements (it rolled back), its operations are sent again one by one, so only the failing one
   * is rejected; if it fails otherwise (network, busy database), every caller in it is rejected with
   * that error, never answered wrongly. Fenced writes, `get`, `list`, `forceRelease` and
   * `ensureSchema` are never combined. `true` uses the defaults of {@link GroupCommitOptions}.
   *
   * Trade-off: a process that runs many lock operations at once (a busy node sharing one store) gains
   * throughput, most on a local `file:` database where every commit syncs the WAL, less with a remote
   * database, where one combined batch is in flight at a time (measurements: `bench/RESULTS.md`). In
   * exchange, an operation that arrives while a batch is in flight waits for it (up to about two round
   * trips instead of one, or `stallMs`), a transport failure fails its whole group, and each batch
   * holds the database's write lock for the whole group. A lone operation pays a few microseconds of
   * bookkeeping, which is why this stays off unless asked for. In Cloudflare Workers, use it only
   * where one store serves one context (inside a Durable Object): a store shared by concurrent
   * requests would send one request's operations on another request's I/O.
   *
   * @default false
   */
  groupCommit?: boolean | GroupCommitOptions
}

/**
 * The default {@link LockStore}: the `do_locks` table in a libSQL / Turso / SQLite database.
 *
 * For a local `file:` database shared by several processes, enable WAL and a busy timeout on the
 * client once (`PRAGMA journal_mode=WAL`, `PRAGMA busy_timeout=5000`); a busy database surfaces as a
 * retryable {@link StoreUnavailableError}, never as a wrong answer. Do not use `:memory:` with
 * `client.transaction()` elsewhere: libSQL opens a new (empty) in-memory database for it.
 *
 * @example
 * ```ts
 * import { createClient } from '@libsql/client'
 * const store = new LibSQLLockStore(createClient({ url: 'file:locks.db' }))
 * await store.ensureSchema()
 * const r = await store.acquire({ doId: 'room-1', nodeId: 'node-a', ttlMs: 30_000 })
 * ```
 */
export class LibSQLLockStore extends SqlLockStore {
  constructor(client: LibSQLClientLike, options: LibSQLLockStoreOptions = {}) {
    const local = options.local
    if (local !== undefined && typeof local !== 'boolean') throw new InvalidArgumentError('local', 'expected a boolean')
    const driver = libsqlDriver(client, local)
    const groupCommit = options.groupCommit ?? false
    if (typeof groupCommit !== 'boolean' && (groupCommit === null || typeof groupCommit !== 'object')) {
      throw new InvalidArgumentError('groupCommit', 'expected a boolean or { maxOperations?, stallMs? }')
    }
    super(groupCommit === false ? driver : groupCommitLockOperations(driver, options, groupCommit), options)
  }
}

/**
 * Only acquire ([upsert, holder] or [upsert, holder, prefetch]), refresh and release share a
 * transaction with other callers': they cannot raise (a lost race or a stale holder is an empty result,
 * not an error; a prefetch only reads). Matched by exact shape, so `get` (the same SELECT as `holder`,
 * sent alone) is not combined.
 */
function groupCommitLockOperations(
  driver: SqlDriver,
  tables: SqlLockStoreOptions,
  options: true | GroupCommitOptions,
): SqlDriver {
  const sql = lockTableSql(tables.table ?? DEFAULT_TABLE)
  const prefetch = objectTableSql(objectTableFor(sql.table, tables.objectTable), sql).prefetch
  const isAcquire = (s: readonly SqlStatement[]) => s[0]!.sql === sql.acquire && s[1]!.sql === sql.holder
  return groupCommitDriver(driver, {
    ...(options === true ? {} : options),
    retryAlone: failedInStatement,
    canCombine: (s) =>
      s.length === 3
        ? isAcquire(s) && s[2]!.sql === prefetch
        : s.length === 2
          ? isAcquire(s)
          : s.length === 1 && (s[0]!.sql === sql.refresh || s[0]!.sql === sql.release),
  })
}

/**
 * A SQLite error other than BUSY/LOCKED/PROTOCOL: a statement of the batch failed, and the batch rolled
 * back (locally libsql's batch ROLLBACKs; remotely the server skips the later steps and rolls back).
 * Transport errors carry no SQLite code, and a busy database would fail each operation alone too.
 */
function failedInStatement(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^SQLITE_/.test(code) && !/^SQLITE_(BUSY|LOCKED|PROTOCOL)/.test(code)
}

function libsqlDriver(client: LibSQLClientLike, localOption: boolean | undefined): SqlDriver {
  if (
    client === null ||
    typeof client !== 'object' ||
    typeof client.execute !== 'function' ||
    typeof client.batch !== 'function'
  ) {
    throw new InvalidArgumentError('client', 'expected an @libsql/client Client (with execute and batch)')
  }
  const toArgs = (s: SqlStatement) => ({ sql: s.sql, args: s.args ?? [] })
  // Unknown counts as local: wrongly local costs a remote client nothing; wrongly remote leaves a local
  // one without its SQLITE_BUSY defence.
  const protocol = client.protocol
  const local = localOption ?? (protocol === undefined || protocol === 'file')
  // One connection swap at a time: operations that fail with SQLITE_BUSY together share it, and the
  // store's next operations wait for it, so none of them runs on the fresh connection before its
  // busy_timeout is set again (it would fail at once, and swap again).
  let recovering: Promise<void> | undefined
  const recover = (): Promise<void> =>
    (recovering ??= recoverLibSQLConnection(client).finally(() => {
      recovering = undefined
    }))
  const batch = async (statements: SqlStatement[]) => {
    if (recovering) await recovering
    try {
      return (await client.batch(statements.map(toArgs), 'write')).map(asResult)
    } catch (error) {
      if (local && isBusy(error)) await recover()
      throw error
    }
  }
  return {
    // Locally every statement runs inside a batch (one call, BEGIN IMMEDIATE ... COMMIT): if the
    // connection is ever left with a stuck statement, COMMIT fails loudly instead of the write silently
    // sitting in a transaction nobody commits. Remotely a plain execute is one request already.
    execute: local
      ? async (statement) => (await batch([statement]))[0]!
      : async (statement) => asResult(await client.execute(toArgs(statement))),
    batch,
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'SQLITE_BUSY' || /SQLITE_BUSY|database is locked/.test(String((error as Error)?.message))
}

/** Per-connection settings a fresh connection would lose; carried over by {@link recoverLibSQLConnection}. */
const CONNECTION_PRAGMAS = ['busy_timeout', 'synchronous', 'foreign_keys', 'cache_size', 'temp_store'] as const

/**
 * Makes a local (`file:`) libSQL client drop its connection and open a fresh one, carrying over the
 * per-connection settings above (WAL mode lives in the file and needs nothing).
 *
 * Why: libsql (up to at least 0.5.29) does not reset a statement that failed with SQLITE_BUSY. The stuck
 * statement keeps the connection in an open transaction: later writes on it are never committed and
 * its reads see an old snapshot. `LibSQLLockStore` calls this itself after SQLITE_BUSY; call it too
 * when one of YOUR statements on a shared client fails with SQLITE_BUSY. The old connection cannot be
 * closed through the client's API and is left to the garbage collector, so keep `busy_timeout` long
 * enough (seconds) that SQLITE_BUSY stays rare. Never use it on `:memory:` (a new connection is a new,
 * empty database). Best effort: never throws.
 */
export async function recoverLibSQLConnection(client: LibSQLClientLike): Promise<void> {
  if (typeof client.transaction !== 'function') return
  try {
    const settings: string[] = []
    for (const pragma of CONNECTION_PRAGMAS) {
      const row = (await client.execute({ sql: `PRAGMA ${pragma}`, args: [] })).rows[0] as
        Record<string, unknown> | undefined
      const value = Number(row?.[pragma === 'busy_timeout' ? 'timeout' : pragma])
      if (Number.isSafeInteger(value)) settings.push(`PRAGMA ${pragma} = ${value}`)
    }
    // transaction() hands the current connection to the transaction and opens a new one next time.
    ;(await client.transaction('deferred')).close()
    for (const sql of settings) await client.execute({ sql, args: [] })
  } catch {
    // Best effort: the caller already has the original (retryable) error.
  }
}

// libSQL rows are array-like objects that also expose each column by name.
function asResult(result: { rows: ArrayLike<unknown>; rowsAffected: number }): SqlResult {
  return { rows: result.rows as unknown as SqlResult['rows'], rowsAffected: result.rowsAffected }
}
