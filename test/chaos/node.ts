/**
 * One chaos node: a real process that serves "stateless DOs" through the library, as a production node
 * would, while the harness kills it, freezes it, skews its clock and takes the store away.
 *
 * Under each lease it increments the id's counter with a READ-MODIFY-WRITE: the read is outside the
 * fenced batch and the fenced write stores `read + 1`. The lease and the fence are all that stand
 * between this and a lost update, which is the point: if a stale holder ever got a write through, the
 * counter would come up short and the checker would see it.
 *
 * Every call is recorded (test/chaos/history.ts) before it is sent and after it returns. The node must
 * never crash on a fault: store trouble, lost leases and corrupt rows are recorded and lived with.
 *
 * Bundled and spawned by test/chaos/harness.ts; configuration is one JSON argument (NodeConfig).
 */
import type { Client } from '@libsql/client'
import {
  CorruptLockRowError,
  HybridConsistencyGuard,
  LibSQLLockStore,
  LockLostError,
  StaleFencingTokenError,
  StoreUnavailableError,
  fencedWrite,
  type GuardEvent,
  type Lock,
} from '../../src/index.js'
import { childChannel, childConfig } from '../support/processes.js'
import { describeError, followClock, open, runNodeProcess, sleep } from './node-process.js'
import { ChaosClock } from './clock.js'
import { HistoryWriter, type Outcome } from './history.js'
import { recordHandoffs } from './recorded-handoffs.js'
import { APPEND_LOG, READ_COUNTER, WRITE_COUNTER, type NodeConfig, type ScriptStep } from './protocol.js'
import { between, pick, seededRandom } from '../support/random.js'

class ChaosNode {
  readonly guard: HybridConsistencyGuard
  readonly #config: NodeConfig
  readonly #store: LibSQLLockStore
  readonly #history: HistoryWriter
  /** Counter reads use their own connection, so they never share one a failed write left stuck. */
  #reader: Client
  /** Attempts per granted lease (`doId#token`), from the guard's `acquire` event; workers acquire concurrently. */
  readonly #attempts = new Map<string, number>()

  constructor(config: NodeConfig, client: Client, reader: Client, clock: ChaosClock, history: HistoryWriter) {
    this.#config = config
    this.#store = new LibSQLLockStore(client, { groupCommit: config.groupCommit })
    this.#reader = reader
    this.#history = history
    this.guard = new HybridConsistencyGuard({
      // The guard's handoffs are recorded: the checker accepts a grant over an intact lease only as one.
      store: recordHandoffs(this.#store, history),
      nodeId: config.name,
      ttlMs: config.ttlMs,
      heartbeatMs: Math.floor(config.ttlMs / 3),
      clock,
      retry: { initialDelayMs: 10, maxDelayMs: 100 },
      onEvent: (event) => this.#onEvent(event),
    })
  }

  /** Takes the lease, or returns null (held elsewhere, store unavailable, corrupt row): never throws for those. */
  async acquire(doId: string, waitMs: number): Promise<Lock | null> {
    const op = this.#history.invoke({ kind: 'acquire', doId })
    try {
      const result = await this.guard.acquire(doId, { waitMs })
      if (result.acquired) {
        const key = `${doId}#${result.lock.fencingToken}`
        this.#history.complete(op, 'ok', {
          acquired: true,
          token: result.lock.fencingToken,
          attempts: this.#attempts.get(key) ?? 1,
        })
        this.#attempts.delete(key)
        return result.lock
      }
      this.#history.complete(op, 'ok', { acquired: false, attempts: result.attempts })
      return null
    } catch (error) {
      // Unavailable: a remote store might have granted the lease before the answer got lost.
      if (error instanceof StoreUnavailableError) this.#history.complete(op, 'unknown', { error: describeError(error) })
      // Corrupt: the store refused to touch the row, so nothing was granted.
      else if (error instanceof CorruptLockRowError)
        this.#history.complete(op, 'failed', { error: describeError(error) })
      else throw error
      await sleep(20 + Math.random() * 30)
      return null
    }
  }

  /**
   * Reads the counter, waits `thinkMs`, then writes `read + 1` (and a log row) in one fenced batch.
   * `onWindow` runs between the read and the write.
   */
  async increment(
    lock: Lock,
    thinkMs: number,
    onWindow?: (read: number) => void,
  ): Promise<{ outcome: Outcome; error?: string }> {
    const at = Date.now()
    let read: number
    try {
      const result = await this.#reader.execute({ sql: READ_COUNTER, args: [lock.doId] })
      read = Number(result.rows[0]?.n)
    } catch (error) {
      // Nothing was sent yet: not an operation, just a note. A fresh connection for the next read.
      this.#history.note('read-error', describeError(error))
      this.#reader.close()
      this.#reader = await open(this.#config.url, this.#config.busyTimeoutMs)
      return { outcome: 'failed', error: describeError(error) }
    }
    if (!Number.isSafeInteger(read)) throw new Error(`counter row for "${lock.doId}" is missing`)
    // The timer starts BEFORE the parent hears of the window: a SIGSTOP that lands right after the
    // message then freezes a write that is already due, as a GC pause or a VM stall would.
    const thinking = thinkMs > 0 ? sleep(thinkMs) : undefined
    onWindow?.(read)
    await thinking

    const op = this.#history.invoke({ kind: 'increment', doId: lock.doId, at, token: lock.fencingToken, read })
    try {
      await fencedWrite(this.#store, lock, [
        { sql: APPEND_LOG, args: [lock.doId, lock.fencingToken, this.#config.name, op, read] },
        { sql: WRITE_COUNTER, args: [lock.doId, read + 1] },
      ])
      this.#history.complete(op, 'ok')
      return { outcome: 'ok' }
    } catch (error) {
      const outcome: Outcome | undefined =
        error instanceof StaleFencingTokenError || error instanceof LockLostError
          ? 'failed'
          : error instanceof StoreUnavailableError
            ? 'unknown'
            : undefined
      if (!outcome) throw error
      this.#history.complete(op, outcome, { error: describeError(error) })
      return { outcome, error: describeError(error) }
    }
  }

  /** The guard's release never rejects; `false` means the lease was already gone. */
  async release(lock: Lock): Promise<boolean> {
    const op = this.#history.invoke({ kind: 'release', doId: lock.doId, token: lock.fencingToken })
    const released = await this.guard.release(lock)
    this.#history.complete(op, 'ok', { released })
    return released
  }

  close(): void {
    this.#reader.close()
  }

  #onEvent(event: GuardEvent): void {
    if (event.type === 'acquire') this.#attempts.set(`${event.doId}#${event.fencingToken}`, event.attempts)
    else if (event.type === 'lost') this.#history.note('lost', `${event.doId}#${event.fencingToken}: ${event.reason}`)
    else if (event.type === 'error' && event.operation !== 'acquire') {
      this.#history.note(`${event.operation}-error`, `${event.doId ?? ''}: ${describeError(event.error)}`)
    }
  }
}

