/**
 * What a storage chaos run (test/chaos/do-node.ts) is judged on, read after the run: the requests from
 * the histories and every object's `do_storage` rows, read directly from the table and decoded with the
 * library's serializer (not through the object layer under test). Also the run's one summary line.
 */
import type { Client } from '@libsql/client'
import { decodeValue } from '../../src/storage/serializer.js'
import type { Operation } from './history.js'
import type { FinalStorage, StorageVerdict } from './linearizability.js'

/** Every object's final rows, decoded. */
export async function readFinalStorage(client: Client): Promise<FinalStorage> {
  const result = await client.execute('SELECT do_id, key, value FROM do_storage ORDER BY do_id, key')
  const storage: FinalStorage = {}
  for (const row of result.rows) {
    const doId = String(row.do_id)
    const key = String(row.key)
    ;(storage[doId] ??= new Map()).set(key, decodeValue(String(row.value), key))
  }
  return storage
}

/** Requests by kind and answer, for the summary and the test's "the faults were felt" checks. */
export interface StorageStats {
  writes: { ok: number; unknown: number }
  reads: { ok: number; failed: number }
  /** Answers other than 200, by `status code` (e.g. `503 lease_lost`). */
  refusals: Record<string, number>
  /** Writes answered 200 after the last fault healed, and from how many nodes. */
  okAfterFaults: number
  nodesRecovered: number
}

export function storageStats(operations: Operation[], lastHealedAt: number): StorageStats {
  const stats: StorageStats = {
    writes: { ok: 0, unknown: 0 },
    reads: { ok: 0, failed: 0 },
    refusals: {},
    okAfterFaults: 0,
    nodesRecovered: 0,
  }
  const recovered = new Set<string>()
  for (const op of operations) {
    if (op.kind === 'write') {
      if (op.outcome === 'ok') stats.writes.ok++
      else stats.writes.unknown++
      if (op.outcome === 'ok' && op.invokedAt > lastHealedAt) {
        stats.okAfterFaults++
        recovered.add(op.node)
      }
    } else if (op.kind === 'read') {
      if (op.outcome === 'ok') stats.reads.ok++
      else stats.reads.failed++
    } else continue
    if (op.outcome !== 'ok') {
      const key = op.error?.replace(/^HTTP /, '') ?? 'no answer (killed)'
      stats.refusals[key] = (stats.refusals[key] ?? 0) + 1
    }
  }
  stats.nodesRecovered = recovered.size
  return stats
}

export function storageSummary(
  stats: StorageStats,
  verdict: StorageVerdict,
  faults: Record<string, number>,
  context: { nodes: number; wallMs: number; seed: number; harnessProblems: number; plantUnfencedFlush: boolean },
): string {
  const committed = Object.values(verdict.objects).reduce((sum, o) => sum + o.committed, 0)
  const refusals = Object.entries(stats.refusals)
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(', ')
  return (
    `storage chaos${context.plantUnfencedFlush ? ' (PLANTED: flush without fence)' : ''}: ${context.nodes} nodes, ` +
    `${(context.wallMs / 1000).toFixed(1)} s, seed ${context.seed}; writes ${stats.writes.ok} ok/` +
    `${stats.writes.unknown} indeterminate (${committed} committed), reads ${stats.reads.ok} ok/${stats.reads.failed} failed` +
    `; refused: ${refusals || 'none'}; ${stats.okAfterFaults} writes ok after the last fault, from ${stats.nodesRecovered} nodes` +
    `; objects ${Object.keys(verdict.objects).length}; faults ${Object.entries(faults)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}; reads outside the lease model ${
      Object.entries(verdict.exempt)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ') || 'none'
    }, stale ones explained ${verdict.explained.length}; violations ${verdict.total + context.harnessProblems}${
      verdict.total
        ? ` (${Object.entries(verdict.counts)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')})`
        : ''
    }`
  )
}
