/**
 * `LibSQLLockStore`: the lock table (and object storage) in a libSQL / Turso / SQLite database, on one
 * of two engines.
 *
 * - The local engine (`local-engine.ts`) for a local file: one native `libsql` connection owned by the
 *   store, cached prepared statements, SQLITE_BUSY waited out asynchronously with jitter (a native
 *   busy wait of none), an explicit ROLLBACK after any failure, never an abandoned
 *   connection. Failures 1-3 of issue 13 (a leaked connection per SQLITE_BUSY, a wrapper client whose
 *   heartbeats "succeed" without committing, `busy_timeout` freezing the process) cannot happen there:
 *   there is no swap to leak, no client to wrap, no blocking wait.
 * - The client engine: every statement through the `@libsql/client` `Client` handed over (remote
 *   databases, Workers, embedded replicas, wrappers), with its SQLITE_BUSY defences.
 *
 * Which one, decided without trusting an optional field: a URL string (`'file:app.db'`) always runs
 * on the local engine, and a `Client` on the client engine unless `engine: 'native'` is asked for.
 * Nothing public on `@libsql/client`'s local client exposes its path or connection (both are private
 * fields), and a `file:` client may be an embedded replica whose writes belong to the remote primary,
 * which writing the file directly would bypass: so a client is driven natively only on request, and
 * then only after `PRAGMA database_list` names a file and `sync()` says it is no replica. On the
 * client engine a client reporting no `protocol` is treated as local (every statement in a write
 * batch), so a wrapper that forwards only `execute`/`batch` over a stuck connection fails loudly at
 * COMMIT rather than reporting a heartbeat that committed nothing.
 *
 * `src/` stays runtime-agnostic: `libsql` is not imported here but loaded by name at the first request
 * of a local-engine store (or handed in as `options.libsql`), so Workers bundles never include it.
 *
 * @module
 */
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
import { MAX_ROWS_PER_PUT, objectTableFor, objectTableSql } from './object-sql.js'
import { DEFAULT_TABLE, lockTableSql } from './sql.js'
import { DEFAULT_LOCAL_BUSY_TIMEOUT_MS, type LocalEngine, type NativeDatabaseConstructor } from './local-engine.js'
import { lazyLocalEngine, localClientFile, localPath } from './local-open.js'

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
  /**
   * Closes the client's connections and opens fresh ones on next use (`@libsql/client` 0.18+, whose
   * local client keeps a pool: there, the connection swap of {@link recoverLibSQLConnection} uses this).
   */
  reconnect?(): Promise<void> | void
}

/**
 * Options of {@link LibSQLLockStore}: `table` and `objectTable` (from {@link SqlLockStoreOptions}),
 * `engine`, `busyTimeoutMs`, `pragmas`, `libsql`, `local`, `groupCommit`.
 */
