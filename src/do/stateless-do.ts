import {
  InvalidArgumentError,
  LockContendedError,
  LockError,
  LockLostError,
  StaleFencingTokenError,
  type LockErrorBody,
} from '../errors.js'
import type { AcquireOptions, ConsistencyGuard, Lock, LockResult } from '../guard/types.js'
import { assertDoId } from '../validate.js'
import { lockedRetryAfterSeconds } from './retry-after.js'

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
 * (`acquireOptions`: a server fault), taking the lease, the handler, or giving the lease back.
 */
export type StatelessDOPhase = 'doId' | 'acquireOptions' | 'acquire' | 'handler' | 'release'

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
   * client goes away; for that, use `request.signal` (see {@link fetch}).
   */
  protected abstract handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> | Response

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

  /** The guard (created by {@link createGuard} on first use). */
  protected get guard(): ConsistencyGuard {
    this.#guard ??= this.createGuard()
    return this.#guard
  }

  /**
   * Serves `request` under the object's lease: acquire, then {@link handleRequest} with heartbeats
   * keeping the lease, then release (through `ctx.waitUntil`, off the response path, when there is
   * one). Answers without running the handler when it cannot: see the README's "Answers from fetch".
   * Errors a handler throws that are not {@link LockError}s propagate (the lease is released first).
   *
   * **A held object** is answered 503 `locked`, with `retryAfterMs` in the body the time left on the
   * holder's lease: an upper bound, since a StatelessDO holder releases right after its handler and
   * only a crashed one keeps the object that long. `Retry-After` is therefore `1` (the smallest HTTP
   * unit) while the holder's lease is young, held for less than a heartbeat period (a third of the
   * lease length this request uses), and the time left on it, in whole seconds rounded up, once it is
   * older (a long handler kept alive by heartbeats, or a holder that stopped heartbeating). How long
   * it was held comes from the holder's `acquiredAt` when the guard reports it, else from when its
   * lease was last written (acquired or refreshed).
   *
   * **The client going away** (`request.signal`, which workerd fires only with the
   * `enable_request_signal` compatibility flag): while the lease is being taken, the acquire stops,
   * any lease taken is given back and the answer is 499 (nothing reported). During the handler,
   * nothing is interrupted: the handler runs to its end unless it listens to `request.signal` itself
   * (a handler that rejects with that signal's reason is answered 499, not reported), and the lease
   * is released after it either way. With `ctx.waitUntil` (a Worker's `ExecutionContext`), the
   * handler and the release are registered at once, so the runtime keeps them running after the
   * client left (Workers allows such work about 30 s more); without it, a runtime that cancels the
   * request stops both, and the lease runs out by its TTL.
   */
  async fetch(request: Request): Promise<Response> {
    let doId: string
    try {
      const id: unknown = this.doIdFor(request)
      assertDoId(id) // here, so that an InvalidArgumentError from the acquire is about the options
      doId = id
    } catch (error) {
      this.onError(error, 'doId', undefined)
      return json(400, { error: 'bad_request', message: messageOf(error) })
    }

    let options: AcquireOptions
    try {
      options = { signal: request.signal, ...this.acquireOptions(request) }
    } catch (error) {
      return this.#answer(error, 'acquireOptions', doId, request)
    }

    const guard = this.guard
    let lock: Lock
    try {
      const result = await guard.acquire(doId, options)
      if (!result.acquired) return lockedResponse(doId, result, leaseMsOf(options, guard))
      lock = result.lock
    } catch (error) {
      return this.#answer(error, 'acquire', doId, request)
    }

    // Registered before the handler runs: the runtime then keeps the handler and the release going
    // if the client leaves (a Worker cancels a request whose client went away otherwise).
    let settle!: (freed: Promise<boolean>) => void
    const released = new Promise<boolean>((resolve) => (settle = resolve))
    const waitUntil = typeof this.ctx?.waitUntil === 'function' ? this.ctx.waitUntil.bind(this.ctx) : undefined
    waitUntil?.(released)

    // The handler learned the lease was gone (lost signal, or a fenced write refused): reported as such,
    // and its release is not a second alarm.
    let lost = false
    try {
      return await this.handleRequest(request, lock, lock.signal)
    } catch (error) {
      lost = error instanceof LockLostError || error instanceof StaleFencingTokenError || lock.signal.aborted
      return this.#answer(error, 'handler', doId, request, lost ? lock : undefined)
    } finally {
      settle(this.#release(guard, lock, doId, !lost && !lock.signal.aborted))
      // Off the response path when the runtime keeps it alive; otherwise finish it first.
      if (!waitUntil) await released
    }
  }

  /**
   * The one table: how an error that ends a request is answered and reported. The errors know their HTTP
   * form ({@link LockError.toResponse}); what depends on where it happened is decided here.
   */
  #answer(error: unknown, phase: StatelessDOPhase, doId: string, request: Request, lostLock?: Lock): Response {
    if (request.signal?.aborted && error === request.signal.reason) {
      // The client went away (at acquire, the guard gave back any lease it got). Nothing failed:
      // no report, and an answer nobody will read.
      return json(499, { error: 'client_closed_request', doId })
    }
    if (lostLock) {
      // The lease went away under the handler; its fenced writes were refused, so nothing half-done
      // is visible. Another node may serve the retry.
      this.onError(error, phase, doId)
      return (
        error instanceof LockLostError || error instanceof StaleFencingTokenError
          ? error
          : new LockLostError(doId, lostLock.fencingToken, 'the lease ended under the handler')
      ).toResponse(doId)
    }
    if (phase === 'acquireOptions' || (phase === 'acquire' && error instanceof InvalidArgumentError)) {
      // The id was checked before the acquire, so what the guard refused is this server's own
      // acquireOptions(): a 500 that does not show the client the internal message.
      this.onError(error, 'acquireOptions', doId)
      return json(500, { error: 'internal_error', doId })
    }
    // Every other library error answers as it says (a store outage is a 503; a refused statement, or
    // a store failure a retry would only repeat, is a 500). Anything else is a bug: let it through.
    if (!(error instanceof LockError)) throw error
    this.onError(error, phase, doId)
    return error.toResponse(doId)
  }

  /**
   * Gives the lease back. The guard's release never rejects (store trouble goes to its onEvent
   * hook), so a lease this node still trusted that the release did not free is reported here: it
   * keeps others out until its TTL.
   */
  #release(guard: ConsistencyGuard, lock: Lock, doId: string, trusted: boolean): Promise<boolean> {
    let releasing: Promise<boolean>
    try {
      releasing = guard.release(lock)
    } catch (error) {
      releasing = Promise.reject(error) // a guard that throws must not leave waitUntil's promise pending
    }
    return releasing.then(
      (freed) => {
        if (!freed && trusted) {
          this.onError(
            new LockLostError(
              doId,
              lock.fencingToken,
              'release did not free the lease (the store failed or no longer had it); it runs out by its TTL',
            ),
            'release',
            doId,
          )
        }
        return freed
      },
      (error: unknown) => {
        this.onError(error, 'release', doId)
        return false
      },
    )
  }
}

/**
 * 503 `locked`: `retryAfterMs` in the body is the time left on the holder's lease (an upper bound);
 * `Retry-After` is when the object can most likely be had ({@link lockedRetryAfterSeconds}).
 */
function lockedResponse(
  doId: string,
  result: Extract<LockResult, { acquired: false }>,
  leaseMs: number | undefined,
): Response {
  const holder = result.holder && { nodeId: result.holder.nodeId, fencingToken: result.holder.fencingToken }
  const retryAfterSeconds = lockedRetryAfterSeconds({
    holder: result.holder,
    retryAfterMs: result.retryAfterMs,
    leaseMs,
  })
  return new LockContendedError(doId, result.retryAfterMs, holder, { retryAfterSeconds }).toResponse()
}

/** The lease length this request asked for: its own `ttlMs`, else the guard's (HybridConsistencyGuard has one). */
function leaseMsOf(options: AcquireOptions, guard: ConsistencyGuard): number | undefined {
  if (typeof options.ttlMs === 'number') return options.ttlMs
  const ttlMs = (guard as { ttlMs?: unknown }).ttlMs
  return typeof ttlMs === 'number' ? ttlMs : undefined
}

function json(status: number, body: LockErrorBody): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
