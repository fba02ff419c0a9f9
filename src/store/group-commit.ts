/**
 * Group commit: a {@link SqlDriver} decorator that sends concurrent lock operations to the database as
 * ONE batch (one transaction, one commit), instead of one transaction per operation.
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import type { SqlDriver, SqlResult, SqlStatement } from './sql-driver.js'

/** The most operations one combined batch carries, unless {@link GroupCommitOptions.maxOperations} says otherwise. */
export const DEFAULT_GROUP_COMMIT_MAX_OPERATIONS = 64

/**
 * The most characters of SQL text and string arguments one combined batch carries (an operation bigger
 * than that is still sent, alone): 64 large members could otherwise make one request of many MiB,
 * which a remote server may refuse with an error that fails every caller of the group at once.
 */
export const MAX_GROUP_COMMIT_CHARS = 1_048_576

/** How long a combined batch may stay unanswered before the next one is sent without waiting for it. */
export const DEFAULT_GROUP_COMMIT_STALL_MS = 1_000

/** Tuning for {@link groupCommitDriver} (and `LibSQLLockStore`'s `groupCommit` option). */
export interface GroupCommitOptions {
  /**
   * The most caller operations combined into one batch (an acquire is 2 statements, 3 with a
   * prefetch; a refresh or release 1). More waiting operations go out in the next batch, after this
   * one returns. Default 64.
   */
  maxOperations?: number
  /**
   * A combined batch still unanswered after this many ms no longer holds up the operations queued
   * behind it: the next batch is sent at once. Its own callers keep waiting for its answer (a
   * request that never returns would hang them without group commit too), but one hung request
   * cannot stall every later acquire, refresh (heartbeat) and release of the store. Default 1000.
   */
  stallMs?: number
}

/** What {@link groupCommitDriver} needs besides the driver it wraps. */
export interface GroupCommitDriverOptions extends GroupCommitOptions {
  /**
   * Whether an operation (the statements of one `execute` or `batch` call) may share a transaction
   * with other callers' operations. Only statements that cannot raise for another caller's data belong
   * here: if one statement of a combined batch fails, the whole batch rolls back, and without
   * {@link GroupCommitDriverOptions.retryAlone} EVERY caller in it gets the error. Anything refused
   * here is passed straight to the wrapped driver.
   */
  canCombine(statements: readonly SqlStatement[]): boolean
  /**
   * Whether a combined batch that failed with `error` certainly rolled back because one of its
   * statements failed (not the transport): then each operation of the group is sent again on its own,
   * in order, so only the one whose own statement fails gets an error. Answer `true` only when nothing
   * of the batch can have committed: after a network error a remote batch may have, and running an
   * acquire twice would answer "held" to the caller that holds it. Default: never (every caller gets
   * the error).
   */
  retryAlone?(error: unknown): boolean
}

interface Pending {
  statements: SqlStatement[]
  /** Characters of its SQL text and string arguments (for {@link MAX_GROUP_COMMIT_CHARS}). */
  chars: number
  /** Came through `execute`: when sent alone, it is sent through `execute` again. */
  single: boolean
  resolve(results: SqlResult[]): void
  reject(error: unknown): void
}

/**
 * Wraps `driver` so that combinable operations ({@link GroupCommitDriverOptions.canCombine}) issued
 * in the same tick (before the microtask queue drains), or while a combined batch is in flight, are
 * sent as one `driver.batch` call: one request and one transaction for all of them. No operation costs
 * more than one request; each caller gets the results of its own statements, in its own order. The
 * combined batch runs the operations one after the other, so each sees the effects of those before it
 * exactly as if they had been sent one by one in that order.
 *
 * Failure: a combined batch commits or rolls back as a whole; no caller ever gets another caller's
 * result. When it fails for one of its statements ({@link GroupCommitDriverOptions.retryAlone}), it
 * rolled back, so its operations are sent again one by one and only the failing one is rejected.
 * Otherwise (the transport failed, the database was busy) every caller in it is rejected with that
 * error: after a network error a remote batch may have committed, so it is not sent again.
 *
 * Order: combined operations run in the order they were issued (except behind a batch that stalled
 * past `stallMs`, which the next batch no longer waits for). An operation that is not combined is
 * sent at once and may overtake combined ones still waiting, as concurrent requests to a remote
 * database may overtake each other anyway; await an operation before issuing one that depends on it.
 *
 * Trade-off: throughput under concurrency rises (one commit, and with a remote database one round
 * trip, per group instead of per operation), but an operation may wait for the batch in flight to
 * return before its own is sent (up to about two round trips instead of one), a transport failure fails
 * its whole group (a failing statement costs one more request per operation of its group), and each
 * batch holds the database's write lock for the whole group.
 */
