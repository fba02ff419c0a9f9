/**
 * Values as Durable Objects store them: a structured clone, encoded as text the stores keep verbatim
 * ({@link EncodedValue}), byte for byte the same on Node and workerd (pure JavaScript, no
 * `v8.serialize`, no runtime-dependent output).
 *
 * The encoding is devalue's (`devalue.stringify`, the Svelte team's; pinned exactly, since its output
 * is our storage format): JSON text of a flattened graph that keeps Date, RegExp, Map, Set, BigInt,
 * boxed primitives, ArrayBuffer, every typed array and DataView (offsets and shared buffers included),
 * `undefined`, NaN, -0, ±Infinity, sparse arrays, shared references and cycles, and escapes NUL and
 * lone surrogates (so a SQL store gets well-formed text). We adjust it to what Durable Objects (V8's
 * structured clone with class instances treated as plain objects) accept, through devalue's own hooks:
 *
 * - what an object is (a Map, a Date, an Error, a plain object, ...) is decided as V8 decides, by its
 *   internal slots ({@link kindOf}), and its contents are read through the built-ins: a
 *   `Symbol.toStringTag`, a subclass's overrides or another realm change nothing (a Map subclass is a
 *   Map, a class instance with a tag is a plain object, a Map retagged 'Object' is a Map);
 * - class instances, `Object.create(proto)` and null-prototype objects are cloned as plain objects
 *   (their own enumerable properties; V8 reads them back with `Object.prototype`), symbol-keyed
 *   properties are skipped, thenables are ordinary objects;
 * - Errors keep their prototype (Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError,
 *   URIError; any other name reads back as Error), message, stack, cause and every other own
 *   string-keyed property (an own `name` included), read back as own enumerable properties: what workerd
 *   keeps at current compatibility dates (measured at 2026-08-01; at 2025-09-01 it dropped the other
 *   properties, as V8's own serializer does, so there we keep more than it); DOMException keeps name and
 *   message (workerd serializes it);
 * - refused, as Durable Objects refuse them ({@link DataCloneError}): functions, symbols, Promise,
 *   WeakMap, WeakSet, WeakRef, URL, URLSearchParams, generators and any other non-plain built-in (told
 *   apart by the tag built-ins define, see {@link kindOf}).
 *
 * Where we differ from Durable Objects (all refused with a {@link DataCloneError} rather than stored
 * differently, except the last three):
 * - an array with named (non-index) properties: V8 keeps them; devalue would drop them silently;
 * - an object with an own `__proto__` property (from `JSON.parse`): V8 keeps it; devalue refuses it;
 * - an Error that refers back to itself (`e.cause = e`): V8 keeps the cycle; devalue cannot read it back;
 * - workerd's serializable host objects other than DOMException: a Blob (workerd 2026 stores it; its
 *   bytes can only be read asynchronously, and a put encodes synchronously), `Request`, ...;
 * - an object with a built-in's tag but not its slots (`Object.create(Promise.prototype)`, a class that
 *   defines its tag as built-ins do): V8 clones it as a plain object; we take it for the built-in;
 * - where JavaScript cannot read an internal slot ({@link kindOf}): a Map, Set or ArrayBuffer whose
 *   prototype was replaced (`Object.setPrototypeOf`) is stored as a plain object, and without
 *   `Error.isError` (Node 20, 22) an object with a tag that inherits from Error.prototype as an Error;
 * - a Proxy is stored as the object it shows (V8 refuses it; JavaScript cannot tell a Proxy);
 * - a resizable ArrayBuffer reads back fixed-length (V8 keeps `maxByteLength`).
 */
import { DevalueError, parse, stringify } from 'devalue'
import { StoreUnavailableError } from '../errors.js'
import type { EncodedValue } from '../store/object-store.js'
import { DataCloneError } from './errors.js'

/** Object.prototype.toString's name for a value: a `Symbol.toStringTag` changes it, so it only names things. */
const brand = (value: object): string => Object.prototype.toString.call(value).slice(8, -1)

/** The names a view has: what the %TypedArray% `Symbol.toStringTag` getter answers, or DataView. */
const VIEW_KINDS = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Float16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
  'DataView',
] as const
type ViewKind = (typeof VIEW_KINDS)[number]

/**
 * What V8's serializer writes an object as: its kind by internal slots (devalue's name for it), `Error`,
 * `Object` for what it writes as a plain object, or `Refused` for what it refuses.
 */