async function main(): Promise<void> {
  const config = childConfig<NodeConfig>()
  const channel = childChannel()
  const clock = new ChaosClock(config.clock)
  const client = await open(config.url, config.busyTimeoutMs)
  const reader = await open(config.url, config.busyTimeoutMs)
  const history = new HistoryWriter(config.historyFile, config.name, config.incarnation)
  const node = new ChaosNode(config, client, reader, clock, history)

  let stopping = false
  const finish = async () => {
    // Graceful shutdown: heartbeats stop, held leases are released (errors are events, not throws).
    await node.guard.shutdown()
    node.close()
    client.close()
    history.close()
    channel.send({ type: 'done', name: config.name })
    process.exit(0)
  }
  const stopped = channel.receive('stop').then(() => {
    stopping = true
  })
  followClock(channel, clock, history)

  channel.send({ type: 'ready', name: config.name })
  await channel.receive('go')

  if (config.mode === 'script') {
    let lock: Lock | null = null
    for (;;) {
      const message = await Promise.race([channel.receive<ScriptStep>('step'), stopped.then(() => null)])
      if (!message) break
      const { step } = message
      if (message.action === 'acquire') {
        lock = await node.acquire(message.doId, message.waitMs)
        channel.send({ type: 'acquired', step, token: lock?.fencingToken ?? null })
      } else if (message.action === 'increment') {
        if (!lock) throw new Error('increment without a lease')
        const result = await node.increment(lock, message.thinkMs, (read) => {
          channel.send({ type: 'window', step, read })
          if (message.freezeInWindow) process.kill(process.pid, 'SIGSTOP')
        })
        channel.send({ type: 'incremented', step, ...result })
      } else {
        const released = lock ? await node.release(lock) : false
        lock = null
        channel.send({ type: 'released', step, released })
      }
    }
    return finish()
  }

  const [hot, ...others] = config.ids
  if (hot === undefined) throw new Error('no ids')
  const worker = async (random: () => number) => {
    // Each worker draws from its own seeded sequence.
    while (!stopping) {
      const doId = others.length === 0 || random() < config.hotShare ? hot : pick(random, others)
      const lock = await node.acquire(doId, config.waitMs)
      if (lock) {
        const thinkMs = random() < config.longLeaseShare ? config.longThinkMs : config.thinkMs
        for (let i = 0; i < config.incrementsPerLease && !stopping; i++) {
          const { outcome } = await node.increment(lock, between(random, thinkMs))
          // Failed (stale token, lost lease): the lease is gone, stop using it. Unknown (store trouble):
          // degrade gracefully, try again with a fresh read while the lease lasts.
          if (outcome === 'failed') break
        }
        await node.release(lock)
      }
      await sleep(between(random, config.gapMs))
    }
  }
  await Promise.all(Array.from({ length: config.workers }, (_, w) => worker(seededRandom(config.seed + w))))
  return finish()
}

runNodeProcess(main)
