/**
 * What the deterministic storage scenarios (test/chaos/storage-zombie.ts,
 * test/chaos/storage-revoked-lease.ts) share: a fresh database, storage nodes in script mode that the
 * scenario drives one request at a time, and at the end the nodes' histories and the final rows, for
 * the checker.
 */
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { configArg, type ChildHandle, type ProcessGroup } from '../support/processes.js'
import type { ClockSetting } from './clock.js'
import { createDatabase, HarnessDb, scriptNodeConfig, waitForStep } from './harness.js'
import { readHistories, type Operation } from './history.js'
import type { FinalStorage } from './linearizability.js'
import type { DoAnswered, DoRequestStep, NodeConfig } from './protocol.js'
import { readFinalStorage } from './storage-observe.js'

export interface ScriptOutcome {
  operations: Operation[]
  storage: FinalStorage
  /** One line per node that did not exit cleanly. */
  crashed: string[]
}

export class StorageScript {
  readonly db: HarnessDb
  readonly #nodes: ChildHandle[] = []
  #step = 0

  private constructor(
    readonly entryFile: string,
    readonly group: ProcessGroup,
    readonly dir: string,
    readonly url: string,
    readonly ttlMs: number,
    readonly doId: string,
  ) {
    this.db = new HarnessDb(url)
  }

  /** A database in `dir/name` with the chaos schema and one object, `doId`. */
  static async create(
    entryFile: string,
    group: ProcessGroup,
    o: { dir: string; name: string; ttlMs: number; doId: string },
  ): Promise<StorageScript> {
    const dir = join(o.dir, o.name)
    mkdirSync(dir, { recursive: true })
    const url = `file:${join(dir, 'chaos.db')}`
    await createDatabase(url, [o.doId], false)
    return new StorageScript(entryFile, group, dir, url, o.ttlMs, o.doId)
  }

  spawn(name: string, clock: ClockSetting, extra: Partial<NodeConfig> & { waitMs: number }): ChildHandle {
    const config: NodeConfig = {
      ...scriptNodeConfig({
        url: this.url,
        dir: this.dir,
        name,
        ttlMs: this.ttlMs,
        clock,
        doId: this.doId,
        waitMs: extra.waitMs,
      }),
      ...extra,
    }
    const child = this.group.spawn(this.entryFile, { name, args: configArg(config), timeoutMs: 60_000 })
    this.#nodes.push(child)
    return child
  }

  /** Waits until every node spawned so far is ready, then lets them go. */
  async go(): Promise<void> {
    await Promise.all(this.#nodes.map((n) => n.waitFor('ready', 20_000)))
    for (const n of this.#nodes) n.send({ type: 'go' })
  }

  /** Sends one request of the object to `child`; returns its step number (see {@link answer}). */
  send(child: ChildHandle, fields: Omit<DoRequestStep, 'type' | 'step' | 'doId'>): number {
    const step = ++this.#step
    child.send<DoRequestStep>({ type: 'step', step, doId: this.doId, ...fields })
    return step
  }

  answer(child: ChildHandle, step: number): Promise<DoAnswered> {
    return waitForStep<DoAnswered>(child, 'answered', step)
  }

  /** One request, answered. */
  request(child: ChildHandle, fields: Omit<DoRequestStep, 'type' | 'step' | 'doId'>): Promise<DoAnswered> {
    return this.answer(child, this.send(child, fields))
  }

  /** Stops every node gracefully and reads what the checker needs. */
  async finish(): Promise<ScriptOutcome> {
    for (const n of this.#nodes) n.send({ type: 'stop' })
    await Promise.all(this.#nodes.map((n) => n.exited))
    const files = readdirSync(this.dir)
      .filter((f) => f.startsWith('history-'))
      .map((f) => join(this.dir, f))
    const { operations } = readHistories(files)
    const storage = await this.db.run(readFinalStorage)
    const crashed = this.#nodes.filter((c) => c.exit?.code !== 0).map((c) => `crashed: ${c.describe()}`)
    return { operations, storage, crashed }
  }

  /** Kills whatever is left and closes the harness's connection; call in `finally`. */
  async dispose(): Promise<void> {
    await this.group.killAll()
    this.db.close()
  }
}