export type ObjectKind =
  | 'Array'
  | 'Map'
  | 'Set'
  | 'Date'
  | 'RegExp'
  | 'ArrayBuffer'
  | 'Number'
  | 'String'
  | 'Boolean'
  | 'BigInt'
  | ViewKind
  | 'Error'
  | 'Object'
  | 'Refused'

type Read = (this: object) => unknown

const getter = (prototype: object, key: PropertyKey): Read =>
  Object.getOwnPropertyDescriptor(prototype, key)!.get as Read
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object
const typedArray = {
  name: getter(TypedArrayPrototype, Symbol.toStringTag),
  buffer: getter(TypedArrayPrototype, 'buffer'),
  byteOffset: getter(TypedArrayPrototype, 'byteOffset'),
  byteLength: getter(TypedArrayPrototype, 'byteLength'),
  length: getter(TypedArrayPrototype, 'length'),
}
const dataView = {
  buffer: getter(DataView.prototype, 'buffer'),
  byteOffset: getter(DataView.prototype, 'byteOffset'),
  byteLength: getter(DataView.prototype, 'byteLength'),
}
const regExpSource = getter(RegExp.prototype, 'source')
const mapSize = getter(Map.prototype, 'size')
const setSize = getter(Set.prototype, 'size')
const arrayBufferByteLength = getter(ArrayBuffer.prototype, 'byteLength')
// Not on every runtime (resizable ArrayBuffers are ES2024).
const arrayBufferResizable = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'resizable')?.get as
  Read | undefined
const arrayBufferMaxByteLength = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, 'maxByteLength')?.get as
  Read | undefined
/** RegExp flags in the order of RegExp.prototype.flags, each read by its getter (absent ones skipped). */
const REGEXP_FLAGS = (
  [
    ['d', 'hasIndices'],
    ['g', 'global'],
    ['i', 'ignoreCase'],
    ['m', 'multiline'],
    ['s', 'dotAll'],
    ['u', 'unicode'],
    ['v', 'unicodeSets'],
    ['y', 'sticky'],
  ] as const
).flatMap(([flag, name]) => (name in RegExp.prototype ? [[flag, getter(RegExp.prototype, name)] as const] : []))

/** Whether `read` (a built-in getter or method) takes `value`: without the internal slot it reads, it throws. */
function accepts(read: Read, value: object): boolean {
  try {
    read.call(value)
    return true
  } catch {
    return false
  }
}

/**
 * Built-ins we recognize by an internal slot: their name (their prototype's tag, where it has one), the
 * prototype, and the test for the slot. The prototype on a value's chain (a subclass, a retagged Map), or
 * a built-in's tag (another realm's Map), only says which slot to test for; the slot decides.
 */
const SLOT_KINDS: ReadonlyArray<readonly [name: string, prototype: object, test: (value: object) => boolean]> = [
  ['Map', Map.prototype, (value) => accepts(mapSize, value)],
  ['Set', Set.prototype, (value) => accepts(setSize, value)],
  ['Date', Date.prototype, (value) => accepts(Date.prototype.getTime, value)],
  // The source getter also answers for RegExp.prototype itself, an ordinary object.
  ['RegExp', RegExp.prototype, (value) => value !== RegExp.prototype && accepts(regExpSource, value)],
  ['ArrayBuffer', ArrayBuffer.prototype, (value) => accepts(arrayBufferByteLength, value)],
  ['Number', Number.prototype, (value) => accepts(Number.prototype.valueOf, value)],
  ['String', String.prototype, (value) => accepts(String.prototype.valueOf, value)],
  ['Boolean', Boolean.prototype, (value) => accepts(Boolean.prototype.valueOf, value)],
  ['BigInt', BigInt.prototype, (value) => accepts(BigInt.prototype.valueOf, value)],
  ['Symbol', Symbol.prototype, (value) => accepts(Symbol.prototype.valueOf, value)],
]
interface SlotKind {
  /** A boxed symbol is refused, as V8 refuses it. */
  kind: ObjectKind
  test: (value: object) => boolean
}
const SLOT_BY_TAG = new Map<string, SlotKind>(
  SLOT_KINDS.map(([name, , test]) => [name, { kind: name === 'Symbol' ? 'Refused' : (name as ObjectKind), test }]),
)
const SLOT_BY_PROTOTYPE = new Map(SLOT_KINDS.map(([name, prototype]) => [prototype, SLOT_BY_TAG.get(name)!]))

