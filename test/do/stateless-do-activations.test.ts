/**
 * StatelessDO with activations (the default): an object's requests on one node are turns of one
 * activation, run one at a time in arrival order, kept warm between requests, and let go when idle
 * (docs/design.md invariants 9-13).
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  MemoryLockStore,
  StatelessDO,
  StatementError,
  type ConsistencyGuard,
  type StatelessDOActivationOptions,
} from '../../src/index.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Env {
  guard: HybridConsistencyGuard
  activation?: StatelessDOActivationOptions
  /** Records every turn's enter and exit, to prove turns never overlap. */
  trace: string[]
  starts?: number
}

/** A counter whose increments read, pause, then write: overlapping turns would lose updates. */
class Counter extends StatelessDO<Env> {
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override activationOptions(): StatelessDOActivationOptions {
    return this.env.activation ?? {}
  }
  protected override async onStart(): Promise<void> {
    this.env.starts = (this.env.starts ?? 0) + 1
  }
  protected override onError(_error: unknown, _phase: string): void {}
  protected async handleRequest(request: Request): Promise<Response> {
    const id = new URL(request.url).searchParams.get('id') ?? '?'
    this.env.trace.push(`enter ${id}`)
    try {
      const n = (await this.storage.get<number>('n')) ?? 0
      if (request.method === 'GET') return Response.json({ n })
      await sleep(1)
      await this.storage.put('n', n + 1)
      return Response.json({ n: n + 1 })
    } finally {
      this.env.trace.push(`exit ${id}`)
    }
  }
}

const object = { id: { toString: () => 'counter' } }
const post = (id: number | string) => new Request(`https://do/?id=${id}`, { method: 'POST' })

/** No two turns overlap: every `enter` is followed by its own `exit` before the next `enter`. */
function expectOneAtATime(trace: string[]): void {
  for (let i = 0; i < trace.length; i += 2) {
    expect(trace[i]!.startsWith('enter ')).toBe(true)
    expect(trace[i + 1]).toBe(`exit ${trace[i]!.slice('enter '.length)}`)
  }
}

