/**
 * Every statement the library runs against the object storage table (`do_storage`), in one place, beside
 * `do_locks`' in `src/store/sql.ts`. Shared by every SQL backend (libSQL local and remote, D1).
 *
 * Each read also judges the lease, inside the same statement, with the store's clock (docs/design.md
 * invariants 4 and 10): a holder that lost its lease never reads state another node may have changed.
 * The one exception, `prefetch`, reads in the acquire's own transaction, only when that acquire won.
 *
 * Hostile names: every table is aliased (`s` storage, `l` locks, `j` json_each) and every column is
 * qualified through its alias, so a table called `new`, `excluded`, `key` or `value` cannot change what
 * a statement means. Table names are validated with the lock table's {@link assertTableName}.
 *
 * Keys compare with SQLite's BINARY collation: memcmp of UTF-8, i.e. code point order (ObjectStore's
 * contract), which is also the order of the (do_id, key) primary key every statement walks.
 */
import { InvalidArgumentError } from '../errors.js'
import { DEFAULT_TABLE, STORE_NOW, assertTableName, intact, type LockTableSql } from './sql.js'

/**
 * The most characters (keys and encoded values) an acquire's prefetch brings back: past it the prefetch
 * stops, not complete, and later reads go to the store. 1 Mi characters.
 */
export const MAX_PREFETCH_CHARS = 1_048_576

/** The object storage table's name unless the store is told otherwise. */
export const DEFAULT_OBJECT_TABLE = 'do_storage'

/**
 * The storage table beside `lockTable` unless one is named: `do_storage` beside `do_locks`,
 * `<table>_storage` beside any other lock table, so that two lock tables in one database (tenants) keep
 * their objects apart even when their ids coincide.
 */
export function objectTableFor(lockTable: string, objectTable?: string): string {
  if (objectTable !== undefined) return objectTable
  if (lockTable === DEFAULT_TABLE) return DEFAULT_OBJECT_TABLE
  if (lockTable.length > 48) {
    throw new InvalidArgumentError('objectTable', `required when table is longer than 48 characters ("${lockTable}")`)
  }
  return `${lockTable}_storage`
}

/**
 * The most bound parameters one statement carries: D1's limit per statement (SQLite's own default is
 * 32766). Multi-row upserts are chunked to stay under it; reads bind a handful.
 */
export const MAX_BOUND_PARAMETERS = 100

/** Rows per multi-row upsert: `?1` is the object, then a (key, value) pair per row. */
export const MAX_ROWS_PER_PUT = Math.floor((MAX_BOUND_PARAMETERS - 1) / 2)

/**
 * The most UTF-8 bytes one JSON array argument (the keys of a delete) carries: half of D1's largest
 * string (2,000,000 bytes), so a chunk never reaches it whatever the keys.
 */
export const MAX_JSON_ARGUMENT_BYTES = 1_000_000

/** Which bounds a `list` statement binds; one statement text per shape (see {@link ObjectTableSql.list}). */
export interface ListShape {
  /** Binds an inclusive lower bound. */
  start: boolean
  /** Binds an exclusive lower bound. */
  startAfter: boolean
  /** Binds an exclusive upper bound. */
  end: boolean
  /** `'range'`: `prefix <= key < successor`; `'from'`: `prefix <= key` (no successor exists). */
  prefix: 'range' | 'from' | false
  /** Descending key order. */
  reverse: boolean
  /** Binds a row limit. */
  limit: boolean
}

