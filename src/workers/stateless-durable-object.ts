/**
 * `StatelessDurableObject`: a StatelessDO that is a real Durable Object class in workerd (it extends
 * `DurableObject` from `cloudflare:workers`), so `DurableObjectNamespace<YourClass>` type-checks,
 * stubs are typed, and its methods are callable over RPC, each call a turn under the lease.
 *
 * Composition, not a second copy: each instance owns a {@link StatelessDO} (`Core` below) that runs
 * every turn (`fetch` through `handleRequest`, RPC calls and `alarm()` through `runAsTurn`) and
 * calls this class's hooks. JavaScript has single inheritance and the base must be the platform's
 * `DurableObject` (that is what brands it and what workerd dispatches RPC to), so the lease machinery
 * comes in as a member, the way the agents SDK composes its parts.
 *
 * Which methods are turns: see ./turn-methods.ts (the wrapping, and why on the prototype).
 *
 * @module
 */
import { DurableObject } from 'cloudflare:workers'
import { StatelessDO, type StatelessDOActivationOptions, type StatelessDOPhase } from '../do/stateless-do.js'
import { InvalidArgumentError } from '../errors.js'
import type { AcquireOptions, ConsistencyGuard, Lock } from '../guard/types.js'
import type { ObjectStorage } from '../storage/object-storage.js'
import type { ObjectStore } from '../store/object-store.js'
import type { remoteErrorName } from './remote-errors.js'
import { wrapTurnMethods, type NOT_TURN_NAMES } from './turn-methods.js'

/** The Durable Object's state, as `DurableObject`'s constructor takes it. */
type State = ConstructorParameters<typeof DurableObject>[0]

/**
 * The `Request` type of `DurableObject.fetch`: the global `Request` in a Workers project (the same as
 * `Request`), spelled so that it also matches where DOM types are loaded beside the Workers ones.
 */
type PlatformRequest = Parameters<NonNullable<DurableObject['fetch']>>[0]
/** The `Response` type of `DurableObject.fetch` (the global `Response` in a Workers project). */
type PlatformResponse = Awaited<ReturnType<NonNullable<DurableObject['fetch']>>>

/** What an RPC call or alarm waits for when it finds the object held by another node. */
export type TurnOptions = Pick<AcquireOptions, 'waitMs' | 'ttlMs'>

/** The hooks of a {@link StatelessDurableObject}, as its core calls them (they are protected there). */
interface Hooks {
  createGuard(): ConsistencyGuard
  handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> | Response
  doId(): string
  doIdFor(request: Request): string
  acquireOptions(request: Request): AcquireOptions
  turnOptions(): TurnOptions
  onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void
  objectStore(): ObjectStore | undefined
  activationOptions(): StatelessDOActivationOptions | false
  onStart(): void | Promise<void>
  readOnlyRequest(request: Request): boolean
  handleReadOnlyRequest(request: Request, storage: ObjectStorage): Promise<Response> | Response
}

/**
 * Every hook the core calls on the outer object is kept from being wrapped as a turn: a hook missing
 * from NOT_TURN_NAMES makes this type an error (`doIdFor` once was, and an override of it handed
 * `fetch` a promise for an id).
 */
type HooksNotTurns = Exclude<keyof Hooks, (typeof NOT_TURN_NAMES)[number]> extends never ? true : never
const hooksAreNotTurns: HooksNotTurns = true
void hooksAreNotTurns

/** The StatelessDO that runs a StatelessDurableObject's turns, with the outer object's hooks. */
class Core extends StatelessDO<unknown> {
  readonly #outer: Hooks
  /** The lease of the turn running now (set for its body, cleared after it). */
  lock: Lock | undefined

  constructor(outer: Hooks, ctx: State, env: unknown) {
    super(ctx as unknown as ConstructorParameters<typeof StatelessDO>[0], env)
    this.#outer = outer
  }

  /** `this.storage` of the turn running now (throws outside one, naming `storage`). */
  currentStorage(): ObjectStorage {
    return this.storage
  }

  /** `this.guard`, created on first use. */
  currentGuard(): ConsistencyGuard {
    return this.guard
  }

  /** Runs `body` as a turn of this object under its lease (see StatelessDO.runAsTurn). */
  turn<T>(body: (lock: Lock, signal: AbortSignal) => T | Promise<T>): Promise<T> {
    return this.runAsTurn(
      this.#outer.doId(),
      async (lock, signal) => {
        this.lock = lock
        try {
          return await body(lock, signal)
        } finally {
          this.lock = undefined
        }
      },
      this.#outer.turnOptions(),
    )
  }

