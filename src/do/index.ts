export { StatelessDO } from './stateless-do.js'
export type { StatelessDOActivationOptions, StatelessDOContext, StatelessDOPhase } from './stateless-do.js'
export { lockedRetryAfterSeconds } from './retry-after.js'
export type { ContendedLease } from './retry-after.js'
