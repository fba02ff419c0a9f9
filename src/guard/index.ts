export { HybridConsistencyGuard } from './hybrid-consistency-guard.js'
export type { HybridConsistencyGuardOptions } from './options.js'
export { DEFAULT_REQUEST_TIMEOUT_MS } from './options.js'
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
export {
  DEFAULT_DRIFT_FIXED_MS,
  DEFAULT_DRIFT_RATIO,
  DEFAULT_HEARTBEATS_PER_TTL,
  DEFAULT_TTL_MS,
  defaultDriftMs,
  defaultHeartbeatMs,
} from './lease-rules.js'
