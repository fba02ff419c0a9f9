import { InvalidArgumentError } from './errors.js'

/** Longest DO id accepted, in UTF-16 code units (Workers' `idFromName` names are far shorter in practice). */
export const MAX_DO_ID_LENGTH = 1024
/** Longest node id accepted. */
export const MAX_NODE_ID_LENGTH = 256
/** Longest lease accepted: one day. Longer leases defeat crash recovery by TTL. */
export const MAX_TTL_MS = 86_400_000
/** Largest serialized metadata accepted, in UTF-16 code units. */
export const MAX_METADATA_LENGTH = 65_536

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

export function assertDoId(value: unknown, argument = 'doId'): asserts value is string {
  assertIdentifier(argument, value, MAX_DO_ID_LENGTH)
}

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

/** Serializes lock metadata to JSON, rejecting values that would not round-trip. */
export function serializeMetadata(value: unknown): string | null {
  if (value === undefined) return null
  let json: string | undefined
  try {
    json = JSON.stringify(value)
  } catch (error) {
    throw new InvalidArgumentError('metadata', `not JSON-serializable (${(error as Error).message})`)
  }
  if (json === undefined) throw new InvalidArgumentError('metadata', `not JSON-serializable (${describe(value)})`)
  if (json.length > MAX_METADATA_LENGTH) {
    throw new InvalidArgumentError('metadata', `serializes to ${json.length} characters, limit ${MAX_METADATA_LENGTH}`)
  }
  return json
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  if (typeof value === 'string') return `string of length ${value.length}`
  return typeof value
}
