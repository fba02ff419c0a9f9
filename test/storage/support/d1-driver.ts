/**
 * A {@link SqlDriver} over a D1 binding, for the workers tests: the same calls as the library's own
 * (private) driver in src/store/d1.ts (`stmt.all()` for one statement, `db.batch()` for several, every
 * statement prepared and bound before any is sent). Runs inside workerd; imports no Node built-in.
 */
import type { SqlDriver, SqlResult, SqlValue } from '../../../src/store/sql-lock-store.js'
import type { D1DatabaseLike, D1PreparedStatementLike, D1ResultLike } from '../../../src/store/d1.js'

export function d1Driver(db: D1DatabaseLike): SqlDriver {
  const prepare = (s: { sql: string; args?: SqlValue[] }): D1PreparedStatementLike => {
    const statement = db.prepare(s.sql)
    return s.args && s.args.length > 0 ? statement.bind(...s.args.map(toD1Value)) : statement
  }
  return {
    async execute(statement) {
      return asResult(await prepare(statement).all())
    },
    async batch(statements) {
      const prepared = statements.map(prepare)
      return (await db.batch(prepared)).map(asResult)
    },
  }
}

// D1 cannot bind bigints; the object store binds none, but keep the library driver's rule.
function toD1Value(value: SqlValue): unknown {
  return typeof value === 'bigint' ? Number(value) : value
}

function asResult(result: D1ResultLike): SqlResult {
  return { rows: (result?.results ?? []) as SqlResult['rows'], rowsAffected: result?.meta?.changes ?? 0 }
}
