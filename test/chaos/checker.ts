/**
 * The judge of a chaos run. Pure (no I/O): it reads what the nodes recorded (test/chaos/history.ts) and
 * what the database holds at the end, so the function that passes real runs is the one shown to fail
 * on planted histories and on a planted bug.
 *
 * Independent witnesses, so a bug cannot hide behind one of them:
 * - the log table, written in the SAME fenced batch as the counter, ordered by its AUTOINCREMENT id, which
 *   is commit order (SQLite has one writer at a time): it shows which writes were accepted and in what
 *   order, whatever the nodes believed;
 * - the nodes' histories, with invocation and completion times on the machine's one real clock: they show
 *   what each node was told, and real-time order, which the database alone cannot;
 * - the database's own account, computed by SQL in the statements that changed things, with their store
 *   time: each log row carries the do_locks row as its fence check saw it, and triggers audit every change
 *   to do_locks (test/chaos/protocol.ts). These do not depend on any node's clock or on the library's
 *   answers, so mutual exclusion and "writes only under the current unexpired lease" are checked
 *   directly, not inferred. The one grant over an intact lease that is legitimate, a handoff (its
 *   holder's release and the next grant in one statement), is accepted only where the holder's own
 *   history says it asked for exactly that handoff, while it was in flight.
 */
import type { Operation } from './history.js'

/** One row of `chaos_log`: an accepted increment. */
export interface LogRow {
  /** AUTOINCREMENT id: commit order. */
  id: number
  doId: string
  token: number
  node: string
  /** The history operation id that wrote it. */
  op: string
  /** The counter value the writer had read (it wrote `read + 1`). */
  read: number
  /** `do_locks.fencing_token` and `expires_at` as the fence check saw them, and the check's store time. */
  lockToken: unknown
  lockExpires: unknown
  at: number
}

/** One row of `chaos_lock_audit`: a change to `do_locks` (old_* are undefined for an insert). */
export interface AuditRow {
  /** AUTOINCREMENT: the order of the changes. */
  seq: number
  doId: string
  /** Store time of the statement that made the change. */
  at: number
  oldNode?: unknown
  oldToken?: unknown
  oldExpires?: unknown
  newNode: unknown
  newToken: unknown
  newExpires: unknown
}

export interface ChaosObservation {
  operations: Operation[]
  log: LogRow[]
  /** Final `chaos_counters.n` per id (every counter starts at 0). */
  counters: Record<string, number>
  /** Final `do_locks.fencing_token` per id, as stored (a corrupt value stays whatever it is). */
  lockTokens: Record<string, unknown>
  /** Every change to `do_locks`, in order. */
  audit: AuditRow[]
}

export const VIOLATION_RULES = [
  /** In commit order a lower token wrote after a higher one: two holders' writes interleaved. */
  'token-order',
  /** A write carried a token that was granted to another node, or to nobody. */
  'token-owner',
  /** The same token was granted twice, or a later acquire got a lower token (invariant 2). */
  'token-reissued',
  /** A write was accepted although, when it was sent, a higher token had already been granted (invariant 5). */
  'stale-write',
  /** An accepted increment overwrote a value it had not read. */
  'lost-update',
  /** The final counter disagrees with the log or with what the nodes were told. */
  'counter',
  /** A node was told its write succeeded, and the write is not there. */
  'ack-missing',
  /** A node was told its write was refused, and the write is there. */
  'rejected-applied',
  /** A log row no node's history accounts for. */
  'phantom-write',
  /** One operation's write applied twice. */
  'duplicate-write',
  /** No order of the counter's increments explains what the nodes were told (Wing & Gong, see below). */
  'linearizability',
  /** The final `do_locks` row is corrupt or its token went backwards. */
  'lock-row',
  /** A write was accepted while do_locks, in its own transaction, held another token or an expired lease (invariant 5). */
  'fence-witness',
  /**
   * do_locks changed hands while the old lease was unexpired and intact (invariant 1), and no handoff
   * its holder sent explains it.
   */
  'lease-overlap',
  /** A new lease's token was not the previous token + 1, or a first lease's not 1 (invariant 2). */
  'token-step',
  /** An expired lease was extended (invariant 3: a late refresh changes nothing). */
  'late-refresh',
  /** A release said it freed the lease although a higher token had been granted before it was sent (invariant 3). */
  'stale-release',
] as const

export type ViolationRule = (typeof VIOLATION_RULES)[number]

export interface Violation {
  rule: ViolationRule
  doId: string
  message: string
}

