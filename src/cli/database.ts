/**
 * Opening the database an operator names: `@libsql/client` loaded on demand (an optional peer of the
 * package), a local file checked to exist first (opening a missing path would create an empty
 * database), and the tables a command needs checked before it runs, so a wrong `--db` or `--table` is
 * reported as such rather than as an SQL error.
 *
 * The CLI never creates or alters tables: that is the application's `ensureSchema()`.
 *
 * @module
 */
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { LibSQLLockStore, type LibSQLClientLike } from '../store/libsql.js'
import { lockTableSql } from '../store/sql.js'
import type { DatabaseTarget } from './args.js'
import { CommandFailure } from './errors.js'
import { localPath } from './file-url.js'
import { printable } from './printable.js'

/** How long a statement waits for another connection's write transaction on a local file. */
const LOCAL_BUSY_TIMEOUT_MS = 5000

/** The part of `@libsql/client` the CLI uses. */
interface LibSQLModule {
  createClient(config: { url: string; authToken?: string }): LibSQLClient
}

/** A client as the CLI drives it: the store's slice, plus `close()`. */
export interface LibSQLClient extends LibSQLClientLike {
  /** Closes the connection. */
  close(): void
}

/** An open database: the lock store over it and the client for the CLI's own reads. */
export interface OpenDatabase {
  /** The lock store over the named tables (client engine: the CLI never sets pragmas on the file). */
  readonly store: LibSQLLockStore
  /** The client itself, for the read-only storage queries. */
  readonly client: LibSQLClient
  /** What to call the database in messages (a local file's path; a remote URL without credentials). */
  readonly name: string
  /** Tables and views that exist, spelled as created (look one up with {@link hasTable}: SQLite ignores case). */
  readonly tables: ReadonlySet<string>
  /** Closes the client. */
  close(): void
}

/** Where a database is: the URL to open, and what to call it in messages. */
export interface DatabaseLocation {
  /** The URL the client opens (a directory resolved to its `*.sqlite` file). */
  readonly url: string
  /** A local file's path; a remote URL without credentials or query. */
  readonly name: string
  /** True for a local file (given a busy timeout when opened). */
  readonly local: boolean
}

/**
 * Where `target` is, checked without opening it: a local file must exist (opening a missing path
 * would create an empty database), and a directory is searched for its one `*.sqlite` file, as
 * `wrangler dev` keeps local D1 databases.
 */
export function locateDatabase(target: DatabaseTarget): DatabaseLocation {
  const path = localPath(target.url)
  if (path === undefined) return { url: target.url, name: displayName(target.url), local: false }
  const file = existingDatabaseFile(path)
  const url = file === path ? target.url : `file:${encodeURI(file).replace(/[?#]/g, encodeURIComponent)}`
  return { url, name: file, local: true }
}

/** Opens the database at `location` (loading `@libsql/client`) and reads which tables exist: one statement. */
export async function openDatabase(location: DatabaseLocation, target: DatabaseTarget): Promise<OpenDatabase> {
  const libsql = await loadLibSQL()
  const { url, name } = location
  const client = libsql.createClient({
    url,
    ...(target.authToken === undefined ? {} : { authToken: target.authToken }),
  })
  try {
    if (location.local) await client.execute({ sql: `PRAGMA busy_timeout = ${LOCAL_BUSY_TIMEOUT_MS}`, args: [] })
    const result = await client.execute({
      sql: "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')",
      args: [],
    })
    const tables = new Set(Array.from(result.rows as ArrayLike<{ name: unknown }>, (row) => String(row.name)))
    // `local: false`: every read is a plain read, never inside a write transaction, so inspecting a
    // live database takes no write lock. The store's SQLITE_BUSY repair is for long-lived processes.
    const store = new LibSQLLockStore(client, { table: target.table, objectTable: target.objectTable, local: false })
    return { store, client, name, tables, close: () => client.close() }
  } catch (error) {
    client.close()
    throw error
  }
}

/** The tables `command` reads or writes, so a missing one is named before anything runs. */
export function requiredTables(command: string, target: DatabaseTarget): string[] {
  const sql = lockTableSql(target.table)
  if (command === 'prune') return [sql.table, sql.highWater, sql.handover]
  return [sql.table]
}

/** Fails with a message naming the first of `names` the database lacks, and what it has instead. */
export function assertTables(db: OpenDatabase, names: readonly string[]): void {
  const missing = names.filter((n) => !hasTable(db, n))
  if (missing.length === 0) return
  const present = [...db.tables].filter((t) => !t.startsWith('sqlite_') && !t.startsWith('_cf_')).sort()
  const has =
    present.length === 0 ? 'it has no tables' : `its tables: ${present.slice(0, 12).map(printable).join(', ')}`
  const first = missing[0]!
  const hint =
    first === names[0]
      ? 'Not a stateless-do database, or its lock table has another name (--table)'
      : 'The schema predates this version: run ensureSchema() from the application to upgrade it'
  throw new CommandFailure(`no table "${first}" in ${printable(db.name)} (${has}). ${hint}.`)
}

/**
 * Whether the database has a table or view `name`, compared as SQLite compares names: ignoring ASCII
 * case only (so `DO_LOCKS` is `do_locks`, yet the Kelvin sign is no `K`).
 */
export function hasTable(db: Pick<OpenDatabase, 'tables'>, name: string): boolean {
  const folded = foldAsciiCase(name)
  for (const table of db.tables) if (foldAsciiCase(table) === folded) return true
  return false
}

const foldAsciiCase = (name: string) => name.replace(/[A-Z]/g, (c) => c.toLowerCase())

async function loadLibSQL(): Promise<LibSQLModule> {
  try {
    // A variable specifier: bundlers leave the optional peer to be resolved where the CLI runs.
    const specifier = '@libsql/client'
    return (await import(specifier)) as LibSQLModule
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CommandFailure(
        'the CLI needs @libsql/client, an optional peer dependency of stateless-do: npm install @libsql/client',
        { cause: error },
      )
    }
    throw error
  }
}

/** `path` if it is a file; the one `*.sqlite` file under it if it is a directory; else a failure. */
function existingDatabaseFile(path: string): string {
  const stat = statSync(path, { throwIfNoEntry: false })
  const shown = printable(path)
  if (stat === undefined) throw new CommandFailure(`no database file at ${shown}`)
  if (stat.isFile()) return path
  if (!stat.isDirectory()) throw new CommandFailure(`${shown} is not a database file`)
  const found = sqliteFiles(path, 6)
  if (found.length === 1) return found[0]!
  if (found.length === 0) throw new CommandFailure(`${shown} is a directory without a *.sqlite file`)
  throw new CommandFailure(
    `${shown} holds ${found.length} *.sqlite files; name one with --db:\n  ${found.sort().map(printable).join('\n  ')}`,
  )
}

function sqliteFiles(dir: string, depth: number): string[] {
  if (depth === 0) return []
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name)
    if (entry.isDirectory()) return sqliteFiles(full, depth - 1)
    return entry.isFile() && entry.name.endsWith('.sqlite') ? [full] : []
  })
}

/** A URL fit for messages: no user, password or query (an `authToken=` may sit there). */
function displayName(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.protocol === 'file:') return url
    return `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`
  } catch {
    return url.replace(/[?#].*$/, '')
  }
}
