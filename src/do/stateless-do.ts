import type { Activation } from '../activation/activation.js'
import { InvalidArgumentError, LockContendedError } from '../errors.js'
import type { AcquireOptions, ConsistencyGuard, Lock } from '../guard/types.js'
import { ObjectStorage } from '../storage/object-storage.js'
import type { ObjectStore } from '../store/object-store.js'
import { assertDoId } from '../validate.js'
import { answerError, isLeaseEnd, json, type Phase } from './answers.js'
import { servePerRequest } from './per-request.js'
import { activationsFor, DEFAULT_IDLE_MS, type StatelessDOActivationOptions } from './node-activations.js'

export type { StatelessDOActivationOptions }

/**
 * The parts of a Durable Object's `ctx` (DurableObjectState) or a Worker's `ExecutionContext` this
 * class uses. Structural, so the package needs no Workers types at run time.
 */
export interface StatelessDOContext {
  /** Present in a Durable Object: its id (`name` when made with `idFromName`). */
  id?: { toString(): string; name?: string }
  /**
   * Keeps the invocation alive for a promise: {@link StatelessDO.fetch} hands it each request's
   * handler and release, so both still run when the client goes away mid-request.
   */
  waitUntil?(promise: Promise<unknown>): void
}

/**
 * Where in {@link StatelessDO.fetch} an error was reported: the id (`doIdFor`), the options
 * (`acquireOptions`: a server fault), taking the lease, the handler, committing the handler's
 * storage writes (`flush`), or giving the lease back.
 */
export type StatelessDOPhase = Phase

/**
 * Base class for a Durable Object that any node may serve. Its `fetch` runs
 * acquire -> heartbeat -> {@link handleRequest} -> release, and answers with JSON when it cannot
 * serve (the README's "Answers from fetch" table): 503 with `Retry-After` when another request holds
 * the object or the store cannot be reached, 500 when the server itself is at fault.
 *
 * Subclasses implement two methods: {@link createGuard} (which guard and store serve this class;
 * return a module-level guard to share it across instances of an isolate) and {@link handleRequest}.
 * Override {@link doIdFor} to take the id from the request (plain Workers), {@link acquireOptions}
 * to wait for a busy object instead of answering 503, and {@link onError} to report failures.
 *
 * @example
 * ```ts
 * let store: D1LockStore | undefined // one per isolate, shared by its objects
 * let guard: HybridConsistencyGuard | undefined
 * export class Counter extends StatelessDO<Env> {
 *   protected createGuard() {
 *     store ??= new D1LockStore(this.env.DB)
 *     return (guard ??= new HybridConsistencyGuard({ store, nodeId: crypto.randomUUID() }))
 *   }
 *   protected async handleRequest(request: Request, lock: Lock) {
 *     await fencedWrite(store!, lock, [{ sql: 'UPDATE counters SET n = n + 1 WHERE id = ?', args: [lock.doId] }])
 *     return new Response('ok')
 *   }
 * }
 * ```
 */
export abstract class StatelessDO<Env = unknown> {
  /** The runtime's context: the Durable Object's state, a Worker's `ExecutionContext`, or none. */
  protected readonly ctx: StatelessDOContext | undefined
  /** The Worker's bindings, as the runtime passed them. */
  protected readonly env: Env
  #guard: ConsistencyGuard | undefined
  /** The turn (or per-request handler) running on this instance: its storage and activation. */
  #current: { storage: ObjectStorage | undefined; activation: Activation | undefined } | undefined
  /** Turns running on this instance now (of different objects: one object's turns never overlap). */
  #running = 0
  /** Set while turns of more than one object overlap on this instance: `this.storage` is ambiguous. */
  #shared = false

