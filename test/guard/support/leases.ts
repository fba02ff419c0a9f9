/** Helpers the guard tests share: a clock on (fake) `Date.now`, and reading a granted lease. */
import type { Clock, Lock, LockResult } from '../../../src/index.js'

/** A clock whose wall and monotonic time are `Date.now()`, so vitest's fake timers move both. */
export const clock: Clock = { now: () => Date.now(), monotonic: () => Date.now() }

/** The lock of a granted acquire; throws (failing the test) naming the holder otherwise. */
export function held(result: LockResult): Lock {
  if (!result.acquired) throw new Error(`expected the lease, ${result.holder?.nodeId} holds it`)
  return result.lock
}

/** Records the order in which `acquire`s resolve, by label. */
export function served(order: string[], label: string, acquiring: Promise<LockResult>): Promise<Lock> {
  return acquiring.then((result) => {
    order.push(label)
    return held(result)
  })
}
