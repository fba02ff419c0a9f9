export type {
  AcquireRequest,
  ListFilter,
  LockInfo,
  LockRecord,
  LockRef,
  LockStore,
  RefreshRequest,
  StoreAcquireResult,
} from './lock-store.js'
export { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './lock-store.js'
export { SqlLockStore } from './sql-lock-store.js'
export type { SqlDriver, SqlLockStoreOptions, SqlResult, SqlStatement, SqlValue } from './sql-lock-store.js'
export { LibSQLLockStore } from './libsql.js'
export type { LibSQLClientLike, LibSQLLockStoreOptions } from './libsql.js'
export { MemoryLockStore } from './memory.js'
export type { MemoryLockStoreOptions } from './memory.js'
export { DEFAULT_TABLE, STALE_TOKEN_MESSAGE } from './sql.js'
