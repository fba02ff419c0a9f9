/**
 * The chaos harness: node processes (test/chaos/node.ts) share one libSQL `file:` database in WAL mode
 * while faults are injected on a schedule; afterwards their histories and the database go to the checker.
 *
 * Faults run in lanes: the faults of one lane one after another (each healed before the next), lanes side
 * by side, so a store outage can hit while a node is frozen. Every process is spawned through the
 * caller's ProcessGroup, and every fault is healed in a `finally`, so a failing run leaves nothing behind.
 */
import { createClient, type Client } from '@libsql/client'
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { LibSQLLockStore } from '../../src/index.js'
import { STORE_NOW } from '../../src/store/sql.js'
import { configArg, type ChildHandle, type ProcessGroup } from '../support/processes.js'
import { checkChaos, type AuditRow, type ChaosObservation, type LogRow, type Verdict } from './checker.js'
import { TRUE_CLOCK, type ClockSetting } from './clock.js'
import { readHistories, type Operation } from './history.js'
import {
  APP_SCHEMA,
  LOCK_SQL,
  type ClockMessage,
  type NodeConfig,
  type Workload,
  type ScriptAction,
  type ScriptAcquired,
  type ScriptIncremented,
  type ScriptReleased,
  type ScriptStep,
  type ScriptWindow,
} from './protocol.js'
import { seededRandom, pick } from '../support/random.js'
import { checkStorage, type Revocation, type StorageVerdict } from './linearizability.js'
import { readFinalStorage, storageStats, storageSummary, type StorageStats } from './storage-observe.js'

