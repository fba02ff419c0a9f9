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
 *   WeakMap, WeakSet, WeakRef, URL, URLSearchParams, generators and any other non-plain built-in.
 *
 * Where we differ from Durable Objects (all refused with a {@link DataCloneError} rather than stored
 * differently, except the last two):
 * - an array with named (non-index) properties: V8 keeps them; devalue would drop them silently;
 * - an object with an own `__proto__` property (from `JSON.parse`): V8 keeps it; devalue refuses it;
 * - an Error that refers back to itself (`e.cause = e`): V8 keeps the cycle; devalue cannot read it back;
 * - workerd's serializable host objects other than DOMException: a Blob (workerd 2026 stores it; its
 *   bytes can only be read asynchronously, and a put encodes synchronously), `Request`, ...;
 * - a Proxy is stored as the object it shows (V8 refuses it; JavaScript cannot tell a Proxy);
 * - a resizable ArrayBuffer reads back fixed-length (V8 keeps `maxByteLength`).
 */
import { DevalueError, parse, stringify } from 'devalue'
import { StoreUnavailableError } from '../errors.js'
import type { EncodedValue } from '../store/object-store.js'
import { DataCloneError } from './errors.js'

const brand = (value: object): string => Object.prototype.toString.call(value).slice(8, -1)

/** Brands devalue would encode but Durable Objects refuse (workerd: "This type does not support serialization"). */
const REFUSED_BRANDS = /^(?:URL|URLSearchParams|Temporal\..*)$/

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

// The hooks (devalue's `operations`) that make devalue clone as V8 does; see the module comment.
const operations = {
  isThenable: () => false,
  tagOf: (value: object) => {
    const tag = brand(value)
    // Not a tag devalue handles: the value reaches shapeOf, which refuses every non-Object brand.
    return REFUSED_BRANDS.test(tag) ? 'Refused' : tag
  },
  shapeOf: (value: object) =>
    brand(value) === 'Object' ? { kind: 'plain' as const, keys: Object.keys(value) } : { kind: 'not-plain' as const },
}

let sawError = false

const reducers = {
  // Before Error: in Node, DOMException is an Error too.
  DOMException: (value: unknown) =>
    typeof DOMException === 'function' && value instanceof DOMException && [value.name, value.message],
  Error: (value: unknown): false | ErrorFields => {
    if (typeof value !== 'object' || value === null || brand(value) !== 'Error') return false
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
