/**
 * Work a guard's `shutdown()` lets finish before it ends its leases: the object layer's activations
 * registered on the guard drain (queued turns run, their writes flush, their leases are released by
 * the activations themselves). Without it, ending the leases first would fire their signals and end
 * every activation abruptly: queued turns refused 503 `lease_lost`, buffered writes dropped.
 *
 * A WeakMap keyed by the guard rather than a method of it: the lock layer knows nothing of the object
 * layer (src/do registers here), and `ConsistencyGuard` stays the seam it is.
 *
 * @module
 */

/** How long a `shutdown()` without `timeoutMs` lets registered work drain before ending the leases, ms. */
export const DEFAULT_DRAIN_MS = 10_000

const hooks = new WeakMap<object, Set<() => Promise<unknown>>>()

/** Has `guard.shutdown()` await `drain` before it ends the guard's leases (bounded; see {@link drainBeforeShutdown}). */
export function beforeShutdown(guard: object, drain: () => Promise<unknown>): void {
  let set = hooks.get(guard)
  if (!set) hooks.set(guard, (set = new Set()))
  set.add(drain)
}

/**
 * Runs every drain registered for `guard`, together, and waits for them at most `ms`. Resolves
 * `true` if they all settled in time (a drain that rejects counts as settled: the leases end anyway).
 */
export async function drainBeforeShutdown(guard: object, ms: number): Promise<boolean> {
  const set = hooks.get(guard)
  if (!set || set.size === 0) return true
  const drains = Promise.allSettled([...set].map((drain) => Promise.resolve().then(drain))).then(() => true)
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)))
  try {
    return await Promise.race([drains, timeout])
  } finally {
    clearTimeout(timer)
  }
}