export const FAULT_KINDS = ['kill', 'pause', 'skew', 'outage', 'corrupt-expiry', 'corrupt-token'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export type Fault =
  /** SIGKILL a node that holds a lease (recovery by TTL), respawn it after a while. */
  | { kind: 'kill'; respawnAfterMs: number }
  /** SIGSTOP a node that holds a lease, for longer than the TTL, then SIGCONT: a zombie. */
  | { kind: 'pause'; forMs: number }
  /** Skew a node's wall clock and set its monotonic rate, through the library's Clock seam. */
  | { kind: 'skew'; clock: ClockSetting }
  /** Hold SQLite's write lock (BEGIN IMMEDIATE): every node's lease operation and write fails busy. */
  | { kind: 'outage'; forMs: number }
  /** `expires_at = 'garbage'` on a held row: the store must treat it as expired. */
  | { kind: 'corrupt-expiry' }
  /** `fencing_token = 'garbage'` on the hot row: refused with CorruptLockRowError until repaired above every token issued. */
  | { kind: 'corrupt-token'; forMs: number }

export interface ScheduledFault {
  /** Wait after the previous fault of the lane healed (or after the start). */
  gapMs: number
  fault: Fault
}

export interface ChaosConfig extends Workload {
  nodes: number
  /** Which nodes (by index) use LibSQLLockStore's group commit. */
  groupCommit: (index: number) => boolean
  /** Workload time after every node started; lanes still running extend it. */
  durationMs: number
  /** Clocks from the start, by node index (others run true). Counted as skew faults. */
  clocks: Partial<Record<number, ClockSetting>>
  lanes: ScheduledFault[][]
  /** Replace the fence trigger with one that checks nothing: the bug the checker must catch. */
  plantBug?: boolean
  /**
   * `counter` (default): test/chaos/node.ts, guard + fencedWrite on a counter. `storage`:
   * test/chaos/do-node.ts, StatelessDO with activations and `this.storage`, judged by
   * test/chaos/linearizability.ts (the caller passes the matching entry file).
   */
  nodeKind?: 'counter' | 'storage'
  /** Storage nodes: share of reads, activations' idleMs, and the planted unfenced flush (NodeConfig). */
  readShare?: number
  idleMs?: number
  plantUnfencedFlush?: boolean
}

export interface RunStats {
  nodes: number
  wallMs: number
  operations: number
  acquires: { granted: number; contended: number; failed: number; unknown: number }
  /** Acquire attempts that found the id held elsewhere (or the store busy) and retried: contention. */
  retries: number
  /** Of those, on the hot id. */
  hotRetries: number
  increments: { ok: number; failed: number; unknown: number }
  releases: { released: number; notHeld: number }
  /** Releases that passed the lease to a waiting caller of the same guard (recorded at the store seam). */
  handoffs: { granted: number; refused: number; unknown: number }
  /** Error classes the nodes survived, from failed and unknown operations. */
  errors: Record<string, number>
  /** Guard events and other notes (lost leases, refresh errors, clock changes), by kind. */
  notes: Record<string, number>
  /** Increments acknowledged after the last fault healed: the system recovered. */
  okAfterFaults: number
  /** Nodes with an acknowledged increment after the last fault healed: none stayed broken. */
  nodesRecovered: number
  /** History lines a SIGKILL cut in half. */
  tornLines: number
  /** Per lease held by a SIGKILLed node: how long until someone acquired it again (Infinity: never). */
  killRecoveryMs: number[]
  /** Pauses that froze a node while it held SQLite's write lock (mid-commit): a store outage for everyone. */
  pausesHoldingWriteLock: number
}

export interface ChaosReport {
  /** The one line a run prints. */
  summary: string
  /** Checker violations plus harness ones (a node crashed or hung): empty means the run passed. */
  violations: string[]
  verdict: Verdict
  faults: Record<FaultKind, number>
  stats: RunStats
  observation: ChaosObservation
  /** Faults as injected and healed, with seconds since the start. */
  timeline: string[]
  /** Storage runs: the linearizability checker's verdict and the request counts. */
  storage?: { verdict: StorageVerdict; stats: StorageStats }
}

export interface RunOptions {
  /** Directory for the database and the history files. */
  dir: string
  /** Progress lines (fault injected, healed); default silent. */
  log?: (line: string) => void
}

const FENCE_TRIGGER = LOCK_SQL.fenceTrigger

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** Creates the database: WAL, the lock table, the application tables, counters at 0. */
export async function createDatabase(url: string, ids: string[], plantBug: boolean): Promise<void> {
  const setup = createClient({ url })
  try {
    await setup.execute('PRAGMA journal_mode = WAL')
    await new LibSQLLockStore(setup).ensureSchema()
    for (const sql of APP_SCHEMA) await setup.execute(sql)
    for (const id of ids) await setup.execute({ sql: 'INSERT INTO chaos_counters (id, n) VALUES (?1, 0)', args: [id] })
    if (plantBug) {
      // Dropping the trigger alone would make every fenced write fail (a view cannot take inserts);
      // a trigger that checks nothing is the quiet bug: every token passes.
      await setup.execute(`DROP TRIGGER "${FENCE_TRIGGER}"`)
      await setup.execute(
        `CREATE TRIGGER "${FENCE_TRIGGER}" INSTEAD OF INSERT ON "${LOCK_SQL.fenceView}" BEGIN SELECT 1; END`,
      )
    }
  } finally {
    setup.close()
  }
}

/**
 * The harness's own connection to the database. It never waits long in SQLite's busy handler: that
 * wait is synchronous, so it would freeze this process's event loop, and with it the timer that resumes
 * a frozen node, which may be the very node holding the write lock (a SIGSTOP can land mid-commit).
 * Instead: a short busy timeout, retried asynchronously, each time on a fresh connection, because
 * libsql leaves a connection whose statement failed with SQLITE_BUSY stuck on its old snapshot.
 */
export class HarnessDb {
  #client: Client | undefined

  constructor(readonly url: string) {}

  async run<T>(work: (client: Client) => Promise<T>, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const client = this.#client ?? (this.#client = await openQuick(this.url))
      try {
        return await work(client)
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw error
        client.close()
        this.#client = undefined
        await sleep(20)
      }
    }
  }

  /** Takes SQLite's write lock and keeps it until the returned function is called: a store outage. */
  async holdWriteLock(timeoutMs = 30_000): Promise<() => Promise<void>> {
    // A transaction object, not `execute('BEGIN IMMEDIATE')`: @libsql/client 0.18 pools its
    // connections and rolls back one handed back mid-transaction, so a bare BEGIN would end at once.
    const { client, transaction } = await this.run(
      async (c) => ({ client: c, transaction: await c.transaction('write') }),
      timeoutMs,
    )
    // The client now holds a transaction: leave it alone until the lock is given back.
    this.#client = undefined
    return async () => {
      try {
        await transaction.rollback()
      } finally {
        transaction.close()
        client.close()
      }
    }
  }

  close(): void {
    this.#client?.close()
    this.#client = undefined
  }
}

async function openQuick(url: string): Promise<Client> {
  // One connection, so the busy timeout holds for every statement (@libsql/client 0.18 pools 20 by default).
  const client = createClient({ url, concurrency: 1 })
  await client.execute('PRAGMA busy_timeout = 50')
  return client
}

function isBusy(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown } | null
  return /SQLITE_BUSY|database is locked/.test(`${String(e?.code)} ${String(e?.message)}`)
}

