/**
 * The local engine: a {@link SqlDriver} over one native `libsql` connection (the binding that
 * `@libsql/client` wraps for `file:` URLs), used by `LibSQLLockStore` for local databases.
 *
 * Why not `@libsql/client` locally: its local client runs each statement synchronously on the event
 * loop through a fresh prepared statement, spends `busy_timeout` blocking the whole process, and a
 * statement that failed with SQLITE_BUSY is never reset, which leaves the connection stuck in an old
 * snapshot (its later writes never commit); the only repair through its API is a new connection, and
 * the old one keeps its descriptors until the garbage collector finalizes it (issue 13). This engine
 * holds one connection for its whole life and never abandons it:
 *
 * - Every request is one explicit transaction. `BEGIN IMMEDIATE`, `COMMIT` and `ROLLBACK` run through
 *   `exec`, which finalizes its statement even when it fails: SQLITE_BUSY at `BEGIN` (the only place
 *   another writer makes a WAL database busy) leaves nothing behind, and after any failure an open
 *   transaction is rolled back explicitly before the connection is used again.
 * - The statements themselves are prepared once and cached (the {@link STATEMENT_CACHE_SIZE} most
 *   recently used). Inside the transaction the connection already holds the write lock (or, for a lone
 *   read, a read snapshot taken by `exec`), so they do not meet SQLITE_BUSY; if one ever does, it cannot
 *   be reset through libsql's API, so the connection is replaced once (counted in
 *   {@link LocalEngine.reopened}) rather than used stuck.
 * - Waiting for another writer is asynchronous: the native busy handler does not wait
 *   ({@link NATIVE_BUSY_WAIT_MS}); the engine retries after a jittered, growing pause
 *   (timers, not a blocking loop) until `busyTimeoutMs` has passed, and only then reports SQLITE_BUSY
 *   (a retryable `StoreUnavailableError` once the store maps it). Every timer, heartbeat and handler of
 *   the process keeps running meanwhile.
 *
 * Retrying a whole request after SQLITE_BUSY is safe: it failed at `BEGIN` (nothing ran) or was rolled
 * back (nothing committed), and the store's statements decide from the rows they read, so running them
 * later is what they would have done had they been sent later.
 *
 * Runtime: Node (or any runtime where the `libsql` package loads). Nothing here imports it: the
 * constructor is handed in by `LibSQLLockStore`, which loads it only when a local database is asked for.
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import type { SqlDriver, SqlResult, SqlStatement, SqlValue } from './sql-driver.js'

/**
 * How long the native busy handler may block the event loop per attempt, in ms, before the engine's
 * asynchronous retry takes over: none. Even SQLite's first 1 ms sleep held the loop for 20-80 ms on a
 * loaded 2-core machine (a sleeping thread waits for a core to come back), measured in
 * test/store/local-engine.test.ts.
 */
export const NATIVE_BUSY_WAIT_MS = 0

/** The asynchronous busy wait of the local engine, unless `busyTimeoutMs` says otherwise. */
export const DEFAULT_LOCAL_BUSY_TIMEOUT_MS = 5_000

/** Longest pause between two attempts at a busy database, in ms (the pauses grow 1, 2, 4, ... up to it, jittered). */
const MAX_RETRY_PAUSE_MS = 4

/**
 * How many prepared statements the engine keeps, least recently used dropped first. The store's own
 * are a few dozen; the bound is for user SQL in `fencedWrite`, where values inlined in the text (as
 * query builders do) make every statement distinct, each holding ~3.5 KB of native memory until close.
 */
export const STATEMENT_CACHE_SIZE = 512

/** The slice of a native `libsql` prepared statement the engine uses (`better-sqlite3`'s API). */
export interface NativeStatementLike {
  /** Whether the statement returns rows (a SELECT, or a write with RETURNING). */
  readonly reader: boolean
  /** Runs it and returns every row, keyed by column name. */
  all(args: unknown[]): Array<Record<string, unknown>>
  /** Runs a statement that returns no rows; `changes` counts the rows it wrote. */
  run(args: unknown[]): { changes: number }
}

/** The slice of a native `libsql` `Database` (one connection) the engine uses. */
export interface NativeDatabaseLike {
  /** Runs SQL text without arguments; its statements are finalized even when it fails. */
  exec(sql: string): void
  /** Prepares one statement for repeated use. */
  prepare(sql: string): NativeStatementLike
  /** Closes the connection. */
  close(): void
  /** Whether the connection is inside an explicit transaction. */
  readonly inTransaction: boolean
}

/** The `libsql` package's default export: `new Database(path)` opens a connection. */
export type NativeDatabaseConstructor = new (path: string) => NativeDatabaseLike