export interface Verdict {
  /** At most {@link MAX_LISTED} per id and rule, so one flood cannot drown another kind. */
  violations: Violation[]
  /** Every violation found, listed or not, by rule. */
  counts: Partial<Record<ViolationRule, number>>
  total: number
}

export const MAX_LISTED = 5

export function checkChaos(observation: ChaosObservation): Verdict {
  const violations: Violation[] = []
  const counts: Partial<Record<ViolationRule, number>> = {}
  const listed = new Map<string, number>()
  let total = 0
  const report = (rule: ViolationRule, doId: string, message: string) => {
    total++
    counts[rule] = (counts[rule] ?? 0) + 1
    const key = `${doId}\u0000${rule}`
    const n = listed.get(key) ?? 0
    listed.set(key, n + 1)
    if (n < MAX_LISTED) violations.push({ rule, doId, message: `"${doId}": ${message}` })
  }

  const byOp = new Map(observation.operations.map((o) => [o.op, o]))
  const opsById = groupBy(observation.operations, (o) => o.doId)
  const logById = groupBy(observation.log, (r) => r.doId)
  const auditById = groupBy(observation.audit, (r) => r.doId)
  const ids = new Set([...opsById.keys(), ...logById.keys(), ...auditById.keys(), ...Object.keys(observation.counters)])
  for (const doId of [...ids].sort()) {
    const rows = [...(logById.get(doId) ?? [])].sort((a, b) => a.id - b.id)
    const operations = opsById.get(doId) ?? []
    checkId({
      doId,
      rows,
      increments: operations.filter((o) => o.kind === 'increment'),
      grants: operations.filter(
        (o) => o.kind === 'acquire' && o.outcome === 'ok' && o.acquired === true && o.token !== undefined,
      ),
      releases: operations.filter((o) => o.kind === 'release' && o.outcome === 'ok' && o.token !== undefined),
      counter: observation.counters[doId] ?? 0,
      lockToken: observation.lockTokens[doId],
      byOp,
      report: (rule, message) => report(rule, doId, message),
    })
    checkAudit(
      [...(auditById.get(doId) ?? [])].sort((a, b) => a.seq - b.seq),
      operations.filter((o) => o.kind === 'handoff'),
      (rule, message) => report(rule, doId, message),
    )
  }
  return { violations, counts, total }
}

interface IdContext {
  doId: string
  /** Log rows of this id in commit order. */
  rows: LogRow[]
  increments: Operation[]
  /** Acquires that returned a lease (outcome ok, acquired). */
  grants: Operation[]
  /** Releases that returned (with `released`). */
  releases: Operation[]
  counter: number
  lockToken: unknown
  byOp: Map<string, Operation>
  report: (rule: ViolationRule, message: string) => void
}

