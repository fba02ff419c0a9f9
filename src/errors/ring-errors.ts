/**
 * Errors about the consistent-hash ring's membership.
 *
 * @module
 */
import { LockError } from './lock-error.js'

/** A consistent-hash ring operation needs at least one node. HTTP: 500 `internal_error`. */
export class EmptyRingError extends LockError {
  /** Always `'EMPTY_RING'`. */
  declare readonly code: 'EMPTY_RING'

  /** No arguments: the message is always the same. */
  constructor() {
    super('EMPTY_RING', 'the hash ring has no nodes')
  }
}

/** A node id was added twice to a ring. HTTP: 500 `internal_error`. */
export class DuplicateNodeError extends LockError {
  /** Always `'DUPLICATE_NODE'`. */
  declare readonly code: 'DUPLICATE_NODE'
  /** The id added twice. */
  readonly nodeId: string

  /** @param nodeId - the id added twice. */
  constructor(nodeId: string) {
    super('DUPLICATE_NODE', `node "${nodeId}" is already in the ring`)
    this.nodeId = nodeId
  }
}

/** A node id is not part of the ring. HTTP: 500 `internal_error`. */
export class UnknownNodeError extends LockError {
  /** Always `'UNKNOWN_NODE'`. */
  declare readonly code: 'UNKNOWN_NODE'
  /** The id asked for. */
  readonly nodeId: string

  /** @param nodeId - the id asked for. */
  constructor(nodeId: string) {
    super('UNKNOWN_NODE', `node "${nodeId}" is not in the ring`)
    this.nodeId = nodeId
  }
}
