/**
 * Type test (checked by `npm run typecheck`, never run): a `StatelessDurableObject` subclass is a
 * Durable Object class as `@cloudflare/workers-types` sees it. Each line would fail to compile if the
 * class were not branded `DurableObject` (TS2741 `[__DURABLE_OBJECT_BRAND]`), or if its stubs were
 * untyped (the `@ts-expect-error` lines would then be unused errors themselves).
 */
import type { DurableObjectNamespace, DurableObjectStub } from '@cloudflare/workers-types'
import type { RpcCounter, TurnSeen } from './durable-object-classes.js'

declare const counters: DurableObjectNamespace<RpcCounter>
const stub: DurableObjectStub<RpcCounter> = counters.get(counters.idFromName('a'))

/** An RPC method's result is the method's own, as a promise. */
export const seen: Promise<TurnSeen> = stub.whoami()
/** Arguments are checked against the method's parameters. */
export const incremented: Promise<{ n: number; seen: TurnSeen }> = stub.increment(1, 0)
// @ts-expect-error: increment takes a number
stub.increment('1')
// @ts-expect-error: not a method of RpcCounter
stub.noSuchMethod()
// @ts-expect-error: protected members are not part of the stub
stub.createGuard()
