/**
 * How long a client turned away from a held object should wait: the `Retry-After` of a `locked` answer
 * (docs/design.md invariant 14: it reflects when the object can really be taken).
 *
 * @module
 */
import { defaultHeartbeatMs } from '../guard/lease-rules.js'
import type { LockHolder } from '../guard/types.js'

/** What {@link lockedRetryAfterSeconds} reads: a contended acquire's answer and the lease length in use. */
export interface ContendedLease {
  /** The holder, as the store reported it (`acquiredAt` in store time, when the guard passes it on). */
  readonly holder?: (LockHolder & { readonly acquiredAt?: number }) | undefined
  /** Time left on the holder's lease, ms (`holder.expiresAt - store now`). */
  readonly retryAfterMs: number
  /** The lease length StatelessDO leases of this object use, ms; `undefined` if unknown. */
  readonly leaseMs: number | undefined
}

/**
 * The `Retry-After` (seconds) for an object another request holds.
 *
 * The time left on the holder's lease (`retryAfterMs`) is only an upper bound: a StatelessDO lease is
 * per request and released right after its handler, usually milliseconds later; only a holder that
 * crashed keeps the object until its lease runs out. So:
 *
 * - a **young** lease (held for less than the default heartbeat period of `leaseMs`, a third of
 *   it: {@link defaultHeartbeatMs}): `1`, the smallest unit HTTP has; the holder is most likely
 *   done within a request's time;
 * - an **old** one (held longer: a long handler kept alive by heartbeats, or a holder that stopped
 *   heartbeating): the time left on it, rounded up to seconds.
 *
 * How long it has been held is `store now - holder.acquiredAt` when the holder carries `acquiredAt`;
 * otherwise `leaseMs - retryAfterMs`, the time since the lease was last written (acquired or
 * refreshed), which tells a fresh or heartbeating holder (young) from one that missed its heartbeat
 * (old) but not a long-running heartbeating one. Without `leaseMs` there is no period to compare with,
 * and the time left is answered.
 *
 * @example
 * ```ts
 * lockedRetryAfterSeconds({ holder, retryAfterMs: 29_980, leaseMs: 30_000 }) // 1: acquired 20 ms ago
 * lockedRetryAfterSeconds({ holder, retryAfterMs: 12_000, leaseMs: 30_000 }) // 12: no heartbeat for 18 s
 * ```
 */
export function lockedRetryAfterSeconds({ holder, retryAfterMs, leaseMs }: ContendedLease): number {
  const left = Math.max(1, Math.ceil(retryAfterMs / 1000))
  if (holder === undefined) return 1 // the store was busy, not the object: try again soon
  if (leaseMs === undefined || !(leaseMs > 0)) return left
  const storeNow = holder.expiresAt - retryAfterMs
  const heldMs = typeof holder.acquiredAt === 'number' ? storeNow - holder.acquiredAt : leaseMs - retryAfterMs
  return heldMs < defaultHeartbeatMs(leaseMs) ? 1 : left
}
