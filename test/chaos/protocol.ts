/**
 * What the chaos harness and its node processes share: the application tables, a node's configuration
 * and the JSON-lines messages between them (see test/support/processes.ts for the transport).
 */
import { DEFAULT_TABLE, STORE_NOW, lockTableSql } from '../../src/store/sql.js'
import type { ClockSetting } from './clock.js'

/** The library's statements for the table the chaos nodes share (the default one). */
export const LOCK_SQL = lockTableSql(DEFAULT_TABLE)

/**
 * The "application state" the nodes protect with leases. `chaos_log.id` is AUTOINCREMENT, and SQLite
 * has one writer at a time, so id order is commit order: the checker's witness of what happened.
 */

export const APP_SCHEMA = [
  'CREATE TABLE chaos_counters (id TEXT PRIMARY KEY, n INTEGER NOT NULL)',
  // lock_token, lock_expires, at: the do_locks row as the fence check saw it, at the check's store time
  // (copied from chaos_fence_seen, below). Computed by the database in the write's own transaction,
  // not by any node: a direct witness that each accepted write was made under the current, unexpired
  // lease (invariant 5).
  `CREATE TABLE chaos_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    do_id TEXT NOT NULL,
    token INTEGER NOT NULL,
    node TEXT NOT NULL,
    op TEXT NOT NULL,
    read INTEGER NOT NULL,
    lock_token,
    lock_expires,
    at INTEGER NOT NULL
  )`,
  // A second INSTEAD OF trigger on the library's fence view: it fires in the same statement as the
  // library's check, so it sees do_locks at the very store time the check judged (a later statement of
  // the batch would see a later time: a node frozen mid-transaction, holding the write lock so that
  // nobody could take its lease, would look expired). If the check aborts, this row goes with it.
  `CREATE TABLE chaos_fence_seen (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    do_id TEXT NOT NULL,
    token,
    lock_token,
    lock_expires,
    at INTEGER NOT NULL
  )`,
  `CREATE TRIGGER chaos_fence_witness INSTEAD OF INSERT ON "${LOCK_SQL.fenceView}" BEGIN
    INSERT INTO chaos_fence_seen (do_id, token, lock_token, lock_expires, at)
    VALUES (NEW.do_id, NEW.fencing_token,
      (SELECT fencing_token FROM do_locks WHERE do_id = NEW.do_id), (SELECT expires_at FROM do_locks WHERE do_id = NEW.do_id), ${STORE_NOW});
  END`,
  // Every change to do_locks, written by triggers inside the statement that made it, with that
  // statement's store time: the witness of mutual exclusion and token succession that does not rely
  // on any node's clock or on what the library reports (columns without affinity keep garbage as is).
  `CREATE TABLE chaos_lock_audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    do_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    old_node, old_token, old_expires,
    new_node, new_token, new_expires
  )`,
  `CREATE TRIGGER chaos_audit_insert AFTER INSERT ON do_locks BEGIN
    INSERT INTO chaos_lock_audit (do_id, at, new_node, new_token, new_expires)
    VALUES (NEW.do_id, ${STORE_NOW}, NEW.node_id, NEW.fencing_token, NEW.expires_at);
  END`,
  `CREATE TRIGGER chaos_audit_update AFTER UPDATE ON do_locks BEGIN
    INSERT INTO chaos_lock_audit (do_id, at, old_node, old_token, old_expires, new_node, new_token, new_expires)
    VALUES (NEW.do_id, ${STORE_NOW}, OLD.node_id, OLD.fencing_token, OLD.expires_at, NEW.node_id, NEW.fencing_token, NEW.expires_at);
  END`,
]

export const READ_COUNTER = 'SELECT n FROM chaos_counters WHERE id = ?1'
/** The batch holds SQLite's write lock from its fence on, so the newest chaos_fence_seen row is its own. */
export const APPEND_LOG = `INSERT INTO chaos_log (do_id, token, node, op, read, lock_token, lock_expires, at)
  SELECT ?1, ?2, ?3, ?4, ?5, lock_token, lock_expires, at FROM chaos_fence_seen
  WHERE seq = (SELECT max(seq) FROM chaos_fence_seen) AND do_id = ?1 AND token = ?2`