async function observe(
  db: HarnessDb,
  dir: string,
): Promise<{ observation: ChaosObservation; notes: ReturnType<typeof readHistories>['notes']; torn: number }> {
  const files = readdirSync(dir)
    .filter((f) => f.startsWith('history-') && f.endsWith('.jsonl'))
    .map((f) => join(dir, f))
  const { operations, notes, torn } = readHistories(files)
  const [log, counters, locks, audit] = await db.run((c) =>
    Promise.all([
      c.execute('SELECT id, do_id, token, node, op, read, lock_token, lock_expires, at FROM chaos_log ORDER BY id'),
      c.execute('SELECT id, n FROM chaos_counters'),
      c.execute('SELECT do_id, fencing_token FROM do_locks'),
      c.execute('SELECT * FROM chaos_lock_audit ORDER BY seq'),
    ]),
  )
  const observation: ChaosObservation = {
    operations,
    log: log.rows.map((r): LogRow => ({
      id: Number(r.id),
      doId: String(r.do_id),
      token: Number(r.token),
      node: String(r.node),
      op: String(r.op),
      read: Number(r.read),
      lockToken: r.lock_token,
      lockExpires: r.lock_expires,
      at: Number(r.at),
    })),
    counters: Object.fromEntries(counters.rows.map((r) => [String(r.id), Number(r.n)])),
    lockTokens: Object.fromEntries(locks.rows.map((r) => [String(r.do_id), r.fencing_token])),
    audit: audit.rows.map((r) => toAuditRow(r as unknown as Record<string, unknown>)),
  }
  return { observation, notes, torn }
}

/** A `chaos_lock_audit` row as the checker takes it. */
export function toAuditRow(r: Record<string, unknown>): AuditRow {
  return {
    seq: Number(r.seq),
    doId: String(r.do_id),
    at: Number(r.at),
    // An insert has no old row: NULL there means "none", never a stored NULL (the columns are NOT NULL).
    ...(r.old_token === null ? {} : { oldNode: r.old_node, oldToken: r.old_token, oldExpires: r.old_expires }),
    newNode: r.new_node,
    newToken: r.new_token,
    newExpires: r.new_expires,
  }
}

interface NodeSlot {
  index: number
  name: string
  incarnation: number
  clock: ClockSetting
  handle: ChildHandle
  paused: boolean
}

/** The running nodes: spawns, respawns and remembers which exits the harness caused. */
class Cluster {
  readonly slots: NodeSlot[] = []
  readonly #killedByHarness = new Set<ChildHandle>()
  readonly #all: ChildHandle[] = []

  constructor(
    readonly entryFile: string,
    readonly group: ProcessGroup,
    readonly baseConfig: Omit<NodeConfig, 'name' | 'incarnation' | 'historyFile' | 'clock' | 'seed' | 'groupCommit'>,
    readonly groupCommit: (index: number) => boolean,
    readonly dir: string,
    readonly seed: number,
    readonly timeoutMs: number,
  ) {}

  spawn(index: number, incarnation: number, clock: ClockSetting): ChildHandle {
    const name = `node-${index}`
    const config: NodeConfig = {
      ...this.baseConfig,
      groupCommit: this.groupCommit(index),
      name,
      incarnation,
      clock,
      historyFile: join(this.dir, `history-${name}-${incarnation}.jsonl`),
      seed: (this.seed * 7919 + index * 104_729 + incarnation * 15_485_863) >>> 0,
    }
    const handle = this.group.spawn(this.entryFile, {
      name: `${name}#${incarnation}`,
      args: configArg(config),
      timeoutMs: this.timeoutMs,
    })
    this.#all.push(handle)
    const slot = { index, name, incarnation, clock, handle, paused: false }
    this.slots[index] = slot
    return handle
  }

  /** Spawns a new incarnation of a killed node and lets it go as soon as it is ready. */
  async respawn(slot: NodeSlot): Promise<void> {
    const handle = this.spawn(slot.index, slot.incarnation + 1, slot.clock)
    await handle.waitFor('ready', 20_000)
    handle.send({ type: 'go' })
  }

  async kill(slot: NodeSlot): Promise<void> {
    this.#killedByHarness.add(slot.handle)
    slot.handle.kill('SIGKILL')
    await slot.handle.exited
  }

  running(): NodeSlot[] {
    return this.slots.filter((s) => !s.handle.exit && !s.paused)
  }

