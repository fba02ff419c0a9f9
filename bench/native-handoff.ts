/**
 * The native floor of a one-statement handoff: the store's own handoff UPDATE, each in its own
 * `BEGIN IMMEDIATE` ... `COMMIT` on a native `libsql` connection, prepared once, in a loop with nothing
 * else (no guard, no waiters, no engine). It is the most handoffs per second SQLite commits on this
 * disk with one durable commit per handoff, JavaScript aside: the ceiling of issue 13's 8-waiter row.
 */

/** The parts of a native `libsql` connection the loop uses. */
export interface NativeConnection {
  exec(sql: string): unknown
  prepare(sql: string): { all(...args: unknown[]): unknown }
}

/** A lease the loop starts from: held by `nodeId` with `token` on `doId`. */
export interface HeldLease {
  doId: string
  nodeId: string
  token: number
}

/**
 * Hands `lease` from its node to the same node again and again for `ms`. Resolves the handoffs per
 * second and the token the lease ends with (still held, for the caller to release).
 */
export function nativeHandoffRate(
  db: NativeConnection,
  handoffSql: string,
  lease: HeldLease,
  ttlMs: number,
  ms: number,
): { perSec: number; token: number } {
  const statement = db.prepare(handoffSql)
  const { doId, nodeId } = lease
  let token = lease.token
  const start = performance.now()
  let n = 0
  while (performance.now() - start < ms) {
    db.exec('BEGIN IMMEDIATE')
    const next = statement.all(doId, nodeId, token, nodeId, ttlMs, null) as Array<Record<string, unknown>>
    db.exec('COMMIT')
    if (!next[0]) throw new Error(`native handoff floor: ${doId} was not handed over at token ${token}`)
    token = Number(next[0].fencing_token)
    n++
  }
  return { perSec: (n * 1000) / (performance.now() - start), token }
}