  /**
   * Called by the runtime for a Durable Object (`ctx` is its state), or by your Worker per request
   * (`new Room(ctx, env).fetch(request)` with the Worker's `ExecutionContext`). No I/O happens here.
   *
   * @param ctx - the Durable Object state or execution context (`waitUntil` keeps the release running).
   * @param env - the Worker's bindings.
   */
  constructor(ctx: StatelessDOContext | undefined, env: Env) {
    this.ctx = ctx
    this.env = env
  }

  /** Which guard coordinates this object. Called once per instance, on the first request. */
  protected abstract createGuard(): ConsistencyGuard

  /**
   * Serves one request while this node holds the lease. `signal` fires if the lease is lost (its
   * `reason` is a `LockLostError`): pass it to anything long-running. It does not fire when the
   * client goes away; for that, use `request.signal` (see {@link fetch}). `storage` is the object's
   * storage for this request, the same as {@link storage} (`undefined` for an object without storage);
   * use it when one instance serves several objects at once.
   */
  protected abstract handleRequest(
    request: Request,
    lock: Lock,
    signal: AbortSignal,
    storage: ObjectStorage | undefined,
  ): Promise<Response> | Response

  /**
   * The DO id to lock. Default: `ctx.id.toString()`, the hex id, which is the same however the object
   * was addressed (`idFromName`, `idFromString`); `ctx.id.name` is not used, because it is only there
   * for some of those (so one object could be locked under two keys). Override to lock by name, and
   * for plain Workers (no `ctx.id`). An id that throws or is invalid (empty, too long, NUL, lone
   * surrogates) is answered 400 `bad_request`: it came from the request.
   */
  protected doIdFor(_request: Request): string {
    const id = this.ctx?.id
    if (!id) throw new InvalidArgumentError('doIdFor', 'no ctx.id (not a Durable Object): override doIdFor(request)')
    return id.toString()
  }

  /**
   * Acquire options per request. Default: try once (a busy object answers 503 at once). A value the
   * guard refuses (e.g. `{ waitMs: -1 }`), or a throw, is the server's fault: answered 500
   * `internal_error` and reported in phase `acquireOptions`.
   *
   * @example
   * ```ts
   * protected override acquireOptions() { return { waitMs: 5_000 } } // serve concurrent requests in turn
   * ```
   */
  protected acquireOptions(_request: Request): AcquireOptions {
    return {}
  }