  /** Exits the harness did not cause and that were not a clean stop. */
  crashes(): string[] {
    return this.#all
      .filter((h) => h.exit && !this.#killedByHarness.has(h) && h.exit.code !== 0)
      .map((h) => `a node crashed or hung instead of degrading gracefully: ${h.describe()}`)
  }

  /** Resumes frozen nodes and asks every live one to stop (release its leases, exit 0). */
  async stop(timeoutMs: number): Promise<string[]> {
    const problems: string[] = []
    for (const slot of this.slots) {
      if (slot.paused) slot.handle.resume()
      slot.paused = false
      slot.handle.send({ type: 'stop' })
    }
    await Promise.all(
      this.slots.map(async (slot) => {
        const exited = await Promise.race([slot.handle.exited, sleep(timeoutMs).then(() => undefined)])
        if (!exited) {
          problems.push(`${slot.name} did not stop within ${timeoutMs} ms: ${slot.handle.describe()}`)
          await this.kill(slot)
        }
      }),
    )
    return problems
  }
}

/**
 * Runs the chaos workload under `config.lanes` and checks it. Resolves with the report (violations
 * included); rejects only if the harness itself could not run.
 */
export async function runChaos(
  entryFile: string,
  group: ProcessGroup,
  config: ChaosConfig,
  options: RunOptions,
): Promise<ChaosReport> {
  // Every fault goes into the timeline, so a failed run can be read against it.
  const timeline: string[] = []
  const createdAt = Date.now()
  const log = (line: string) => {
    timeline.push(`${((Date.now() - createdAt) / 1000).toFixed(1)} s: ${line}`)
    options.log?.(line)
  }
  const url = `file:${join(options.dir, 'chaos.db')}`
  await createDatabase(url, config.ids, config.plantBug ?? false)
  const db = new HarnessDb(url)
  const random = seededRandom(config.seed)
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>
  let lastHealedAt = 0
  /** Leases the store faults ended under their holders (storage runs judge warm reads by them). */
  const revocations: Revocation[] = []
  let pausesHoldingWriteLock = 0
  /** Leases whose holder was SIGKILLed: someone must get them again once the TTL runs out. */
  const killedLeases: Array<{ doId: string; at: number }> = []
  const cluster = new Cluster(
    entryFile,
    group,
    {
      url,
      ttlMs: config.ttlMs,
      busyTimeoutMs: config.busyTimeoutMs,
      mode: 'loop',
      workers: config.workers,
      ids: config.ids,
      hotShare: config.hotShare,
      incrementsPerLease: config.incrementsPerLease,
      thinkMs: config.thinkMs,
      longLeaseShare: config.longLeaseShare,
      longThinkMs: config.longThinkMs,
      gapMs: config.gapMs,
      waitMs: config.waitMs,
      ...(config.readShare === undefined ? {} : { readShare: config.readShare }),
      ...(config.idleMs === undefined ? {} : { idleMs: config.idleMs }),
      ...(config.plantUnfencedFlush ? { plantUnfencedFlush: true } : {}),
    },
    config.groupCommit,
    options.dir,
    config.seed,
    config.durationMs + 120_000,
  )

  const holders = async (): Promise<Map<string, string[]>> => {
    const rows = await db.run((c) =>
      c.execute(
        `SELECT do_id, node_id FROM do_locks WHERE typeof(expires_at) = 'integer' AND expires_at > ${STORE_NOW}`,
      ),
    )
    const byNode = new Map<string, string[]>()
    for (const r of rows.rows)
      byNode.set(String(r.node_id), [...(byNode.get(String(r.node_id)) ?? []), String(r.do_id)])
    return byNode
  }
  /** A live, unfrozen node holding a lease: the interesting victim. Falls back to any live node. */
  const victim = async (): Promise<NodeSlot | undefined> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const held = await holders()
      const candidates = cluster.running().filter((s) => held.has(s.name))
      if (candidates.length) return pick(random, candidates)
      await sleep(20)
    }
    const any = cluster.running()
    return any.length ? pick(random, any) : undefined
  }

  const inject = async (fault: Fault): Promise<void> => {
    switch (fault.kind) {
      case 'kill': {
        const slot = await victim()
        if (!slot) return
        const held = (await holders()).get(slot.name) ?? []
        log(`kill -9 ${slot.name}#${slot.incarnation} (holding ${held.join(', ') || 'nothing'})`)
        await cluster.kill(slot)
        faults.kill++
        for (const doId of held) killedLeases.push({ doId, at: Date.now() })
        await sleep(fault.respawnAfterMs)
        await cluster.respawn(slot)
        log(`${slot.name} respawned`)
        break
      }
      case 'pause': {
        const slot = await victim()
        if (!slot) return
        slot.paused = true
        slot.handle.pause()
        faults.pause++
        try {
          await waitUntilStopped(slot.handle.pid)
          // Frozen inside a commit, a node keeps SQLite's write lock: the whole file database stalls with it.
          const lock = holdsWriteLock(slot.handle.pid, `${options.dir}/chaos.db-shm`)
          if (lock) pausesHoldingWriteLock++
          log(`SIGSTOP ${slot.name} for ${fault.forMs} ms${lock ? ', frozen holding the write lock' : ''}`)
          await sleep(fault.forMs)
        } finally {
          if (slot.paused) slot.handle.resume()
          slot.paused = false
          log(`SIGCONT ${slot.name}`)
        }
        break
      }
      case 'skew': {
        const running = cluster.running()
        if (!running.length) return
        const slot = pick(random, running)
        log(`clock of ${slot.name}: offset ${fault.clock.nowOffsetMs} ms, monotonic rate ${fault.clock.rate}`)
        slot.clock = fault.clock
        slot.handle.send<ClockMessage>({ type: 'clock', ...fault.clock })
        faults.skew++
        break
      }
      case 'outage': {
        const giveBack = await db.holdWriteLock()
        log(`store outage for ${fault.forMs} ms`)
        faults.outage++
        try {
          await sleep(fault.forMs)
        } finally {
          await giveBack()
          log('store back')
        }
        break
      }
      case 'corrupt-expiry': {
        const held = [...(await holders()).values()].flat()
        const doId = held.includes(config.ids[0]!) ? config.ids[0]! : held.length ? pick(random, held) : config.ids[0]!
        log(`corrupt expires_at of "${doId}"`)
        const at = Date.now()
        const corrupted = await db.run((c) =>
          c.execute({
            sql: "UPDATE do_locks SET expires_at = 'garbage' WHERE do_id = ?1 RETURNING fencing_token",
            args: [doId],
          }),
        )
        // The store counts a corrupt expiry as expired: whoever held the lease has lost it from now on,
        // though it cannot know before its next heartbeat or flush.
        const revokedToken = corrupted.rows[0]?.fencing_token
        if (typeof revokedToken === 'number') revocations.push({ doId, token: revokedToken, at })
        faults['corrupt-expiry']++
        break
      }
      case 'corrupt-token': {
        const doId = config.ids[0]!
        // Read and corrupt in one write transaction: no acquire can slip a new token in between.
        const [before] = await db.run((c) =>
          c.batch(
            [
              { sql: 'SELECT fencing_token FROM do_locks WHERE do_id = ?1', args: [doId] },
              { sql: "UPDATE do_locks SET fencing_token = 'garbage' WHERE do_id = ?1", args: [doId] },
            ],
            'write',
          ),
        )
        const token = before?.rows[0]?.fencing_token
        if (typeof token !== 'number') return
        log(`corrupt fencing_token of "${doId}" (was ${token}) for ${fault.forMs} ms`)
        faults['corrupt-token']++
        try {
          await sleep(fault.forMs)
        } finally {
          // While the token was garbage no acquire could succeed, so `token` is still the highest issued.
          // Freeing the row (expires_at = 0) ends the lease of `token` under its holder, if still held.
          revocations.push({ doId, token, at: Date.now() })
          await db.run((c) =>
            c.execute({
              sql: 'UPDATE do_locks SET fencing_token = ?2, expires_at = 0 WHERE do_id = ?1',
              args: [doId, token + 1],
            }),
          )
          log(`repaired "${doId}" to token ${token + 1}`)
        }
        break
      }
    }
    lastHealedAt = Date.now()
  }

  try {
    for (let index = 0; index < config.nodes; index++) {
      const clock = config.clocks[index] ?? TRUE_CLOCK
      if (clock.nowOffsetMs !== 0 || clock.rate !== 1) faults.skew++
      cluster.spawn(index, 0, clock)
    }
    await Promise.all(cluster.slots.map((s) => s.handle.waitFor('ready', 20_000)))
    for (const slot of cluster.slots) slot.handle.send({ type: 'go' })
    const goAt = Date.now()
    const harnessProblems: string[] = []
    const lanes = config.lanes.map(async (lane) => {
      for (const { gapMs, fault } of lane) {
        await sleep(gapMs)
        try {
          await inject(fault)
        } catch (error) {
          // E.g. a respawned node that never got ready: the run goes on, and fails.
          harnessProblems.push(
            `the ${fault.kind} fault could not be injected or healed: ${error instanceof Error ? error.message : String(error)}`,
          )
        }
      }
    })
    await Promise.all([sleep(config.durationMs), ...lanes])
    const stopProblems = await cluster.stop(15_000)
    const wallMs = Date.now() - goAt

    const { observation, notes, torn } = await observe(db, options.dir)
    if (config.nodeKind === 'storage') {
      // The lock audit's rules (mutual exclusion, token succession) hold for storage nodes too; they
      // write no counter rows, so the counter rules have nothing to judge.
      const lockVerdict = checkChaos(observation)
      const storage = await db.run(readFinalStorage)
      const storageVerdict = checkStorage(observation.operations, storage, revocations)
      const problems = [
        ...lockVerdict.violations.map((v) => v.message),
        ...cluster.crashes(),
        ...stopProblems,
        ...harnessProblems,
      ]
      const stats = storageStats(observation.operations, lastHealedAt)
      const summary = storageSummary(stats, storageVerdict, faults, {
        nodes: config.nodes,
        wallMs,
        seed: config.seed,
        harnessProblems: problems.length,
        plantUnfencedFlush: config.plantUnfencedFlush ?? false,
      })
      const base = summarize(observation.operations, notes, torn, config.nodes, wallMs, lastHealedAt, config.ids[0]!)
      return {
        summary,
        violations: [...storageVerdict.violations.map((v) => v.message), ...problems],
        verdict: lockVerdict,
        faults,
        stats: { ...base, pausesHoldingWriteLock },
        observation,
        timeline,
        storage: { verdict: storageVerdict, stats },
      }
    }
    const verdict = checkChaos(observation)
    const violations = [
      ...verdict.violations.map((v) => v.message),
      ...cluster.crashes(),
      ...stopProblems,
      ...harnessProblems,
    ]
    const stats = summarize(observation.operations, notes, torn, config.nodes, wallMs, lastHealedAt, config.ids[0]!)
    stats.pausesHoldingWriteLock = pausesHoldingWriteLock
    stats.killRecoveryMs = killedLeases.map(({ doId, at }) => {
      const next = observation.operations
        .filter((o) => o.kind === 'acquire' && o.acquired && o.doId === doId && o.completedAt! > at)
        .reduce((min, o) => Math.min(min, o.completedAt!), Infinity)
      return next - at
    })
    const summary = summaryLine(
      stats,
      faults,
      violations.length + verdict.total - verdict.violations.length,
      config.seed,
    )
    return { summary, violations, verdict, faults, stats, observation, timeline }
  } finally {
    // Whatever happened above: no frozen, orphaned or still-writing process survives the run.
    await group.killAll()
    db.close()
  }
}

