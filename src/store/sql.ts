/**
 * Every statement the library runs against `do_locks`, in one place. Shared by the libSQL and D1 stores,
 * which differ only in how they send a statement.
 *
 * All expiry decisions use {@link STORE_NOW}, evaluated inside the statement, so nodes with skewed clocks
 * still agree (docs/design.md invariant 4). SQLite keeps 'now' fixed within one statement step.
 */
import { InvalidArgumentError } from '../errors.js'

/**
 * SQL for the store clock in ms since the epoch, to splice into a statement (every expiry decision is
 * made with it, inside the statement). julianday() keeps ms precision; ROUND undoes float error.
 */
export const STORE_NOW = "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)"

/**
 * Message the fence trigger raises; drivers surface it inside their own error text, and the stores
 * map an error containing it to `StaleFencingTokenError`.
 */
export const STALE_TOKEN_MESSAGE = 'stateless-do: stale fencing token'

/** The lock table's name unless a store is given `table`. */
export const DEFAULT_TABLE = 'do_locks'

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,55}$/

/**
 * Table names are spliced into SQL, so only plain identifiers pass, and none whose derived names
 * (`<table>_expires_at`, `<table>_fence_v2`, ...) SQLite reserves: `sqlite` itself and `sqlite_*`, in
 * any case. Words that mean something inside SQL (`new`, `excluded`, `main`, `select`, ...) are fine:
 * every statement quotes the name and reaches columns only through the alias {@link ROW}.
 */
export function assertTableName(table: unknown): asserts table is string {
  if (typeof table !== 'string' || !IDENTIFIER.test(table)) {
    throw new InvalidArgumentError(
      'table',
      `must match ${IDENTIFIER.source} (letters, digits, underscore; not starting with a digit)`,
    )
  }
  if (`${table}_`.toLowerCase().startsWith('sqlite_')) {
    throw new InvalidArgumentError(
      'table',
      `"${table}" cannot be used: SQLite reserves names starting with "sqlite_", and the index and fence view are named "${table}_..."`,
    )
  }
}

/**
 * The alias every statement gives the lock table, and the only way any column is reached (RETURNING
 * excepted: it cannot take an alias, and there unqualified names can only mean the target table). An
 * alias hides the table's own name, so a table called `new` cannot turn the fence trigger's
 * `NEW.do_id` into its own column, nor one called `excluded` the upsert's proposed row.
 */
const ROW = 'lk'

const COLUMNS = 'do_id, node_id, acquired_at, expires_at, fencing_token, metadata'
/** The columns declared INTEGER: SQLite lets them hold anything, integers past 2^53 included. */
const INTEGER_COLUMNS = ['acquired_at', 'expires_at', 'fencing_token'] as const

/** The highest token a row may have for acquire to take it: its successor is Number.MAX_SAFE_INTEGER. */
const MAX_TAKEN_TOKEN = Number.MAX_SAFE_INTEGER - 1

/** SQL truth: `x` is an integer JavaScript holds exactly (what the library writes). */
const isSafeInt = (x: string): string =>
  `(typeof(${x}) = 'integer' AND ${x} BETWEEN ${-Number.MAX_SAFE_INTEGER} AND ${Number.MAX_SAFE_INTEGER})`

/**
 * What a statement returns for one row: the integer columns only when they are safe integers (NULL
 * otherwise) plus their SQLite type as `<column>_type`, so a corrupt value never reaches the driver.
 * libsql's default intMode throws while reading an integer past 2^53, which would fail the whole
 * request (a listing, or a group-commit batch of other callers), and without a column name. `prefix`
 * qualifies the columns (`lk.`); RETURNING takes none.
 */
function rowColumns(prefix: string): string {
  return COLUMNS.split(', ')
    .map((c) =>
      (INTEGER_COLUMNS as readonly string[]).includes(c)
        ? `CASE WHEN ${isSafeInt(prefix + c)} THEN ${prefix + c} END AS ${c}, typeof(${prefix + c}) AS ${c}_type`
        : `${prefix + c} AS ${c}`,
    )
    .join(', ')
}

/** SQL truth: every column of the row holds what the library would have written. */
export function intact(prefix: string): string {
  return [
    `typeof(${prefix}do_id) = 'text'`,
    `typeof(${prefix}node_id) = 'text'`,
    ...INTEGER_COLUMNS.map((c) => isSafeInt(prefix + c)),
    `(${prefix}metadata IS NULL OR (typeof(${prefix}metadata) = 'text' AND json_valid(${prefix}metadata)))`,
  ].join(' AND ')
}