export interface LibSQLLockStoreOptions extends SqlLockStoreOptions {
  /**
   * What runs the statements:
   *
   * - `'native'`: the local engine (`src/store/local-engine.ts`): one native `libsql` connection the
   *   store opens and owns, cached prepared statements, SQLITE_BUSY waited out asynchronously (the
   *   event loop never waits for a lock), an explicit rollback after any failure
   *   and never an abandoned connection. For a URL it opens that file; for a `file:` `@libsql/client`
   *   client, the file that client has open (found with `PRAGMA database_list`), refusing, at the first
   *   request, an in-memory database or an embedded replica (whose writes belong to the primary).
   * - `'client'`: every statement through the `@libsql/client` client you passed (remote databases,
   *   Workers, embedded replicas, any wrapper), with the SQLITE_BUSY defences described at `local`.
   *
   * @default `'native'` when the store is given a URL (the only engine a URL can have), `'client'` when
   * given a client: a client's own connection is left alone unless asked (its settings, its wrappers,
   * and an embedded replica that looks like a local file are the user's business).
   */
  engine?: 'native' | 'client'
  /**
   * Local engine only: how long a request waits, in total and asynchronously, for another
   * connection's write transaction before failing with a retryable `StoreUnavailableError`.
   *
   * @default 5000 for a URL; for a client, the client's own `PRAGMA busy_timeout` (read once)
   */
  busyTimeoutMs?: number
  /**
   * Local engine with a URL only: `PRAGMA` settings run when the connection opens, as
   * `'name = value'` strings.
   *
   * @default `['journal_mode = WAL']` for a file (several processes may share it), `[]` for `:memory:`.
   * Keep SQLite's default `synchronous = FULL` for `do_locks` (see the README's "Durability").
   */
  pragmas?: readonly string[]
  /**
   * Local engine only: the `libsql` package's `Database` constructor (`import Database from 'libsql'`),
   * for bundles that cannot load it by name. Default: loaded with a dynamic `import('libsql')` at the
   * first request.
   */
  libsql?: NativeDatabaseConstructor
  /**
   * Client engine only: whether the client talks to a local SQLite file (`file:`, `:memory:`). Locally
   * every statement runs inside a write batch, so a connection that SQLITE_BUSY left stuck fails loudly
   * at `COMMIT` instead of a write (a heartbeat) silently staying in a transaction nobody commits, and
   * after SQLITE_BUSY the store replaces the connection (which needs the client's `transaction()`: a
   * wrapper that forwards only `execute` and `batch` gets the loud failure, not the repair). Remotely a
   * single statement is sent as a plain `execute`.
   *
   * @default `client.protocol === 'file'`, and `true` when the client reports no `protocol` (a wrapper
   * may forward only `execute` and `batch`; the local treatment costs a remote client nothing but a
   * batch per statement, still one request). Set `false` for such a wrapper around a remote client.
   */
  local?: boolean
  /**
   * Group commit (default off). Acquire, refresh, release and handoff operations, and the object
   * flushes of `objects` (at most {@link MAX_COMBINED_FLUSH_STATEMENTS} statements and
   * {@link MAX_COMBINED_FLUSH_CHARS} characters of arguments; bigger ones go alone), issued concurrently
   * (in the same tick, or while a combined batch is in flight) go to the database as ONE batch: one request,
   * one transaction and one commit for all of them. Each caller gets only its own statements' results,
   * computed as if the operations had run one after the other. If the combined batch fails in one of
   * its statements (it rolled back), its operations are sent again one by one, so only the failing one
   * is rejected; if it fails otherwise (network, busy database), every caller in it is rejected with
   * that error, never answered wrongly. A stale holder's flush is such a failing statement (its fence
   * raises): it fails alone and the other objects' flushes commit. Fenced writes (`fencedWrite`),
   * reads, `get`, `list`, `forceRelease` and `ensureSchema` are never combined. `true` uses the defaults of {@link GroupCommitOptions}.
   *
   * Trade-off: a process that runs many lock operations at once (a busy node sharing one store) gains
   * throughput, most on a local `file:` database where every commit syncs the WAL, less with a remote
   * database, where one combined batch is in flight at a time (measurements: `bench/RESULTS.md`). In
   * exchange, an operation that arrives while a batch is in flight waits for it (up to about two round
   * trips instead of one, or `stallMs`), a transport failure fails its whole group, and each batch
   * holds the database's write lock for the whole group. A lone operation pays its bookkeeping: on the
   * local engine, measured, 10-35 µs per operation (a sequential acquire+release 1.05-1.30x slower),
   * against 9-37x more cycles/s with 16 to 256 concurrent callers. Not never-slower, so not the
   * default; turn it on for any process that runs lock operations concurrently (a node serving many
   * objects). In Cloudflare Workers, use it only where one store serves one context (inside a Durable
   * Object): a store shared by concurrent requests would send one request's operations on another
   * request's I/O.
   *
   * @default false
   */
  groupCommit?: boolean | GroupCommitOptions
}

