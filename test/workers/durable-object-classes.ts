/**
 * Test-only `StatelessDurableObject` subclasses, exported by example-worker.ts (the workers project's
 * `main`) and bound in wrangler.jsonc: `RpcCounter` (binding `RPC_COUNTERS`) records what each turn saw so
 * that durable-object.test.ts can check, over RPC, that calls are turns under the lease.
 */
import type { D1Database } from 'cloudflare:test'
import { D1LockStore, HybridConsistencyGuard, type ConsistencyGuard, type Lock } from '../../src/index.js'
import { StatelessDurableObject } from '../../src/workers/index.js'

/** The bindings RpcCounter uses. */
export interface RpcCounterEnv {
  DB: D1Database
}

/** What a turn saw: its lease, and how many turns of its object were running (1 = no overlap). */
export interface TurnSeen {
  doId: string
  token: number
  node: string
  running: number
}

// RpcCounter's node: one guard per isolate, over the default tables of env.DB (as the example's Room).
let guard: HybridConsistencyGuard | undefined

/** A counter in `this.storage`, driven over RPC. */
export class RpcCounter extends StatelessDurableObject<RpcCounterEnv> {
  #running = 0
  #maxRunning = 0

  protected createGuard(): ConsistencyGuard {
    return (guard ??= new HybridConsistencyGuard({
      store: new D1LockStore(this.env.DB),
      nodeId: `counter-${crypto.randomUUID()}`,
    }))
  }

  /**
   * A hook overridden (with the default's own answer): hooks run inside turns or before them, so an
   * override must not become a turn of its own.
   */
  protected override doIdFor(_request: Request): string {
    return this.doId()
  }

  /** The lease this turn runs under. */
  async whoami(): Promise<TurnSeen> {
    return this.#seen(this.lock)
  }

  /** Adds `by` to `n`, after `holdMs` inside the turn; returns the new value and what the turn saw. */
  async increment(by: number, holdMs = 0): Promise<{ n: number; seen: TurnSeen }> {
    this.#running++
    this.#maxRunning = Math.max(this.#maxRunning, this.#running)
    try {
      const seen = this.#seen(this.lock)
      const n = ((await this.storage.get<number>('n')) ?? 0) + by
      if (holdMs > 0) await new Promise((resolve) => setTimeout(resolve, holdMs))
      await this.storage.put('n', n)
      return { n, seen }
    } finally {
      this.#running--
    }
  }

  /** The most turns of this instance seen running at once. */
  async maxRunning(): Promise<number> {
    return this.#maxRunning
  }

  /** Sets the platform's alarm `inMs` from now (its `alarm()` is then delivered as a turn). */
  async scheduleAlarm(inMs: number): Promise<void> {
    await this.ctx.storage.setAlarm(Date.now() + inMs)
  }

  /** Delivered by the platform: a turn, whose writes are flushed like an RPC call's. */
  override async alarm(): Promise<void> {
    const seen = this.#seen(this.lock)
    await this.storage.put('alarm', { token: seen.token, running: seen.running }) // no increment() runs beside it
  }

  /** Throws its own error: the caller sees it as the method's, not as a lease failure. */
  async fails(): Promise<never> {
    throw new RangeError('the method itself failed')
  }

  protected override async handleRequest(_request: Request, lock: Lock): Promise<Response> {
    const n = ((await this.storage.get<number>('n')) ?? 0) + 1
    await this.storage.put('n', n)
    // `this.lock` is the fetch turn's lease too, as in an RPC method.
    return Response.json({ n, token: lock.fencingToken, sameLock: this.lock === lock })
  }

  #seen(lock: Lock): TurnSeen {
    return { doId: lock.doId, token: lock.fencingToken, node: lock.nodeId, running: this.#running }
  }
}
