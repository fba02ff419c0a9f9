import { InvalidArgumentError } from '../errors.js'
import {
  SqlLockStore,
  type SqlDriver,
  type SqlLockStoreOptions,
  type SqlResult,
  type SqlStatement,
  type SqlValue,
} from './sql-lock-store.js'

/**
 * The slice of a D1 prepared statement this store uses. Structural, so `src/` needs neither
 * `@cloudflare/workers-types` nor a Workers runtime to compile; a real `D1PreparedStatement` fits it.
 */
export interface D1PreparedStatementLike {
  /** The statement with its `?` placeholders bound to `values`, in order. */
  bind(...values: unknown[]): D1PreparedStatementLike
  /** Runs it (one request) and returns every row. */
  all(): Promise<D1ResultLike>
}

/** What D1 returns for one statement: `results` (rows keyed by column) and `meta.changes`. */
export interface D1ResultLike {
  /** The rows, each keyed by column name. */
  results?: ReadonlyArray<unknown>
  /** What D1 reports about the run. */
  meta?: {
    /** Rows the statement inserted, updated or deleted. */
    changes?: number
  }
}

/**
 * The slice of a D1 binding (`env.DB`, a `D1Database`) this store uses. A `D1DatabaseSession`
 * (`env.DB.withSession(...)`) fits it too, but see {@link D1LockStore} on read replicas.
 */
export interface D1DatabaseLike {
  /** A statement for `query`, not yet sent. */
  prepare(query: string): D1PreparedStatementLike
  /** One request; D1 runs the statements in one transaction and rolls all of them back if one fails. */
  batch(statements: D1PreparedStatementLike[]): Promise<D1ResultLike[]>
}

/** Options of {@link D1LockStore}: `table` (see {@link SqlLockStoreOptions}). */
export type D1LockStoreOptions = SqlLockStoreOptions

/**
 * The `do_locks` table in a Cloudflare D1 database: the same statements as {@link LibSQLLockStore},
 * sent through a D1 binding. Every operation is one D1 request (`stmt.all()` or `db.batch()`), and
 * `fencedWrite` sends the fence check and the caller's statements as one `db.batch()`, which D1 runs as
 * one transaction: a stale token aborts the batch and rolls back every statement in it.
 *
 * Expiry is judged by D1's clock (`julianday('now')` inside each statement), never by the Worker's.
 *
 * Use the binding itself (or a session with `'first-primary'`): acquire, refresh, release and fenced
 * writes always reach the primary, but `get`/`list` through a session on a read replica may be stale.
 *
 * Argument values: D1 (as workerd implements it) binds JS numbers, and booleans as 1/0, as REAL; columns
 * declared INTEGER store whole values as integers again, so the lock table is unaffected, but
 * `typeof(?)` in your own SQL may say 'real'. D1 cannot bind bigints: safe ones (within ±2^53) are sent
 * as numbers, others are refused with an {@link InvalidArgumentError} before the request.
 *
 * @example
 * ```ts
 * export default {
 *   async fetch(request: Request, env: { DB: D1Database }) {
 *     const store = new D1LockStore(env.DB)
 *     await store.ensureSchema() // once per deployment is enough; idempotent
 *     const r = await store.acquire({ doId: 'room-1', nodeId: 'colo-a', ttlMs: 30_000 })
 *     return Response.json(r)
 *   },
 * }
 * ```
 */
export class D1LockStore extends SqlLockStore {
  constructor(db: D1DatabaseLike, options: D1LockStoreOptions = {}) {
    super(d1Driver(db), options)
  }
}

function d1Driver(db: D1DatabaseLike): SqlDriver {
  if (db === null || typeof db !== 'object' || typeof db.prepare !== 'function' || typeof db.batch !== 'function') {
    throw new InvalidArgumentError('db', 'expected a D1 database binding (with prepare and batch)')
  }
  const prepare = (s: SqlStatement): D1PreparedStatementLike => {
    const statement = db.prepare(s.sql)
    return s.args && s.args.length > 0 ? statement.bind(...s.args.map(toD1Value)) : statement
  }
  return {
    async execute(statement) {
      return asResult(await prepare(statement).all())
    },
    async batch(statements) {
      // Prepare (and convert arguments) for every statement before sending any of them.
      const prepared = statements.map(prepare)
      return (await db.batch(prepared)).map(asResult)
    },
  }
}

function toD1Value(value: SqlValue): unknown {
  if (typeof value === 'bigint') {
    const n = Number(value)
    if (!Number.isSafeInteger(n)) {
      throw new InvalidArgumentError('args', `bigint ${value} is outside the range D1 can bind exactly (±2^53)`)
    }
    return n
  }
  return value
}

function asResult(result: D1ResultLike): SqlResult {
  return {
    rows: (result?.results ?? []) as SqlResult['rows'],
    rowsAffected: result?.meta?.changes ?? 0,
  }
}