/** The statements over one storage table and the lock table beside it ({@link objectTableSql}). */
export interface ObjectTableSql {
  /** The storage table. */
  readonly table: string
  /** The lock table whose lease every statement checks. */
  readonly lockTable: string
  /** `CREATE ... IF NOT EXISTS`, idempotent; run them in one batch. */
  readonly schema: readonly string[]
  /**
   * The committed values of some keys, if the lease holds. Args `?1 doId, ?2 nodeId, ?3 fencingToken,
   * ?4 JSON array of keys` (one argument however many keys: D1 binds at most 100). Rows: none when the
   * lease does not hold; else one per key found, or a single row with `key` NULL when none is.
   */
  readonly get: string
  /**
   * The committed entries of the object within bounds, if the lease holds; rows as {@link get}. Args
   * `?1 doId, ?2 nodeId, ?3 fencingToken`, then one per bound present, in the order start, startAfter,
   * end, prefix (two for `'range'`: the prefix and its successor), limit. Built once per shape.
   */
  list(shape: ListShape): string
  /**
   * The object's first rows in key order, for the lock table's `acquire` in the same batch (sent right
   * after it): `?1 doId, ?2 limit` (the rows wanted + 1, so that a full answer shows more exist), `?3
   * nodeId`. Rows `key, value` only while `nodeId` holds the lease, so an acquire that lost to another
   * node reads none (one that lost to this same node id gets rows it does not use). Cannot raise:
   * group commit may combine it with other callers' operations.
   */
  readonly prefetch: string
  /**
   * Upserts `rows` rows (1..{@link MAX_ROWS_PER_PUT}) of one object. Args `?1 doId`, then key and value
   * of each row. Never raises on an existing row.
   */
  put(rows: number): string
  /** Deletes some keys of one object. Args `?1 doId, ?2 JSON array of keys`. */
  readonly delete: string
  /** Deletes every key of one object. Args `?1 doId`. */
  readonly deleteAll: string
  /**
   * The fence that makes a flush all-or-nothing, lease extension included. Sent right after the lock
   * table's `extend` (args `?1 doId, ?2 nodeId, ?3 fencingToken`): it checks the lease through the lock
   * table's fence view with the caller's token if that extend extended the lease (the row holds it,
   * intact and unexpired, afterwards) and
   * with token -1, which no lease ever carries, if it did not, so the batch aborts with the fence's
   * `STALE_TOKEN_MESSAGE` (nothing written, nothing extended). A fence before the writes and a refresh
   * after them would instead commit the writes when the lease ran out between the two statements, or
   * when refresh refuses a corrupt row, without the extension the caller is told about.
   */
  readonly extendedFence: string
  /**
   * The lease row's expiry and whether another node asked its holder to let go, for a flush that does
   * not extend the lease (`[extendedFence, leaseState, writes]`: with no extend before it, the fence
   * checks that the row holds the lease, intact and unexpired, now). Args `?1 doId, ?2 fencingToken`.
   * A read: it writes no page of the lock table, which is what a flush without extension saves.
   */
  readonly leaseState: string
  /**
   * {@link ObjectTableSql.get} without the lease: the committed values, for a read-only request. Args
   * `?1 doId, ?2 and ?3 unused (NULL), ?4 keys as a JSON array`, so that it binds as `get` does.
   */
  readonly getCommitted: string
  /** {@link ObjectTableSql.list} without the lease; args as `list`'s, `?2` and `?3` unused (NULL). */
  listCommitted(shape: ListShape): string
}

/** Builds the statements for one storage table over one lock table (both validated names). */
export function objectTableSql(
  table: string,
  lock: Pick<LockTableSql, 'table' | 'fenceView' | 'handover'>,
): ObjectTableSql {
  assertTableName(table)
  assertTableName(lock.table)
  if (table.toLowerCase() === lock.table.toLowerCase()) {
    throw new InvalidArgumentError('table', `must differ from the lock table ("${lock.table}")`)
  }
  // A table of that name hides the table-valued function get and delete use ("not a function").
  for (const [argument, name] of [
    ['table', table],
    ['lockTable', lock.table],
  ] as const) {
    if (name.toLowerCase() === 'json_each') {
      throw new InvalidArgumentError(argument, 'must not be "json_each": it would hide the JSON function of that name')
    }
  }
  const t = `"${table}"`
  const locks = `"${lock.table}"`
  // The holder as the lock table's fence knows it (docs/design.md invariants 3 and 5): same node, same
  // token, unexpired on the store clock. An expires_at that is not a safe integer (corruption) does not
  // hold, as there.
  const leaseHeld = `l.do_id = ?1 AND l.node_id = ?2 AND l.fencing_token = ?3
      AND typeof(l.expires_at) = 'integer' AND l.expires_at <= ${Number.MAX_SAFE_INTEGER}
      AND l.expires_at > ${STORE_NOW}`
  // A LEFT JOIN from the lease row: no row at all = lease not held; a row with s.key NULL = held, nothing
  // matched. One SELECT: a read transaction, never the write lock. The lease row is a primary-key lookup,
  // so the storage rows come straight off the (do_id, key) index, in key order, with no sort.
  const read = (matching: string, tail = '') =>
    `SELECT s.key AS key, s.value AS value
      FROM ${locks} AS l
      LEFT JOIN ${t} AS s ON s.do_id = l.do_id AND ${matching}
      WHERE ${leaseHeld}${tail}`

  // The same reads with no lease row: committed state, for a request that holds no lease. `?2 IS ?2`
  // names the unused parameters, so that both kinds bind the same argument list.
  const readCommitted = (matching: string, tail = '') =>
    `SELECT s.key AS key, s.value AS value FROM ${t} AS s
      WHERE s.do_id = ?1 AND ?2 IS ?2 AND ?3 IS ?3 AND ${matching}${tail}`

  const puts: string[] = []
  return {
    table,
    lockTable: lock.table,
    schema: [
      // TEXT values: the seam's EncodedValue is a string. WITHOUT ROWID: the primary key is the table, so
      // a get is one b-tree lookup and a list one range scan, and there is no second index to keep.
      `CREATE TABLE IF NOT EXISTS ${t} (
        do_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (do_id, key)
      ) WITHOUT ROWID`,
    ],
    get: read('s.key IN (SELECT j.value FROM json_each(?4) AS j)'),
    // It reads in the acquire's transaction, and only while the caller's node holds the lease (so, when
    // the acquire won, the rows are exactly the state the new lease starts from). CAST: D1 binds every
    // JS number as REAL.
    // `upto`: the characters of the rows so far, this one included. Rows that start past the byte budget
    // are not sent (a cold start must not pull megabytes); the first row that crosses it comes back as
    // the marker that the prefetch is not complete.
    prefetch: `SELECT p.key AS key, p.value AS value, p.upto AS upto FROM (
        SELECT s.key AS key, s.value AS value,
          SUM(length(s.key) + length(s.value)) OVER (ORDER BY s.key ROWS UNBOUNDED PRECEDING) AS upto
        FROM ${t} AS s
        WHERE s.do_id = ?1
          AND EXISTS (SELECT 1 FROM ${locks} AS l WHERE l.do_id = ?1 AND l.node_id = ?3 AND l.expires_at > ${STORE_NOW})
        ORDER BY s.key LIMIT CAST(?2 AS INTEGER)
      ) AS p
      WHERE p.upto - length(p.key) - length(p.value) <= ${MAX_PREFETCH_CHARS}
      ORDER BY p.key`,
    list: listStatements(read),
    getCommitted: readCommitted('s.key IN (SELECT j.value FROM json_each(?4) AS j)', '\n      ORDER BY s.key'),
    listCommitted: listStatements(readCommitted),
    put(rows) {
      if (!Number.isInteger(rows) || rows < 1 || rows > MAX_ROWS_PER_PUT) {
        throw new RangeError(`put: rows must be 1..${MAX_ROWS_PER_PUT}, got ${rows}`)
      }
      let sql = puts[rows]
      if (sql === undefined) {
        const values = Array.from({ length: rows }, (_, i) => `(?1, ?${2 * i + 2}, ?${2 * i + 3})`).join(', ')
        // `excluded` is the upsert's pseudo-table; aliasing the target keeps it unambiguous whatever
        // the table is called.
        sql = `INSERT INTO ${t} AS s (do_id, key, value) VALUES ${values}
          ON CONFLICT (do_id, key) DO UPDATE SET value = excluded.value`
        puts[rows] = sql
      }
      return sql
    },
    delete: `DELETE FROM ${t} AS s WHERE s.do_id = ?1 AND s.key IN (SELECT j.value FROM json_each(?2) AS j)`,
    deleteAll: `DELETE FROM ${t} AS s WHERE s.do_id = ?1`,
    // Whether the extension happened is asked of the row itself (the extend's own condition, true
    // afterwards exactly when it extended), not of changes(): a connection's last change count is
    // state a driver may share between requests, the row is the transaction's own.
    extendedFence: `INSERT INTO "${lock.fenceView}" (do_id, node_id, fencing_token)
      VALUES (?1, ?2, CASE WHEN EXISTS (SELECT 1 FROM ${locks} AS l WHERE ${leaseHeld} AND ${intact('l.')})
        THEN ?3 ELSE -1 END)`,
    leaseState: `SELECT l.expires_at AS expires_at,
        EXISTS (SELECT 1 FROM "${lock.handover}" AS ho WHERE ho.do_id = ?1 AND ho.fencing_token = ?2) AS handover_requested
      FROM ${locks} AS l WHERE l.do_id = ?1`,
  }
}

