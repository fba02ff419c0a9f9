/**
 * The judge of a storage chaos run (test/chaos/do-node.ts). Pure: it takes the requests as the nodes
 * recorded them and each object's final `do_storage` rows (decoded), and returns violations.
 *
 * The model: each object is a counter starting at 0; a write atomically sets `n := n + 1` and returns
 * the new value; a read returns `n`. Every committed write also left the key `w:<op>` = its value, in
 * the same flush, and nothing ever deletes one, so the final storage names EVERY write that took
 * effect, acknowledged or not (a write answered 503, or cut off by a kill, may have committed).
 *
 * What is checked, per object:
 * 1. durability (`ack-missing`): every write answered 200 with value v left `w:<op>` = v;
 * 2. no lost update (`duplicate-value`, `gap`, `final-value`): the committed writes' values are exactly
 *    1..N, each once, and `n` = N. With read-modify-write increments, a stale writer that got through
 *    repeats a value (two writes read the same `n`) and leaves `n` short;
 * 3. every committed write belongs to a write request (`unaccounted-write`);
 * 4. linearizability (`not-linearizable`): given 1-2, the v-th increment in any linearization is the
 *    write that produced v, so a linearization exists iff there are points t_1 <= ... <= t_N with t_v in
 *    its write's [invoked, answered] (a committed write never answered: [invoked, infinity)) and, for
 *    each read answered r, t_r <= its answer and t_(r+1) >= its invocation (r must be current at some
 *    instant of the read; r > N is impossible). Those are interval bounds on a non-decreasing sequence,
 *    decided exactly by the greedy earliest assignment, so this is a complete check, not a heuristic
 *    (Wing-Gong's search reduces to it for a counter whose writes reveal their place in the order).
 *    Times are the machine's one real clock in ms; equal times count as overlapping, so a history off
 *    by less than a millisecond is accepted: the check never rejects a linearizable history.
 *
 * A warm read is a lease read: served from the activation's cache, with no store round trip, while
 * the lease is locally valid (docs/design.md invariants 4 and 11). It is current only under the
 * lease's model: nobody ends the lease before its holder's local validity does, and the holder's
 * monotonic clock runs true within the drift margin. Two of the harness's faults break that model on
 * purpose, and a read they touch may be stale for a while without any bug: a lease revoked under its
 * holder (a corrupt `expires_at`, which the store counts as expired; the corrupt-token repair, which
 * frees the row), and a monotonic clock running slow. Such a read (under a revoked token, answered after
 * the revocation; or `slowClock`) still may not return a value no write produced or one from the future,
 * but it does not bound when the next write took effect. Writes are fenced in the store, so no fault
 * exempts one. A history that is linearizable only with those exemptions is `explained`, not a
 * violation, and says which reads it needed.
 */
import type { Operation } from './history.js'

export const STORAGE_RULES = [
  'ack-missing',
  'duplicate-value',
  'gap',
  'final-value',
  'unaccounted-write',
  'not-linearizable',
] as const
export type StorageRule = (typeof STORAGE_RULES)[number]

export interface StorageViolation {
  rule: StorageRule
  doId: string
  message: string
}

export interface StorageVerdict {
  /** At most 20 per rule are kept; `counts` and `total` count them all. */
  violations: StorageViolation[]
  counts: Partial<Record<StorageRule, number>>
  total: number
  /** Per object: committed writes (N) and acknowledged ones. */
  objects: Record<string, { committed: number; acknowledged: number; reads: number }>
  /** Reads outside the lease model (see above), by reason; they do not bound later writes. */
  exempt: Partial<Record<ExemptReason, number>>
  /** Objects linearizable only because of those exemptions: which stale reads the faults explain. */
  explained: string[]
}

export type ExemptReason = 'revoked-lease' | 'slow-clock'

/** A lease the harness ended under its holder: `token` of `doId`, from `at` (ms, real clock) on. */
export interface Revocation {
  doId: string
  token: number
  at: number
}

/** Final storage: doId -> key -> decoded value. */
export type FinalStorage = Record<string, Map<string, unknown>>

const LOG_PREFIX = 'w:'

export function checkStorage(
  operations: Operation[],
  storage: FinalStorage,
  revocations: readonly Revocation[] = [],
): StorageVerdict {
  const verdict: StorageVerdict = { violations: [], counts: {}, total: 0, objects: {}, exempt: {}, explained: [] }
  const exemptReason = (read: Operation): ExemptReason | undefined => {
    if (read.slowClock) return 'slow-clock'
    const revoked = revocations.some(
      (r) => r.doId === read.doId && r.token === read.token && (read.completedAt ?? Infinity) >= r.at,
    )
    return revoked ? 'revoked-lease' : undefined
  }
  const report = (rule: StorageRule, doId: string, message: string) => {
    verdict.total++
    const count = (verdict.counts[rule] = (verdict.counts[rule] ?? 0) + 1)
    if (count <= 20) verdict.violations.push({ rule, doId, message })
  }
  const byId = new Map<string, Operation[]>()
  for (const op of operations) {
    if (op.kind !== 'write' && op.kind !== 'read') continue
    byId.set(op.doId, [...(byId.get(op.doId) ?? []), op])
  }
  for (const doId of new Set([...byId.keys(), ...Object.keys(storage)])) {
    checkObject(doId, byId.get(doId) ?? [], storage[doId] ?? new Map(), report, verdict, exemptReason)
  }
  return verdict
}

