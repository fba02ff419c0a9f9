/**
 * One StatelessDO instance serving several objects at once (a Node server that routes every request
 * through one instance, `doIdFor` from the path). Turns of one object never overlap, but turns of two
 * objects may: `this.storage` must then never hand one object's storage to the other's handler (that
 * would write it under the other object's lease, which the fence would let through).
 */
import { afterEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  MemoryLockStore,
  StatelessDO,
  type ConsistencyGuard,
  type Lock,
  type ObjectStorage,
  type StatelessDOActivationOptions,
} from '../../src/index.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Env {
  guard: HybridConsistencyGuard
  activation: StatelessDOActivationOptions | false
  /** Use the handler's storage argument instead of `this.storage`. */
  argument: boolean
}

class Counter extends StatelessDO<Env> {
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override activationOptions(): StatelessDOActivationOptions | false {
    return this.env.activation
  }
  protected override doIdFor(request: Request): string {
    return new URL(request.url).pathname.slice(1)
  }
  protected override onError(): void {}
  protected async handleRequest(
    _request: Request,
    lock: Lock,
    _signal: AbortSignal,
    storage: ObjectStorage | undefined,
  ): Promise<Response> {
    const s = () => (this.env.argument ? storage! : this.storage)
    const n = ((await s().get<number>('n')) ?? 0) + 1
    await sleep(20) // the other object's turn starts meanwhile
    await s().put('n', n)
    await s().put('owner', lock.doId)
    return Response.json({ n })
  }
}

const post = (id: string) => new Request(`https://do/${id}`, { method: 'POST' })

describe('one StatelessDO instance serving several objects at once', () => {
  const guards: HybridConsistencyGuard[] = []
  afterEach(async () => {
    await Promise.all(guards.splice(0).map((g) => g.shutdown()))
  })

  for (const activation of [{}, false] as const) {
    const mode = activation === false ? 'a lease per request' : 'activations'
    it(`${mode}: the storage argument is each turn's own object's`, async () => {
      const store = new MemoryLockStore()
      const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
      guards.push(guard)
      const counter = new Counter(undefined, { guard, activation, argument: true })
      const answers = await Promise.all([counter.fetch(post('a')), counter.fetch(post('b'))])
      expect(answers.map((r) => r.status)).toEqual([200, 200])
      for (const id of ['a', 'b']) {
        const rows = await store.objects.getCommitted(id, ['n', 'owner'])
        expect([...rows.keys()]).toEqual(['n', 'owner'])
        expect(rows.get('owner')).toContain(id) // each object's rows name that object
      }
    })

    it(`${mode}: this.storage refuses to guess (no write lands in the other object)`, async () => {
      const store = new MemoryLockStore()
      const guard = new HybridConsistencyGuard({ store, nodeId: 'node-a' })
      guards.push(guard)
      const counter = new Counter(undefined, { guard, activation, argument: false })
      const answers = await Promise.all([counter.fetch(post('a')), counter.fetch(post('b'))])
      // At least one turn saw the overlap and failed loudly; none was answered with another's state.
      expect(answers.some((r) => r.status !== 200)).toBe(true)
      for (const id of ['a', 'b']) {
        const owner = (await store.objects.getCommitted(id, ['owner'])).get('owner')
        if (owner !== undefined) expect(owner).toContain(id)
      }
      // Once the overlap is over, this.storage works again on the same instance.
      expect((await counter.fetch(post('a'))).status).toBe(200)
    })
  }
})
