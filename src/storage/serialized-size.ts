/**
 * How many bytes V8's structured serialization (ValueSerializer, wire format 15 with its 2-byte header,
 * what workerd stores) takes for a value: the size Durable Objects compare with their 128 KiB value
 * limit. We do not store that format (see serializer.ts), but we measure values by it so that the same
 * value is refused by us exactly when Durable Objects would refuse it.
 *
 * Exact for what people put near the limit (strings, ArrayBuffers, typed arrays, plain objects and
 * dense arrays of them); an estimate where V8's choice depends on internals JavaScript cannot see: a
 * number is a 1-5 byte small integer or a 9-byte double depending on how V8 holds it (we assume small
 * integers for integers within 31 bits, which is what literals and arithmetic on them give), and an array
 * with holes is written with its indices (we assume so exactly when it has holes).
 */

import { kindOf, slots } from './serializer.js'

/** The value's V8 serialization size in bytes (header included); see the module comment for exactness. */
export function serializedSize(value: unknown): number {
  const walk = new SizeWalk()
  walk.value(value)
  return walk.size
}

const SMI_MIN = -(2 ** 30)
const SMI_MAX = 2 ** 30 - 1
/** Errors whose prototype V8 writes as a tag (others are written, and read back, as `Error`). */
const ERROR_PROTOTYPES = new Set(['EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError'])
const REGEXP_FLAG_BITS: Record<string, number> = { d: 128, g: 1, i: 2, m: 4, s: 32, u: 16, v: 256, y: 8 }
const TWO_BYTE = /[^\x00-\xff]/
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/

class SizeWalk {
  /** Bytes so far: the header (version tag + version 15). V8 pads two-byte strings to even offsets. */
  size = 2
  readonly #ids = new Map<object, number>()

  value(v: unknown): void {
    switch (typeof v) {
      case 'string':
        return this.string(v)
      case 'number':
        return this.number(v)
      case 'bigint':
        this.size += 1 + bigintBytes(v)
        return
      case 'object':
        if (v === null) break
        return this.receiver(v)
      case 'function':
        return this.receiver(v)
    }
    this.size += 1 // undefined, null, true, false (a symbol never gets here: the encoder refused it)
  }

  string(s: string): void {
    if (!TWO_BYTE.test(s)) {
      this.size += 1 + varint(s.length) + s.length
      return
    }
    const bytes = 2 * s.length
    if ((this.size + 1 + varint(bytes)) & 1) this.size += 1 // padding tag, so the UTF-16 data is aligned
    this.size += 1 + varint(bytes) + bytes
  }

  number(n: number): void {
    const small = Number.isInteger(n) && !Object.is(n, -0) && n >= SMI_MIN && n <= SMI_MAX
    this.size += small ? 1 + varint(n >= 0 ? 2 * n : -2 * n - 1) : 9
  }

  /** A property key: V8 writes an array-index key as a number, any other as a string. */
  key(k: string): void {
    if (ARRAY_INDEX.test(k) && Number(k) < 2 ** 32 - 1) this.number(Number(k))
    else this.string(k)
  }

