export type {
  AcquireRequest,
  HandoffRequest,
  ListFilter,
  LockInfo,
  LockRecord,
  LockRef,
  LockStore,
  PrefetchedRows,
  PruneOptions,
  PruneResult,
  RefreshRequest,
  StoreAcquireResult,
} from './lock-store.js'
export {
  DEFAULT_LIST_LIMIT,
  DEFAULT_PRUNE_LIMIT,
  MAX_LIST_LIMIT,
  MAX_PREFETCH_ROWS,
  MAX_PRUNE_LIMIT,
} from './lock-store.js'
export { SqlLockStore } from './sql-lock-store.js'
export type { SqlDriver, SqlLockStoreOptions, SqlResult, SqlStatement, SqlValue } from './sql-lock-store.js'
export { LibSQLLockStore, recoverLibSQLConnection } from './libsql.js'
export type { LibSQLClientLike, LibSQLLockStoreOptions } from './libsql.js'
export { DEFAULT_LOCAL_BUSY_TIMEOUT_MS, LocalEngine, NATIVE_BUSY_WAIT_MS } from './local-engine.js'
export type {
  LocalEngineOptions,
  NativeDatabaseConstructor,
  NativeDatabaseLike,
  NativeStatementLike,
} from './local-engine.js'
export {
  DEFAULT_GROUP_COMMIT_MAX_OPERATIONS,
  DEFAULT_GROUP_COMMIT_STALL_MS,
  groupCommitDriver,
} from './group-commit.js'
export type { GroupCommitDriverOptions, GroupCommitOptions } from './group-commit.js'
export { MemoryLockStore } from './memory.js'
export type { MemoryLockStoreOptions } from './memory.js'
export { DEFAULT_TABLE, STALE_TOKEN_MESSAGE } from './sql.js'
export type { LockTableSql } from './sql.js'
export { D1LockStore } from './d1.js'
export type { D1DatabaseLike, D1LockStoreOptions, D1PreparedStatementLike, D1ResultLike } from './d1.js'
export { SqlObjectStore } from './sql-object-store.js'
export type { SqlObjectStoreOptions } from './sql-object-store.js'
export { DEFAULT_OBJECT_TABLE, MAX_BOUND_PARAMETERS, MAX_PREFETCH_CHARS } from './object-sql.js'
export type { ListShape, ObjectTableSql } from './object-sql.js'