/**
 * The default {@link LockStore}: the `do_locks` table in a libSQL / Turso / SQLite database.
 *
 * For a local file, hand over its URL: the store runs on the local engine (WAL by default, a busy
 * database waited out asynchronously for `busyTimeoutMs`, then a retryable `StoreUnavailableError`,
 * never a wrong answer). For a remote database hand over an `@libsql/client` `Client`; with a local
 * client, enable WAL and a busy timeout on it once (`PRAGMA journal_mode=WAL`,
 * `PRAGMA busy_timeout=5000`). Do not use `:memory:` with `client.transaction()` elsewhere: libSQL
 * opens a new (empty) in-memory database for it.
 *
 * @example
 * ```ts
 * const local = new LibSQLLockStore('file:locks.db') // the local engine; local.close() when done
 * import { createClient } from '@libsql/client'
 * const remote = new LibSQLLockStore(createClient({ url: 'libsql://db.example.turso.io', authToken }))
 * await local.ensureSchema()
 * const r = await local.acquire({ doId: 'room-1', nodeId: 'node-a', ttlMs: 30_000 })
 * ```
 */
export class LibSQLLockStore extends SqlLockStore {
  /** The local engine's connection owner, when this store runs on it (`close()` closes it). */
  readonly #local: ReturnType<typeof lazyLocalEngine> | undefined

  /**
   * @param client an `@libsql/client` `Client` (any URL), or a local URL (`file:app.db`,
   *   `file:///abs/app.db`, `:memory:`) for the local engine, which then owns its connection.
   */
  constructor(client: LibSQLClientLike | string, options: LibSQLLockStoreOptions = {}) {
    const local = options.local
    if (local !== undefined && typeof local !== 'boolean') throw new InvalidArgumentError('local', 'expected a boolean')
    const engine = options.engine ?? (typeof client === 'string' ? 'native' : 'client')
    if (engine !== 'native' && engine !== 'client') {
      throw new InvalidArgumentError('engine', `expected 'native' or 'client', got ${String(engine)}`)
    }
    if (engine === 'client' && typeof client === 'string') {
      throw new InvalidArgumentError('engine', "a URL runs on the local engine; pass a Client for engine 'client'")
    }
    const nativeDriver = engine === 'native' ? localDriver(client, options) : undefined
    const driver = nativeDriver ?? libsqlDriver(client as LibSQLClientLike, local)
    const groupCommit = options.groupCommit ?? false
    if (typeof groupCommit !== 'boolean' && (groupCommit === null || typeof groupCommit !== 'object')) {
      throw new InvalidArgumentError('groupCommit', 'expected a boolean or { maxOperations?, stallMs? }')
    }
    super(groupCommit === false ? driver : groupCommitLockOperations(driver, options, groupCommit), options)
    this.#local = nativeDriver
  }

  /**
   * Opens a store on the local engine for a local URL; the same as `new LibSQLLockStore(url, options)`.
   *
   * @example
   * ```ts
   * const store = LibSQLLockStore.open('file:locks.db')
   * await store.ensureSchema()
   * ```
   */
  static open(url: string, options: Omit<LibSQLLockStoreOptions, 'engine' | 'local'> = {}): LibSQLLockStore {
    if (typeof url !== 'string') throw new InvalidArgumentError('url', 'expected a local database URL string')
    return new LibSQLLockStore(url, { ...options, engine: 'native' })
  }

  /**
   * The local engine, once its connection is open (after the first request); `undefined` on the
   * client engine. For diagnostics (`reopened`).
   */
  get localEngine(): LocalEngine | undefined {
    return this.#local?.engine()
  }

  /**
   * Closes the local engine's connection (later requests fail, not retryable). On the client engine it
   * does nothing: the client is yours to close.
   */
  close(): void {
    this.#local?.close()
  }
}