  receiver(o: object): void {
    const seen = this.#ids.get(o)
    if (seen !== undefined) {
      this.size += 1 + varint(seen)
      return
    }
    // As V8 does, by internal slots (a Symbol.toStringTag changes nothing). workerd writes a DOMException
    // with its own serializer: estimated as an object of its own properties.
    const kind = typeof DOMException === 'function' && o instanceof DOMException ? 'Object' : kindOf(o)
    const view = ArrayBuffer.isView(o) ? slots.view(o) : undefined
    // A view's buffer is written before the view itself (and before the view gets its id).
    if (view) this.receiver(view.buffer)
    this.#ids.set(o, this.#ids.size)
    if (view) {
      // 'V', the view's kind, offset, length, flags.
      this.size += 2 + varint(view.byteOffset) + varint(view.byteLength) + 1
      return
    }
    switch (kind) {
      case 'Array':
        return this.array(o as unknown[])
      case 'Date':
        this.size += 9
        return
      case 'RegExp': {
        const { source, flags } = slots.regExp(o)
        this.size += 1
        this.string(source)
        this.size += varint([...flags].reduce((bits, flag) => bits | (REGEXP_FLAG_BITS[flag] ?? 0), 0))
        return
      }
      case 'Map': {
        this.size += 1
        for (const [k, v] of slots.mapEntries(o)) {
          this.value(k)
          this.value(v)
        }
        this.size += 1 + varint(2 * slots.mapSize(o))
        return
      }
      case 'Set': {
        this.size += 1
        for (const v of slots.setValues(o)) this.value(v)
        this.size += 1 + varint(slots.setSize(o))
        return
      }
      case 'ArrayBuffer': {
        const { byteLength, maxByteLength } = slots.arrayBuffer(o)
        this.size += 1 + varint(byteLength) + byteLength
        if (maxByteLength !== undefined) this.size += varint(maxByteLength)
        return
      }
      case 'Boolean':
        this.size += 1
        return
      case 'Number':
        this.size += 9
        return
      case 'BigInt':
        this.size += 1 + bigintBytes(slots.unboxed(o) as bigint)
        return
      case 'String':
        this.size += 1
        return this.string(slots.unboxed(o) as string)
      case 'Error':
        return this.error(o as Error)
    }
    // Any other object is written as a plain one: its own enumerable string-keyed properties.
    const keys = Object.keys(o)
    this.size += 1
    for (const k of keys) {
      this.key(k)
      this.value((o as Record<string, unknown>)[k])
    }
    this.size += 1 + varint(keys.length)
  }

  array(a: unknown[]): void {
    const keys = Object.keys(a)
    const length = a.length
    let indices = 0
    while (indices < keys.length && ARRAY_INDEX.test(keys[indices]!) && Number(keys[indices]) < length) indices++
    const extra = keys.slice(indices)
    this.size += 1 + varint(length)
    if (indices === length) {
      // Dense: the elements, then the other properties, then their count and the length.
      for (let i = 0; i < length; i++) this.value(a[i])
    } else {
      // With holes: every present index as a key, as other properties are.
      for (let i = 0; i < indices; i++) {
        this.key(keys[i]!)
        this.value(a[Number(keys[i])])
      }
    }
    for (const k of extra) {
      this.key(k)
      this.value((a as unknown as Record<string, unknown>)[k])
    }
    this.size += 1 + varint(indices === length ? extra.length : keys.length) + varint(length)
  }

  error(e: Error): void {
    this.size += 1 // 'r'
    if (ERROR_PROTOTYPES.has(String(e.name))) this.size += 1
    const message = Object.getOwnPropertyDescriptor(e, 'message')
    if (message && 'value' in message && typeof message.value === 'string') {
      this.size += 1
      this.string(message.value)
    }
    const stack = e.stack
    if (typeof stack === 'string') {
      this.size += 1
      this.string(stack)
    }
    if (Object.hasOwn(e, 'cause')) {
      this.size += 1
      this.value(e.cause)
    }
    // workerd's own additions (its other own properties): an estimate, as a key and a value each.
    for (const name of Object.getOwnPropertyNames(e)) {
      if (name === 'message' || name === 'stack' || name === 'cause') continue
      this.key(name)
      this.value((e as unknown as Record<string, unknown>)[name])
    }
    this.size += 1 // end
  }
}

/** Bytes of a varint (7 bits a byte). */
function varint(n: number): number {
  let bytes = 1
  while (n >= 0x80) {
    n = Math.floor(n / 0x80)
    bytes++
  }
  return bytes
}

/** A BigInt's bitfield (sign, byte length) and its 64-bit digits. */
function bigintBytes(b: bigint): number {
  const magnitude = b < 0n ? -b : b
  const digits = magnitude === 0n ? 0 : Math.ceil(magnitude.toString(16).length / 16)
  return varint(digits * 8 * 2 + (b < 0n ? 1 : 0)) + digits * 8
}
