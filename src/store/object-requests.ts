/**
 * Argument checks shared by every ObjectStore, run before any I/O (docs/design.md invariant 8), each
 * argument read once: the same input is refused by every store with the same argument names (the
 * shared contract suite checks them).
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import { assertDoId, assertNodeId, assertPositiveMs, assertToken, describe } from '../validate.js'
import {
  MAX_KEYS_PER_REQUEST,
  type EncodedValue,
  type ObjectLease,
  type ObjectListRange,
  type ObjectWrites,
} from './object-store.js'

/** Reads each lease field once and validates it. */
export function checkLease(lease: ObjectLease): ObjectLease {
  if (lease === null || typeof lease !== 'object') {
    throw new InvalidArgumentError('lease', `expected { doId, nodeId, fencingToken, ttlMs }, got ${describe(lease)}`)
  }
  const { doId, nodeId, fencingToken, ttlMs } = lease
  assertDoId(doId, 'lease.doId')
  assertNodeId(nodeId, 'lease.nodeId')
  assertToken(fencingToken, 'lease.fencingToken')
  assertPositiveMs('lease.ttlMs', ttlMs)
  return { doId, nodeId, fencingToken, ttlMs }
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const isWellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function'
    ? (s) => (s as unknown as { isWellFormed(): boolean }).isWellFormed()
    : (s) => !LONE_SURROGATE.test(s)

/** A key or value the database gives back exactly as written: a string without NUL or lone surrogates. */
export function checkText(argument: string, value: unknown): string {
  if (typeof value !== 'string') throw new InvalidArgumentError(argument, `expected a string, got ${describe(value)}`)
  const nul = value.indexOf('\0')
  if (nul >= 0) {
    throw new InvalidArgumentError(
      argument,
      `must not contain NUL (U+0000), found at index ${nul}: SQLite drivers read the text back cut there`,
    )
  }
  if (!isWellFormed(value)) {
    throw new InvalidArgumentError(
      argument,
      'must be well-formed Unicode (a lone surrogate is stored as U+FFFD, so it would not come back as written)',
    )
  }
  return value
}

/** A list range with every field read once and checked. */
export interface CheckedRange {
  start: string | undefined
  startAfter: string | undefined
  end: string | undefined
  prefix: string | undefined
  reverse: boolean
  limit: number | undefined
}

/** Reads and checks a list range; how `start` and `startAfter` combine is src/storage/'s to refuse. */
export function checkRange(range: ObjectListRange): CheckedRange {
  if (range === null || typeof range !== 'object') {
    throw new InvalidArgumentError(
      'range',
      `expected { start?, startAfter?, end?, prefix?, reverse?, limit? }, got ${describe(range)}`,
    )
  }
  const { start, startAfter, end, prefix, reverse, limit } = range
  const bound = (name: string, value: unknown) => (value === undefined ? undefined : checkText(`range.${name}`, value))
  const checked = {
    start: bound('start', start),
    startAfter: bound('startAfter', startAfter),
    end: bound('end', end),
    prefix: bound('prefix', prefix),
  }
  if (reverse !== undefined && typeof reverse !== 'boolean') {
    throw new InvalidArgumentError('range.reverse', `expected a boolean, got ${describe(reverse)}`)
  }
  // 0 is refused rather than answered: for the SQL stores a read with no row at all means "lease not held".
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) {
    throw new InvalidArgumentError('range.limit', `expected a positive safe integer, got ${describe(limit)}`)
  }
  return { ...checked, reverse: reverse === true, limit }
}

/**
 * Reads and checks a flush's writes, all before anything is applied (one bad entry writes nothing).
 * `entries` keeps their order; `null` deletes.
 */
export function checkWrites(writes: ObjectWrites): {
  deleteAll: boolean
  entries: Array<[string, EncodedValue | null]>
  extend: boolean
} {
  if (writes === null || typeof writes !== 'object') {
    throw new InvalidArgumentError('writes', `expected { deleteAll?, entries, extend? }, got ${describe(writes)}`)
  }
  const { deleteAll, entries, extend } = writes
  if (deleteAll !== undefined && typeof deleteAll !== 'boolean') {
    throw new InvalidArgumentError('writes.deleteAll', `expected a boolean, got ${describe(deleteAll)}`)
  }
  if (extend !== undefined && typeof extend !== 'boolean') {
    throw new InvalidArgumentError('writes.extend', `expected a boolean, got ${describe(extend)}`)
  }
  if (!(entries instanceof Map)) {
    throw new InvalidArgumentError(
      'writes.entries',
      `expected a Map of key -> string or null, got ${describe(entries)}`,
    )
  }
  const checked: Array<[string, EncodedValue | null]> = []
  let i = 0
  for (const [key, value] of entries as ReadonlyMap<unknown, unknown>) {
    const k = checkText(`writes.entries[${i}] key`, key)
    checked.push([k, value === null ? null : checkText(`writes.entries[${i}] value (key "${k}")`, value)])
    i++
  }
  return { deleteAll: deleteAll === true, entries: checked, extend: extend !== false }
}

/** `keys` of a get, checked: an array of at most MAX_KEYS_PER_REQUEST well-formed strings. */
export function checkKeys(keys: readonly string[]): string[] {
  if (!Array.isArray(keys))
    throw new InvalidArgumentError('keys', `expected an array of strings, got ${describe(keys)}`)
  if (keys.length > MAX_KEYS_PER_REQUEST) {
    throw new InvalidArgumentError('keys', `at most ${MAX_KEYS_PER_REQUEST} keys per request, got ${keys.length}`)
  }
  return keys.map((key, i) => checkText(`keys[${i}]`, key))
}