/** Deliberately not `n = n + 1`: writing the value read earlier is what makes a stale writer LOSE an update. */
export const WRITE_COUNTER = 'UPDATE chaos_counters SET n = ?2 WHERE id = ?1'

/** The workload every node runs; the harness's run configuration carries the same fields. */
export interface Workload {
  ttlMs: number
  busyTimeoutMs: number
  /** Loops running side by side in a node process (a node serves several DOs at once), sharing one guard. */
  workers: number
  /** The DO ids; the first is the hot one every node keeps coming back to. */
  ids: string[]
  /** Probability of picking the hot id. */
  hotShare: number
  incrementsPerLease: number
  /** Pause between reading the counter and the fenced write (the window a stale writer would lose an update in). */
  thinkMs: [number, number]
  /**
   * Share of leases held long (think time `longThinkMs`, so the lease outlives several heartbeats):
   * those are the ones a pause or an outage catches mid-lease, with heartbeats failing.
   */
  longLeaseShare: number
  longThinkMs: [number, number]
  /** Pause between leases, to keep the CPU shared with other tests. */
  gapMs: [number, number]
  /** How long an acquire keeps trying while the id is held elsewhere. */
  waitMs: number
  seed: number
}

export interface NodeConfig extends Workload {
  /** `file:` URL of the shared database (schema created by the harness). */
  url: string
  /** Node id, as recorded in `do_locks.node_id`; a respawned node keeps its name. */
  name: string
  /** 0 for the first process with this name, +1 per respawn. */
  incarnation: number
  historyFile: string
  clock: ClockSetting
  /** `loop`: the chaos workload. `script`: one step per parent command, for deterministic scenarios. */
  mode: 'loop' | 'script'
  /** LibSQLLockStore's group commit: concurrent lease operations of this node share one transaction. */
  groupCommit: boolean
  /** Storage nodes (test/chaos/do-node.ts): share of requests that are reads (GET). Default 0.3. */
  readShare?: number
  /** Storage nodes: the activations' `idleMs`. Default 200. */
  idleMs?: number
  /** Storage nodes: the planted bug, a flush without the lease extension and fence (fault injection). */
  plantUnfencedFlush?: boolean
}

/**
 * Script mode of a storage node: one request per step, answered `answered` (status, value); a write
 * sends `window` between its read and its put, and with `freezeInWindow` SIGSTOPs itself right there.
 */
export interface DoRequestStep {
  type: 'step'
  step: number
  doId: string
  write: boolean
  thinkMs: number
  freezeInWindow?: boolean
}

/** A storage node's answer to a {@link DoRequestStep}. */
export interface DoAnswered {
  type: 'answered'
  step: number
  status: number
  value?: number
  code?: string
  /** A read answered 200: the token of the lease it was served under. */
  token?: number
}

// parent -> node: `go` and `stop` (no fields), and:
export interface ClockMessage extends ClockSetting {
  type: 'clock'
}
/** Script mode: one step per message; the node answers each with a message carrying the same `step`. */
export type ScriptAction =
  | { action: 'acquire'; doId: string; waitMs: number }
  /**
   * `freezeInWindow`: the node SIGSTOPs itself right after the counter read (its write timer already
   * running), so the freeze lands exactly in the window however loaded the machine is.
   */
  | { action: 'increment'; thinkMs: number; freezeInWindow?: boolean }
  | { action: 'release' }
export type ScriptStep = { type: 'step'; step: number } & ScriptAction

// node -> parent: `ready`, `done`, and in script mode:
export interface ScriptAcquired {
  type: 'acquired'
  step: number
  token: number | null
}
/** Sent between the counter read and the fenced write: the parent freezes the node right here. */
export interface ScriptWindow {
  type: 'window'
  step: number
  read: number
}
export interface ScriptIncremented {
  type: 'incremented'
  step: number
  outcome: 'ok' | 'failed' | 'unknown'
  error?: string
}
export interface ScriptReleased {
  type: 'released'
  step: number
  released: boolean
}
