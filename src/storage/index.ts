export { DataCloneError } from './errors.js'
export { decodeValue, encodeValue } from './serializer.js'
// The seam this API is built on, and its in-memory implementation (src/store/ owns them).
export { MAX_KEYS_PER_REQUEST, compareKeys } from '../store/object-store.js'
export type {
  EncodedValue,
  FlushResult,
  ObjectLease,
  ObjectListRange,
  ObjectStore,
  ObjectWrites,
} from '../store/object-store.js'
export { MemoryObjectStore } from '../store/memory-object-store.js'
export type { LeaseCheck, LeaseRef } from '../store/memory-object-store.js'
