import { InvalidArgumentError } from './errors.js'

/** Longest DO id accepted, in UTF-16 code units (Workers' `idFromName` names are far shorter in practice). */
export const MAX_DO_ID_LENGTH = 1024
/** Longest node id accepted. */
export const MAX_NODE_ID_LENGTH = 256
/** Longest lease accepted: one day. Longer leases defeat crash recovery by TTL. */
export const MAX_TTL_MS = 86_400_000
/** Largest serialized metadata accepted, in UTF-16 code units. */
export const MAX_METADATA_LENGTH = 65_536

/**
 * Asserts `value` is an id the stores can round-trip: a non-empty string of at most `maxLength` UTF-16
 * code units, without NUL or lone surrogates. Throws {@link InvalidArgumentError} naming `argument`.
 */
export function assertIdentifier(argument: string, value: unknown, maxLength: number): asserts value is string {
  if (typeof value !== 'string') throw new InvalidArgumentError(argument, `expected a string, got ${describe(value)}`)
  if (value.length === 0) throw new InvalidArgumentError(argument, 'must not be empty')
  if (value.length > maxLength) {
    throw new InvalidArgumentError(argument, `must be at most ${maxLength} characters, got ${value.length}`)
  }
  const bad = UNSTORABLE.exec(value)
  if (bad) {
    throw new InvalidArgumentError(
      argument,
      bad[0] === '\0'
        ? `must not contain NUL (U+0000), found at index ${bad.index}: SQLite drivers read the text back cut there, so the lock would name another id`
        : `must be well-formed Unicode, found a lone surrogate at index ${bad.index}: it is stored as U+FFFD, so different ids would share one lease`,
    )
  }
}

/** Characters an id cannot round-trip through SQLite text: NUL, and UTF-16 surrogates without their pair. */
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Asserts `value` is a valid DO id (see {@link assertIdentifier}, {@link MAX_DO_ID_LENGTH}). */
export function assertDoId(value: unknown, argument = 'doId'): asserts value is string {
  assertIdentifier(argument, value, MAX_DO_ID_LENGTH)
}

/** Asserts `value` is a valid node id (see {@link assertIdentifier}, {@link MAX_NODE_ID_LENGTH}). */
export function assertNodeId(value: unknown, argument = 'nodeId'): asserts value is string {
  assertIdentifier(argument, value, MAX_NODE_ID_LENGTH)
}

/** A positive whole number of milliseconds, at most `max`. */
export function assertPositiveMs(argument: string, value: unknown, max = MAX_TTL_MS): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidArgumentError(argument, `expected a finite number of milliseconds, got ${describe(value)}`)
  }
  if (!Number.isInteger(value) || value <= 0) {
    throw new InvalidArgumentError(argument, `must be a positive whole number of milliseconds, got ${value}`)
  }
  if (value > max) throw new InvalidArgumentError(argument, `must be at most ${max} ms, got ${value}`)
}

/** A non-negative whole number (counts, tokens). */
export function assertNonNegativeInteger(argument: string, value: unknown): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidArgumentError(argument, `expected a non-negative safe integer, got ${describe(value)}`)
  }
}

/** Fencing tokens start at 1; 0 means "never acquired". */
export function assertToken(value: unknown, argument = 'fencingToken'): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(argument, `expected a positive safe integer, got ${describe(value)}`)
  }
}

/** Deepest nesting of arrays and objects accepted in metadata (SQLite's JSON functions stop at 1000). */
export const MAX_METADATA_DEPTH = 100

/**
 * Serializes lock metadata to JSON, refusing (by path: `metadata.tags[1]`) any value that would not come
 * back from `JSON.parse` exactly as given: only plain objects, arrays without holes, strings, finite
 * numbers other than -0, booleans and null. A Date, Map, Set, class instance, function, symbol,
 * bigint, `undefined` inside an object or array, NaN, Infinity, a cycle, a symbol or non-enumerable key
 * is refused, not silently changed. Each property is read once, and the JSON is built from those reads.
 * `undefined` itself means "no metadata" (returns null).
 */
export function serializeMetadata(value: unknown, argument = 'metadata'): string | null {
  if (value === undefined) return null
  const json = toExactJson(value, argument, new Set(), 0)
  if (json.length > MAX_METADATA_LENGTH) {
    throw new InvalidArgumentError(argument, `serializes to ${json.length} characters, limit ${MAX_METADATA_LENGTH}`)
  }
  return json
}

function toExactJson(value: unknown, path: string, open: Set<object>, depth: number): string {
  const refuse = (problem: string): never => {
    throw new InvalidArgumentError(path, `${problem}: metadata must come back from JSON exactly as given`)
  }
  if (value === null) return 'null'
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value)
    case 'boolean':
      return value ? 'true' : 'false'
    case 'number':
      if (!Number.isFinite(value)) return refuse(`${value} becomes null in JSON`)
      if (Object.is(value, -0)) return refuse('-0 becomes 0 in JSON')
      return JSON.stringify(value)
    case 'undefined':
      return refuse('undefined is dropped (in an object) or becomes null (in an array) in JSON')
    case 'bigint':
      return refuse('a bigint cannot be written as JSON; pass a string or a number')
    case 'function':
    case 'symbol':
      return refuse(`a ${typeof value} is dropped by JSON`)
  }
  const object = value as object
  if (open.has(object)) return refuse('is a cycle (an object containing itself)')
  if (depth >= MAX_METADATA_DEPTH) return refuse(`nests deeper than ${MAX_METADATA_DEPTH} levels`)
  if (Object.getOwnPropertySymbols(object).length > 0) return refuse('has symbol keys, which JSON drops')
  open.add(object)
  try {
    if (Array.isArray(object)) {
      const length = object.length
      const items: string[] = []
      for (let i = 0; i < length; i++) {
        if (!(i in object)) {
          throw new InvalidArgumentError(`${path}[${i}]`, 'is a hole, which becomes null in JSON')
        }
        items.push(toExactJson(object[i], `${path}[${i}]`, open, depth + 1))
      }
      if (Object.getOwnPropertyNames(object).length !== length + 1) {
        return refuse('has properties besides its elements, which JSON drops')
      }
      return `[${items.join(',')}]`
    }
    const proto: unknown = Object.getPrototypeOf(object)
    // A plain object's prototype is Object.prototype (of this realm or another) or null.
    if (proto !== null && Object.getPrototypeOf(proto) !== null) {
      const name = (object as { constructor?: { name?: unknown } }).constructor?.name
      return refuse(`a ${typeof name === 'string' && name ? name : 'non-plain object'} does not survive JSON`)
    }
    const keys = Object.keys(object)
    if (Object.getOwnPropertyNames(object).length !== keys.length) {
      return refuse('has non-enumerable properties, which JSON drops')
    }
    const entries: string[] = []
    for (const key of keys) {
      const item = (object as Record<string, unknown>)[key]
      const child = /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`
      entries.push(`${JSON.stringify(key)}:${toExactJson(item, child, open, depth + 1)}`)
    }
    return `{${entries.join(',')}}`
  } finally {
    open.delete(object)
  }
}

/** A short description of a value for error messages (never the value itself, which may be large). */
export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  if (typeof value === 'string') return `string of length ${value.length}`
  return typeof value
}