  /** Waits for `fn` with no other turn of the object starting meanwhile (only inside a turn). */
  block<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.blockConcurrencyWhile(fn)
  }

  protected createGuard(): ConsistencyGuard {
    return this.#outer.createGuard()
  }
  protected async handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> {
    // `fetch` is a turn too: `this.lock` is its lease, as in an RPC method's turn.
    this.lock = lock
    try {
      return await this.#outer.handleRequest(request, lock, signal)
    } finally {
      this.lock = undefined
    }
  }
  protected override doIdFor(request: Request): string {
    return this.#outer.doIdFor(request)
  }
  protected override acquireOptions(request: Request): AcquireOptions {
    return this.#outer.acquireOptions(request)
  }
  protected override onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    this.#outer.onError(error, phase, doId)
  }
  protected override objectStore(): ObjectStore | undefined {
    return this.#outer.objectStore()
  }
  protected override activationOptions(): StatelessDOActivationOptions | false {
    return this.#outer.activationOptions()
  }
  protected override onStart(): void | Promise<void> {
    return this.#outer.onStart()
  }
  protected override readOnlyRequest(request: Request): boolean {
    return this.#outer.readOnlyRequest(request)
  }
  protected override handleReadOnlyRequest(request: Request, storage: ObjectStorage): Promise<Response> | Response {
    return this.#outer.handleReadOnlyRequest(request, storage)
  }
  /** The defaults of StatelessDO's hooks, for the outer class's own defaults. */
  defaultObjectStore(): ObjectStore | undefined {
    return super.objectStore()
  }
  defaultOnError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    super.onError(error, phase, doId)
  }
}

const cores = new WeakMap<object, Core>()

function coreOf(instance: object): Core {
  const core = cores.get(instance)
  if (!core) throw new InvalidArgumentError('this', 'not a constructed StatelessDurableObject')
  return core
}

/**
 * A Durable Object class whose state lives in your database under a lease, as {@link StatelessDO}'s
 * does, and which is a real `DurableObject` of `cloudflare:workers`: bind it in wrangler.jsonc, type
 * its namespace as `DurableObjectNamespace<Room>`, call its methods on a stub over RPC.
 *
 * **What runs as a turn** (one at a time per object, in arrival order, with {@link storage} and
 * {@link lock}, under the lease; its writes committed in one fenced flush before the call returns):
 * - `fetch(request)`, through {@link handleRequest}, answered as StatelessDO answers;
 * - every method of your subclass (and of its parents up to this class), public or TypeScript-private,
 *   including `alarm()` and the `webSocket*` handlers the platform delivers; except `constructor`,
 *   `fetch`, and the hooks this class calls itself (`createGuard`, `handleRequest`, `doId`, `doIdFor`,
 *   `acquireOptions`, `turnOptions`, `onError`, `objectStore`, `activationOptions`, `onStart`,
 *   `readOnlyRequest`, `handleReadOnlyRequest`). Getters, setters, fields and `#private` methods are
 *   not turns: they run inside the turn that uses them.
 *
 * A turn method calling another turn method of the same object (`this.other()`) would queue behind
 * itself (and fail with `TurnTimeoutError` after `maxWaitMs`): share code through `#private` methods
 * or functions. `super.method()` is fine (it runs inside the caller's turn).
 *
 * **Errors**: a turn rejects with the library's typed errors (`LockLostError`,
 * `StaleFencingTokenError`, `LockContendedError`, `ActivationEndedError`, `TurnTimeoutError`,
 * `QueueFullError`, `StoreUnavailableError`), and with what the method itself throws. Across RPC
 * workerd does not keep the class (the caller gets a plain `Error`, `remote: true`), and what it keeps
 * depends on its version (own properties such as `name`, `code`, `doId`; or only the message,
 * prefixed `'<name>: '`): {@link remoteErrorName} reads the class name from either.
 * `LockLostError` / `StaleFencingTokenError`: the lease was lost and nothing of the call was written;
 * `LockContendedError`: another node holds the object (retry later, or set {@link turnOptions}).
 *
 * @example
 * ```ts
 * import { StatelessDurableObject } from 'stateless-do/workers'
 * export class Counter extends StatelessDurableObject<Env> {
 *   protected createGuard() { return guardFor(this.env) }   // one guard per isolate
 *   async increment(by: number): Promise<number> {          // an RPC method: a turn
 *     const n = ((await this.storage.get<number>('n')) ?? 0) + by
 *     await this.storage.put('n', n)                           // committed before the caller hears n
 *     return n
 *   }
 *   async alarm() { await this.storage.delete('n') }          // also a turn
 * }
 * // in the Worker: const n = await env.COUNTERS.getByName('a').increment(1)
 * ```
 */
export abstract class StatelessDurableObject<Env = unknown> extends DurableObject<Env> {
  /**
   * Called by the runtime. No I/O happens here; the subclass's turn methods are wrapped on the first
   * construction of its class.
   *
   * @param ctx - the Durable Object's state (`this.ctx`).
   * @param env - the Worker's bindings (`this.env`).
   */
  constructor(ctx: State, env: Env) {
    super(ctx, env)
    cores.set(this, new Core(this as unknown as Hooks, ctx, env))
    wrapTurnMethods(Object.getPrototypeOf(this) as object, StatelessDurableObject.prototype, (instance, call) =>
      coreOf(instance).turn(() => call()),
    )
  }

