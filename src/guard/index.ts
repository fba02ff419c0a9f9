export { HybridConsistencyGuard } from './hybrid-consistency-guard.js'
export type { HybridConsistencyGuardOptions } from './hybrid-consistency-guard.js'
export type {
  AcquireOptions,
  AffinityRing,
  ConsistencyGuard,
  GuardEvent,
  GuardOperation,
  Lock,
  LockHolder,
  LockResult,
  RetryOptions,
} from './types.js'
export { DEFAULT_BACKOFF } from './backoff.js'
