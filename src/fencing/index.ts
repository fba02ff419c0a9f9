export { FencingTokenValidator } from './fencing-token-validator.js'
export { fencedWrite } from './fenced-write.js'
export type { FenceLock, FencedWriteStore } from './fenced-write.js'