  /** Which guard (node) coordinates this object: return one per isolate. Called once per instance. */
  protected abstract createGuard(): ConsistencyGuard

  /**
   * Serves a `fetch` as a turn under the lease (see `StatelessDO.handleRequest`). Default: 404
   * `no_fetch` (an object used over RPC only).
   */
  protected handleRequest(_request: Request, _lock: Lock, _signal: AbortSignal): Promise<Response> | Response {
    return Response.json({ error: 'no_fetch', message: 'this object is used over RPC' }, { status: 404 })
  }

  /**
   * The DO id to lock, for every turn. Default: `ctx.id.toString()` (the same however the object was
   * addressed). Override to lock by a name of your own (e.g. to share the lease with a plain-Worker
   * route that only knows the name); it must be the same for every turn of the object.
   */
  protected doId(): string {
    return this.ctx.id.toString()
  }

  /** The DO id for `fetch`. Default: {@link doId} (the request is not used). */
  protected doIdFor(_request: Request): string {
    return this.doId()
  }

  /** Acquire options for a `fetch` (see `StatelessDO.acquireOptions`). Default: {@link turnOptions}. */
  protected acquireOptions(_request: Request): AcquireOptions {
    return this.turnOptions()
  }

  /**
   * How an RPC call or alarm waits when another node holds the object. Default `{}`: try once (the
   * call rejects with `LockContendedError` at once), as `fetch` does.
   */
  protected turnOptions(): TurnOptions {
    return {}
  }

  /** Failure report of `fetch` (see `StatelessDO.onError`). Default: `console.error`. */
  protected onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    coreOf(this).defaultOnError(error, phase, doId)
  }

  /** Where the object's rows live (see `StatelessDO.objectStore`). Default: the guard's lock store's `objects`. */
  protected objectStore(): ObjectStore | undefined {
    return coreOf(this).defaultObjectStore()
  }

  /**
   * How objects stay active between turns (see `StatelessDO.activationOptions`). Default `{}` (idle
   * 10 s). Must not be `false`: RPC calls and alarms are turns of an activation.
   */
  protected activationOptions(): StatelessDOActivationOptions | false {
    return {}
  }

  /** Runs once per activation before its first turn, with {@link storage} (see `StatelessDO.onStart`). */
  protected onStart(): void | Promise<void> {}

  /** Whether a `fetch` is read-only (see `StatelessDO.readOnlyRequest`). Default: none is. */
  protected readOnlyRequest(_request: Request): boolean {
    return false
  }

  /** Serves a read-only `fetch` from committed state (see `StatelessDO.handleReadOnlyRequest`). Default: throws (500). */
  protected handleReadOnlyRequest(_request: Request, _storage: ObjectStorage): Promise<Response> | Response {
    throw new InvalidArgumentError('handleReadOnlyRequest', 'readOnlyRequest() chose this request: override it')
  }

  /** `fetch` as a turn under the lease (see `StatelessDO.fetch`): the same answers. */
  override async fetch(request: PlatformRequest): Promise<PlatformResponse> {
    return (await coreOf(this).fetch(request as unknown as Request)) as unknown as PlatformResponse
  }

  /**
   * The object's fenced storage (Durable Object storage's API), for the turn running now: its writes
   * are committed with the lease check before the turn's caller hears back. `this.ctx.storage` is the
   * platform's own, unfenced storage (use it for alarms: `this.ctx.storage.setAlarm`). Outside a turn
   * it throws `InvalidArgumentError` naming `storage`.
   */
  protected get storage(): ObjectStorage {
    return coreOf(this).currentStorage()
  }

  /** The lease of the turn running now (its `fencingToken`, `nodeId`, `signal`). Throws outside a turn. */
  protected get lock(): Lock {
    const lock = coreOf(this).lock
    if (!lock) throw new InvalidArgumentError('lock', 'there is a lease only inside a turn')
    return lock
  }

  /** The guard (created by {@link createGuard} on first use): e.g. for `shutdown` in tests. */
  protected get guard(): ConsistencyGuard {
    return coreOf(this).currentGuard()
  }

  /**
   * Runs `body` as a turn explicitly: for work that starts outside a turn method (a `waitUntil`, a
   * timer). Inside a turn, call the code directly instead (a nested turn queues behind its caller).
   */
  protected turn<T>(body: (lock: Lock, signal: AbortSignal) => T | Promise<T>): Promise<T> {
    return coreOf(this).turn(body)
  }

  /** `ctx.blockConcurrencyWhile` for this object's turns: no other turn starts until `fn` settles. Only inside a turn. */
  protected blockConcurrencyWhile<T>(fn: () => T | Promise<T>): Promise<T> {
    return coreOf(this).block(fn)
  }
}
