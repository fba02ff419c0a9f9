/**
 * The lock fields a fenced write needs, and the refusal of a lease whose signal fired. Lives in the
 * store (not in `src/fencing/`) because the SQL stores enforce it: `fencing/` builds on `store/`,
 * never the reverse (test/structure.test.ts).
 */
import { LockLostError } from '../errors.js'

/** The lock fields a fenced write needs; a guard `Lock` has them all. */
export interface FenceLock {
  /** The object the lease is for. */
  doId: string
  /** The node holding the lease; the write commits only if the lease is still this node's (invariant 3). */
  nodeId: string
  /** The lease's token; the write commits only while the store still holds it, unexpired. */
  fencingToken: number
  /** When present and aborted, the write is refused before any I/O (docs/design.md invariant 7). */
  signal?: AbortSignal
}

/** Refuses a lock whose signal fired (invariant 7), with the signal's `LockLostError` when it has one. */
export function throwIfLeaseEnded(lock: FenceLock): void {
  const signal = lock.signal
  if (!(signal instanceof AbortSignal) || !signal.aborted) return
  const reason: unknown = signal.reason
  throw reason instanceof LockLostError
    ? reason
    : new LockLostError(lock.doId, lock.fencingToken, 'lease signal fired', { cause: reason })
}