export function groupCommitDriver(driver: SqlDriver, options: GroupCommitDriverOptions): SqlDriver {
  if (
    driver === null ||
    typeof driver !== 'object' ||
    typeof driver.batch !== 'function' ||
    typeof driver.execute !== 'function'
  ) {
    throw new InvalidArgumentError('driver', 'expected a SqlDriver with execute() and batch()')
  }
  if (options === null || typeof options !== 'object' || typeof options.canCombine !== 'function') {
    throw new InvalidArgumentError('options.canCombine', 'expected a function')
  }
  const maxOperations = options.maxOperations ?? DEFAULT_GROUP_COMMIT_MAX_OPERATIONS
  if (!Number.isSafeInteger(maxOperations) || maxOperations < 1) {
    throw new InvalidArgumentError('groupCommit.maxOperations', `must be an integer >= 1, got ${String(maxOperations)}`)
  }
  const stallMs = options.stallMs ?? DEFAULT_GROUP_COMMIT_STALL_MS
  if (!Number.isSafeInteger(stallMs) || stallMs < 1) {
    throw new InvalidArgumentError('groupCommit.stallMs', `must be an integer >= 1 (ms), got ${String(stallMs)}`)
  }
  const { canCombine, retryAlone } = options
  if (retryAlone !== undefined && typeof retryAlone !== 'function') {
    throw new InvalidArgumentError('options.retryAlone', 'expected a function')
  }
  const queue: Pending[] = []
  /** The batch the queue waits for; a token, so a stalled batch that settles late frees nothing. */
  let inFlight: { sentAt: number } | undefined
  /** Armed only while operations wait behind the batch in flight: a lone operation sets no timer. */
  let stallTimer: ReturnType<typeof setTimeout> | undefined
  let scheduled = false

  const free = (slot: object): void => {
    if (inFlight !== slot) return
    inFlight = undefined
    if (stallTimer !== undefined) clearTimeout(stallTimer)
    stallTimer = undefined
    schedule()
  }

  const schedule = (): void => {
    if (queue.length === 0) return
    if (inFlight) {
      const slot = inFlight
      stallTimer ??= setTimeout(() => free(slot), Math.max(0, slot.sentAt + stallMs - Date.now()))
      return
    }
    if (scheduled) return
    scheduled = true
    // A microtask, not a timer: callers resumed by the same event (e.g. the previous group's results)
    // reach this point in the same drain of the microtask queue, and fake timers cannot stall it.
    queueMicrotask(flush)
  }

  const flush = (): void => {
    scheduled = false
    if (inFlight || queue.length === 0) return
    let take = 0
    let chars = 0
    while (take < queue.length && take < maxOperations) {
      chars += queue[take]!.chars
      if (take > 0 && chars > MAX_GROUP_COMMIT_CHARS) break
      take++
    }
    const group = queue.splice(0, take)
    const slot = { sentAt: Date.now() }
    inFlight = slot
    void send(group).finally(() => free(slot))
  }

  const sendAlone = async (only: Pending): Promise<void> => {
    try {
      only.resolve(only.single ? [await driver.execute(only.statements[0]!)] : await driver.batch(only.statements))
    } catch (error) {
      only.reject(error)
    }
  }

  const send = async (group: Pending[]): Promise<void> => {
    if (group.length === 1) return sendAlone(group[0]!)
    let results: SqlResult[]
    try {
      results = await driver.batch(group.flatMap((p) => p.statements))
    } catch (error) {
      let alone = false
      try {
        alone = retryAlone?.(error) === true
      } catch {
        // A classifier that throws cannot vouch for a rollback: treat the failure as the group's.
      }
      if (alone) {
        // The batch rolled back (one of its statements failed, not the transport): nothing of it was
        // written, so sending each operation again, in the same order, is what it would have done alone.
        for (const p of group) await sendAlone(p)
        return
      }
      for (const p of group) p.reject(error)
      return
    }
    const expected = group.reduce((n, p) => n + p.statements.length, 0)
    if (!Array.isArray(results) || results.length !== expected) {
      const error = new Error(
        `group commit: the driver returned ${Array.isArray(results) ? results.length : 'no'} results for ${expected} statements`,
      )
      for (const p of group) p.reject(error)
      return
    }
    let offset = 0
    for (const p of group) {
      p.resolve(results.slice(offset, offset + p.statements.length))
      offset += p.statements.length
    }
  }

  const enqueue = (statements: SqlStatement[], single: boolean): Promise<SqlResult[]> =>
    new Promise<SqlResult[]>((resolve, reject) => {
      // Copy: the caller may reuse its array before the group is sent.
      queue.push({ statements: [...statements], chars: charsOf(statements), single, resolve, reject })
      schedule()
    })

  return {
    execute: (statement) =>
      canCombine([statement]) ? enqueue([statement], true).then((results) => results[0]!) : driver.execute(statement),
    batch: (statements) =>
      statements.length > 0 && canCombine(statements) ? enqueue(statements, false) : driver.batch(statements),
  }
}

/** Characters of the statements' SQL text and string arguments: what a request's size mostly is. */
function charsOf(statements: readonly SqlStatement[]): number {
  let chars = 0
  for (const statement of statements) {
    chars += statement.sql.length
    for (const arg of statement.args ?? []) if (typeof arg === 'string') chars += arg.length
  }
  return chars
}