function summarize(
  operations: Operation[],
  notes: Array<{ what: string }>,
  torn: number,
  nodes: number,
  wallMs: number,
  lastHealedAt: number,
  hotId: string,
): RunStats {
  const stats: RunStats = {
    nodes,
    wallMs,
    operations: operations.length,
    acquires: { granted: 0, contended: 0, failed: 0, unknown: 0 },
    retries: 0,
    hotRetries: 0,
    increments: { ok: 0, failed: 0, unknown: 0 },
    releases: { released: 0, notHeld: 0 },
    handoffs: { granted: 0, refused: 0, unknown: 0 },
    errors: {},
    notes: {},
    okAfterFaults: 0,
    nodesRecovered: 0,
    tornLines: torn,
    killRecoveryMs: [],
    pausesHoldingWriteLock: 0,
  }
  const recovered = new Set<string>()
  for (const op of operations) {
    if (op.error) {
      const name = /^(\w+)/.exec(op.error)?.[1] ?? 'Error'
      stats.errors[name] = (stats.errors[name] ?? 0) + 1
    }
    if (op.kind === 'acquire') {
      const retries = Math.max(0, (op.attempts ?? 1) - 1)
      stats.retries += retries
      if (op.doId === hotId) stats.hotRetries += retries
      if (op.outcome === 'ok') stats.acquires[op.acquired ? 'granted' : 'contended']++
      else stats.acquires[op.outcome]++
    } else if (op.kind === 'increment') {
      stats.increments[op.outcome]++
      if (op.outcome === 'ok' && op.invokedAt > lastHealedAt) {
        stats.okAfterFaults++
        recovered.add(op.node)
      }
    } else if (op.kind === 'handoff') {
      if (op.outcome === 'unknown') stats.handoffs.unknown++
      else stats.handoffs[op.outcome === 'ok' && op.nextToken !== undefined ? 'granted' : 'refused']++
    } else if (op.outcome === 'ok' && op.released === true) {
      stats.releases.released++
    } else {
      stats.releases.notHeld++ // the store had already moved on, or the call never returned
    }
  }
  for (const { what } of notes) stats.notes[what] = (stats.notes[what] ?? 0) + 1
  stats.nodesRecovered = recovered.size
  return stats
}

