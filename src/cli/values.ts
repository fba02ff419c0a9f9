/**
 * Stored values shown to an operator: decoded with the package's serializer (as `this.storage.get()`
 * returns them), printed with `util.inspect`, and given to `--json` as JSON only when JSON can carry
 * them exactly (a Map, a Date, a BigInt or `undefined` would come out as something else).
 *
 * @module
 */
import { inspect } from 'node:util'
import { decodeValue } from '../storage/serializer.js'
import type { EncodedValue } from '../store/object-store.js'

/** One value as `show --values` reports it. */
export interface ShownValue {
  /** `util.inspect` of the decoded value, or why it could not be decoded. */
  readonly display: string
  /** The decoded value itself when JSON carries it exactly; absent otherwise. */
  readonly json?: unknown
  /** True when the stored text could not be decoded (`display` says why). */
  readonly undecodable?: true
}

/** Decodes `encoded` (the value of `key`) for display; an undecodable value is reported, not thrown. */
export function showValue(encoded: EncodedValue, key: string): ShownValue {
  let value: unknown
  try {
    value = decodeValue(encoded, key)
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause
    const why = cause instanceof Error ? cause.message : String(error)
    return { display: `<cannot decode: ${why}>`, undecodable: true }
  }
  const display = inspect(value, { depth: 4, breakLength: Infinity, maxArrayLength: 20, maxStringLength: 200 })
  return isExactJson(value, new Set()) ? { display, json: value } : { display }
}

/** Whether `JSON.parse(JSON.stringify(value))` gives back exactly `value`. */
function isExactJson(value: unknown, seen: Set<object>): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true
  if (typeof value === 'number') return Number.isFinite(value) && !Object.is(value, -0)
  if (typeof value !== 'object' || seen.has(value)) return false
  seen.add(value)
  const ok = Array.isArray(value)
    ? Object.keys(value).length === value.length && value.every((v) => isExactJson(v, seen))
    : Object.getPrototypeOf(value) === Object.prototype && Object.values(value).every((v) => isExactJson(v, seen))
  seen.delete(value)
  return ok
}
