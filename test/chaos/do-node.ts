/**
 * A chaos node of the second kind: a real process serving objects through StatelessDO with activations
 * (turn queue, cache, output gate) and `this.storage`, while the harness kills it, freezes it, skews its
 * clock and takes the store away (the same faults as test/chaos/node.ts).
 *
 * Each object holds a counter `n` and one log key per write, `w:<op>` = the value that write produced,
 * both put in the write's own turn, so they reach the store in the same flush. Writes are a
 * READ-MODIFY-WRITE through the activation's cache (`get('n')`, think, `put n + 1`): a zombie whose
 * cached `n` is stale would lose an update if its flush ever got through, and the log keys would show it.
 *
 * The clients live in this process and call the object's `fetch` with `Request`s, as a Worker's
 * runtime would; each request is recorded in the history before it is sent and with its answer
 * (status, value). A request's operation id travels in the `x-op` header and names its log key.
 *
 * `plantUnfencedFlush`: the object store's flush sends the writes WITHOUT the lease extension and fence
 * statements, the bug test/chaos/linearizability.ts must catch. Fault injection only.
 *
 * Bundled and spawned by test/chaos/harness.ts; configuration is one JSON argument (NodeConfig).
 */
import type { Client } from '@libsql/client'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  StatelessDO,
  StoreUnavailableError,
  type EncodedValue,
  type FlushResult,
  type GuardEvent,
  type Lock,
  type ObjectLease,
  type ObjectListRange,
  type ObjectStore,
  type ObjectWrites,
  type SqlObjectStore,
  type StatelessDOActivationOptions,
} from '../../src/index.js'
import { childChannel, childConfig } from '../support/processes.js'
import { describeError, followClock, open, runNodeProcess, sleep } from './node-process.js'
import { ChaosClock } from './clock.js'
import { HistoryWriter } from './history.js'
import { recordHandoffs } from './recorded-handoffs.js'
import type { DoRequestStep, NodeConfig } from './protocol.js'
import { between, pick, seededRandom } from '../support/random.js'

/**
 * THE PLANTED BUG: reads as the real store reads (lease-checked), but a flush sends its puts on a
 * plain connection, with neither the lease extension nor the fence, and claims a full lease.
 */
class UnfencedObjectStore implements ObjectStore {
  constructor(
    readonly inner: SqlObjectStore,
    readonly client: Client,
  ) {}
  ensureSchema(): Promise<void> {
    return this.inner.ensureSchema()
  }
  get(lease: ObjectLease, keys: readonly string[]): Promise<Map<string, EncodedValue>> {
    return this.inner.get(lease, keys)
  }
  list(lease: ObjectLease, range: ObjectListRange): Promise<Array<[string, EncodedValue]>> {
    return this.inner.list(lease, range)
  }
  async flush(lease: ObjectLease, writes: ObjectWrites): Promise<FlushResult> {
    const statements = [...writes.entries]
      .filter((entry): entry is [string, string] => entry[1] !== null)
      .map(([key, value]) => ({ sql: this.inner.sql.put(1), args: [lease.doId, key, value] }))
    try {
      if (statements.length) await this.client.batch(statements, 'write')
    } catch (error) {
      // Typed as the real store types it: only the missing fence is the planted bug.
      throw new StoreUnavailableError(`planted flush of "${lease.doId}" failed`, { cause: error })
    }
    return { expiresAt: Date.now() + lease.ttlMs }
  }
}

interface Served {
  status: number
  value?: number
  code?: string
  token?: number
}

/** The object the chaos clients talk to: a counter and a log key per write, in `this.storage`. */
class ChaosObject extends StatelessDO {
  constructor(
    readonly node: DoNode,
    readonly objects: ObjectStore | undefined,
  ) {
    super(undefined, {})
  }
  protected createGuard(): HybridConsistencyGuard {
    return this.node.guard
  }
  protected override doIdFor(request: Request): string {
    return new URL(request.url).pathname.slice(1)
  }
  protected override activationOptions(): StatelessDOActivationOptions {
    return { idleMs: this.node.config.idleMs ?? 200 }
  }
  protected override acquireOptions(): { waitMs: number } {
    return { waitMs: this.node.config.waitMs }
  }
  protected override objectStore(): ObjectStore | undefined {
    return this.objects ?? super.objectStore()
  }
  protected override onError(error: unknown, phase: string, doId: string | undefined): void {
    this.node.history.note(`${phase}-error`, `${doId ?? ''}: ${describeError(error)}`)
  }
  protected async handleRequest(request: Request, lock: Lock): Promise<Response> {
    const n = (await this.storage.get<number>('n')) ?? 0
    // A read names the lease it was served under: the checker exempts reads under a lease the harness
    // revoked (test/chaos/linearizability.ts).
    if (request.method === 'GET') return Response.json({ n, token: lock.fencingToken })
    const op = request.headers.get('x-op')
    if (!op) return Response.json({ error: 'no x-op header' }, { status: 400 })
    const thinkMs = this.node.thinkMs(request)
    // The timer starts before the window hook, so a freeze there lands with the write already due.
    const thinking = thinkMs > 0 ? sleep(thinkMs) : undefined
    this.node.onWindow?.(n)
    await thinking
    await this.storage.put({ n: n + 1, [`w:${op}`]: n + 1 })
    return Response.json({ n: n + 1 })
  }
}