function summaryLine(stats: RunStats, faults: Record<FaultKind, number>, violations: number, seed: number): string {
  const { acquires: a, increments: i, handoffs: h } = stats
  const recoveredKills = stats.killRecoveryMs.filter(Number.isFinite)
  const errors = Object.entries(stats.errors)
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  return (
    `chaos: ${stats.nodes} nodes, ${(stats.wallMs / 1000).toFixed(1)} s, seed ${seed}, ${stats.operations} ops ` +
    `(acquire ${a.granted} granted/${a.contended} gave up/${a.failed} refused/${a.unknown} unavailable, ` +
    `${stats.retries} retries (${stats.hotRetries} on the hot id); ` +
    `increment ${i.ok} ok/${i.failed} fenced out/${i.unknown} indeterminate; ${stats.okAfterFaults} ok after the last fault, ` +
    `from ${stats.nodesRecovered} nodes; handoff ${h.granted} granted/${h.refused} refused/${h.unknown} indeterminate; ` +
    `killed holders' leases re-acquired: ${recoveredKills.length} of ${stats.killRecoveryMs.length}` +
    `${recoveredKills.length ? `, slowest after ${Math.max(...recoveredKills)} ms` : ''}), ` +
    `faults ${FAULT_KINDS.map((k) => `${k}=${faults[k]}`).join(' ')}, ` +
    `survived ${errors || 'no errors'}, leases lost ${stats.notes.lost ?? 0}, ` +
    `pauses that froze the write lock ${stats.pausesHoldingWriteLock}, violations ${violations}`
  )
}