/** `list` statements over one kind of read, each shape's text built once and kept. */
function listStatements(read: (matching: string, tail?: string) => string): (shape: ListShape) => string {
  const built = new Map<string, string>()
  return (shape) => {
    const id = JSON.stringify(shape)
    let sql = built.get(id)
    if (sql === undefined) {
      sql = listSql(read, shape)
      built.set(id, sql)
    }
    return sql
  }
}

function listSql(read: (matching: string, tail?: string) => string, shape: ListShape): string {
  const conditions: string[] = []
  let n = 3
  if (shape.start) conditions.push(`s.key >= ?${++n}`)
  if (shape.startAfter) conditions.push(`s.key > ?${++n}`)
  if (shape.end) conditions.push(`s.key < ?${++n}`)
  if (shape.prefix) conditions.push(`s.key >= ?${++n}`)
  if (shape.prefix === 'range') conditions.push(`s.key < ?${++n}`)
  const matching = conditions.length > 0 ? conditions.join(' AND ') : '1'
  // CAST: D1 binds every JS number as REAL.
  const limit = shape.limit ? ` LIMIT CAST(?${++n} AS INTEGER)` : ''
  return read(matching, `\n      ORDER BY s.key ${shape.reverse ? 'DESC' : 'ASC'}${limit}`)
}

/**
 * The least string greater than every string that starts with `prefix`, in code point order (SQLite's
 * order for UTF-8 text), or `undefined` when there is none (empty, or only U+10FFFF). So `prefix <= key <
 * successor` is exactly "key starts with prefix", as an index range. Expects well-formed Unicode.
 */
export function prefixSuccessor(prefix: string): string | undefined {
  const points = Array.from(prefix)
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!
    if (last < 0x10ffff) {
      // No scalar value lies in U+D800..U+DFFF (surrogates): U+D7FF is followed by U+E000.
      points.push(String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1))
      return points.join('')
    }
  }
  return undefined
}
