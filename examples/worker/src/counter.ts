import type { ConsistencyGuard } from 'stateless-do'
import { StatelessDurableObject } from 'stateless-do/workers'
import { ensureSchema, guardFor, type Env } from './room.js'

/** How long after a counter's increment its alarm rings, if none is set: it then takes a snapshot. */
export const SNAPSHOT_AFTER_MS = 1_000

/** What `Counter.read()` returns. */
export interface CounterState {
  /** The count. */
  n: number
  /** What the last alarm recorded: the count then, when, and the lease's token. */
  snapshot: { n: number; at: number; token: number } | null
}

/**
 * The Durable Object form: a real `DurableObject` class (so `DurableObjectNamespace<Counter>` gives
 * typed stubs) whose RPC methods and `alarm()` are turns under the lease, one at a time, with
 * `this.storage` (in D1, fenced) and their writes committed before the caller hears back. A call that
 * finds the lease lost rejects, and nothing of it was written.
 */
export class Counter extends StatelessDurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    // The lease table must exist before the first turn takes a lease. A Durable Object may do I/O in
    // its constructor through blockConcurrencyWhile (no call is delivered until it settles).
    void ctx.blockConcurrencyWhile(() => ensureSchema(env))
  }

  // The isolate's guard, shared with Room (one node per isolate).
  protected createGuard(): ConsistencyGuard {
    return guardFor(this.env)
  }

  /** RPC (a turn): adds `by` and sets the alarm if none is set. Resolves once the write is durable. */
  async increment(by = 1): Promise<{ n: number; token: number }> {
    const n = ((await this.storage.get<number>('n')) ?? 0) + by
    await this.storage.put('n', n)
    // The alarm itself is the platform's (this.ctx.storage); what it does runs as a turn.
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + SNAPSHOT_AFTER_MS)
    return { n, token: this.lock.fencingToken }
  }

  /** RPC (a turn): the count and the last snapshot. */
  async read(): Promise<CounterState> {
    const [n, snapshot] = await Promise.all([
      this.storage.get<number>('n'),
      this.storage.get<CounterState['snapshot']>('snapshot'),
    ])
    return { n: n ?? 0, snapshot: snapshot ?? null }
  }

  /** Delivered by the platform, run as a turn: records the count under the lease. */
  override async alarm(): Promise<void> {
    const n = (await this.storage.get<number>('n')) ?? 0
    await this.storage.put('snapshot', { n, at: Date.now(), token: this.lock.fencingToken })
  }
}