function checkObject(
  doId: string,
  ops: Operation[],
  rows: Map<string, unknown>,
  report: (rule: StorageRule, doId: string, message: string) => void,
  verdict: StorageVerdict,
  exemptReason: (read: Operation) => ExemptReason | undefined,
): void {
  const writes = new Map(ops.filter((o) => o.kind === 'write').map((o) => [o.op, o]))
  // value -> the writes that committed it
  const producers = new Map<number, Operation[]>()
  let committed = 0
  for (const [key, value] of rows) {
    if (!key.startsWith(LOG_PREFIX)) continue
    committed++
    const op = writes.get(key.slice(LOG_PREFIX.length))
    if (!op) {
      report('unaccounted-write', doId, `"${doId}": ${key} = ${String(value)} was written by no recorded write request`)
      continue
    }
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
      report('unaccounted-write', doId, `"${doId}": ${key} holds ${String(value)}, not a counter value`)
      continue
    }
    producers.set(value, [...(producers.get(value) ?? []), op])
  }
  const acked = [...writes.values()].filter((o) => o.outcome === 'ok')
  const reads = ops.filter((o) => o.kind === 'read' && o.outcome === 'ok' && o.value !== undefined)
  verdict.objects[doId] = { committed, acknowledged: acked.length, reads: reads.length }

  for (const op of acked) {
    const stored = rows.get(`${LOG_PREFIX}${op.op}`)
    if (stored !== op.value) {
      report(
        'ack-missing',
        doId,
        `"${doId}": write ${op.op} was answered 200 with n = ${op.value}, but storage holds ${LOG_PREFIX}${op.op} = ${String(stored)}`,
      )
    }
  }
  let linearOk = true
  for (const [value, ops] of producers) {
    if (ops.length > 1) {
      linearOk = false
      report(
        'duplicate-value',
        doId,
        `"${doId}": ${ops.length} committed writes produced n = ${value} (${ops.map((o) => `${o.op} ${o.outcome}`).join(', ')}): a lost update`,
      )
    }
  }
  const n = committed === 0 && !rows.has('n') ? 0 : rows.get('n')
  for (let v = 1; v <= committed; v++) {
    if (!producers.has(v)) {
      linearOk = false
      report('gap', doId, `"${doId}": no committed write produced n = ${v}, though ${committed} writes committed`)
      break
    }
  }
  if (n !== committed) {
    linearOk = false
    report('final-value', doId, `"${doId}": final n = ${String(n)}, but ${committed} writes committed`)
  }
  // Without 1..N each once, the increments' order is not determined by their values; 2 already failed.
  if (!linearOk) return

  // lo[v], hi[v]: bounds on t_v, the instant the v-th increment takes effect (index 0 unused). `lo` is
  // kept twice: strict (every read) and within the model (exempt reads left out).
  const hi: number[] = [Infinity]
  const strict: Bounds = { lo: [-Infinity], why: [[]] }
  const modelled: Bounds = { lo: [-Infinity], why: [[]] }
  const hiWhy: string[][] = [[]]
  for (let v = 1; v <= committed; v++) {
    const op = producers.get(v)![0]!
    hi[v] = op.completedAt ?? Infinity
    const what = `write ${op.op} [${op.invokedAt}, ${op.completedAt ?? 'never answered'}]`
    for (const b of [strict, modelled]) {
      b.lo[v] = op.invokedAt
      b.why[v] = [what]
    }
    hiWhy[v] = [what]
  }
  const exemptReads: string[] = []
  for (const read of reads) {
    const r = read.value!
    if (r < 0 || r > committed) {
      report(
        'not-linearizable',
        doId,
        `"${doId}": read ${read.op} returned n = ${r}, a value no committed write produced (N = ${committed})`,
      )
      continue
    }
    if (r >= 1 && read.completedAt! < hi[r]!) {
      hi[r] = read.completedAt!
      hiWhy[r]!.push(`read ${read.op} of ${r} answered at ${read.completedAt}`)
    }
    if (r + 1 > committed) continue
    const exempt = exemptReason(read)
    if (exempt) {
      verdict.exempt[exempt] = (verdict.exempt[exempt] ?? 0) + 1
      exemptReads.push(`${read.op} (${exempt}, token ${read.token ?? '?'})`)
    }
    for (const b of exempt ? [strict] : [strict, modelled]) {
      if (read.invokedAt > b.lo[r + 1]!) {
        b.lo[r + 1] = read.invokedAt
        b.why[r + 1]!.push(`read ${read.op} of ${r} invoked at ${read.invokedAt}`)
      }
    }
  }
  const failure = firstViolation(doId, modelled, hi, hiWhy)
  if (failure) {
    report('not-linearizable', doId, failure)
    return
  }
  const strictFailure = firstViolation(doId, strict, hi, hiWhy)
  if (strictFailure) {
    verdict.explained.push(
      `${strictFailure}; linearizable without the reads outside the lease model: ${exemptReads.join(', ')}`,
    )
  }
}

interface Bounds {
  lo: number[]
  why: string[][]
}

/** Greedy: the earliest feasible t_v is max(lo_v, t_(v-1)); if it passes hi_v, nothing later would do. */
function firstViolation(doId: string, { lo, why }: Bounds, hi: number[], hiWhy: string[][]): string | undefined {
  let t = -Infinity
  let from = 0
  for (let v = 1; v < hi.length; v++) {
    if (lo[v]! >= t) {
      t = lo[v]!
      from = v
    }
    if (t > hi[v]!) {
      return `"${doId}": n = ${v} must take effect by ${hi[v]} (${hiWhy[v]!.join('; ')}), but n = ${from} cannot before ${t} (${why[from]!.join('; ')})`
    }
  }
  return undefined
}
