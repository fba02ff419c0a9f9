/**
 * A {@link SqlDriver} over an `@libsql/client` client, for the tests and the benchmark: the same calls
 * as the library's own (private) driver in src/store/libsql.ts, so the object store is exercised on the
 * paths users get once `LibSQLLockStore` carries one: locally every statement is a `'write'` batch (one
 * call, BEGIN IMMEDIATE ... COMMIT), remotely a single statement is a plain `execute`; a `batch` is
 * always one `'write'` batch. After SQLITE_BUSY on a local client it swaps the connection, as the
 * library's driver does (recoverLibSQLConnection).
 */
import {
  recoverLibSQLConnection,
  type LibSQLClientLike,
  type SqlDriver,
  type SqlResult,
  type SqlStatement,
} from '../../../src/index.js'

export function libsqlDriver(client: LibSQLClientLike): SqlDriver {
  const toArgs = (s: SqlStatement) => ({ sql: s.sql, args: s.args ?? [] })
  const local = client.protocol === 'file'
  const batch = async (statements: SqlStatement[]): Promise<SqlResult[]> => {
    try {
      return (await client.batch(statements.map(toArgs), 'write')).map(asResult)
    } catch (error) {
      if (local && isBusy(error)) await recoverLibSQLConnection(client)
      throw error
    }
  }
  return {
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

function asResult(result: { rows: ArrayLike<unknown>; rowsAffected: number }): SqlResult {
  return { rows: result.rows as unknown as SqlResult['rows'], rowsAffected: result.rowsAffected }
}