class DoNode {
  readonly guard: HybridConsistencyGuard
  /** Script mode: called in a write's window (after its read, think timer running). */
  onWindow: ((read: number) => void) | undefined
  /** Think time of a write, ms (the window a stale writer would lose an update in). */
  thinkMs: (request: Request) => number = () => 0
  /**
   * One instance per object, as a Durable Object runtime has: `this.storage` belongs to the instance,
   * so one instance serving two objects' turns at once would hand one turn the other's storage.
   */
  readonly #objects = new Map<string, ChaosObject>()
  readonly #unfenced: UnfencedObjectStore | undefined

  readonly store: LibSQLLockStore

  constructor(
    readonly config: NodeConfig,
    plain: Client,
    readonly clock: ChaosClock,
    readonly history: HistoryWriter,
  ) {
    // The local engine, as the README has a Node process open a `file:` database: its busy waits are
    // asynchronous, so a frozen neighbour holding the write lock does not freeze this event loop.
    const store = (this.store = new LibSQLLockStore(config.url, {
      groupCommit: config.groupCommit,
      busyTimeoutMs: config.busyTimeoutMs,
    }))
    this.guard = new HybridConsistencyGuard({
      // The guard's handoffs are recorded: the checker accepts a grant over an intact lease only as one.
      store: recordHandoffs(store, history),
      nodeId: config.name,
      ttlMs: config.ttlMs,
      heartbeatMs: Math.floor(config.ttlMs / 3),
      clock,
      retry: { initialDelayMs: 10, maxDelayMs: 100 },
      onEvent: (event) => this.#onEvent(event),
    })
    this.#unfenced = config.plantUnfencedFlush ? new UnfencedObjectStore(store.objects, plain) : undefined
  }

  object(doId: string): ChaosObject {
    let object = this.#objects.get(doId)
    if (!object) this.#objects.set(doId, (object = new ChaosObject(this, this.#unfenced)))
    return object
  }

  /** One request, recorded before it is sent and with its answer; never throws. */
  async request(doId: string, write: boolean): Promise<Served> {
    const op = this.history.invoke({ kind: write ? 'write' : 'read', doId })
    let slowClock = this.clock.mayOverestimateValidity(this.config.ttlMs)
    let served: Served
    try {
      const response = await this.object(doId).fetch(
        new Request(`http://chaos/${doId}`, { method: write ? 'POST' : 'GET', headers: { 'x-op': op } }),
      )
      const body = (await response.json().catch(() => ({}))) as {
        n?: unknown
        token?: unknown
        error?: unknown
        code?: unknown
      }
      served = { status: response.status }
      if (typeof body.n === 'number') served.value = body.n
      if (typeof body.token === 'number') served.token = body.token
      const code = body.code ?? body.error
      if (typeof code === 'string') served.code = code
    } catch (error) {
      // fetch answers every failure itself; a throw is a defect the run must show.
      this.history.complete(op, 'unknown', { error: describeError(error) })
      throw error
    }
    // Only a 200 says what happened. Any other answer to a write may follow a flush that committed
    // without its answer arriving (store trouble): indeterminate. A read that failed had no effect.
    const outcome = served.status === 200 ? 'ok' : write ? 'unknown' : 'failed'
    slowClock ||= this.clock.mayOverestimateValidity(this.config.ttlMs)
    this.history.complete(op, outcome, {
      status: served.status,
      ...(served.value === undefined ? {} : { value: served.value }),
      ...(served.token === undefined ? {} : { token: served.token }),
      ...(slowClock && !write ? { slowClock } : {}),
      ...(served.status === 200 ? {} : { error: `HTTP ${served.status} ${served.code ?? ''}`.trim() }),
    })
    return served
  }

  #onEvent(event: GuardEvent): void {
    if (event.type === 'lost') this.history.note('lost', `${event.doId}#${event.fencingToken}: ${event.reason}`)
    else if (event.type === 'error' && event.operation !== 'acquire') {
      this.history.note(`${event.operation}-error`, `${event.doId ?? ''}: ${describeError(event.error)}`)
    }
  }
}

async function main(): Promise<void> {
  const config = childConfig<NodeConfig>()
  const channel = childChannel()
  const clock = new ChaosClock(config.clock)
  const plain = await open(config.url, config.busyTimeoutMs)
  const history = new HistoryWriter(config.historyFile, config.name, config.incarnation)
  const node = new DoNode(config, plain, clock, history)

  let stopping = false
  const finish = async () => {
    // Graceful: every activation flushes and releases.
    await node.guard.shutdown()
    plain.close()
    await node.store.close()
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
    for (;;) {
      const message = await Promise.race([channel.receive<DoRequestStep>('step'), stopped.then(() => null)])
      if (!message) break
      const { step } = message
      node.thinkMs = () => message.thinkMs
      node.onWindow = (read) => {
        node.onWindow = undefined
        channel.send({ type: 'window', step, read })
        if (message.freezeInWindow) process.kill(process.pid, 'SIGSTOP')
      }
      // Not awaited: the parent may send the next step (to another node) while this one is frozen.
      void node
        .request(message.doId, message.write)
        .then((served) => channel.send({ type: 'answered', step, ...served }))
    }
    return finish()
  }

  const random = seededRandom(config.seed)
  node.thinkMs = () => between(random, random() < config.longLeaseShare ? config.longThinkMs : config.thinkMs)
  const [hot, ...others] = config.ids
  if (hot === undefined) throw new Error('no ids')
  const worker = async (random: () => number) => {
    while (!stopping) {
      const doId = others.length === 0 || random() < config.hotShare ? hot : pick(random, others)
      await node.request(doId, random() >= (config.readShare ?? 0.3))
      await sleep(between(random, config.gapMs))
    }
  }
  await Promise.all(Array.from({ length: config.workers }, (_, w) => worker(seededRandom(config.seed + w))))
  return finish()
}

runNodeProcess(main)