function checkId(c: IdContext): void {
  const { rows, report } = c

  // The database's witness of each accepted write: in the write's own transaction, do_locks held the
  // writer's token, unexpired. Catches a fence that lets a stale or expired holder through even when
  // no other node wrote (which the token order and lost-update rules need to see anything).
  for (const row of rows) {
    if (row.lockToken !== row.token || typeof row.lockExpires !== 'number' || !(row.lockExpires > row.at)) {
      report(
        'fence-witness',
        `${row.op} with token ${row.token} was accepted (log id ${row.id}) while do_locks held token ` +
          `${JSON.stringify(row.lockToken)} expiring at ${JSON.stringify(row.lockExpires)} (store time ${row.at})`,
      )
    }
  }

  // The log is only a witness if every row is a write some node really sent, once.
  const applied = new Set<string>()
  for (const row of rows) {
    if (applied.has(row.op)) report('duplicate-write', `the write of ${row.op} was applied twice (log id ${row.id})`)
    applied.add(row.op)
    const op = c.byOp.get(row.op)
    if (
      !op ||
      op.kind !== 'increment' ||
      op.doId !== row.doId ||
      op.node !== row.node ||
      op.token !== row.token ||
      op.read !== row.read
    ) {
      report(
        'phantom-write',
        `log id ${row.id} (${row.op}, token ${row.token}, read ${row.read}) matches no increment any node sent`,
      )
    }
  }

  // Fencing, in commit order: once a higher token has written, no lower token writes again. This is the
  // "no two holders' writes interleave" rule: a holder's writes form one block, blocks in token order.
  for (let i = 1; i < rows.length; i++) {
    const prev = rows[i - 1]!
    const row = rows[i]!
    if (row.token < prev.token) {
      report(
        'token-order',
        `${row.op} with token ${row.token} committed (log id ${row.id}) after ${prev.op} with token ${prev.token}`,
      )
    }
  }

  // Tokens: each granted once, increasing in real time, and written only by the node it was granted to.
  const grantOf = new Map<number, Operation>()
  for (const grant of c.grants) {
    const earlier = grantOf.get(grant.token!)
    if (earlier) report('token-reissued', `token ${grant.token} was granted twice: to ${earlier.op} and to ${grant.op}`)
    else grantOf.set(grant.token!, grant)
  }
  const byCompletion = [...c.grants].sort((a, b) => a.completedAt! - b.completedAt!)
  const prefixMax = highestSoFar(byCompletion)
  for (const grant of c.grants) {
    const before = prefixMax[countBefore(byCompletion, grant.invokedAt) - 1]
    if (before && before.token! >= grant.token!) {
      report(
        'token-reissued',
        `${grant.op} was granted token ${grant.token} after ${before.op} had already been granted ${before.token}`,
      )
    }
  }
  for (const row of rows) {
    const grant = grantOf.get(row.token)
    if (!grant) report('token-owner', `${row.op} wrote with token ${row.token}, which no acquire granted`)
    else if (grant.node !== row.node)
      report('token-owner', `${row.op} by ${row.node} wrote with token ${row.token}, granted to ${grant.node}`)
  }

  // Releases, in real time: a release sent after a higher token's acquire had returned cannot have freed
  // anything (only the holder's own unexpired lease can be released), so it must say false.
  for (const op of c.releases) {
    if (op.released !== true) continue
    const newest = prefixMax[countBefore(byCompletion, op.invokedAt) - 1]
    if (newest && newest.token! > op.token!) {
      report(
        'stale-release',
        `${op.op} released token ${op.token}, though ${newest.op} had been granted token ${newest.token} before it was sent`,
      )
    }
  }

  // Fencing, in real time: a write sent after a higher token's acquire had RETURNED must be refused,
  // even if the new holder has not written yet (the token order above cannot see that case).
  for (const row of rows) {
    const writeAt = c.byOp.get(row.op)?.writeAt
    if (writeAt === undefined) continue
    const newest = prefixMax[countBefore(byCompletion, writeAt) - 1]
    if (newest && newest.token! > row.token) {
      report(
        'stale-write',
        `${row.op} with token ${row.token} was accepted, though it was sent ${writeAt - newest.completedAt!} ms after ` +
          `${newest.op} had been granted token ${newest.token}`,
      )
    }
  }

  // Lost updates: every accepted read-modify-write read the value the previous accepted one wrote.
  // Compared with the previous row, not with the row count, so one lost update is reported once
  // instead of once for every write after it.
  rows.forEach((row, i) => {
    const prev = rows[i - 1]
    const expected = prev ? prev.read + 1 : 0
    if (row.read !== expected) {
      report(
        'lost-update',
        `${row.op} (token ${row.token}) read ${row.read} and wrote ${row.read + 1} over the ${expected} ` +
          `${prev ? `${prev.op} (token ${prev.token}) had committed` : 'the counter started at'}: an update was lost`,
      )
    }
  })

  // The counter: the log's count (the batch is atomic), and between acknowledged and acknowledged + indeterminate.
  const acked = c.increments.filter((o) => o.outcome === 'ok')
  const indeterminate = c.increments.filter((o) => o.outcome === 'unknown')
  if (c.counter !== rows.length) {
    report('counter', `the counter is ${c.counter} but the log holds ${rows.length} accepted increments`)
  }
  if (c.counter < acked.length) {
    report(
      'counter',
      `the counter is ${c.counter} but ${acked.length} increments were acknowledged (${acked.length - c.counter} lost)`,
    )
  } else if (c.counter > acked.length + indeterminate.length) {
    report(
      'counter',
      `the counter is ${c.counter} but only ${acked.length} increments were acknowledged and ${indeterminate.length} indeterminate`,
    )
  }
  for (const op of acked) {
    if (!applied.has(op.op))
      report('ack-missing', `${op.op} (token ${op.token}) was acknowledged, but its write is not in the log`)
  }
  for (const op of c.increments) {
    if (op.outcome === 'failed' && applied.has(op.op)) {
      report(
        'rejected-applied',
        `${op.op} (token ${op.token}) was refused (${op.error ?? 'no reason'}), but its write is in the log`,
      )
    }
  }

  checkCounterLinearizable(c.increments, c.counter, report)

  // The lease row at the end: still an integer token, never below one already granted (invariant 2).
  const highest = c.grants.reduce((max, g) => Math.max(max, g.token!), 0)
  if (c.lockToken === undefined) {
    if (highest > 0)
      report('lock-row', `the do_locks row is gone, though token ${highest} was granted (rows must never be deleted)`)
  } else if (!isInt(c.lockToken)) {
    report('lock-row', `do_locks.fencing_token ended as ${JSON.stringify(c.lockToken)}, not an integer`)
  } else if (c.lockToken < highest) {
    report('lock-row', `do_locks.fencing_token ended at ${c.lockToken}, below token ${highest} already granted`)
  }
}