describe('StatelessDO activations', () => {
  const guards: HybridConsistencyGuard[] = []
  const guardOn = (store: MemoryLockStore, nodeId = 'node-a') => {
    const guard = new HybridConsistencyGuard({ store, nodeId })
    guards.push(guard)
    return guard
  }
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  for (const concurrent of [10, 50]) {
    it(`serves ${concurrent} concurrent requests to one object: all 200, one at a time, in arrival order, none lost`, async () => {
      const store = new MemoryLockStore()
      const env: Env = { guard: guardOn(store), trace: [] }
      const responses = await Promise.all(
        Array.from({ length: concurrent }, (_, i) => new Counter(object, env).fetch(post(i))),
      )
      expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200))
      const values = await Promise.all(responses.map(async (r) => ((await r.json()) as { n: number }).n))
      expect(values).toEqual(values.map((_, i) => i + 1)) // arrival order: request i saw i increments before it
      expectOneAtATime(env.trace)
      expect(env.trace.filter((t) => t.startsWith('enter'))).toEqual(values.map((_, i) => `enter ${i}`))
      const read = await new Counter(object, env).fetch(new Request('https://do/?id=read'))
      expect(await read.json()).toEqual({ n: concurrent })
      expect(env.starts).toBe(1) // one activation, one onStart
      expect((await store.get('counter'))?.fencingToken).toBe(1) // one lease for all of them
    })
  }

  it('keeps the lease warm between requests, and gives it back once idle for idleMs', async () => {
    const store = new MemoryLockStore()
    const env: Env = { guard: guardOn(store), trace: [], activation: { idleMs: 50 } }
    expect((await new Counter(object, env).fetch(post(1))).status).toBe(200)
    expect((await store.get('counter'))?.held).toBe(true)
    await sleep(10)
    expect((await new Counter(object, env).fetch(post(2))).status).toBe(200)
    expect((await store.get('counter'))?.fencingToken).toBe(1) // still the same lease
    await sleep(150)
    expect((await store.get('counter'))?.held).toBe(false)
    // A new activation takes the next token and still sees every acknowledged write.
    const res = await new Counter(object, env).fetch(post(3))
    expect(await res.json()).toEqual({ n: 3 })
    expect((await store.get('counter'))?.fencingToken).toBe(2)
    expect(env.starts).toBe(2)
  })

  it('answers 503 locked on another node while the object is active here, and serves it there once idle', async () => {
    const store = new MemoryLockStore()
    const here: Env = { guard: guardOn(store, 'node-a'), trace: [], activation: { idleMs: 50 } }
    const there: Env = { guard: guardOn(store, 'node-b'), trace: [], activation: { idleMs: 50 } }
    expect((await new Counter(object, here).fetch(post('a1'))).status).toBe(200)
    const refused = await new Counter(object, there).fetch(post('b1'))
    expect(refused.status).toBe(503)
    const body = (await refused.json()) as { error: string; holder: string; retryAfterMs: number }
    expect(body).toMatchObject({ error: 'locked', holder: 'node-a' })
    // The holder lets go once idle for idleMs (50 ms here): not the ~30 s left on its lease.
    expect(refused.headers.get('Retry-After')).toBe('1')
    expect(body.retryAfterMs).toBeGreaterThan(20_000)
    await sleep(150)
    const served = await new Counter(object, there).fetch(post('b2'))
    expect(await served.json()).toEqual({ n: 2 })
  })

  it("reports a handler's own failure in phase handler, and a failed flush in phase flush", async () => {
    const store = new MemoryLockStore()
    const errors: string[] = []
    class Reporting extends Counter {
      protected override onError(_error: unknown, phase: string): void {
        errors.push(phase)
      }
      protected override async handleRequest(request: Request): Promise<Response> {
        if (new URL(request.url).searchParams.has('bad')) {
          await this.storage.get('n')
          throw new StatementError('no such table: rooms', { sqliteCode: 'SQLITE_ERROR' })
        }
        return super.handleRequest(request)
      }
    }
    const guard = guardOn(store)
    const env: Env = { guard, trace: [] }
    const bad = await new Reporting(object, env).fetch(new Request('https://do/?bad', { method: 'POST' }))
    expect(bad.status).toBe(500)
    expect(errors).toEqual(['handler'])
    // A write whose flush is fenced out: the lease was taken away before the turn ended.
    const pending = new Reporting(object, env).fetch(post('late'))
    await store.forceRelease('counter')
    expect((await guardOn(store, 'node-b').acquire('counter')).acquired).toBe(true)
    const late = await pending
    expect(late.status).toBe(503)
    expect(await late.json()).toEqual({ error: 'lease_lost', doId: 'counter' })
    expect(errors).toEqual(['handler', 'flush'])
  })

  it('fails the turns queued behind a lost lease with 503 lease_lost, and loses nothing it acknowledged', async () => {
    const store = new MemoryLockStore()
    const guard = guardOn(store)
    const env: Env = { guard, trace: [] }
    expect(await (await new Counter(object, env).fetch(post(0))).json()).toEqual({ n: 1 })
    // The lease is taken away (evicted by an operator) while more requests come in.
    const pending = Array.from({ length: 5 }, (_, i) => new Counter(object, env).fetch(post(i + 1)))
    await store.forceRelease('counter')
    await guard.refresh(guard.heldLocks[0]!) // the heartbeat finds the lease gone: its signal fires
    const responses = await Promise.all(pending)
    const ok = responses.filter((r) => r.status === 200).length
    for (const r of responses.filter((x) => x.status !== 200)) {
      expect(r.status).toBe(503)
      expect(((await r.json()) as { error: string }).error).toMatch(/^(lease_lost|activation_ended)$/)
    }
    // Every acknowledged increment is there, and nothing else.
    const res = await new Counter(object, env).fetch(new Request('https://do/?id=read'))
    expect(await res.json()).toEqual({ n: 1 + ok })
  })

  it("guard.shutdown() lets the queued requests run and their writes commit before it ends the guard's leases", async () => {
    const store = new MemoryLockStore()
    const guard = guardOn(store)
    const env: Env = { guard, trace: [] }
    const queued = Array.from({ length: 5 }, (_, i) => new Counter(object, env).fetch(post(i)))
    await sleep(0) // the first has taken the lease; the others wait for their turns
    const shutdown = await guard.shutdown()
    const responses = await Promise.all(queued)
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
    expect(shutdown).toMatchObject({ timedOut: false })
    // Committed, and the lease given back: another node takes the object at once and reads 5.
    const next = new Counter(object, { guard: guardOn(store, 'node-b'), trace: [] })
    expect(await (await next.fetch(new Request('https://do/?id=read'))).json()).toEqual({ n: 5 })
    // Requests after the shutdown are refused, typed.
    const late = await new Counter(object, env).fetch(post('late'))
    expect(late.status).toBe(503)
  })

  it("hands a warm activation's end to ctx.waitUntil once, not once per turn", async () => {
    const store = new MemoryLockStore()
    const env: Env = { guard: guardOn(store), trace: [], activation: { idleMs: 50 } }
    const waited: Array<Promise<unknown>> = []
    const ctx = { id: object.id, waitUntil: (promise: Promise<unknown>) => void waited.push(promise) }
    for (let i = 0; i < 20; i++) expect((await new Counter(ctx, env).fetch(post(i))).status).toBe(200)
    expect(waited).toHaveLength(1) // twenty turns of one activation: one registration
    await Promise.all(waited) // it ends once idle for 50 ms
    expect((await new Counter(ctx, env).fetch(post('next'))).status).toBe(200)
    expect(waited).toHaveLength(2) // a new activation: its own registration
  })

  it('refuses a class whose objectStore() differs from the one its guard already serves, naming objectStore', async () => {
    const store = new MemoryLockStore()
    const other = new MemoryLockStore()
    const env: Env = { guard: guardOn(store), trace: [] }
    expect((await new Counter(object, env).fetch(post(1))).status).toBe(200)
    class Elsewhere extends Counter {
      protected override objectStore() {
        return other.objects
      }
      protected override onError(error: unknown): void {
        this.env.trace.push(`error ${(error as { argument?: string }).argument}`)
      }
    }
    const res = await new Elsewhere({ id: { toString: () => 'elsewhere' } }, env).fetch(post(2))
    expect(res.status).toBe(500)
    expect(env.trace).toContain('error objectStore')
  })
})