// ---------------------------------------------------------------------------------------------------
// The zombie scenario: deterministic, for the planted-bug proof
// ---------------------------------------------------------------------------------------------------

export interface ZombieReport {
  summary: string
  violations: string[]
  verdict: Verdict
  /** What the zombie's fenced write, sent after the successor's grant, was answered. */
  zombieWrite: ScriptIncremented
  /** The scenario played out as designed: the zombie's write left after the successor's acquire returned. */
  writeSentAfterTakeover: boolean
  zombieToken: number
  successorToken: number
  counter: number
  observation: ChaosObservation
}

/**
 * node-zombie takes the lease and reads the counter, and is frozen right there (SIGSTOP) past the TTL; node-successor takes the lease and increments twice; the zombie is resumed and sends its
 * fenced write of `read + 1`. Its monotonic clock runs at half speed, so its own idea of its lease
 * says "still valid": only the store's token check stands between it and a lost update.
 */
export async function runZombieScenario(
  entryFile: string,
  group: ProcessGroup,
  options: RunOptions & { plantBug: boolean },
): Promise<ZombieReport> {
  const ttlMs = 1_500
  const thinkMs = 20
  const doId = 'contested'
  // A directory of its own: the checker reads every history file in it.
  const dir = join(options.dir, `zombie-${options.plantBug ? 'planted' : 'intact'}`)
  mkdirSync(dir, { recursive: true })
  const url = `file:${join(dir, 'chaos.db')}`
  await createDatabase(url, [doId], options.plantBug)
  const db = new HarnessDb(url)
  const spawn = (name: string, clock: ClockSetting) => {
    const config = scriptNodeConfig({ url, dir, name, ttlMs, clock, doId, waitMs: 0 })
    return group.spawn(entryFile, { name, args: configArg(config), timeoutMs: 60_000 })
  }
  let stepNumber = 0
  const step = async <T extends { type: string; step: number }>(
    child: ChildHandle,
    action: ScriptAction,
    reply: T['type'],
  ): Promise<T> => {
    const n = ++stepNumber
    child.send<ScriptStep>({ type: 'step', step: n, ...action })
    return waitForStep<T>(child, reply, n)
  }

  try {
    const zombie = spawn('node-zombie', { nowOffsetMs: -120_000, rate: 0.5 })
    const successor = spawn('node-successor', TRUE_CLOCK)
    await Promise.all([zombie.waitFor('ready', 20_000), successor.waitFor('ready', 20_000)])
    zombie.send({ type: 'go' })
    successor.send({ type: 'go' })

    const first = await step<ScriptAcquired>(zombie, { action: 'acquire', doId, waitMs: 0 }, 'acquired')
    if (first.token === null) throw new Error('the zombie did not get the free lease')
    // Frozen (SIGSTOP) between the read and the write. The node stops itself there, write timer
    // already running: a signal from here could land late on a loaded machine, after the write left.
    // The think time ends long before the heartbeat is due (ttl/3 after the acquire), so on SIGCONT the
    // write timer fires first, before a heartbeat could learn that the lease is gone.
    const n = ++stepNumber
    zombie.send<ScriptStep>({ type: 'step', step: n, action: 'increment', thinkMs, freezeInWindow: true })
    await zombie.waitFor<ScriptWindow>('window', 15_000)
    await waitUntilStopped(zombie.pid)
    try {
      await sleep(ttlMs + 300)
      const second = await step<ScriptAcquired>(successor, { action: 'acquire', doId, waitMs: 3_000 }, 'acquired')
      if (second.token === null) throw new Error('the successor did not get the expired lease')
      for (let i = 0; i < 2; i++) {
        const r = await step<ScriptIncremented>(successor, { action: 'increment', thinkMs: 0 }, 'incremented')
        if (r.outcome !== 'ok') throw new Error(`the successor's increment failed: ${r.error}`)
      }
      zombie.resume()
      const zombieWrite = await waitForStep<ScriptIncremented>(zombie, 'incremented', n)
      await step<ScriptReleased>(successor, { action: 'release' }, 'released')
      await step<ScriptReleased>(zombie, { action: 'release' }, 'released')
      zombie.send({ type: 'stop' })
      successor.send({ type: 'stop' })
      await Promise.all([zombie.exited, successor.exited])

      const { observation } = await observe(db, dir)
      const verdict = checkChaos(observation)
      const crashed = [zombie, successor].filter((c) => c.exit?.code !== 0).map((c) => `crashed: ${c.describe()}`)
      const violations = [...verdict.violations.map((v) => v.message), ...crashed]
      const counter = observation.counters[doId] ?? 0
      const zombieOp = observation.operations.find((o) => o.node === 'node-zombie' && o.kind === 'increment')
      const successorGrant = observation.operations.find(
        (o) => o.node === 'node-successor' && o.kind === 'acquire' && o.acquired,
      )
      const writeSentAfterTakeover =
        !!zombieOp?.writeAt && !!successorGrant?.completedAt && zombieOp.writeAt > successorGrant.completedAt
      const answer = zombieWrite.outcome === 'ok' ? 'ACCEPTED' : `refused (${zombieWrite.error?.split(':')[0]})`
      const summary =
        `zombie scenario (fence ${options.plantBug ? 'check PLANTED OUT' : 'intact'}): token ${first.token} written after ` +
        `token ${second.token} took over was ${answer}; counter ${counter} for ${observation.log.length} accepted writes; ` +
        `violations ${verdict.total + crashed.length}${
          verdict.total
            ? ` (${Object.entries(verdict.counts)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')})`
            : ''
        }`
      return {
        summary,
        violations,
        verdict,
        zombieWrite,
        writeSentAfterTakeover,
        zombieToken: first.token,
        successorToken: second.token,
        counter,
        observation,
      }
    } finally {
      zombie.resume()
    }
  } finally {
    await group.killAll()
    db.close()
  }
}

/**
 * Whether `pid` holds SQLite's WAL write lock on the database: a POSIX lock on byte 120 of the `-shm`
 * file (WAL_WRITE_LOCK), as /proc/locks lists it. False where there is no /proc.
 */
function holdsWriteLock(pid: number, shmFile: string): boolean {
  try {
    const inode = statSync(shmFile).ino
    return readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .some((line) => {
        const f = line.trim().split(/\s+/)
        // e.g. "12: POSIX  ADVISORY  WRITE 4242 00:2b:131 120 120"
        return (
          f[1] === 'POSIX' && f[3] === 'WRITE' && f[4] === String(pid) && f[5]?.endsWith(`:${inode}`) && f[6] === '120'
        )
      })
  } catch {
    return false
  }
}

/** Waits until the kernel reports `pid` stopped (state T in /proc; where there is no /proc, trusts the signal). */
/**
 * A node of a zombie scenario: driven step by step by the parent (`mode: 'script'`) on one id, its
 * history in `dir`. The workload fields are unused in script mode and set to their neutral values.
 */
export function scriptNodeConfig(o: {
  url: string
  dir: string
  name: string
  ttlMs: number
  clock: ClockSetting
  doId: string
  waitMs: number
}): NodeConfig {
  return {
    url: o.url,
    name: o.name,
    incarnation: 0,
    historyFile: join(o.dir, `history-${o.name}-0.jsonl`),
    ttlMs: o.ttlMs,
    busyTimeoutMs: 1_000,
    clock: o.clock,
    mode: 'script',
    workers: 1,
    groupCommit: false,
    ids: [o.doId],
    hotShare: 1,
    incrementsPerLease: 1,
    thinkMs: [0, 0],
    longLeaseShare: 0,
    longThinkMs: [0, 0],
    gapMs: [0, 0],
    waitMs: o.waitMs,
    seed: 1,
  }
}

export async function waitUntilStopped(pid: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    let state: string | undefined
    try {
      // The state follows the parenthesized command name, which may itself contain spaces.
      state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1]
    } catch {
      return
    }
    if (state === 'T' || state === 't') return
    if (Date.now() > deadline) throw new Error(`process ${pid} did not stop (state ${state})`)
    await sleep(5)
  }
}

/** The reply to script step `n` (ChildHandle.waitFor only finds the first message of a type). */
export async function waitForStep<T extends { type: string; step: number }>(
  child: ChildHandle,
  type: T['type'],
  n: number,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = child.messages.find((m) => m.type === type && (m as unknown as T).step === n)
    if (found) return found as unknown as T
    if (child.exit) throw new Error(`${child.describe()} exited before answering step ${n} with "${type}"`)
    if (Date.now() > deadline)
      throw new Error(`${child.describe()} did not answer step ${n} with "${type}" within ${timeoutMs} ms`)
    await sleep(5)
  }
}
