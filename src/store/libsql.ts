import { InvalidArgumentError } from '../errors.js'
import { SqlLockStore, type SqlDriver, type SqlLockStoreOptions, type SqlResult, type SqlStatement, type SqlValue } from './sql-lock-store.js'

/**
 * The slice of `@libsql/client`'s `Client` this store uses. Any client works: `@libsql/client`
 * (`file:`, `:memory:`, `libsql://`, `http://`) or `@libsql/client/web` inside Workers.
 */
export interface LibSQLClientLike {
  /** `'file'` for local databases (including `:memory:`), `'http'`/`'ws'`/... for remote ones. */
  readonly protocol?: string
  execute(statement: { sql: string; args: SqlValue[] }): Promise<{ rows: ArrayLike<unknown>; rowsAffected: number }>
  batch(
    statements: Array<{ sql: string; args: SqlValue[] }>,
    mode?: 'write' | 'read' | 'deferred',
  ): Promise<Array<{ rows: ArrayLike<unknown>; rowsAffected: number }>>
  /** Used only to replace a local connection that SQLITE_BUSY left unusable (see below). */
  transaction?(mode?: 'write' | 'read' | 'deferred'): Promise<{ close(): void }>
}

export type LibSQLLockStoreOptions = SqlLockStoreOptions

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
    super(libsqlDriver(client), options)
  }
}

function libsqlDriver(client: LibSQLClientLike): SqlDriver {
  if (client === null || typeof client !== 'object' || typeof client.execute !== 'function' || typeof client.batch !== 'function') {
    throw new InvalidArgumentError('client', 'expected an @libsql/client Client (with execute and batch)')
  }
  const toArgs = (s: SqlStatement) => ({ sql: s.sql, args: s.args ?? [] })
  const local = client.protocol === 'file'
  const batch = async (statements: SqlStatement[]) => {
    try {
      return (await client.batch(statements.map(toArgs), 'write')).map(asResult)
    } catch (error) {
      if (local && isBusy(error)) await replaceLocalConnection(client)
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

/**
 * libsql (local) does not reset a statement that failed with SQLITE_BUSY; the stuck statement keeps the
 * connection in an open transaction, so later writes are never committed. `transaction()` makes the
 * client open a fresh connection for its next call; the busy timeout is carried over to it.
 */
async function replaceLocalConnection(client: LibSQLClientLike): Promise<void> {
  if (typeof client.transaction !== 'function') return
  try {
    const row = (await client.execute({ sql: 'PRAGMA busy_timeout', args: [] })).rows[0] as Record<string, unknown> | undefined
    const timeout = Number(row?.timeout ?? 0)
    ;(await client.transaction('deferred')).close()
    if (Number.isSafeInteger(timeout) && timeout > 0) {
      await client.execute({ sql: `PRAGMA busy_timeout = ${timeout}`, args: [] })
    }
  } catch {
    // Best effort: the caller already gets the original (retryable) error.
  }
}

// libSQL rows are array-like objects that also expose each column by name.
function asResult(result: { rows: ArrayLike<unknown>; rowsAffected: number }): SqlResult {
  return { rows: result.rows as unknown as SqlResult['rows'], rowsAffected: result.rowsAffected }
}