/** What Object.prototype.toString names by internal slot, when nothing on the chain has a tag. */
const UNTAGGED_KINDS = new Set<string>(['Date', 'RegExp', 'Number', 'String', 'Boolean', 'Error'])

/**
 * Tags that say nothing about a value: those of the kinds we tell by other means than a tag (tested
 * before, and failed: `Object.create(Map.prototype)`, or `Object`).
 */
const TOLD_APART = new Set<string>(['Object', 'Array', 'Error', ...SLOT_KINDS.map(([name]) => name), ...VIEW_KINDS])

/**
 * What V8's serializer writes `value` as, decided as V8 decides, by internal slots: a `Symbol.toStringTag`
 * on the object or its prototypes does not change it. Runs no getter of the value.
 *
 * A tag defined as built-ins and host objects define theirs, a non-enumerable data property (ECMAScript's
 * and Node's are also read-only, workerd's are writable), marks what we refuse (a Promise, a URL, a
 * generator); a class getter or an ordinary property is the user's own and says nothing (V8 clones such
 * an object as a plain one).
 *
 * Where JavaScript cannot read the slots: a Map, Set, ArrayBuffer or boxed BigInt whose prototype was
 * replaced (by one without its tag) is taken for a plain object, and so is a Date, RegExp, boxed number,
 * string or boolean whose new prototype chain has a tag; an object that has a built-in's tag but not its
 * slots (`Object.create(Promise.prototype)`, a class that defines its tag as built-ins do) is refused;
 * and, where `Error.isError` is missing (Node 20, 22), an object with a tag is an Error exactly when
 * Error.prototype is on its chain (encoded as an Error, it keeps every own property, so a tagged Error
 * loses no data).
 */
export function kindOf(value: object): ObjectKind {
  if (Array.isArray(value)) return 'Array'
  if (ArrayBuffer.isView(value)) return (typedArray.name.call(value) as ViewKind | undefined) ?? 'DataView'
  let tagged = false
  let builtInTag = false
  let onErrorChain = false
  for (let o: object | null = value; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const slot = SLOT_BY_PROTOTYPE.get(o)
    if (slot?.test(value)) return slot.kind
    if (o === Error.prototype) onErrorChain = true
    const tag = Object.getOwnPropertyDescriptor(o, Symbol.toStringTag)
    if (tag === undefined) continue
    tagged = true
    if (tag.enumerable || typeof tag.value !== 'string') continue // the user's own tag
    // An own tag is the user's too, but on a module namespace (not extensible), the one built-in V8
    // refuses that holds its own tag (Math and JSON hold theirs, and V8 clones them as plain objects).
    if (o === value && Object.isExtensible(value)) continue
    const named = SLOT_BY_TAG.get(tag.value) // another realm's built-in
    if (named !== undefined && named !== slot && named.test(value)) return named.kind
    if (!TOLD_APART.has(tag.value)) builtInTag = true
  }
  if (!tagged) {
    // Nothing on the chain has a tag, so Object.prototype.toString answers by internal slot.
    const name = brand(value)
    if (name === 'Object') return 'Object'
    return UNTAGGED_KINDS.has(name) ? (name as ObjectKind) : 'Refused' // Arguments, Function
  }
  const isError = (Error as { isError?: (value: unknown) => boolean }).isError
  if (isError ? isError(value) : onErrorChain) return 'Error'
  return builtInTag ? 'Refused' : 'Object'
}

/**
 * Readers of what V8's serializer reads from a built-in: its internal slots, through the built-in
 * getters and methods (a subclass's overrides, or a replaced prototype, do not change them).
 */
