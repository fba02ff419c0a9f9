import {
  CorruptLockRowError,
  InvalidArgumentError,
  LockLostError,
  ShutdownError,
  StaleFencingTokenError,
  StoreUnavailableError,
} from '../errors.js'
import type { AcquireOptions, ConsistencyGuard, Lock } from '../guard/types.js'

/**
 * The parts of a Durable Object's `ctx` (DurableObjectState) or a Worker's `ExecutionContext` this
 * class uses. Structural, so the package needs no Workers types at run time.
 */
export interface StatelessDOContext {
  /** Present in a Durable Object: its id (`name` when made with `idFromName`). */
  id?: { toString(): string; name?: string }
  /** Keeps the release running after the response is sent. */
  waitUntil?(promise: Promise<unknown>): void
}

/** Where in `fetch` an error was reported. */
export type StatelessDOPhase = 'doId' | 'acquire' | 'handler' | 'release'

/**
 * Base class for a Durable Object that any node may serve. Its `fetch` runs
 * acquire -> heartbeat -> {@link handleRequest} -> release, answering 503 with `Retry-After` when
 * another node holds the object and 503 when the lock store is unreachable.
 *
 * Subclasses implement two methods: {@link createGuard} (which guard and store serve this class;
 * return a module-level guard to share it across instances of an isolate) and {@link handleRequest}.
 * Override {@link doIdFor} to take the id from the request (plain Workers), {@link acquireOptions}
 * to wait for a busy object instead of answering 503, and {@link onError} to report failures.
 *
 * @example
 * ```ts
 * let guard: HybridConsistencyGuard | undefined // one per isolate, shared by its objects
 * export class Counter extends StatelessDO<Env> {
 *   protected createGuard() {
 *     return (guard ??= new HybridConsistencyGuard({ store: new D1LockStore(this.env.DB), nodeId: crypto.randomUUID() }))
 *   }
 *   protected async handleRequest(request: Request, lock: Lock) {
 *     await fencedWrite(new D1LockStore(this.env.DB), lock, [{ sql: 'UPDATE counters SET n = n + 1 WHERE id = ?', args: [lock.doId] }])
 *     return new Response('ok')
 *   }
 * }
 * ```
 */
export abstract class StatelessDO<Env = unknown> {
  protected readonly ctx: StatelessDOContext | undefined
  protected readonly env: Env
  #guard: ConsistencyGuard | undefined

  constructor(ctx: StatelessDOContext | undefined, env: Env) {
    this.ctx = ctx
    this.env = env
  }

  /** Which guard coordinates this object. Called once per instance, on the first request. */
  protected abstract createGuard(): ConsistencyGuard

  /** Serves one request while this node holds the lease; `signal` fires if the lease is lost. */
  protected abstract handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> | Response

  /**
   * The DO id to lock. Default: `ctx.id.toString()`, the hex id, which is the same however the object
   * was addressed (`idFromName`, `idFromString`); `ctx.id.name` is not used, because it is only there
   * for some of those (so one object could be locked under two keys). Override to lock by name, and
   * for plain Workers (no `ctx.id`).
   */
  protected doIdFor(_request: Request): string {
    const id = this.ctx?.id
    if (!id) throw new InvalidArgumentError('doIdFor', 'no ctx.id (not a Durable Object): override doIdFor(request)')
    return id.toString()
  }

  /** Acquire options per request. Default: try once (a busy object answers 503 at once). */
  protected acquireOptions(_request: Request): AcquireOptions {
    return {}
  }

  /** Failure report (store outage, failed release, lost lease). Default: `console.error`. */
  protected onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    console.error(`[stateless-do] ${phase} failed${doId === undefined ? '' : ` for "${doId}"`}:`, error)
  }

  /** The guard (created on first use). */
  protected get guard(): ConsistencyGuard {
    this.#guard ??= this.createGuard()
    return this.#guard
  }

  async fetch(request: Request): Promise<Response> {
    let doId: string
    try {
      doId = this.doIdFor(request)
    } catch (error) {
      this.onError(error, 'doId', undefined)
      return json(400, { error: 'bad_request', message: messageOf(error) })
    }

    const guard = this.guard
    let lock: Lock
    try {
      const result = await guard.acquire(doId, { signal: request.signal, ...this.acquireOptions(request) })
      if (!result.acquired) {
        return json(
          503,
          { error: 'locked', doId, holder: result.holder?.nodeId ?? null, retryAfterMs: result.retryAfterMs },
          { 'Retry-After': String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))) },
        )
      }
      lock = result.lock
    } catch (error) {
      if (request.signal?.aborted && error === request.signal.reason) {
        // The client went away while the lease was being taken (the guard gave back any lease it got).
        // Nothing failed: no report, and an answer nobody will read.
        return json(499, { error: 'client_closed_request', doId })
      }
      if (error instanceof StoreUnavailableError || error instanceof ShutdownError) {
        this.onError(error, 'acquire', doId)
        return json(503, { error: 'store_unavailable', doId }, { 'Retry-After': '1' })
      }
      if (error instanceof CorruptLockRowError) {
        // Someone wrote garbage into do_locks: report it loudly, but answer like an outage.
        this.onError(error, 'acquire', doId)
        return json(503, { error: 'corrupt_lock_row', doId, column: error.column }, { 'Retry-After': '1' })
      }
      if (error instanceof InvalidArgumentError) {
        this.onError(error, 'doId', doId)
        return json(400, { error: 'bad_request', message: error.message })
      }
      throw error
    }

    // The handler learned the lease was gone (lost signal, or a fenced write refused): reported as such,
    // and its release is not a second alarm.
    let lost = false
    try {
      return await this.handleRequest(request, lock, lock.signal)
    } catch (error) {
      lost = error instanceof LockLostError || error instanceof StaleFencingTokenError || lock.signal.aborted
      // The lease went away under the handler; its fenced writes were refused, so nothing half-done
      // is visible. Tell the client to retry (another node may serve it now).
      if (lost) {
        this.onError(error, 'handler', doId)
        return json(503, { error: 'lease_lost', doId }, { 'Retry-After': '1' })
      }
      // The handler's own store call (a fenced write) could not reach the database: an outage, as at
      // acquire. A fenced write is one transaction, so it either committed or left nothing behind.
      if (error instanceof StoreUnavailableError) {
        this.onError(error, 'handler', doId)
        return json(503, { error: 'store_unavailable', doId }, { 'Retry-After': '1' })
      }
      throw error
    } finally {
      // The guard's release never rejects (store trouble goes to its onEvent hook), so a lease this
      // node still trusted that the release did not free is reported here: it blocks others for a TTL.
      const trusted = !lost && !lock.signal.aborted
      const released = guard.release(lock).then(
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
      // Off the response path when the runtime can keep it alive; otherwise finish it first.
      if (typeof this.ctx?.waitUntil === 'function') this.ctx.waitUntil(released)
      else await released
    }
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  })
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
