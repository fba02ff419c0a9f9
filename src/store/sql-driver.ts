/**
 * What the SQL stores need from a database: one statement, or a batch in one transaction, each ONE
 * request. The libSQL and D1 stores build one over their client; the lock table and the object
 * storage table share it, so a fence and the writes it guards can travel in one batch.
 *
 * @module
 */
/**
 * A value a statement argument may take: text, a number (finite), a bigint, a boolean (bound as 1/0),
 * NULL, or bytes. Anything else is refused by `fencedWrite` before any I/O.
 */
export type SqlValue = string | number | bigint | null | Uint8Array | ArrayBuffer | boolean

/** One SQL statement with positional arguments (`?1`, `?2`, ... or `?`). */
export interface SqlStatement {
  /** The SQL text (one statement). */
  sql: string
  /** Values for its placeholders, in order (`?1` is `args[0]`); omitted: none. */
  args?: SqlValue[]
}

/** What a driver returns for one statement. Rows are keyed by column name. */
export interface SqlResult {
  /** The rows the statement returned (SELECT, RETURNING), each keyed by column name. */
  rows: ReadonlyArray<Record<string, unknown>>
  /** Rows the statement inserted, updated or deleted (not counting triggers' changes). */
  rowsAffected: number
}

/**
 * The two operations the SQL stores need from a database. Each call must be ONE request to the
 * database; `batch` must run its statements in one write transaction that rolls back as a whole.
 */
export interface SqlDriver {
  /** Runs one statement in one request. */
  execute(statement: SqlStatement): Promise<SqlResult>
  /** Runs the statements in one request and one write transaction; one result per statement, in order. */
  batch(statements: SqlStatement[]): Promise<SqlResult[]>
}