  /**
   * Failure report (store outage, refused statement, lost lease, failed release, bad id or options).
   * Default: `console.error`. Not called for contention or a client that went away.
   */
  protected onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    console.error(`[stateless-do] ${phase} failed${doId === undefined ? '' : ` for "${doId}"`}:`, error)
  }

  /**
   * Where this object's key-value rows live: the same database as its lease, so that a write and the
   * check of the lease that makes it share one transaction. Default: the guard's lock store's
   * `objects` (every `LibSQLLockStore`, `D1LockStore` and `MemoryLockStore` has one). Override to use
   * another table (`new SqlObjectStore(...)`); return `undefined` for an object without storage.
   */
  protected objectStore(): ObjectStore | undefined {
    const store = (this.guard as { store?: { objects?: ObjectStore } }).store
    const objects = store?.objects
    return objects && typeof objects.flush === 'function' ? objects : undefined
  }

  /**
   * The object's storage, with Durable Object storage's API (`get`, `put`, `delete`, `list`,
   * `deleteAll`, `transaction`), for the request being served: what `this.ctx.storage` is in a Durable
   * Object. Writes are buffered and committed in ONE fenced flush (lease check + writes, one
   * transaction; the guard's heartbeat keeps the lease) after {@link handleRequest} returns, before its
   * response is released:
   * no client hears of a write before it is durable, and a holder that lost its lease writes nothing
   * (docs/design.md invariants 10-12). Outside a request it throws.
   *
   * @example
   * ```ts
   * protected async handleRequest() {
   *   const n = ((await this.storage.get<number>('n')) ?? 0) + 1
   *   await this.storage.put('n', n)
   *   return Response.json({ n }) // sent only once the put committed
   * }
   * ```
   */
  protected get storage(): ObjectStorage {
    if (this.#shared) throw sharedInstanceError('storage')
    const storage = this.#current?.storage
    if (storage) return storage
    throw new InvalidArgumentError(
      'storage',
      this.objectStore() === undefined
        ? "this object has no object store: the guard's lock store has no `objects`; override objectStore()"
        : 'storage is there only while a request is being served (inside handleRequest)',
    )
  }

  /** The guard (created by {@link createGuard} on first use). */
  protected get guard(): ConsistencyGuard {
    this.#guard ??= this.createGuard()
    return this.#guard
  }

  /**
   * Whether `request` is read-only (opt-in per request; default: none is). A read-only request is
   * served by {@link handleReadOnlyRequest} at once, on any node, WITHOUT the lease: it neither waits
   * for the object's turn nor is answered 503 when another node holds it, and it reads the object's
   * committed state (what every acknowledged write left), never a turn's unflushed writes. It cannot
   * write. A throw is the server's fault (500 `internal_error`, reported in phase `acquireOptions`).
   *
   * @example
   * ```ts
   * protected override readOnlyRequest(request: Request) { return request.method === 'GET' }
   * ```
   */
  protected readOnlyRequest(_request: Request): boolean {
    return false
  }

  /**
   * Serves a request {@link readOnlyRequest} chose, with `storage` reading the object's committed
   * state (`get`, `list`; one request to the store per call that misses its cache; writes reject with
   * `ReadOnlyStorageError`, answered 500). `this.storage` is not available here: it belongs to the
   * object's turns, which may run at the same time. Default: throws (500), so override it with
   * `readOnlyRequest`. A store that cannot be reached is answered 503 `store_unavailable`.
   *
   * @example
   * ```ts
   * protected override async handleReadOnlyRequest(request: Request, storage: ObjectStorage) {
   *   return Response.json({ n: (await storage.get<number>('n')) ?? 0 })
   * }
   * ```
   */
  protected handleReadOnlyRequest(_request: Request, _storage: ObjectStorage): Promise<Response> | Response {
    throw new InvalidArgumentError('handleReadOnlyRequest', 'readOnlyRequest() chose this request: override it')
  }

  /**
   * How this class keeps objects active between requests. Default: in a Durable Object (`ctx.id`
   * set) `{}`, activations with the defaults of {@link StatelessDOActivationOptions} (idle 10 s);
   * without `ctx.id` (a plain Worker, a Node server) `false`, a lease per request (acquire, handler,
   * flush, release): every request pays an acquire, and concurrent requests on one node contend for
   * the lease instead of queueing. Why plain Workers default to `false`: an activation is shared by
   * the requests of an isolate, and workerd refuses a Response (or any I/O object) that one request's
   * turn made being returned by another ("Cannot perform I/O on behalf of a different request"); a
   * Durable Object's requests share one I/O context, so its turns may. Return `{}` (or options) to
   * opt in where that does not apply (Node). The options are read once per guard (its first request).
   */
  protected activationOptions(): StatelessDOActivationOptions | false {
    return this.ctx?.id ? {} : false
  }

  /**
   * Runs once when an activation of this object starts, before its first request, with
   * {@link storage} available and no other request running (as a Durable Object's constructor with
   * `blockConcurrencyWhile`): load state, warm caches. If it throws, the activation ends and the
   * requests that waited fail (503 `activation_ended`).
   */
  protected onStart(): void | Promise<void> {}

  /**
   * Runs `fn` with no other request of this object starting until it settles, as
   * `ctx.blockConcurrencyWhile` does in a Durable Object. Only inside a request (and with activations).
   * If `fn` throws, the activation ends (the object is reset), as in Durable Objects.
   */
  protected blockConcurrencyWhile<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#shared) throw sharedInstanceError('blockConcurrencyWhile')
    const activation = this.#current?.activation
    if (!activation) {
      throw new InvalidArgumentError('blockConcurrencyWhile', 'only inside a request, with activations on')
    }
    return activation.blockConcurrencyWhile(fn)
  }

  /**
   * Serves `request` as a turn of the object's activation on this node: requests for one object run
   * one at a time, in arrival order (docs/design.md invariant 9); the first one takes the lease (a
   * cold start), later ones find it held (warm). {@link handleRequest} runs with {@link storage};
   * its writes are committed in one fenced flush before its response is released (invariant 12); a
   * flush that fails is the answer (503 `lease_lost` / `store_unavailable`), never the handler's
   * response. The lease is given back when the object has been idle for `idleMs`, off the response
   * path. With `activationOptions()` returning `false`: acquire, handler, flush, release per request.
   * Answers without running the handler when it cannot: see the README's "Answers from fetch".
   * Errors a handler throws that are not {@link LockError}s propagate (after its writes were flushed).
   *
   * **A held object** (another node serves it) is answered 503 `locked`, with `retryAfterMs` in the
   * body the time left on the holder's lease (an upper bound). With a lease per request,
   * `Retry-After` is `1` while the holder's lease is young (held less than a third of the lease),
   * else the time left on it ({@link lockedRetryAfterSeconds}). With activations it is the earliest of
   * `idleMs`, the time left, and, when this node asked the holder to hand over, the guard's heartbeat
   * period (the holder hears the request at its next flush or heartbeat).
   *
   * **The client going away** (`request.signal`, which workerd fires only with the
   * `enable_request_signal` compatibility flag): a request still waiting for the lease or its turn
   * stops and is answered 499 (nothing reported). A running handler is not interrupted unless it
   * listens to `request.signal` itself (a handler that rejects with that signal's reason is answered
   * 499). With `ctx.waitUntil`, the request's work and the lease's release are registered at once, so
   * the runtime keeps them running after the client left.
   */
  async fetch(request: Request): Promise<Response> {
    let doId: string
    try {
      const id: unknown = this.doIdFor(request)
      assertDoId(id) // here, so that an InvalidArgumentError from the acquire is about the options
      doId = id
    } catch (error) {
      this.onError(error, 'doId', undefined)
      return json(400, { error: 'bad_request', message: error instanceof Error ? error.message : String(error) })
    }
    const fail = (error: unknown, phase: Phase, lostToken?: number) =>
      answerError(error, { doId, request, phase, lostToken, report: (e, p, id) => this.onError(e, p, id) })

    let readOnly: boolean
    try {
      readOnly = this.readOnlyRequest(request) === true
    } catch (error) {
      return fail(error, 'acquireOptions')
    }
    if (readOnly) return this.#serveReadOnly(request, doId, fail)

    let options: AcquireOptions
    let activation: StatelessDOActivationOptions | false
    try {
      options = { signal: request.signal, ...this.acquireOptions(request) }
      activation = this.activationOptions()
      if (activation !== false && (activation === null || typeof activation !== 'object')) {
        throw new InvalidArgumentError('activationOptions', 'expected an object or false')
      }
    } catch (error) {
      return fail(error, 'acquireOptions')
    }
    const guard = this.guard
    if (activation === false) {
      return servePerRequest({
        request,
        doId,
        guard,
        options,
        ctx: this.ctx,
        objects: this.objectStore(),
        handle: async (lock, storage) => {
          const leave = this.#enter(storage, undefined)
          try {
            return await this.handleRequest(request, lock, lock.signal, storage)
          } finally {
            leave()
          }
        },
        fail,
        report: (error, phase) => this.onError(error, phase, doId),
      })
    }

    const settings = { idleMs: DEFAULT_IDLE_MS, ...activation }
    let phase: Phase = 'acquire'
    let token: number | undefined
    let asked = false
    try {
      const registry = activationsFor(guard, settings, this.objectStore())
      asked = registry.asksHandover
      const { waitMs, ttlMs } = options
      return await registry.run(
        doId,
        (current) =>
          this.#turn(
            current,
            (lock, signal, storage) => this.handleRequest(request, lock, signal, storage),
            (p) => (phase = p),
            (t) => (token = t),
          ),
        {
          signal: request.signal,
          ...(waitMs === undefined ? {} : { waitMs }),
          ...(ttlMs === undefined ? {} : { ttlMs }),
        },
      )
    } catch (error) {
      if (error instanceof LockContendedError) {
        // Another node's warm activation keeps its lease alive with heartbeats, so the time left on it
        // says little of when it lets go. It does so once idle for idleMs (this class's setting, which
        // its other nodes share), and, when this node asked it to hand over, at its next flush or
        // heartbeat: at most a heartbeat period away (the guard's, which the class's nodes share).
        // The earliest of these is when the object can be had, so it is the Retry-After (invariant 14).
        const seconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000))
        let retryAfterSeconds = Math.min(seconds(settings.idleMs ?? DEFAULT_IDLE_MS), seconds(error.retryAfterMs))
        const heartbeatMs = (guard as { heartbeatMs?: unknown }).heartbeatMs
        if (asked && typeof heartbeatMs === 'number' && heartbeatMs > 0) {
          retryAfterSeconds = Math.min(retryAfterSeconds, seconds(heartbeatMs))
        }
        return new LockContendedError(doId, error.retryAfterMs, error.holder, { retryAfterSeconds }).toResponse()
      }
      // `phase` says how far the turn got: still waiting (acquire), in the handler, or past it, in the
      // output gate (its flush, or an earlier one whose writes it may have read).
      return fail(error, phase as Phase, isLeaseEnd(error) && token !== undefined ? token : undefined)
    }
  }

  /** A read-only request: committed state, no lease, no turn (see {@link readOnlyRequest}). */
  async #serveReadOnly(
    request: Request,
    doId: string,
    fail: (error: unknown, phase: Phase) => Response,
  ): Promise<Response> {
    let storage: ObjectStorage
    try {
      const objects = this.objectStore()
      if (!objects) throw new InvalidArgumentError('objectStore', 'a read-only request needs an object store')
      storage = ObjectStorage.readOnly(objects, doId)
    } catch (error) {
      return fail(error, 'acquireOptions') // the server's own setup: 500
    }
    try {
      return await this.handleReadOnlyRequest(request, storage)
    } catch (error) {
      // A write, or no handler: the server's fault, not the client's (a 500, not a 400).
      if (error instanceof InvalidArgumentError && !(request.signal?.aborted && error === request.signal.reason)) {
        this.onError(error, 'handler', doId)
        return json(500, { error: 'internal_error', doId })
      }
      return fail(error, 'handler')
    }
  }

  /**
   * Runs `body` as a turn of this object's activation on this node, exactly as {@link fetch} runs
   * {@link handleRequest}: queued behind the object's other turns (invariant 9), with {@link storage}
   * available, its writes committed in one fenced flush before the returned promise resolves
   * (invariant 12). For turns that are not HTTP requests (RPC calls, alarms: `stateless-do/workers`).
   * Where `fetch` answers, this rejects with the library's typed errors: `LockContendedError` (another
   * node holds the object), `LockLostError` / `StaleFencingTokenError` (the lease ended; nothing of this
   * turn was written), `ActivationEndedError`, `QueueFullError`, `TurnTimeoutError`,
   * `StoreUnavailableError`; and with whatever `body` throws (after its writes were flushed). Needs
   * activations: with {@link activationOptions} returning `false` it rejects with an
   * `InvalidArgumentError` naming `activationOptions`, before any I/O.
   *
   * @param doId - the object's id (validated: 1-1024 UTF-16 code units, no NUL, no lone surrogate).
   * @param body - the turn; gets the lease and its signal (fires when the lease is lost).
   * @param options - `waitMs` (how long to wait for an object another node holds; default 0, try
   *   once) and `ttlMs` (the lease length if this turn takes the lease).
   */
  protected async runAsTurn<T>(
    doId: string,
    body: (lock: Lock, signal: AbortSignal, storage: ObjectStorage | undefined) => T | Promise<T>,
    options: Pick<AcquireOptions, 'waitMs' | 'ttlMs'> = {},
  ): Promise<T> {
    assertDoId(doId)
    const { waitMs, ttlMs } = options
    const activation = this.activationOptions()
    if (activation === false || activation === null || typeof activation !== 'object') {
      throw new InvalidArgumentError(
        'activationOptions',
        'a turn outside fetch needs activations (an object, not false)',
      )
    }
    const registry = activationsFor(this.guard, { idleMs: DEFAULT_IDLE_MS, ...activation }, this.objectStore())
    const noop = () => {}
    return registry.run(doId, (current) => this.#turn(current, body, noop, noop), {
      ...(waitMs === undefined ? {} : { waitMs }),
      ...(ttlMs === undefined ? {} : { ttlMs }),
    })
  }

  /** `body` as a turn of `activation`: onStart on the activation's first turn, then `body`. */
  async #turn<T>(
    activation: Activation,
    body: (lock: Lock, signal: AbortSignal, storage: ObjectStorage | undefined) => T | Promise<T>,
    setPhase: (phase: Phase) => void,
    setToken: (token: number) => void,
  ): Promise<T> {
    setPhase('handler')
    setToken(activation.lock.fencingToken)
    const storage = activation.flusher instanceof ObjectStorage ? activation.flusher : undefined
    const leave = this.#enter(storage, activation)
    // The release at the end of the activation happens after this request: keep the invocation alive.
    // Once per context and activation: a Durable Object's one ctx serves every turn of a warm
    // activation, and one registration per turn would pile up for as long as it stays warm.
    const ctx = this.ctx
    if (typeof ctx?.waitUntil === 'function') {
      let registered = awaitedEnds.get(ctx)
      if (!registered) awaitedEnds.set(ctx, (registered = new WeakSet()))
      if (!registered.has(activation)) {
        registered.add(activation)
        ctx.waitUntil(activation.ended)
      }
    }
    try {
      if (!started.has(activation)) {
        started.add(activation)
        await activation.blockConcurrencyWhile(() => this.onStart())
      }
      const result = await body(activation.lock, activation.lock.signal, storage)
      // Past the handler: what fails from here on is the output gate (this turn's flush, or an earlier
      // one whose writes it may have read). A handler's own throw stays a 'handler' failure.
      setPhase('flush')
      return result
    } finally {
      leave()
    }
  }

  /**
   * Marks a turn (or per-request handler) as running on this instance; returns its exit. Turns of one
   * object never overlap, so two at once are of different objects: until both are over,
   * `this.storage` and `blockConcurrencyWhile` refuse to guess which one is meant (a wrong guess would
   * write one object's state under another's lease) and the handler's `storage` argument is the way.
   */
  #enter(storage: ObjectStorage | undefined, activation: Activation | undefined): () => void {
    if (this.#running > 0) this.#shared = true
    this.#running++
    this.#current = { storage, activation }
    let left = false
    return () => {
      if (left) return
      left = true
      this.#running--
      if (this.#running === 0) {
        this.#current = undefined
        this.#shared = false
      }
    }
  }
}

function sharedInstanceError(member: string): InvalidArgumentError {
  return new InvalidArgumentError(
    member,
    'this instance is serving several objects at once, so `this.' +
      member +
      '` cannot say which one is meant: use the storage argument of handleRequest(request, lock, signal, storage), or one instance per object (as the Durable Objects runtime does)',
  )
}

/** Activations whose onStart has run (or is running). */
const started = new WeakSet<Activation>()

/** Per `ctx`, the activations whose end it was given to `waitUntil` already. */
const awaitedEnds = new WeakMap<object, WeakSet<Activation>>()
