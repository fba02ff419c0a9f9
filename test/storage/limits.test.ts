/**
 * Durable Objects' limits (src/storage/limits.ts) and the size they measure values by
 * (src/storage/serialized-size.ts), checked against V8's own serializer in Node (the same
 * ValueSerializer, wire format 15, that workerd stores).
 */
import { Serializer } from 'node:v8'
import { describe, expect, it } from 'vitest'
import {
  InvalidArgumentError,
  KeyTooLargeError,
  MAX_KEY_BYTES,
  MAX_KEYS_PER_CALL,
  MAX_VALUE_BYTES,
  TooManyKeysError,
  VALUE_SIZE_SLACK,
  ValueTooLargeError,
  encodeValue,
  serializedSize,
} from '../../src/index.js'
import { checkKeyCount, checkValueSize, toKey, utf8Length } from '../../src/storage/limits.js'

/** V8's own size for a value: header + value, views written natively (as workerd writes them). */
function v8Size(value: unknown): number {
  const serializer = new Serializer()
  serializer.writeHeader()
  serializer.writeValue(value)
  return serializer.releaseBuffer().length
}

const catchError = (f: () => unknown): unknown => {
  try {
    f()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}

describe('serializedSize', () => {
  const shared = { s: 1 }
  const cycle: Record<string, unknown> = { a: 1 }
  cycle.self = cycle
  const sparse: unknown[] = [1, , 3]
  sparse[10] = 9
  const bytes = new Uint8Array(16)
  const error = new TypeError('boom', { cause: 5 })
  error.stack = 'stack'
  const cases: Array<[string, unknown]> = [
    ['a one-byte string', 'hello'],
    ['a Latin-1 string', 'h\u00e9llo'],
    ['a two-byte string (padding included)', 'h\u20acllo'],
    ['two two-byte strings in a row', ['\u20ac', 'a', '\u20ac\u20ac', { '\u20ac': '\u20ac' }]],
    ['an astral string', '\u{1F600}'],
    ['a 128 KiB string', 'x'.repeat(MAX_VALUE_BYTES)],
    ['a two-byte string of 70,000 characters', '\u20ac'.repeat(70_000)],
    ['small integers', [0, 1, -1, 63, 64, -65, 2 ** 29, -(2 ** 30)]],
    ['doubles', [1.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 2e9 + 0.5]],
    ['oddballs', [true, false, null, undefined]],
    ['BigInts', [0n, 1n, -(2n ** 64n), 2n ** 200n]],
    ['plain objects, nested', { a: 1, b: 'x', c: { d: [1, 2, 3] } }],
    ['array-index keys written as numbers', { 1: 'a', b: 2, 4294967294: 1, 4294967295: 2 }],
    ['a dense array with named properties', Object.assign([1, 2], { x: 'y' })],
    ['a sparse array', sparse],
    ['Date, RegExp (flags over 7 bits too)', [new Date(0), /a.b/gi, new RegExp('x', 'dv')]],
    [
      'Map and Set',
      [
        new Map<unknown, unknown>([
          [1, 'a'],
          ['b', { c: 1 }],
        ]),
        new Set([1, 'x', {}]),
      ],
    ],
    ['boxed primitives', [Object(true), Object(1), Object('s\u20ac'), Object(5n)]],
    ['back-references and cycles', [shared, shared, cycle]],
    ['an Error with cause and stack', error],
    ['an ArrayBuffer', new ArrayBuffer(10)],
    ['a 128 KiB Uint8Array', new Uint8Array(MAX_VALUE_BYTES)],
    [
      'typed arrays and a DataView',
      [new Float64Array(3), new BigInt64Array(2), new DataView(new ArrayBuffer(8), 2, 3)],
    ],
    ['views sharing one buffer', { a: bytes.subarray(1, 2), b: new Uint16Array(bytes.buffer) }],
    [
      'a resizable ArrayBuffer',
      new (ArrayBuffer as new (n: number, o: object) => ArrayBuffer)(4, { maxByteLength: 100 }),
    ],
    [
      'objects whatever their Symbol.toStringTag (V8 goes by internal slots)',
      [
        new (class {
          x = 1
          get [Symbol.toStringTag]() {
            return 'Tagged'
          }
        })(),
        new (class extends Map<number, number> {
          override get [Symbol.toStringTag]() {
            return 'TaggedMap'
          }
        })([[1, 2]]),
        { [Symbol.toStringTag]: 'Map', a: 1 },
        ...[
          new Map([[1, 2]]),
          new Date(0),
          new Set(['s']),
          new ArrayBuffer(3),
          new Uint16Array(2),
          Object('s\u20ac'),
        ].map((value: object) => Object.defineProperty(value, Symbol.toStringTag, { value: 'Object' })),
      ],
    ],
  ]
  for (const [what, value] of cases) {
    it(`equals V8's serialization size for ${what}`, () => {
      expect(serializedSize(value)).toBe(v8Size(value))
    })
  }
})

describe('limits', () => {
  it("are the KV backend's numbers (workerd ActorStorageLimits, Cloudflare docs)", () => {
    expect([MAX_KEY_BYTES, MAX_VALUE_BYTES, VALUE_SIZE_SLACK, MAX_KEYS_PER_CALL]).toEqual([2048, 131072, 34, 128])
  })

  describe('toKey', () => {
    it('converts non-string keys with String(), as Durable Objects do', () => {
      expect([1, null, undefined, true, {}, [1, 2]].map((key) => toKey('key', key))).toEqual([
        '1',
        'null',
        'undefined',
        'true',
        '[object Object]',
        '1,2',
      ])
    })

    it('refuses a symbol with the TypeError text of Durable Objects', () => {
      expect(catchError(() => toKey('keys[1]', Symbol('s')))).toMatchObject({
        argument: 'keys[1]',
        message: 'invalid keys[1]: Cannot convert a Symbol value to a string',
      })
    })

    it('turns a lone surrogate into three U+FFFD, as workerd lists such a key back', () => {
      expect(toKey('key', 'a\uD800b\uDFFF')).toBe('a\uFFFD\uFFFD\uFFFDb\uFFFD\uFFFD\uFFFD')
      expect(toKey('key', '\u{1F600}')).toBe('\u{1F600}')
    })

    it('sizes a lone surrogate as its 3 bytes, as workerd does', () => {
      expect(toKey('key', 'k'.repeat(2045) + '\uD800')).toHaveLength(2048)
      expect(() => toKey('key', 'k'.repeat(2046) + '\uD800')).toThrow(KeyTooLargeError)
    })

    it('refuses NUL (the SQL stores cannot give it back; Durable Objects accept it)', () => {
      const error = catchError(() => toKey('key', 'a\0b'))
      expect(error).toBeInstanceOf(InvalidArgumentError)
      expect(error).toMatchObject({ argument: 'key' })
    })

    it(`accepts ${MAX_KEY_BYTES} bytes of UTF-8 and refuses one more, as Durable Objects (KV backend) word it`, () => {
      expect(toKey('key', 'k'.repeat(MAX_KEY_BYTES))).toHaveLength(MAX_KEY_BYTES)
      expect(toKey('key', '\u20ac'.repeat(682) + 'kk')).toBeTruthy() // 2046 + 2 bytes
      const error = catchError(() => toKey('key', '\u20ac'.repeat(683))) // 2049 bytes
      expect(error).toBeInstanceOf(KeyTooLargeError)
      expect(error).toMatchObject({
        argument: 'key',
        bytes: 2049,
        limit: 2048,
        message: 'invalid key: Keys cannot be larger than 2048 bytes. A key of size 2049 was provided.',
      })
    })

    it('does not size list bounds', () => {
      expect(toKey('options.start', 'k'.repeat(5000), false)).toHaveLength(5000)
    })
  })

  it('utf8Length counts 1-4 bytes per code point, and 3 for a lone surrogate (generalized UTF-8)', () => {
    expect(['a', '\u00e9', '\u20ac', '\u{1F600}', '\uD800', ''].map(utf8Length)).toEqual([1, 2, 3, 4, 3, 0])
  })

  it(`checkKeyCount refuses more than ${MAX_KEYS_PER_CALL}, as Durable Objects word it`, () => {
    expect(() => checkKeyCount('keys', 128)).not.toThrow()
    expect(catchError(() => checkKeyCount('entries', 129))).toMatchObject({
      name: 'TooManyKeysError',
      argument: 'entries',
      count: 129,
      limit: 128,
      message: 'invalid entries: Maximum number of key value pairs is 128. 129 pairs were provided.',
    })
    expect(catchError(() => checkKeyCount('keys', 500))).toBeInstanceOf(TooManyKeysError)
  })

  describe('checkValueSize', () => {
    const check = (value: unknown) => checkValueSize('value', 'k', encodeValue(value, 'k'))

    it('accepts a 128 KiB string or byte array (the slack covers their tags and header)', () => {
      expect(() => check('x'.repeat(MAX_VALUE_BYTES))).not.toThrow()
      expect(() => check(new Uint8Array(MAX_VALUE_BYTES))).not.toThrow()
      expect(() => check(new Uint8Array(MAX_VALUE_BYTES).buffer)).not.toThrow()
    })

    it('refuses a value one byte past the slack, naming its size as Durable Objects do', () => {
      // 2 header + 1 tag + 3 varint + n bytes: the largest one-byte string accepted is 131,100 characters.
      expect(() => check('x'.repeat(131_100))).not.toThrow()
      const error = catchError(() => check('x'.repeat(131_101)))
      expect(error).toBeInstanceOf(ValueTooLargeError)
      expect(error).toMatchObject({
        argument: 'value',
        key: 'k',
        bytes: 131_107,
        limit: MAX_VALUE_BYTES,
        message: 'invalid value: Values cannot be larger than 131072 bytes. A value of size 131107 was provided.',
      })
    })

    it('measures what V8 would write, not our encoding: a string referenced many times counts every time', () => {
      const s = 'x'.repeat(1000)
      expect(encodeValue(Array(200).fill(s), 'k').length).toBeLessThan(2000)
      expect(catchError(() => check(Array(200).fill(s)))).toBeInstanceOf(ValueTooLargeError)
    })

    it('keeps the encoding of any admitted value far under a D1 row (2 MB), even a worst case', () => {
      // NUL characters: 1 byte each for V8, 6 (\u0000) in our JSON text.
      const worst = '\0'.repeat(131_100)
      expect(() => check(worst)).not.toThrow()
      expect(utf8Length(encodeValue(worst, 'k'))).toBeLessThan(1_000_000)
    })
  })
})
