/**
 * Typed errors. Every error the library throws is a {@link LockError}; callers branch on the class
 * (or on `code`, which survives structured cloning and `instanceof` across bundles).
 *
 * Each error also knows its HTTP form (the model is hono's `HTTPException.getResponse()`): a `status`
 * and {@link LockError.toResponse}, which is what {@link StatelessDO} answers when the error ends a
 * request. A handler that wants other answers catches the error and answers itself.
 *
 * @example
 * ```ts
 * try { await fencedWrite(store, lock, stmts) }
 * catch (e) { if (e instanceof StaleFencingTokenError) return new Response('lease lost', { status: 409 }) }
 * ```
 */
export { InvalidArgumentError, LockError } from './errors/lock-error.js'
export type { LockErrorBody, LockErrorCode, LockErrorOptions } from './errors/lock-error.js'
export * from './errors/lease-errors.js'
export * from './errors/store-errors.js'
export * from './errors/ring-errors.js'
