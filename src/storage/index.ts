export { ObjectStorage, StorageSnapshot } from './object-storage.js'
export type { ObjectStorageOptions, StorageTransaction } from './object-storage.js'
export type { StorageGetOptions, StorageListOptions, StoragePutOptions, StorageTransactionOptions } from './options.js'
export {
  DataCloneError,
  KeyTooLargeError,
  ReadOnlyStorageError,
  TooManyKeysError,
  TransactionEndedError,
  ValueTooLargeError,
} from './errors.js'
export { MAX_KEY_BYTES, MAX_KEYS_PER_CALL, MAX_VALUE_BYTES, VALUE_SIZE_SLACK } from './limits.js'
export { decodeValue, encodeValue } from './serializer.js'
export { serializedSize } from './serialized-size.js'
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
