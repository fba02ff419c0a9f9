/**
 * `main` of the workers project (wrangler.jsonc): examples/worker's Worker and `Room` exactly as a user
 * deploys them (`stateless-do` is aliased to src/index.ts, see project.ts), plus `TestRoom`, a Room
 * with hooks the tests drive. The tests import this module too and get the same instance
 * (@cloudflare/vitest-plugin guarantees it), so they share `tagged()`/`open()` with the objects.
 */
import { Room } from '../../examples/worker/src/index.js'
import {
  D1LockStore,
  HybridConsistencyGuard,
  LockLostError,
  StaleFencingTokenError,
  fencedWrite,
  type AcquireOptions,
  type ConsistencyGuard,
  type Lock,
  type StatelessDOActivationOptions,
  type StatelessDOPhase,
} from '../../src/index.js'

export { default, Room, Counter } from '../../examples/worker/src/index.js'

/** What a tagged request saw in its handler. */
export interface Tagged {
  doId: string
  token: number
  node: string
  /** Settles when the handler finishes: how it ended, and its lease signal at that moment. */
  outcome: Promise<{ error: unknown; aborted: boolean; reason: unknown }>
}

type Outcome = { error: unknown; aborted: boolean; reason: unknown }

// The tests and the objects talk through plain maps that each side reads with timers of its own, never
// through a promise one side resolves for the other: in workerd, a promise resolved from another
// context (the test's, or another object's) continues in THAT context, and I/O made there fails
// ("Cannot perform I/O on behalf of a different Durable Object").
const entered = new Map<string, Omit<Tagged, 'outcome'>>()
const outcomes = new Map<string, Outcome>()
const gates = new Set<string>()

/** Resolves with `get()` once it is defined, looking every millisecond on the caller's own timers. */
function poll<T>(get: () => T | undefined): Promise<T> {
  return new Promise<T>((resolve) => {
    const look = () => {
      const value = get()
      if (value === undefined) setTimeout(look, 1)
      else resolve(value)
    }
    look()
  })
}

/** Resolves when the request sent with `?tag=<tag>` is inside its handler, holding the lease. */
export function tagged(tag: string): Promise<Tagged> {
  return poll(() => entered.get(tag)).then((seen) => ({ ...seen, outcome: poll(() => outcomes.get(tag)) }))
}

/** Lets the request sent with `?tag=<tag>&gate` go on into the example's handler. */
export function open(tag: string): void {
  gates.add(tag)
}

/**
 * How long a TestRoom stays active without a request, ms: short, so that a test can see its lease
 * given back (the example's Room keeps a Durable Object's lease for the default 10 s).
 */
export const TEST_ROOM_IDLE_MS = 50

// TestRoom's own node (guard and lock store over the same D1 tables as the example's): a guard's
// objects share one activation registry with the settings of its first request, so TestRoom's
// short idleMs needs a guard of its own. To the example's Room it is another node.
let testGuard: HybridConsistencyGuard | undefined

/**
 * The example's Room with test hooks, all opt-in per request:
 * - `?tag=<t>`: report the lease to `tagged(t)` on entering the handler, and the outcome when leaving;
 * - `&gate`: then wait for `open(t)` before running the example's handler;
 * - `?ttl=ms`: lease length, if this request starts the activation (short leases for the lost-lease tests);
 * - `?missing-table`: first a fenced write to a table that does not exist.
 *
 * It runs on a node of its own (its own guard), with activations idle after {@link TEST_ROOM_IDLE_MS}.
 */
export class TestRoom extends Room {
  protected override createGuard(): ConsistencyGuard {
    return (testGuard ??= new HybridConsistencyGuard({
      store: new D1LockStore(this.env.DB),
      nodeId: `test-room-${crypto.randomUUID()}`,
    }))
  }

  protected override activationOptions(): StatelessDOActivationOptions {
    return { idleMs: TEST_ROOM_IDLE_MS }
  }

  protected override acquireOptions(request: Request): AcquireOptions {
    const ttl = new URL(request.url).searchParams.get('ttl')
    return { ...super.acquireOptions(request), ...(ttl === null ? {} : { ttlMs: Number(ttl) }) }
  }

  /** Lost leases and stale writes are what the tests provoke: they check them through the answers. */
  protected override onError(error: unknown, phase: StatelessDOPhase, doId: string | undefined): void {
    if (error instanceof LockLostError || error instanceof StaleFencingTokenError) return
    super.onError(error, phase, doId)
  }

  protected override async handleRequest(request: Request, lock: Lock, signal: AbortSignal): Promise<Response> {
    const params = new URL(request.url).searchParams
    if (params.has('missing-table')) {
      // The application's own SQL failing in D1 (deterministic): what StatelessDO answers for it.
      await fencedWrite(new D1LockStore(this.env.DB), lock, [{ sql: 'INSERT INTO no_such_table (x) VALUES (1)' }])
    }
    const tag = params.get('tag')
    if (tag === null) return super.handleRequest(request, lock, signal)
    entered.set(tag, { doId: lock.doId, token: lock.fencingToken, node: lock.nodeId })
    try {
      if (params.has('gate')) await poll(() => (gates.has(tag) ? true : undefined))
      const response = await super.handleRequest(request, lock, signal)
      outcomes.set(tag, { error: undefined, aborted: signal.aborted, reason: signal.reason })
      return response
    } catch (error) {
      outcomes.set(tag, { error, aborted: signal.aborted, reason: signal.reason })
      throw error
    }
  }
}

// Real Durable Object storage for storage-semantics.test.ts (bindings STORAGE_REFERENCE, STORAGE_REFERENCE_KV).
export { StorageReference, StorageReferenceKv } from './storage-reference.js'

// StatelessDurableObject over RPC for durable-object.test.ts (binding RPC_COUNTERS).
export { RpcCounter } from './durable-object-classes.js'