/**
 * Every statement over one lock table, built by {@link lockTableSql}. Statements that read a row return
 * the columns `do_id, node_id, acquired_at, expires_at, fencing_token, metadata, store_now`, plus
 * `<column>_type` (the SQLite type) for each integer column, which is NULL unless it holds a safe
 * integer. Arguments are positional (`?1`, `?2`, ...), as listed for each statement.
 */
export interface LockTableSql {
  /** The lock table's name, as validated (unquoted). */
  readonly table: string
  /**
   * The fence view: inserting `(do_id, node_id, fencing_token)` aborts the transaction unless that node
   * holds an unexpired lease with that token (docs/design.md invariants 3 and 5). Versioned: `_fence`
   * (token only) was the name of an earlier, weaker fence, which {@link LockTableSql.schema} drops.
   */
  readonly fenceView: string
  /** The `INSTEAD OF INSERT` trigger on {@link LockTableSql.fenceView} that makes the check. */
  readonly fenceTrigger: string
  /**
   * The one-row table holding the highest token {@link LockTableSql.prune} ever removed; new rows
   * start above it, so tokens keep increasing per id after rows are removed (invariant 2).
   */
  readonly highWater: string
  /**
   * The hand-over requests: at most one per id, for one holder's token (`<table>_handover`). A node
   * that found the object held records one ({@link LockTableSql.requestHandover}); the holder reads it
   * in the answers of its own refreshes and flushes (`handover_requested`), at no extra round trip
   * (docs/design.md invariant 14). A request for a token that is no longer held means nothing: tokens
   * are never issued twice.
   */
  readonly handover: string
  /**
   * What `ensureSchema` runs, in order, as one batch: the table, its index, the high-water mark, the
   * hand-over requests, the fence view and trigger (dropping an earlier version's). Idempotent.
   */
  readonly schema: readonly string[]
  /**
   * Takes the row if it is free, released or expired (token + 1, or high-water mark + 1 for a new row),
   * `RETURNING` it; no row when it is held. Args `?1 doId, ?2 nodeId, ?3 ttlMs, ?4 metadata (JSON or
   * NULL)`. Cannot raise for another row's data.
   */
  readonly acquire: string
  /** The row (if any) as it is after `acquire`, in the same batch: the holder a lost race reports. Args `?1 doId`. */
  readonly holder: string
  /**
   * Extends a lease to store-now + ttl if that node still holds it with that token, unexpired; `RETURNING`
   * the row (no row: not extended) and `handover_requested` (1 when another node asked this lease to
   * let go). Args `?1 doId, ?2 nodeId, ?3 fencingToken, ?4 ttlMs`. Cannot raise,
   * so it may close a fenced batch (`[fence, ...writes, refresh]`) to extend the lease in the same
   * transaction as the writes.
   */
  readonly refresh: string
  /**
   * {@link LockTableSql.refresh}'s extension with only the new `expires_at` and `handover_requested`
   * returned: what a flush of
   * object storage sends first in its batch (the fence after it fails unless this changed a row). Args
   * `?1 doId, ?2 nodeId, ?3 fencingToken, ?4 ttlMs`.
   */
  readonly extend: string
  /**
   * Marks the lease free (`expires_at = 0`; the row and its token stay) if that node still holds it with
   * that token, unexpired. Args `?1 doId, ?2 nodeId, ?3 fencingToken`; `rowsAffected` 1 if released.
   */
  readonly release: string
  /**
   * Passes a held lease to the next holder in one statement: if node `?2` still holds `?1` with token
   * `?3`, unexpired, the row becomes node `?4`'s, granted now for `?5` ms with metadata `?6` (JSON or
   * NULL) and the next token (`?3 + 1`, the acquire's rule), `RETURNING` it; no row (nothing changed)
   * otherwise, or when `?3` has no safe successor. Args `?1 doId, ?2 nodeId, ?3 fencingToken, ?4
   * toNodeId, ?5 ttlMs, ?6 metadata`. Cannot raise.
   */
  readonly handoff: string
  /** The row for an id. Args `?1 doId`. */
  readonly get: string
  /** Live, intact rows ordered by `do_id` (corrupt rows are skipped). Args `?1 limit`. */
  readonly list: string
  /** Like {@link LockTableSql.list}, only one node's. Args `?1 limit, ?2 nodeId`. */
  readonly listByNode: string
  /**
   * The `do_id` of live rows that are not intact, the ones {@link LockTableSql.list} skips, ordered by
   * `do_id` (for the operator to find and repair; any node's: a corrupt `node_id` cannot be filtered
   * on). Args `?1 limit`.
   */
  readonly listCorrupt: string
  /** Frees a lease whoever holds it (the token stays). Args `?1 doId`; `rowsAffected` 1 if freed. */
  readonly forceRelease: string
  /**
   * The fence check, to put first in a batch of writes: aborts the whole transaction with
   * {@link STALE_TOKEN_MESSAGE} unless the node holds the lease with that token, unexpired on the store
   * clock. Args `?1 doId, ?2 nodeId, ?3 fencingToken`. Returns no rows.
   */
  readonly fence: string
  /**
   * First of the two statements of a prune (same batch): raises the high-water mark to the highest
   * token among the rows {@link LockTableSql.prune} may remove. Args `?1 olderThanMs, ?2 limit`.
   */
  readonly pruneMark: string
  /**
   * Second of the two: removes up to `?2` rows nobody has held for more than `?1` ms whose token is at
   * or below the high-water mark. Args `?1 olderThanMs, ?2 limit`; `rowsAffected` is the count.
   */
  readonly prune: string
  /**
   * Third statement of a prune: forgets hand-over requests whose lease is no longer held (they can
   * never be honoured: that token is gone). No args.
   */
  readonly pruneHandover: string
  /**
   * Records that node `?2` asks the holder of `?1` to let go: only while another node holds it,
   * unexpired, and for that holder's token (replacing any earlier request for the id). `RETURNING` the
   * token asked for; no row when nobody else holds it. Args `?1 doId, ?2 nodeId`.
   */
  readonly requestHandover: string
}

