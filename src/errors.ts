/**
 * Typed errors. Every error the library throws is a {@link LockError}; callers branch on the class
 * (or on `code`, which survives structured cloning and `instanceof` across bundles).
 *
 * @example
 * ```ts
 * try { await db.fencedWrite(lock, stmts) }
 * catch (e) { if (e instanceof StaleFencingTokenError) return new Response('lease lost', { status: 409 }) }
 * ```
 */
export class LockError extends Error {
  /** Stable machine-readable code, e.g. `INVALID_ARGUMENT`. */
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

/** An argument was rejected before any I/O. `argument` names it (docs/design.md invariant 8). */
export class InvalidArgumentError extends LockError {
  readonly argument: string

  constructor(argument: string, problem: string) {
    super('INVALID_ARGUMENT', `invalid ${argument}: ${problem}`)
    this.argument = argument
  }
}

/**
 * A write or validation carried a fencing token that is no longer the current holder's:
 * the lease expired, was released, or someone newer acquired it.
 */
export class StaleFencingTokenError extends LockError {
  readonly doId: string
  readonly token: number
  /** The newest token known for this id when the check failed, if known. */
  readonly currentToken: number | undefined

  constructor(doId: string, token: number, currentToken?: number) {
    const known = currentToken === undefined ? '' : ` (current token ${currentToken})`
    super('STALE_FENCING_TOKEN', `fencing token ${token} for "${doId}" is stale${known}`)
    this.doId = doId
    this.token = token
    this.currentToken = currentToken
  }
}

/** The lock store could not be reached or refused the request; nothing was decided. */
export class StoreUnavailableError extends LockError {
  /** True when retrying the same call may succeed (busy database, network blip). */
  readonly retryable: boolean

  constructor(message: string, options: { cause?: unknown; retryable?: boolean } = {}) {
    super('STORE_UNAVAILABLE', message, { cause: options.cause })
    this.retryable = options.retryable ?? true
  }
}

/** A `do_locks` row holds values the library did not write (wrong types, broken JSON). */
export class CorruptLockRowError extends LockError {
  readonly doId: string
  readonly column: string

  constructor(doId: string, column: string, problem: string) {
    super('CORRUPT_LOCK_ROW', `lock row "${doId}" is corrupt: ${column} ${problem}`)
    this.doId = doId
    this.column = column
  }
}

/** The lease behind an operation was lost (refresh failed or validity ran out). */
export class LockLostError extends LockError {
  readonly doId: string
  readonly token: number

  constructor(doId: string, token: number, reason: string, options?: { cause?: unknown }) {
    super('LOCK_LOST', `lease on "${doId}" (token ${token}) lost: ${reason}`, options)
    this.doId = doId
    this.token = token
  }
}

/** The guard is shutting down and accepts no new acquisitions. */
export class ShutdownError extends LockError {
  constructor() {
    super('SHUTDOWN', 'the consistency guard is shutting down')
  }
}

/** A consistent-hash ring operation needs at least one node. */
export class EmptyRingError extends LockError {
  constructor() {
    super('EMPTY_RING', 'the hash ring has no nodes')
  }
}

/** A node id was added twice to a ring. */
export class DuplicateNodeError extends LockError {
  readonly nodeId: string

  constructor(nodeId: string) {
    super('DUPLICATE_NODE', `node "${nodeId}" is already in the ring`)
    this.nodeId = nodeId
  }
}

/** A node id is not part of the ring. */
export class UnknownNodeError extends LockError {
  readonly nodeId: string

  constructor(nodeId: string) {
    super('UNKNOWN_NODE', `node "${nodeId}" is not in the ring`)
    this.nodeId = nodeId
  }
}

/** `withLock` could not get the lease: someone else holds it. */
export class LockContendedError extends LockError {
  readonly doId: string
  /** Who holds the lease, when the store said so. */
  readonly holder: { nodeId: string; fencingToken: number } | undefined
  /** Suggested wait before trying again (for a `Retry-After` header). */
  readonly retryAfterMs: number

  constructor(doId: string, retryAfterMs: number, holder?: { nodeId: string; fencingToken: number }) {
    super('LOCK_CONTENDED', `"${doId}" is held${holder ? ` by ${holder.nodeId}` : ''}; retry in ${retryAfterMs} ms`)
    this.doId = doId
    this.holder = holder
    this.retryAfterMs = retryAfterMs
  }
}