/** Options of {@link LocalEngine}. */
export interface LocalEngineOptions {
  /**
   * How long a request may wait, in total, for another connection's write transaction to end before
   * it fails with SQLITE_BUSY. Waited asynchronously (see the module comment).
   *
   * @default DEFAULT_LOCAL_BUSY_TIMEOUT_MS (5000)
   */
  busyTimeoutMs?: number
  /**
   * `PRAGMA` settings for the connection, run once when it opens (and again if it is ever replaced),
   * e.g. `['journal_mode = WAL', 'synchronous = FULL']`. Plain `name = value` items only.
   */
  pragmas?: readonly string[]
}

const PRAGMA = /^[a-z_]+\s*=\s*[A-Za-z0-9_-]+$/

/**
 * One native connection, driven as a {@link SqlDriver}: each `execute`/`batch` is one transaction
 * (one request in the store's accounting), SQLITE_BUSY is waited out asynchronously, and the
 * connection is never left in a transaction or with a statement that failed for lack of a lock.
 */
export class LocalEngine implements SqlDriver {
  readonly #open: NativeDatabaseConstructor
  readonly #path: string
  readonly #busyTimeoutMs: number
  readonly #pragmas: readonly string[]
  #db: NativeDatabaseLike
  #statements = new Map<string, Prepared>()
  #closed = false
  #reopened = 0

  /** Opens the connection at once (synchronously); `path` is a file path or `:memory:`. */
  constructor(open: NativeDatabaseConstructor, path: string, options: LocalEngineOptions = {}) {
    if (typeof open !== 'function') throw new InvalidArgumentError('libsql', 'expected the libsql Database constructor')
    if (typeof path !== 'string' || path === '') throw new InvalidArgumentError('path', 'expected a file path')
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_LOCAL_BUSY_TIMEOUT_MS
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new InvalidArgumentError('busyTimeoutMs', `must be an integer >= 0 (ms), got ${String(busyTimeoutMs)}`)
    }
    const pragmas = [...(options.pragmas ?? [])]
    for (const [i, pragma] of pragmas.entries()) {
      if (typeof pragma !== 'string' || !PRAGMA.test(pragma)) {
        throw new InvalidArgumentError(`pragmas[${i}]`, `expected "name = value", got ${JSON.stringify(pragma)}`)
      }
    }
    this.#open = open
    this.#path = path
    this.#busyTimeoutMs = busyTimeoutMs
    this.#pragmas = pragmas
    this.#db = this.#connect()
  }

  /** How many times a connection had to be replaced because a statement failed for lack of a lock (expected: 0). */
  get reopened(): number {
    return this.#reopened
  }

  /** How many prepared statements are cached (at most {@link STATEMENT_CACHE_SIZE}); for tests and diagnostics. */
  get cachedStatements(): number {
    return this.#statements.size
  }

  /** Runs one statement as one transaction (a lone read takes a snapshot, nothing more). */
  execute(statement: SqlStatement): Promise<SqlResult> {
    return this.#run([statement], true).then((results) => results[0]!)
  }

  /** Runs the statements in one write transaction (`BEGIN IMMEDIATE` ... `COMMIT`). */
  batch(statements: SqlStatement[]): Promise<SqlResult[]> {
    return this.#run(statements, false)
  }

  /** Closes the connection; later requests fail (not retryable). Idempotent. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#statements.clear()
    this.#db.close()
  }

  #connect(): NativeDatabaseLike {
    const db = new this.#open(this.#path)
    try {
      // Never longer than the whole budget: busyTimeoutMs 0 means fail at once, as SQLite's own 0 does.
      db.exec(`PRAGMA busy_timeout = ${Math.min(NATIVE_BUSY_WAIT_MS, this.#busyTimeoutMs)}`)
      for (const pragma of this.#pragmas) db.exec(`PRAGMA ${pragma}`)
    } catch (error) {
      db.close()
      throw error
    }
    return db
  }

  async #run(statements: SqlStatement[], single: boolean): Promise<SqlResult[]> {
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      if (this.#closed) throw Object.assign(new Error('The client is closed'), { code: 'CLIENT_CLOSED' })
      try {
        return this.#once(statements, single)
      } catch (error) {
        const left = this.#busyTimeoutMs - (Date.now() - started)
        if (!isBusy(error) || left <= 0) throw error
        const pause = Math.min(MAX_RETRY_PAUSE_MS, 2 ** attempt)
        await new Promise((resolve) => setTimeout(resolve, Math.min(left, pause / 2 + Math.random() * (pause / 2))))
      }
    }
  }

  #once(statements: SqlStatement[], single: boolean): SqlResult[] {
    const db = this.#db
    const first = single ? this.#prepared(statements[0]!.sql) : undefined
    // A lone read needs only a snapshot: taken by exec (finalized even if busy), so the cached
    // SELECT inside never waits for a lock. Everything else holds the write lock from BEGIN on.
    try {
      // Inside the try: the snapshot's SELECT can fail busy after its BEGIN DEFERRED opened the
      // transaction (another connection's exclusive lock in rollback-journal mode, a WAL recovery),
      // and a transaction left open would fail every later request ("cannot start a transaction
      // within a transaction"). A BEGIN IMMEDIATE that fails busy opens none.
      db.exec(first?.reader && first.query ? 'BEGIN DEFERRED; SELECT 1 FROM sqlite_schema LIMIT 1' : 'BEGIN IMMEDIATE')
      const results = statements.map((statement, i) =>
        this.#step(i === 0 && first ? first : this.#prepared(statement.sql), statement.args),
      )
      db.exec('COMMIT')
      return results
    } catch (error) {
      // After #replace the old connection is closed (touching it would abort the process) and its
      // transaction was rolled back there.
      if (this.#db === db && db.inTransaction) {
        try {
          db.exec('ROLLBACK')
        } catch {
          // The transaction is gone either way (SQLite rolls back on most errors by itself).
        }
      }
      throw error
    }
  }

  #step({ statement, reader, query }: Prepared, args: SqlStatement['args']): SqlResult {
    const bound = args === undefined || args.length === 0 ? [] : args.map(bindable)
    try {
      if (reader) {
        const rows = statement.all(bound)
        // A statement that returns rows and writes is a write with RETURNING (the store's upserts and
        // updates, or a user's in fencedWrite): one row per row written.
        return { rows, rowsAffected: query ? 0 : rows.length }
      }
      return { rows: [], rowsAffected: statement.run(bound).changes }
    } catch (error) {
      // A statement that failed for lack of a lock is left unreset by libsql and would keep the
      // connection in an old snapshot; it cannot be reset through the API, so the connection goes.
      if (isBusy(error)) this.#replace()
      throw error
    }
  }

  #prepared(sql: string): Prepared {
    let prepared = this.#statements.get(sql)
    if (prepared !== undefined) {
      // Re-inserted on every use: a Map keeps insertion order, so its first key is the least recently used.
      this.#statements.delete(sql)
    } else {
      const statement = this.#db.prepare(sql)
      // Read once: `reader` is a call into the binding, and the SQL text never changes.
      prepared = { statement, reader: statement.reader, query: isQuery(sql) }
      // A dropped statement is finalized when collected; one still held by a running request keeps working.
      if (this.#statements.size >= STATEMENT_CACHE_SIZE) this.#statements.delete(this.#statements.keys().next().value!)
    }
    this.#statements.set(sql, prepared)
    return prepared
  }

  #replace(): void {
    const old = this.#db
    try {
      if (old.inTransaction) old.exec('ROLLBACK')
    } catch {
      // Closing it below ends the transaction anyway.
    }
    this.#statements.clear()
    this.#db = this.#connect()
    this.#reopened++
    old.close()
  }
}

/** A cached statement and what the engine needs to know about it. */
interface Prepared {
  statement: NativeStatementLike
  reader: boolean
  /** Only reads: its rows are not written rows. */
  query: boolean
}

