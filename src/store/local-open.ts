/**
 * Where the local engine's connection comes from: a `file:` URL (or `:memory:`) turned into a path, the
 * `libsql` package loaded only when a local database is asked for, the path of a local
 * `@libsql/client` client, and a driver that opens the engine on first use.
 *
 * @module
 */
import { InvalidArgumentError, StoreUnavailableError } from '../errors.js'
import type { SqlDriver, SqlResult, SqlStatement } from './sql-driver.js'
import { LocalEngine, type LocalEngineOptions, type NativeDatabaseConstructor } from './local-engine.js'

/**
 * The database path a local URL names: `file:app.db` -> `app.db`, `file:///abs/app.db` or
 * `file:/abs/app.db` -> `/abs/app.db` (percent-decoded), `:memory:` and `file::memory:` -> `:memory:`.
 * Anything else (a remote scheme, a query string, a host) is refused naming `argument`.
 */
export function localPath(url: string, argument = 'client'): string {
  if (url === ':memory:' || url === 'file::memory:') return ':memory:'
  const match = /^file:(?:\/\/(?:localhost)?(?=\/))?([^?#]+)$/i.exec(url)
  if (match === null || match[1]!.startsWith('//')) {
    throw new InvalidArgumentError(
      argument,
      `expected a local database URL (file:path, file:///absolute/path or :memory:) without a query, got ${JSON.stringify(url)}; for a remote database pass an @libsql/client Client`,
    )
  }
  let path: string
  try {
    path = decodeURIComponent(match[1]!)
  } catch {
    throw new InvalidArgumentError(argument, `the path of ${JSON.stringify(url)} is not valid percent-encoding`)
  }
  if (path.includes('\0')) throw new InvalidArgumentError(argument, 'the path contains NUL')
  return path
}

/**
 * The `libsql` package's `Database`, loaded on first use. The specifier is a variable so that bundles
 * for Workers (where no local database exists) do not try to include the native binding.
 */
export async function loadLibsql(): Promise<NativeDatabaseConstructor> {
  const specifier = 'libsql'
  try {
    const module = (await import(/* @vite-ignore */ specifier)) as { default?: unknown }
    const Database = (module.default ?? module) as unknown
    if (typeof Database !== 'function') throw new TypeError('its export is not a constructor')
    return Database as NativeDatabaseConstructor
  } catch (error) {
    throw new StoreUnavailableError(
      `the local engine needs the "libsql" package (installed with @libsql/client): ${(error as Error)?.message ?? String(error)}`,
      { cause: error, retryable: false },
    )
  }
}

/** The slice of a local `@libsql/client` client used to find its file. */
interface LocalClientLike {
  execute(statement: { sql: string; args: never[] }): Promise<{ rows: ArrayLike<unknown> }>
  sync?(): Promise<unknown>
}

/**
 * The file a local `@libsql/client` client has open, and its `busy_timeout` and `synchronous`
 * settings (carried over to the engine's own connection). Refuses, as a non-retryable error, a client
 * whose database is not a plain local file: in memory (another connection would see another database),
 * or an embedded replica (its writes belong to the remote primary: `sync()` works only there).
 */
export async function localClientFile(
  client: LocalClientLike,
): Promise<{ path: string; busyTimeoutMs: number; synchronous: number | undefined }> {
  const refuse = (why: string) =>
    new StoreUnavailableError(`engine 'native' cannot drive this client: ${why}`, { retryable: false })
  const one = async (sql: string) =>
    ((await client.execute({ sql, args: [] })).rows[0] ?? {}) as Record<string, unknown>
  const list = Array.from((await client.execute({ sql: 'PRAGMA database_list', args: [] })).rows) as Array<
    Record<string, unknown>
  >
  const file = list.find((row) => row.name === 'main')?.file
  if (typeof file !== 'string' || file === '') throw refuse('its database is not a file (in memory?)')
  if (typeof client.sync !== 'function') throw refuse('it has no sync() to tell a plain file from an embedded replica')
  const plain = await client.sync().then(
    () => false,
    (error: unknown) => /SyncNotSupported/.test(String((error as Error)?.message ?? error)),
  )
  if (!plain) throw refuse('it is an embedded replica (its writes go to the remote primary)')
  const busy = Number((await one('PRAGMA busy_timeout')).timeout)
  const synchronous = Number((await one('PRAGMA synchronous')).synchronous)
  return {
    path: file,
    busyTimeoutMs: Number.isSafeInteger(busy) && busy >= 0 ? busy : 0,
    synchronous: Number.isSafeInteger(synchronous) ? synchronous : undefined,
  }
}

/**
 * A driver that opens a {@link LocalEngine} at its first request (`where` says which file and
 * settings; it may ask a client). Concurrent first requests share one opening; a failed opening is
 * reported to the requests that waited for it and tried again by the next request.
 */
export function lazyLocalEngine(
  where: () => Promise<{ path: string; options: LocalEngineOptions }>,
  libsql: NativeDatabaseConstructor | undefined,
): SqlDriver & { close(): void; engine(): LocalEngine | undefined } {
  let engine: LocalEngine | undefined
  let opening: Promise<LocalEngine> | undefined
  let closed = false
  const ready = (): LocalEngine | Promise<LocalEngine> =>
    engine ??
    (opening ??= (async () => {
      const [{ path, options }, open] = await Promise.all([where(), libsql ?? loadLibsql()])
      if (closed) throw new StoreUnavailableError('the lock store is closed', { retryable: false })
      engine = new LocalEngine(open, path, options)
      return engine
    })().finally(() => {
      opening = undefined
    }))
  const run = <T>(f: (e: LocalEngine) => Promise<T>): Promise<T> => {
    if (closed) return Promise.reject(new StoreUnavailableError('the lock store is closed', { retryable: false }))
    const e = ready()
    return e instanceof LocalEngine ? f(e) : e.then(f)
  }
  return {
    execute: (statement: SqlStatement): Promise<SqlResult> => run((e) => e.execute(statement)),
    batch: (statements: SqlStatement[]): Promise<SqlResult[]> => run((e) => e.batch(statements)),
    close: () => {
      closed = true
      engine?.close()
    },
    engine: () => engine,
  }
}
