/**
 * The zombie scenario for storage nodes, deterministic, for the planted-bug proof: node-zombie serves
 * a write to one object and is frozen (SIGSTOP) in the turn, between its `get('n')` and its put, past
 * the TTL; node-successor's activation takes the object and serves two writes; the zombie is resumed
 * and its turn ends, so its output gate flushes `n + 1` from its stale read. Its monotonic clock runs at
 * half speed, so its own idea of the lease says "still valid": only the store's fence stops the flush.
 */
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { configArg, type ChildHandle, type ProcessGroup } from '../support/processes.js'
import { TRUE_CLOCK, type ClockSetting } from './clock.js'
import { createDatabase, HarnessDb, scriptNodeConfig, waitForStep, waitUntilStopped } from './harness.js'
import { readHistories } from './history.js'
import { checkStorage, type StorageVerdict } from './linearizability.js'
import type { DoAnswered, DoRequestStep, NodeConfig } from './protocol.js'
import { readFinalStorage } from './storage-observe.js'

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
  const ttlMs = 1_500
  const doId = 'contested'
  const dir = join(options.dir, `storage-zombie-${options.plantUnfencedFlush ? 'planted' : 'intact'}`)
  mkdirSync(dir, { recursive: true })
  const url = `file:${join(dir, 'chaos.db')}`
  await createDatabase(url, [doId], false)
  const db = new HarnessDb(url)
  const spawn = (name: string, clock: ClockSetting, plant: boolean) => {
    const config: NodeConfig = {
      ...scriptNodeConfig({ url, dir, name, ttlMs, clock, doId, waitMs: 3_000 }),
      idleMs: 10_000,
      plantUnfencedFlush: plant,
    }
    return group.spawn(entryFile, { name, args: configArg(config), timeoutMs: 60_000 })
  }
  let stepNumber = 0
  const request = (child: ChildHandle, fields: Omit<DoRequestStep, 'type' | 'step'>): number => {
    const n = ++stepNumber
    child.send<DoRequestStep>({ type: 'step', step: n, ...fields })
    return n
  }
  try {
    const zombie = spawn('node-zombie', { nowOffsetMs: -120_000, rate: 0.5 }, options.plantUnfencedFlush)
    const successor = spawn('node-successor', TRUE_CLOCK, false)
    await Promise.all([zombie.waitFor('ready', 20_000), successor.waitFor('ready', 20_000)])
    zombie.send({ type: 'go' })
    successor.send({ type: 'go' })
    // Think time ends long before the zombie's heartbeat is due (ttl/3 after its acquire), so on
    // SIGCONT the turn's timer fires first and its flush leaves before a heartbeat learns anything.
    const z = request(zombie, { doId, write: true, thinkMs: 20, freezeInWindow: true })
    await zombie.waitFor('window', 15_000)
    await waitUntilStopped(zombie.pid)
    let successorAnswers: DoAnswered[]
    try {
      await new Promise((resolve) => setTimeout(resolve, ttlMs + 300))
      successorAnswers = []
      for (let i = 0; i < 2; i++) {
        const s = request(successor, { doId, write: true, thinkMs: 0 })
        successorAnswers.push(await waitForStep<DoAnswered>(successor, 'answered', s))
      }
    } finally {
      zombie.resume()
    }
    const zombieAnswer = await waitForStep<DoAnswered>(zombie, 'answered', z)
    zombie.send({ type: 'stop' })
    successor.send({ type: 'stop' })
    await Promise.all([zombie.exited, successor.exited])

    const files = readdirSync(dir)
      .filter((f) => f.startsWith('history-'))
      .map((f) => join(dir, f))
    const { operations } = readHistories(files)
    const storage = await db.run(readFinalStorage)
    const verdict = checkStorage(operations, storage)
    const crashed = [zombie, successor].filter((c) => c.exit?.code !== 0).map((c) => `crashed: ${c.describe()}`)
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
    await group.killAll()
    db.close()
  }
}