/**
 * The local engine for a URL or a `file:` client; every option checked here, before any I/O. A
 * client's file and settings are read at the first request (see `localClientFile`).
 */
function localDriver(client: LibSQLClientLike | string, options: LibSQLLockStoreOptions) {
  const { busyTimeoutMs, pragmas, libsql } = options
  if (busyTimeoutMs !== undefined && (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0)) {
    throw new InvalidArgumentError('busyTimeoutMs', `must be an integer >= 0 (ms), got ${String(busyTimeoutMs)}`)
  }
  if (libsql !== undefined && typeof libsql !== 'function') {
    throw new InvalidArgumentError('libsql', "expected the libsql package's Database constructor")
  }
  if (pragmas !== undefined && (!Array.isArray(pragmas) || pragmas.some((p) => typeof p !== 'string'))) {
    throw new InvalidArgumentError('pragmas', "expected an array of 'name = value' strings")
  }
  if (typeof client === 'string') {
    const path = localPath(client)
    const settings = {
      busyTimeoutMs: busyTimeoutMs ?? DEFAULT_LOCAL_BUSY_TIMEOUT_MS,
      pragmas: pragmas ?? (path === ':memory:' ? [] : ['journal_mode = WAL']),
    }
    // Checked now (a bad pragma is the caller's mistake, said before any I/O), opened at the first request.
    if (settings.pragmas.some((p) => !/^[a-z_]+\s*=\s*[A-Za-z0-9_-]+$/.test(p))) {
      throw new InvalidArgumentError('pragmas', "expected 'name = value' items")
    }
    return lazyLocalEngine(async () => ({ path, options: settings }), libsql)
  }
  if (pragmas !== undefined) throw new InvalidArgumentError('pragmas', 'only for a URL; set them on your client')
  checkClient(client)
  return lazyLocalEngine(async () => {
    const file = await localClientFile(client as Parameters<typeof localClientFile>[0])
    return {
      path: file.path,
      options: {
        busyTimeoutMs: busyTimeoutMs ?? file.busyTimeoutMs,
        pragmas: file.synchronous === undefined ? [] : [`synchronous = ${file.synchronous}`],
      },
    }
  }, libsql)
}

function checkClient(client: LibSQLClientLike): void {
  if (
    client === null ||
    typeof client !== 'object' ||
    typeof client.execute !== 'function' ||
    typeof client.batch !== 'function'
  ) {
    throw new InvalidArgumentError(
      'client',
      'expected an @libsql/client Client (with execute and batch) or a local URL',
    )
  }
}

/**
 * The most statements a flush may have to share a transaction with other callers' operations, and the
 * most characters its arguments may carry: a bigger flush (a long `deleteAll` rewrite, many large
 * values) is sent on its own, so a combined batch stays a small request.
 */
export const MAX_COMBINED_FLUSH_STATEMENTS = 8
export const MAX_COMBINED_FLUSH_CHARS = 262_144

/**
 * What shares a transaction with other callers' operations:
 * - acquire ([upsert, holder] or [upsert, holder, prefetch]), refresh, release and handoff: they cannot
 *   raise (a lost race or a stale holder is an empty result, not an error; a prefetch only reads);
 * - object flushes ([extend, fence, writes] or [fence, lease state, writes]) of at most
 *   {@link MAX_COMBINED_FLUSH_STATEMENTS} statements and {@link MAX_COMBINED_FLUSH_CHARS}: their fence
 *   does raise for a stale holder, which rolls the whole combined batch back, and the group is then
 *   sent again one operation at a time (`retryAlone`), so the stale flush fails alone and every other
 *   object's writes commit (issue 15: flushes of different objects share one commit, and one object's
 *   fence cannot abort another's writes).
 * Matched by exact shape, so `get` (the same SELECT as `holder`, sent alone) is not combined.
 */
