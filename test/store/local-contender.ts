/**
 * Child process for test/store/local-engine.test.ts: hammers one DO id through LibSQLLockStore on the
 * local engine (acquire, release, again) until told to stop, so several processes contend for SQLite's
 * write lock on one file. Bundled by test/support/processes.ts; one JSON argument, one `result` line.
 */
import { LibSQLLockStore, StoreUnavailableError } from '../../src/index.js'
import { childChannel, childConfig } from '../support/processes.js'
import { watchTimerLateness } from '../support/timer-lateness.js'

export interface ContenderConfig {
  url: string
  name: string
  doId: string
  durationMs: number
  /** `timer`: no store at all, only the lateness of a 10 ms timer (the machine's own scheduling noise). */
  mode?: 'contend' | 'timer'
}

export interface ContenderResult {
  type: 'result'
  name: string
  acquired: number
  contended: number
  busy: number
  /** Worst lateness of a 10 ms interval timer in this process during the run, ms. */
  worstLateMs: number
}

async function main(): Promise<void> {
  const config = childConfig<ContenderConfig>()
  const channel = childChannel()
  const store = new LibSQLLockStore(config.url)
  await store.get(config.doId) // opens the connection before the start
  channel.send({ type: 'ready', name: config.name })
  await channel.receive('go')
  const result: ContenderResult = {
    type: 'result',
    name: config.name,
    acquired: 0,
    contended: 0,
    busy: 0,
    worstLateMs: 0,
  }
  const lateness = watchTimerLateness(10)
  const deadline = performance.now() + config.durationMs
  while (config.mode === 'timer' && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  while (performance.now() < deadline) {
    try {
      const r = await store.acquire({ doId: config.doId, nodeId: config.name, ttlMs: 10_000 })
      if (!r.acquired) {
        result.contended++
        await new Promise((resolve) => setTimeout(resolve, 1))
        continue
      }
      result.acquired++
      await store.release(r.lock)
    } catch (error) {
      if (!(error instanceof StoreUnavailableError && error.retryable)) throw error
      result.busy++
    }
  }
  result.worstLateMs = lateness.stop()
  store.close()
  channel.send(result)
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.exit(1)
})