/**
 * Linearizability of the counter, from the nodes' answers alone (not the log): each increment is a
 * fetch-and-increment that "returned" the value it read, acknowledged ones certainly took effect,
 * indeterminate ones (killed, store unavailable) may have, refused ones did not.
 *
 * Why not a Wing & Gong / Porcupine search: for this object the search has nothing to search. In any
 * legal order the increment at position k returns k, so the returned values ARE the linearization: it
 * is forced, and checking it is linear. What remains is to check that (1) no two acknowledged increments
 * returned the same value (the signature of a lost update), (2) no acknowledged one returned a value
 * >= the final counter, (3) every step 0..final-1 is explained by an acknowledged increment or an
 * indeterminate one that read that value, and (4) the forced order respects real time: an increment
 * that completed before another was invoked returned the smaller value. Where several indeterminate
 * increments could explain a step, none is put in the order: that only ever hides a violation, never
 * invents one, and the log-based checks above still see what actually committed.
 */
function checkCounterLinearizable(
  increments: Operation[],
  final: number,
  report: (rule: ViolationRule, message: string) => void,
): void {
  const acked = groupBy(
    increments.filter((o) => o.outcome === 'ok'),
    (o) => o.read!,
  )
  const maybe = groupBy(
    increments.filter((o) => o.outcome === 'unknown'),
    (o) => o.read!,
  )
  for (const [value, ops] of acked) {
    if (ops.length > 1) {
      report(
        'linearizability',
        `${ops.map((o) => o.op).join(', ')} were all acknowledged returning ${value}: all but one of their updates were lost`,
      )
    }
    if (value < 0 || value >= final) {
      report('linearizability', `${ops[0]!.op} was acknowledged returning ${value}, but the counter ended at ${final}`)
    }
  }
  const order: Array<{ op: string; read: number; invokedAt: number; completedAt: number }> = []
  for (let value = 0; value < final; value++) {
    const certain = acked.get(value)?.[0]
    const candidates = maybe.get(value) ?? []
    const op = certain ?? (candidates.length === 1 ? candidates[0] : undefined)
    if (op) order.push({ op: op.op, read: value, invokedAt: op.invokedAt, completedAt: op.completedAt ?? Infinity })
    else if (candidates.length === 0)
      report('linearizability', `the counter went from ${value} to ${value + 1}, but no increment read ${value}`)
  }
  let latestInvoked: (typeof order)[number] | undefined
  for (const entry of order) {
    if (latestInvoked && entry.completedAt < latestInvoked.invokedAt) {
      report(
        'linearizability',
        `${entry.op} returned ${entry.read} and completed before ${latestInvoked.op} was invoked, yet ${latestInvoked.op} returned the smaller ${latestInvoked.read}`,
      )
    }
    if (!latestInvoked || entry.invokedAt > latestInvoked.invokedAt) latestInvoked = entry
  }
}

function groupBy<T, K>(items: readonly T[], key: (item: T) => K): Map<K, T[]> {
  const groups = new Map<K, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = groups.get(k)
    if (list) list.push(item)
    else groups.set(k, [item])
  }
  return groups
}

/** For grants sorted by completion: at each index, the grant with the highest token so far. */
function highestSoFar(sorted: Operation[]): Operation[] {
  const result: Operation[] = []
  for (const grant of sorted) {
    const best = result[result.length - 1]
    result.push(best && best.token! >= grant.token! ? best : grant)
  }
  return result
}

/** How many of the grants (sorted by completion) completed strictly before `time`. */
function countBefore(sorted: Operation[], time: number): number {
  let lo = 0
  let hi = sorted.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (sorted[mid]!.completedAt! < time) lo = mid + 1
    else hi = mid
  }
  return lo
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v)

/**
 * Judges every change to do_locks (one id, in order) by what the row was and became, at the store
 * time of the statement that changed it. A change of token is a new lease; anything else with a later
 * expiry is a refresh. Changes that involve a non-integer token are the harness's corruption and its
 * repair (which sets token + 1 and frees the row), and changes to a non-integer expires_at are a
 * corrupt row being taken over: both legitimate, so not judged. A new lease over an intact one is a
 * violation unless one of `handoffs` (this id's, as the nodes recorded them) explains it.
 */
