/**
 * The zombie scenario for storage nodes, deterministic, for the planted-bug proof: node-zombie serves
 * a write to one object and is frozen (SIGSTOP) in the turn, between its `get('n')` and its put, past
 * the TTL; node-successor's activation takes the object and serves two writes; the zombie is resumed
 * and its turn ends, so its output gate flushes `n + 1` from its stale read. Its monotonic clock runs at
 * half speed, so its own idea of the lease says "still valid": only the store's fence stops the flush.
 */
import type { ProcessGroup } from '../support/processes.js'
import { TRUE_CLOCK } from './clock.js'
import { waitUntilStopped } from './harness.js'
import { checkStorage, type StorageVerdict } from './linearizability.js'
import type { DoAnswered } from './protocol.js'
import { StorageScript } from './storage-script.js'

export interface StorageZombieReport {
  summary: string
  violations: string[]
  verdict: StorageVerdict
  /** The zombie's write, answered after it was resumed. */
  zombie: DoAnswered
  /** The successor's two writes. */
  successor: DoAnswered[]
  /** Final `n` in storage. */
  n: unknown
}

/**
 * Plays the scenario with the zombie's object store intact, or with `plantUnfencedFlush` (its flush
 * sends the writes without the lease extension and fence).
 */
export async function runStorageZombieScenario(
  entryFile: string,
  group: ProcessGroup,
  options: { dir: string; plantUnfencedFlush: boolean },
): Promise<StorageZombieReport> {
  const doId = 'contested'
  const script = await StorageScript.create(entryFile, group, {
    dir: options.dir,
    name: `storage-zombie-${options.plantUnfencedFlush ? 'planted' : 'intact'}`,
    ttlMs: 1_500,
    doId,
  })
  try {
    const zombie = script.spawn(
      'node-zombie',
      { nowOffsetMs: -120_000, rate: 0.5 },
      { waitMs: 3_000, idleMs: 10_000, plantUnfencedFlush: options.plantUnfencedFlush },
    )
    const successor = script.spawn('node-successor', TRUE_CLOCK, {
      waitMs: 3_000,
      idleMs: 10_000,
      plantUnfencedFlush: false,
    })
    await script.go()
    // Think time ends long before the zombie's heartbeat is due (ttl/3 after its acquire), so on
    // SIGCONT the turn's timer fires first and its flush leaves before a heartbeat learns anything.
    const z = script.send(zombie, { write: true, thinkMs: 20, freezeInWindow: true })
    await zombie.waitFor('window', 15_000)
    await waitUntilStopped(zombie.pid)
    let successorAnswers: DoAnswered[]
    try {
      await new Promise((resolve) => setTimeout(resolve, script.ttlMs + 300))
      successorAnswers = []
      for (let i = 0; i < 2; i++) successorAnswers.push(await script.request(successor, { write: true, thinkMs: 0 }))
    } finally {
      zombie.resume()
    }
    const zombieAnswer = await script.answer(zombie, z)
    const { operations, storage, crashed } = await script.finish()
    const verdict = checkStorage(operations, storage)
    const n = storage[doId]?.get('n')
    const summary =
      `storage zombie (flush ${options.plantUnfencedFlush ? 'WITHOUT the fence: planted' : 'fenced'}): the zombie's ` +
      `write was answered ${zombieAnswer.status}${zombieAnswer.code ? ` ${zombieAnswer.code}` : ''}` +
      `${zombieAnswer.value === undefined ? '' : ` n = ${zombieAnswer.value}`}, the successor's ` +
      `${successorAnswers.map((a) => `${a.status} n = ${a.value}`).join(', ')}; final n = ${String(n)}; ` +
      `violations ${verdict.total + crashed.length}${
        verdict.total
          ? ` (${Object.entries(verdict.counts)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')})`
          : ''
      }`
    return {
      summary,
      violations: [...verdict.violations.map((v) => v.message), ...crashed],
      verdict,
      zombie: zombieAnswer,
      successor: successorAnswers,
      n,
    }
  } finally {
    await script.dispose()
  }
}
