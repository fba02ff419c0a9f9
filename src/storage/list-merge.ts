/**
 * How `list()` answers from two sources: the committed rows (from the cache, or one store `list`) and
 * the turn's unflushed writes and deletes over them, so that a list sees exactly what a `get` would.
 */
import { compareKeys, type EncodedValue, type ObjectListRange } from '../store/object-store.js'
import type { Slot } from './layer.js'
import type { ListQuery } from './options.js'
import { decodeValue } from './serializer.js'

/** Whether a key lies within a `list()` call's bounds (how Durable Objects combine them, by code point). */
export function rangeTest(query: ListQuery): (key: string) => boolean {
  const { start, startAfter, end, prefix } = query
  return (key) =>
    (start === undefined || compareKeys(key, start) >= 0) &&
    (startAfter === undefined || compareKeys(key, startAfter) > 0) &&
    (end === undefined || compareKeys(key, end) < 0) &&
    (prefix === undefined || key.startsWith(prefix))
}

/** The store `list` to ask for the committed rows under `overlay` (the unflushed writes within the bounds). */
export function storeRange(query: ListQuery, overlay: ReadonlyMap<string, Slot>): ObjectListRange {
  // Each unflushed delete may hide one committed row: ask for that many more, so `limit` still fills.
  let hidden = 0
  for (const slot of overlay.values()) if (slot === null) hidden++
  const { start, startAfter, end, prefix, reverse, limit } = query
  return {
    ...(start === undefined ? {} : { start }),
    ...(startAfter === undefined ? {} : { startAfter }),
    ...(end === undefined ? {} : { end }),
    ...(prefix === undefined ? {} : { prefix }),
    ...(reverse ? { reverse } : {}),
    ...(limit === undefined ? {} : { limit: limit + hidden }),
  }
}

/** The `list()` result: `committed` with `overlay` applied (it wins), in the query's order, at most `limit`. */
export function mergeListed(
  committed: ReadonlyArray<[string, EncodedValue]>,
  overlay: ReadonlyMap<string, Slot>,
  query: ListQuery,
): Map<string, unknown> {
  const merged = new Map<string, EncodedValue>()
  for (const [key, value] of committed) if (!overlay.has(key)) merged.set(key, value)
  for (const [key, slot] of overlay) if (slot !== null) merged.set(key, slot)
  const keys = [...merged.keys()].sort(query.reverse ? (a, b) => compareKeys(b, a) : compareKeys)
  const result = new Map<string, unknown>()
  for (const key of query.limit === undefined ? keys : keys.slice(0, query.limit)) {
    result.set(key, decodeValue(merged.get(key)!, key))
  }
  return result
}
