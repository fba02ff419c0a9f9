import type { D1Database } from 'cloudflare:test'
import { STORE_NOW, type LockTableSql } from '../../../src/store/sql.js'

// Test files in the workers project share one D1 database (isolated storage is off, see project.ts),
// so every test works in tables of its own: a per-file random prefix plus a counter.
const run = crypto.randomUUID().slice(0, 8)
let counter = 0

/** A table name no other test (in this file or another) uses. */
export function freshTable(prefix = 't'): string {
  return `${prefix}_${run}_${++counter}`
}

/** Drops a lock table and everything ensureSchema created for it (index, fence view and its trigger, high-water mark, hand-over requests). */
export async function dropLockTable(db: D1Database, sql: LockTableSql): Promise<void> {
  await db.batch([
    db.prepare(`DROP VIEW IF EXISTS "${sql.fenceView}"`),
    db.prepare(`DROP TABLE IF EXISTS "${sql.table}"`),
    db.prepare(`DROP TABLE IF EXISTS "${sql.highWater}"`),
    db.prepare(`DROP TABLE IF EXISTS "${sql.handover}"`),
  ])
}

/**
 * Waits until D1's clock (the store clock) reaches `ms`. Use it instead of a bare `setTimeout` when a
 * test needs a lease to have expired: workerd's timers run off the isolate's coarse clock and were
 * seen to fire up to ~50 ms early against D1's clock on a loaded machine.
 */
export async function untilStoreClock(db: D1Database, ms: number): Promise<number> {
  for (;;) {
    const row = await db.prepare(`SELECT ${STORE_NOW} AS now`).first<{ now: number }>()
    const now = row!.now
    if (now >= ms) return now
    await new Promise((resolve) => setTimeout(resolve, Math.min(50, ms - now)))
  }
}
