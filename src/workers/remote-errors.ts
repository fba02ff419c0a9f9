/**
 * What an error that crossed RPC still says about its class. workerd does not keep an error's class
 * across RPC (the caller gets a plain `Error` with `remote: true`), and what it keeps depends on its
 * version: recent ones (2026) copy the error's own properties, so `name`, `code` and `doId` of the
 * library's errors arrive; older ones (2025-09) keep only the message, prefixed `'<name>: '`.
 *
 * @module
 */

/**
 * The class name of an error thrown in a Durable Object and caught across RPC (`'LockLostError'`,
 * `'StaleFencingTokenError'`, `'LockContendedError'`, ...), from either form workerd delivers; the
 * error's own `name` for anything else, `undefined` for a non-Error.
 *
 * @example
 * ```ts
 * try { await stub.increment(1) } catch (error) {
 *   if (remoteErrorName(error) === 'LockContendedError') return new Response('busy', { status: 503 })
 *   throw error
 * }
 * ```
 */
export function remoteErrorName(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined
  if (error.name !== 'Error') return error.name
  return /^([A-Z]\w*Error): /.exec(error.message)?.[1] ?? error.name
}
