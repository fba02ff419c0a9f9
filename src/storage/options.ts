/**
 * The options objects of Durable Object storage's methods, read as workerd reads them (found out
 * against real `ctx.storage`, test/workers/storage-semantics.test.ts): unknown options are ignored,
 * `null`/`undefined` mean none, booleans are truthiness, strings are `String()` conversions (so
 * `start: null` means the key `'null'`), and a `limit` is converted to an integer and must be positive.
 */
import { InvalidArgumentError } from '../errors.js'
import { describe } from '../validate.js'
import { toKey } from './limits.js'

/**
 * Options of `get()`, as Durable Objects take them. Both are accepted and have no effect on results.
 */
export interface StorageGetOptions {
  /**
   * Durable Objects: let other events in while this read waits (no input gate). Here a turn runs alone
   * on its node (docs/design.md invariant 9) and storage calls close no gate: accepted, no effect.
   */
  allowConcurrency?: boolean
  /**
   * Durable Objects: a hint not to keep the value in the in-memory cache. Here: what this call reads
   * from the store is not added to the turn's cache, so reading it again costs another request.
   * Never changes results.
   */
  noCache?: boolean
}

/** Options of `put()`, `delete()` and `deleteAll()`, as Durable Objects take them. */
export interface StoragePutOptions {
  /** As in {@link StorageGetOptions.allowConcurrency}: accepted, no effect. */
  allowConcurrency?: boolean
  /**
   * Durable Objects: do not hold outgoing messages until this write is confirmed. Here every write of a
   * turn is confirmed by the turn's flush, which the owner completes before it releases the response
   * (docs/design.md invariant 12), so no write is ever unconfirmed: accepted, no effect (the safe
   * direction: nothing is told early).
   */
  allowUnconfirmed?: boolean
  /** Durable Objects: a cache hint. Here: accepted, no effect (a write stays buffered until the flush). */
  noCache?: boolean
}

/** Options of `list()`: its bounds, as Durable Objects take them, and the read options. */
export interface StorageListOptions extends StorageGetOptions {
  /** First key included. */
  start?: string
  /** Keys after this one only (exclusive). Not together with `start`. */
  startAfter?: string
  /** Keys before this one only (exclusive). */
  end?: string
  /** Only keys that begin with this. */
  prefix?: string
  /** Descending order. The bounds keep their meaning (`start` is still the smallest key). */
  reverse?: boolean
  /** At most this many entries (a positive integer; fractions are cut off, as in Durable Objects). */
  limit?: number
}

/** Options of `transaction()`. Durable Objects define none that change behaviour; accepted, ignored. */
export type StorageTransactionOptions = Record<string, unknown>

/** A `list()` call's bounds once read: normalized keys, a boolean, an integer. */
export interface ListQuery {
  start?: string
  startAfter?: string
  end?: string
  prefix?: string
  reverse: boolean
  limit?: number
  noCache: boolean
}

const INT32_MAX = 2 ** 31 - 1

/** An options argument: `undefined`/`null` for none, else an object. */
export function toOptions(argument: string, value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object') throw new InvalidArgumentError(argument, `expected an object, got ${describe(value)}`)
  return value as Record<string, unknown>
}

/** Reads `list()` options as workerd does (see the module comment), before any I/O. */
export function toListQuery(value: unknown): ListQuery {
  const options = toOptions('options', value)
  const bound = (name: 'start' | 'startAfter' | 'end' | 'prefix') =>
    options[name] === undefined ? undefined : toKey(`options.${name}`, options[name], false)
  const query: ListQuery = { reverse: Boolean(options.reverse), noCache: Boolean(options.noCache) }
  const start = bound('start')
  const startAfter = bound('startAfter')
  if (start !== undefined && startAfter !== undefined) {
    throw new InvalidArgumentError(
      'options.startAfter',
      'list() cannot be called with both start and startAfter values.',
    )
  }
  if (start !== undefined) query.start = start
  if (startAfter !== undefined) query.startAfter = startAfter
  const end = bound('end')
  if (end !== undefined) query.end = end
  const prefix = bound('prefix')
  if (prefix !== undefined && prefix !== '') query.prefix = prefix
  if (options.limit !== undefined) query.limit = toLimit(options.limit)
  return query
}

/** workerd converts a limit to a 32-bit integer (NaN and ±Infinity to 0), then requires it positive. */
function toLimit(value: unknown): number {
  if (typeof value === 'symbol' || typeof value === 'bigint') {
    throw new InvalidArgumentError('options.limit', `expected a number, got ${typeof value}`)
  }
  let n = Number(value)
  n = Number.isFinite(n) ? Math.trunc(n) : 0
  if (n > INT32_MAX || n < -INT32_MAX - 1) {
    throw new InvalidArgumentError(
      'options.limit',
      'Value out of range. Must be between -2147483648 and 2147483647 (inclusive).',
    )
  }
  if (n <= 0) throw new InvalidArgumentError('options.limit', 'List limit must be positive.')
  return n
}