function groupCommitLockOperations(
  driver: SqlDriver,
  tables: SqlLockStoreOptions,
  options: true | GroupCommitOptions,
): SqlDriver {
  const sql = lockTableSql(tables.table ?? DEFAULT_TABLE)
  const objects = objectTableSql(objectTableFor(sql.table, tables.objectTable), sql)
  const isAcquire = (s: readonly SqlStatement[]) => s[0]!.sql === sql.acquire && s[1]!.sql === sql.holder
  const objectWrites = new Set([objects.delete, objects.deleteAll])
  for (let rows = 1; rows <= MAX_ROWS_PER_PUT; rows++) objectWrites.add(objects.put(rows))
  const isFlush = (s: readonly SqlStatement[]): boolean => {
    if (s.length < 2 || s.length > MAX_COMBINED_FLUSH_STATEMENTS) return false
    const fenced =
      (s[0]!.sql === sql.extend && s[1]!.sql === objects.extendedFence) ||
      (s[0]!.sql === objects.extendedFence && s[1]!.sql === objects.leaseState)
    if (!fenced) return false
    let chars = 0
    for (let i = 2; i < s.length; i++) {
      if (!objectWrites.has(s[i]!.sql)) return false
      for (const arg of s[i]!.args ?? []) if (typeof arg === 'string') chars += arg.length
    }
    return chars <= MAX_COMBINED_FLUSH_CHARS
  }
  return groupCommitDriver(driver, {
    ...(options === true ? {} : options),
    retryAlone: failedInStatement,
    canCombine: (s) =>
      s.length === 3 && isAcquire(s) && s[2]!.sql === objects.prefetch
        ? true
        : s.length === 2 && isAcquire(s)
          ? true
          : s.length === 1
            ? s[0]!.sql === sql.refresh || s[0]!.sql === sql.release || s[0]!.sql === sql.handoff
            : isFlush(s),
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
  checkClient(client)
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
 * when one of YOUR statements on a shared client fails with SQLITE_BUSY. With `@libsql/client` 0.18+
 * it uses `reconnect()`, which closes the client's connections (a pool there; settings are carried over
 * to the first fresh one only, so prefer the local engine, a URL, for local files). Up to 0.17 it swaps
 * the connection through `transaction()`, and the old one cannot be closed through the client's API
 * and is left to the garbage collector, so keep `busy_timeout` long enough (seconds) that SQLITE_BUSY
 * stays rare. Never use it on `:memory:` (a new connection is a new,
 * empty database). Best effort: never throws.
 */
export async function recoverLibSQLConnection(client: LibSQLClientLike): Promise<void> {
  if (typeof client.transaction !== 'function' && typeof client.reconnect !== 'function') return
  try {
    const settings: string[] = []
    for (const pragma of CONNECTION_PRAGMAS) {
      const row = (await client.execute({ sql: `PRAGMA ${pragma}`, args: [] })).rows[0] as
        Record<string, unknown> | undefined
      const value = Number(row?.[pragma === 'busy_timeout' ? 'timeout' : pragma])
      if (Number.isSafeInteger(value)) settings.push(`PRAGMA ${pragma} = ${value}`)
    }
    if (typeof client.reconnect === 'function') {
      // @libsql/client 0.18+: a pool of connections, and transaction() no longer retires the one it
      // borrows. reconnect() closes them all (the stuck statement with its connection) and opens
      // fresh ones on next use.
      await client.reconnect()
    } else if (typeof client.transaction === 'function') {
      // Up to 0.17: transaction() hands the current connection to the transaction and opens a new
      // one next time.
      ;(await client.transaction('deferred')).close()
    }
    for (const sql of settings) await client.execute({ sql, args: [] })
  } catch {
    // Best effort: the caller already has the original (retryable) error.
  }
}

// libSQL rows are array-like objects that also expose each column by name.
function asResult(result: { rows: ArrayLike<unknown>; rowsAffected: number }): SqlResult {
  return { rows: result.rows as unknown as SqlResult['rows'], rowsAffected: result.rowsAffected }
}