export const slots = {
  mapEntries: (map: object) => Map.prototype.entries.call(map as Map<unknown, unknown>),
  mapSize: (map: object) => mapSize.call(map) as number,
  setValues: (set: object) => Set.prototype.values.call(set as Set<unknown>),
  setSize: (set: object) => setSize.call(set) as number,
  /** A Date's ISO text, or '' for an invalid Date (as devalue writes it). */
  dateText: (date: object) =>
    Number.isNaN(Date.prototype.getTime.call(date)) ? '' : Date.prototype.toISOString.call(date),
  regExp: (regexp: object) => ({
    source: regExpSource.call(regexp) as string,
    flags: REGEXP_FLAGS.map(([flag, read]) => (read.call(regexp) ? flag : '')).join(''),
  }),
  /** A boxed primitive's value, by its kind. */
  unboxed: (boxed: object): unknown => {
    switch (kindOf(boxed)) {
      case 'Number':
        return Number.prototype.valueOf.call(boxed)
      case 'String':
        return String.prototype.valueOf.call(boxed)
      case 'Boolean':
        return Boolean.prototype.valueOf.call(boxed)
      default:
        return BigInt.prototype.valueOf.call(boxed)
    }
  },
  view: (view: object) => {
    const typed = typedArray.name.call(view) !== undefined
    const read = typed ? typedArray : dataView
    const byteLength = read.byteLength.call(view) as number
    return {
      buffer: read.buffer.call(view) as ArrayBufferLike,
      byteOffset: read.byteOffset.call(view) as number,
      byteLength,
      length: typed ? (typedArray.length.call(view) as number) : byteLength,
    }
  },
  /** An ArrayBuffer's length, and its maximum length if it is resizable. */
  arrayBuffer: (buffer: object) => ({
    byteLength: arrayBufferByteLength.call(buffer) as number,
    maxByteLength: arrayBufferResizable?.call(buffer) ? (arrayBufferMaxByteLength!.call(buffer) as number) : undefined,
  }),
}

/** The prototypes V8 keeps for an Error, by name. */
const ERROR_TYPES: Record<string, ErrorConstructor> = {
  Error,
  EvalError,
  RangeError,
  ReferenceError,
  SyntaxError,
  TypeError,
  URIError,
}

/** What an Error is encoded as: the fields V8 keeps, and the other own properties workerd keeps. */
interface ErrorFields {
  name: string
  message?: string
  stack?: string
  cause?: unknown
  /** Own string-keyed properties but message, stack and cause; absent when there are none. */
  props?: Record<string, unknown>
}

/** Own properties an Error's fields already hold. */
const ERROR_FIELDS = new Set(['message', 'stack', 'cause'])

/** Returned by a reducer for what we refuse: devalue then fails on it with the path to the value. */
const namedArrayProperties = function namedArrayProperties() {}

const ARRAY_INDEX = /^(?:0|[1-9]\d*)$/

// The hooks (devalue's `operations`) that make devalue clone as V8 does; see the module comment. Kinds
// are told by internal slots (kindOf) and read through the built-ins (slots), never by the value's own
// Symbol.toStringTag or methods.
const operations = {
  isThenable: () => false,
  // Error never gets here (its reducer took it); Object and Refused reach shapeOf, which refuses Refused.
  tagOf: (value: object): string => kindOf(value),
  shapeOf: (value: object) =>
    kindOf(value) === 'Object' ? { kind: 'plain' as const, keys: Object.keys(value) } : { kind: 'not-plain' as const },
  unbox: slots.unboxed,
  toISOString: slots.dateText,
  regExpInfo: slots.regExp,
  entriesOf: slots.mapEntries,
  valuesOf: slots.setValues,
  viewInfo: (view: object) => {
    // As devalue does: a Node Buffer may share its pool with unrelated data, so only its own bytes are kept.
    const own = (globalThis as { Buffer?: { isBuffer(value: unknown): boolean } }).Buffer?.isBuffer(view)
      ? new Uint8Array(view as Uint8Array)
      : view
    const info = slots.view(own)
    return { ...info, bufferByteLength: info.buffer.byteLength }
  },
}

let sawError = false

const reducers = {
  // Before Error: in Node, DOMException is an Error too.
  DOMException: (value: unknown) =>
    typeof DOMException === 'function' && value instanceof DOMException && [value.name, value.message],
  Error: (value: unknown): false | ErrorFields => {
    if (typeof value !== 'object' || value === null || kindOf(value) !== 'Error') return false
    sawError = true
    const error = value as Error
    const fields: ErrorFields = { name: ERROR_TYPES[String(error.name)] ? String(error.name) : 'Error' }
    const message = Object.getOwnPropertyDescriptor(error, 'message')
    if (message && typeof message.value === 'string') fields.message = message.value
    if (typeof error.stack === 'string') fields.stack = error.stack
    if (Object.hasOwn(error, 'cause')) fields.cause = error.cause
    const names = Object.getOwnPropertyNames(error).filter((name) => !ERROR_FIELDS.has(name))
    if (names.length > 0) {
      const props: Record<string, unknown> = {}
      // Getters run here, once each; a plain object keeps devalue's output free of prototypes.
      for (const name of names) props[name] = (error as unknown as Record<string, unknown>)[name]
      fields.props = props
    }
    return fields
  },
  NamedArray: (value: unknown) => {
    if (!Array.isArray(value)) return false
    // Index keys come first in Object.keys order, so a named property, if any, is last.
    const keys = Object.keys(value)
    const last = keys[keys.length - 1]
    return last !== undefined && !ARRAY_INDEX.test(last) && namedArrayProperties
  },
}