/** Builds the statements for one (validated) table name. */
export function lockTableSql(table: string): LockTableSql {
  assertTableName(table)
  const t = `"${table}"`
  const from = `${t} AS ${ROW}`
  const selected = rowColumns(`${ROW}.`)
  const returning = `RETURNING ${rowColumns('')}, ${STORE_NOW} AS store_now`
  // A lease is live while its expires_at is a safe integer after the store's now. Anything else there
  // (text, a float, an integer past 2^53) is corruption and counts as expired: the row can be taken.
  const live = `${isSafeInt(`${ROW}.expires_at`)} AND ${ROW}.expires_at > ${STORE_NOW}`
  const fenceView = `${table}_fence_v2`
  const fenceTrigger = `${fenceView}_check`
  const highWater = `${table}_high_water`
  const handover = `${table}_handover`
  // Asked of the hand-over table by the holder's own statements: ?1 is the id, ?3 the holder's token.
  const handoverRequested = `EXISTS (SELECT 1 FROM "${handover}" AS ho WHERE ho.do_id = ?1 AND ho.fencing_token = ?3) AS handover_requested`
  const hw = `"${highWater}" AS hw`
  // Rows prune may remove: nobody holds them, every column is as the library wrote it, their token has a
  // safe successor (the high-water mark must stay below MAX_SAFE_INTEGER), and their last grant and
  // lease end are both older than ?1 ms. A release keeps no time, so a released row counts from its
  // grant.
  const prunable = `NOT (${live}) AND ${intact(`${ROW}.`)}
        AND ${ROW}.fencing_token BETWEEN 1 AND ${MAX_TAKEN_TOKEN}
        AND max(${ROW}.acquired_at, ${ROW}.expires_at) < ${STORE_NOW} - ?1`
  return {
    table,
    fenceView,
    fenceTrigger,
    highWater,
    handover,
    schema: [
      `CREATE TABLE IF NOT EXISTS ${t} (
        do_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        acquired_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        fencing_token INTEGER NOT NULL DEFAULT 0,
        metadata TEXT
      )`,
      // list() and prune() scan by expiry; without this they read the whole table.
      `CREATE INDEX IF NOT EXISTS "${table}_expires_at" ON ${t} (expires_at)`,
      // One row: the highest token prune ever removed. A new row starts above it, so removing rows
      // never lets a token be issued twice (invariant 2). 0 in a database prune never touched.
      `CREATE TABLE IF NOT EXISTS "${highWater}" (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        token INTEGER NOT NULL
      )`,
      `INSERT OR IGNORE INTO "${highWater}" (id, token) VALUES (1, 0)`,
      `CREATE TABLE IF NOT EXISTS "${handover}" (
        do_id TEXT PRIMARY KEY,
        fencing_token INTEGER NOT NULL,
        node_id TEXT NOT NULL,
        requested_at INTEGER NOT NULL
      )`,
      // Upgrade: earlier versions' fence checked the token only; dropping the view drops its trigger.
      // Same batch (one transaction) as the CREATEs below, so no fenced write ever finds neither. A new
      // name rather than DROP + CREATE of one name: a second ensureSchema must not drop triggers that
      // others attached to the current view (the chaos suite's witness).
      `DROP VIEW IF EXISTS "${table}_fence"`,
      `CREATE VIEW IF NOT EXISTS "${fenceView}" AS SELECT ${ROW}.do_id AS do_id, ${ROW}.node_id AS node_id, ${ROW}.fencing_token AS fencing_token FROM ${from}`,
      // RAISE only works in triggers; an INSTEAD OF trigger on a view gives fenced writes a check that
      // aborts the whole batch, in the same transaction as the caller's statements (invariant 5). Same
      // node AND same token, unexpired: the holder as refresh and release know it (invariant 3).
      `CREATE TRIGGER IF NOT EXISTS "${fenceTrigger}" INSTEAD OF INSERT ON "${fenceView}"
       BEGIN
         SELECT RAISE(ABORT, '${STALE_TOKEN_MESSAGE}')
         WHERE NOT EXISTS (
           SELECT 1 FROM ${from}
           WHERE ${ROW}.do_id = NEW.do_id AND ${ROW}.node_id = NEW.node_id AND ${ROW}.fencing_token = NEW.fencing_token
             AND ${live}
         );
       END`,
    ],
    // Takes a free, released or expired row and bumps its token; a held row is left alone and RETURNING
    // yields nothing. A corrupt expires_at (not a safe integer) counts as expired; a non-integer token does
    // not, because taking it could reissue an old token, and neither does a negative one nor one whose
    // successor would not be a safe JavaScript integer (the new token could not be handed out exactly).
    // Such rows are then reported corrupt (SqlLockStore.acquire) instead of being taken and committed.
    // The proposed values are the parameters again, not `excluded.*`, and STORE_NOW is fixed within the
    // statement, so VALUES and SET agree. A new row's token is one above the high-water mark (1 until
    // prune removed rows); a missing or corrupt mark yields NULL, and the NOT NULL constraint fails
    // every acquire rather than start over at 1.
    acquire: `INSERT INTO ${from} (${COLUMNS})
      VALUES (?1, ?2, ${STORE_NOW}, ${STORE_NOW} + ?3,
        (SELECT hw.token + 1 FROM ${hw}
          WHERE hw.id = 1 AND typeof(hw.token) = 'integer' AND hw.token BETWEEN 0 AND ${MAX_TAKEN_TOKEN}),
        ?4)
      ON CONFLICT (do_id) DO UPDATE SET
        node_id = ?2,
        acquired_at = ${STORE_NOW},
        expires_at = ${STORE_NOW} + ?3,
        fencing_token = ${ROW}.fencing_token + 1,
        metadata = ?4
      WHERE NOT (${live})
        AND typeof(${ROW}.fencing_token) = 'integer' AND ${ROW}.fencing_token BETWEEN 0 AND ${MAX_TAKEN_TOKEN}
      ${returning}`,
    // Sent in the same batch as `acquire`, so a lost race still learns the holder in one round trip.
    holder: `SELECT ${selected}, ${STORE_NOW} AS store_now FROM ${from} WHERE ${ROW}.do_id = ?1`,
    // A row someone corrupted under the holder is not extended (any column, integers past 2^53 too): the
    // RETURNING row could not be parsed, and an extension the caller never hears of would keep
    // contenders out for another TTL.
    refresh: `UPDATE ${from} SET expires_at = ${STORE_NOW} + ?4
      WHERE ${ROW}.do_id = ?1 AND ${ROW}.node_id = ?2 AND ${ROW}.fencing_token = ?3
        AND ${ROW}.expires_at > ${STORE_NOW} AND ${intact(`${ROW}.`)}
      ${returning}, ${handoverRequested}`,
    // The same condition as refresh, a lighter RETURNING: a flush needs only the new expiry (and
    // whether someone asked for the object).
    extend: `UPDATE ${from} SET expires_at = ${STORE_NOW} + ?4
      WHERE ${ROW}.do_id = ?1 AND ${ROW}.node_id = ?2 AND ${ROW}.fencing_token = ?3
        AND ${ROW}.expires_at > ${STORE_NOW} AND ${intact(`${ROW}.`)}
      RETURNING expires_at, ${handoverRequested}`,
    // Never DELETE: the row carries the token forward (invariant 2; only prune removes rows). 0 = released.
    release: `UPDATE ${from} SET expires_at = 0
      WHERE ${ROW}.do_id = ?1 AND ${ROW}.node_id = ?2 AND ${ROW}.fencing_token = ?3 AND ${live}`,
    // release + acquire as one UPDATE: release's condition (that node, that token, live) and acquire's
    // token rule (an integer with a safe successor; the row is never free in between, so nothing else
    // can take it). Every column is rewritten, as acquire's upsert does, so the RETURNING row is one the
    // library wrote even if someone corrupted acquired_at or metadata under the old holder. Hand-over
    // requests are for the old token and so mean nothing for the new one, as after release + acquire.
    handoff: `UPDATE ${from} SET
        node_id = ?4,
        acquired_at = ${STORE_NOW},
        expires_at = ${STORE_NOW} + ?5,
        fencing_token = ${ROW}.fencing_token + 1,
        metadata = ?6
      WHERE ${ROW}.do_id = ?1 AND ${ROW}.node_id = ?2 AND ${ROW}.fencing_token = ?3 AND ${live}
        AND typeof(${ROW}.fencing_token) = 'integer' AND ${ROW}.fencing_token BETWEEN 0 AND ${MAX_TAKEN_TOKEN}
      ${returning}`,
    get: `SELECT ${selected}, ${STORE_NOW} AS store_now FROM ${from} WHERE ${ROW}.do_id = ?1`,
    // Corrupt rows are skipped here, in the statement, so they neither fail the listing nor count
    // against its limit.
    list: `SELECT ${selected}, ${STORE_NOW} AS store_now FROM ${from}
      WHERE ${live} AND ${intact(`${ROW}.`)}
      ORDER BY ${ROW}.do_id LIMIT ?1`,
    listByNode: `SELECT ${selected}, ${STORE_NOW} AS store_now FROM ${from}
      WHERE ${live} AND ${intact(`${ROW}.`)} AND ${ROW}.node_id = ?2
      ORDER BY ${ROW}.do_id LIMIT ?1`,
    listCorrupt: `SELECT ${ROW}.do_id AS do_id FROM ${from}
      WHERE ${live} AND NOT (${intact(`${ROW}.`)})
      ORDER BY ${ROW}.do_id LIMIT ?1`,
    // A corrupt expires_at is freed too: text and blobs compare greater than any number in SQLite, and
    // an integer past 2^53 is greater than now.
    forceRelease: `UPDATE ${from} SET expires_at = 0 WHERE ${ROW}.do_id = ?1 AND ${ROW}.expires_at > ${STORE_NOW}`,
    fence: `INSERT INTO "${fenceView}" (do_id, node_id, fencing_token) VALUES (?1, ?2, ?3)`,
    // prune = [pruneMark, prune] in one transaction. The mark is raised to the highest token among the
    // rows to remove, then only rows at or below the mark are removed: STORE_NOW may have moved between
    // the two statements, and a row that became prunable in between waits for the next prune.
    pruneMark: `UPDATE ${hw} SET token = max(hw.token, coalesce((
        SELECT max(c.fencing_token) FROM (
          SELECT ${ROW}.fencing_token AS fencing_token FROM ${from} WHERE ${prunable}
          ORDER BY ${ROW}.do_id LIMIT ?2
        ) AS c), 0))
      WHERE hw.id = 1 AND typeof(hw.token) = 'integer'`,
    prune: `DELETE FROM ${t} AS gone WHERE gone.do_id IN (
        SELECT ${ROW}.do_id FROM ${from} WHERE ${prunable}
          AND ${ROW}.fencing_token <= (SELECT hw.token FROM ${hw} WHERE hw.id = 1)
        ORDER BY ${ROW}.do_id LIMIT ?2
      )`,
    pruneHandover: `DELETE FROM "${handover}" AS ho WHERE NOT EXISTS (
        SELECT 1 FROM ${from} WHERE ${ROW}.do_id = ho.do_id AND ${ROW}.fencing_token = ho.fencing_token AND ${live}
      )`,
    // WHERE on the SELECT keeps SQLite from reading ON CONFLICT as a join constraint.
    requestHandover: `INSERT INTO "${handover}" AS ho (do_id, fencing_token, node_id, requested_at)
      SELECT ${ROW}.do_id, ${ROW}.fencing_token, ?2, ${STORE_NOW} FROM ${from}
      WHERE ${ROW}.do_id = ?1 AND ${ROW}.node_id <> ?2 AND ${live} AND ${intact(`${ROW}.`)}
      ON CONFLICT (do_id) DO UPDATE SET
        fencing_token = excluded.fencing_token, node_id = excluded.node_id, requested_at = excluded.requested_at
      RETURNING fencing_token`,
  }
}