function checkAudit(
  rows: AuditRow[],
  handoffs: Operation[],
  report: (rule: ViolationRule, message: string) => void,
): void {
  const explained = new Set<Operation>()
  for (const r of rows) {
    if (r.oldToken === undefined) {
      // First lease of the id: a row is never deleted, so this happens once, with token 1.
      if (r.newToken !== 1)
        report('token-step', `do_locks row created with token ${JSON.stringify(r.newToken)}, not 1 (audit ${r.seq})`)
      continue
    }
    if (!isInt(r.oldToken) || !isInt(r.newToken)) continue
    if (r.newToken !== r.oldToken) {
      if (r.newToken !== r.oldToken + 1) {
        report('token-step', `token ${r.oldToken} was followed by ${r.newToken} (audit ${r.seq})`)
      }
      if (isInt(r.oldExpires) && r.oldExpires > r.at) {
        const verdict = handoffVerdict(r, handoffs, explained)
        if (typeof verdict === 'string') {
          report(
            'lease-overlap',
            `token ${r.newToken} (${String(r.newNode)}) was granted at store time ${r.at} while token ${r.oldToken} ` +
              `(${String(r.oldNode)}) held an intact lease until ${r.oldExpires} (audit ${r.seq}), ${verdict}`,
          )
        } else {
          explained.add(verdict)
        }
      }
      continue
    }
    // Same token: a refresh (later expiry), a release (0) or a corruption (not an integer).
    if (isInt(r.newExpires) && isInt(r.oldExpires) && r.newExpires > r.oldExpires && r.oldExpires <= r.at) {
      report(
        'late-refresh',
        `token ${r.oldToken}'s lease, expired at ${r.oldExpires}, was extended to ${r.newExpires} at ${r.at} (audit ${r.seq})`,
      )
    }
  }
}

/**
 * Store time is whole ms, rounded; the histories' times are `Date.now()`, floored, on the same machine's
 * clock (the store is a local file): a statement made during a call may read up to 1 ms outside its
 * recorded invocation and completion.
 */
const STORE_TIME_SLACK_MS = 1

/**
 * The handoff that explains audit row `r`, a new lease over an intact one, or why none does. A handoff
 * is its holder's release and the next grant in one statement, so it explains `r` only if the node
 * the audit names as the holder of `r.oldToken` recorded a handoff of that very token to `r.newNode`,
 * that the statement ran while it was in flight, that its answer (if any) was the grant `r` shows, and
 * that `r.newToken` is `r.oldToken + 1`. Each handoff explains at most one row (`explained`).
 */
function handoffVerdict(r: AuditRow, handoffs: Operation[], explained: Set<Operation>): Operation | string {
  const node = String(r.oldNode)
  const ofToken = handoffs.filter((h) => h.node === r.oldNode && h.token === r.oldToken)
  const asked = ofToken.filter((h) => !explained.has(h))
  if (asked.length === 0) {
    const other = ofToken.length > 0 ? ' other than the one an earlier grant used' : ''
    return `and ${node} recorded no handoff of token ${r.oldToken}${other}: a takeover`
  }
  if (r.newToken !== (r.oldToken as number) + 1) {
    return `not a handoff: ${node}'s handoff of token ${r.oldToken} may only grant ${(r.oldToken as number) + 1}`
  }
  const reasons: string[] = []
  for (const h of asked) {
    if (h.toNode !== r.newNode) reasons.push(`${h.op} handed it to ${h.toNode}`)
    else if (h.outcome === 'failed') reasons.push(`${h.op} failed before it was sent (${h.error ?? 'no reason'})`)
    else if (h.outcome === 'ok' && h.nextToken === undefined) reasons.push(`${h.op} was refused by the store`)
    else if (h.nextToken !== undefined && h.nextToken !== r.newToken) reasons.push(`${h.op} was granted ${h.nextToken}`)
    else if (r.at < h.invokedAt - STORE_TIME_SLACK_MS) reasons.push(`${h.op} was sent only at ${h.invokedAt}`)
    else if (h.completedAt !== undefined && r.at > h.completedAt + STORE_TIME_SLACK_MS)
      reasons.push(`${h.op} had been answered at ${h.completedAt}`)
    else return h
  }
  return `and no handoff ${node} recorded explains it (${reasons.join('; ')})`
}