/**
 * While {@link encodeValue} reads its own output back: the Error fields revived so far. devalue revives
 * an Error whose fields lead back to itself twice, from the same fields (the inner copy without its
 * cause), so seeing the same fields twice means such a cycle.
 */
let revived: Set<ErrorFields> | undefined

const revivers = {
  DOMException: ([name, message]: [string, string]) => new DOMException(message, name),
  Error: (fields: ErrorFields) => {
    if (revived) {
      if (revived.has(fields)) throw new Error('an Error that refers back to itself')
      revived.add(fields)
    }
    const { name, message, stack, cause, props } = fields
    const Type = ERROR_TYPES[name] ?? Error
    const error = new Type(message)
    // workerd (2026) reads stack, cause and the other kept properties back as own enumerable ones.
    const kept: Record<string, unknown> = { ...(stack === undefined ? {} : { stack }), ...props }
    if (Object.hasOwn(fields, 'cause')) kept.cause = cause
    for (const [key, value] of Object.entries(kept)) {
      Object.defineProperty(error, key, { value, writable: true, configurable: true, enumerable: true })
    }
    return error
  },
}

/**
 * Encodes a value as Durable Objects would store it (a structured clone; see the module comment for
 * what is kept and what is refused). Getters run, once each, as in Durable Objects.
 *
 * @param value - what was put.
 * @param key - the storage key, for the error.
 * @param argument - the argument that held the value (`value`, `entries["k"]`), for the error.
 * @throws {@link DataCloneError} for what cannot be stored, before anything is buffered.
 *
 * @example
 * ```ts
 * const encoded = encodeValue(new Map([[1, { at: new Date(0) }]]), 'k')
 * decodeValue(encoded, 'k') // Map(1) { 1 => { at: 1970-01-01T00:00:00.000Z } }
 * ```
 */
export function encodeValue(value: unknown, key: string, argument = 'value'): EncodedValue {
  sawError = false
  let encoded: string
  try {
    encoded = stringify(value, reducers, { operations })
  } catch (error) {
    if (error instanceof DevalueError) throw toCloneError(error, key, argument)
    throw error // a getter threw: as in Durable Objects, its error is the put's
  }
  // devalue cannot read back an Error that refers back to itself; refuse it now, not at the next read.
  if (sawError) {
    revived = new Set()
    try {
      parse(encoded, revivers)
    } catch {
      throw new DataCloneError(
        argument,
        key,
        '',
        'an Error that refers back to itself (e.g. through cause) is not supported',
      )
    } finally {
      revived = undefined
    }
  }
  return encoded
}

/**
 * Decodes what {@link encodeValue} encoded: a new copy on every call, as every Durable Object `get`
 * returns one.
 *
 * @param encoded - as stored.
 * @param key - the storage key, for the error.
 * @throws StoreUnavailableError (not retryable) when the stored text is not an encoded value: the row
 *   was written by something else, and an operator must look at it.
 */
export function decodeValue(encoded: EncodedValue, key: string): unknown {
  try {
    return parse(encoded, revivers)
  } catch (error) {
    throw new StoreUnavailableError(`stored value of key ${JSON.stringify(key)} cannot be decoded`, {
      cause: error,
      retryable: false,
    })
  }
}

function toCloneError(error: DevalueError, key: string, argument: string): DataCloneError {
  const culprit: unknown = error.value
  let problem: string
  if (culprit === namedArrayProperties) {
    problem = 'an array with named (non-index) properties is not supported'
  } else if (/__proto__/.test(error.message)) {
    problem = 'an object with an own "__proto__" property is not supported'
  } else if (typeof culprit === 'function') {
    problem = `function ${culprit.name || '(anonymous)'} could not be cloned`
  } else if (typeof culprit === 'symbol') {
    problem = `${String(culprit)} could not be cloned`
  } else if (typeof culprit === 'object' && culprit !== null) {
    problem = `#<${brand(culprit)}> could not be cloned`
  } else {
    problem = error.message
  }
  return new DataCloneError(argument, key, error.path, problem)
}