/** Whitespace and comments before a statement's first keyword. */
const LEADING_COMMENTS = /^(?:\s+|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))*/
/** String literals, quoted names and comments: where a keyword is only a word. */
const QUOTED_OR_COMMENT = /'[^']*'|"[^"]*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/g
/** What makes a WITH a write. REPLACE only with INTO: alone it is also a function and may name a column. */
const WRITE_KEYWORD = /\b(?:INSERT|UPDATE|DELETE|REPLACE\s+INTO)\b/i

/**
 * A statement that only reads (its result rows are not written rows): SELECT, VALUES, PRAGMA, or a
 * WITH whose statement writes nothing. Read from the text, as the binding does not say: comments
 * before the first keyword are skipped, and a WITH's write keyword is looked for outside literals,
 * quoted names and comments (`WITH c AS (SELECT 'update') SELECT ...` reads).
 */
function isQuery(sql: string): boolean {
  const text = sql.replace(LEADING_COMMENTS, '')
  if (/^(?:SELECT|VALUES|PRAGMA)\b/i.test(text)) return true
  return /^WITH\b/i.test(text) && !WRITE_KEYWORD.test(text.replace(QUOTED_OR_COMMENT, ' '))
}

/** The binding cannot take booleans (it aborts the process) nor ArrayBuffers. */
function bindable(value: SqlValue): unknown {
  if (typeof value === 'boolean') return value ? 1 : 0
  if (value instanceof ArrayBuffer) return new Uint8Array(value)
  return value
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^SQLITE_(BUSY|LOCKED)/.test(code)
}
