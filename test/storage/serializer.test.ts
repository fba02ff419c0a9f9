/**
 * Values as Durable Objects store them (src/storage/serializer.ts): every structured-clone type
 * round-trips, shared references and cycles survive, what Durable Objects refuse is refused by name, and
 * the encoding of a fixed set of values is recorded (fixtures/encodings.json) for workerd to compare.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { types } from 'node:util'
import { runInNewContext } from 'node:vm'
import { describe, expect, it } from 'vitest'
import {
  DataCloneError,
  InvalidArgumentError,
  StoreUnavailableError,
  decodeValue,
  encodeValue,
} from '../../src/index.js'
import { fixtureValues } from './fixtures/values.js'

const roundTrip = <T>(value: T): T => decodeValue(encodeValue(value, 'k'), 'k') as T
const FIXTURE = join(import.meta.dirname, 'fixtures/encodings.json')

describe('encodeValue / decodeValue', () => {
  describe('round-trips every structured-clone type', () => {
    const cases: Array<[string, unknown]> = [
      ['strings (empty, non-ASCII, astral)', ['', 'h\u00e9llo', '\u20ac', '\u{1F600}']],
      ['NUL and control characters', 'a\u0000b\u0001\n\t"\\'],
      ['numbers', [0, 1, -1, 2 ** 53, -(2 ** 31), 1.5, 5e-324, Number.MAX_VALUE]],
      ['booleans and null', [true, false, null]],
      ['BigInt', [0n, 1n, -1n, 2n ** 200n, -(2n ** 64n)]],
      ['Date', new Date(Date.UTC(2024, 1, 29, 1, 2, 3, 4))],
      ['a Date far from the epoch', new Date(8.64e15)],
      ['RegExp with every flag', /a.b[c-d]/dgimsuy],
      ['RegExp with the v flag', new RegExp('[\\p{L}--[a-z]]', 'v')],
      [
        'Map with non-string keys',
        new Map<unknown, unknown>([
          [1, 'a'],
          [{ k: 1 }, [2]],
          [null, undefined],
        ]),
      ],
      ['Set', new Set([1, 'a', { b: 2 }])],
      ['nested objects and arrays', { a: [1, { b: [2, { c: [3] }] }], d: { e: {} } }],
      ['integer-like keys, in JavaScript property order', { b: 1, 2: 'x', a: 2, 1: 'y' }],
      ['ArrayBuffer', new Uint8Array([1, 2, 3]).buffer],
      ['an empty ArrayBuffer', new ArrayBuffer(0)],
      ['boxed primitives', [Object(true), Object(1.5), Object('s'), Object(7n)]],
    ]
    for (const [what, value] of cases) {
      it(what, () => {
        expect(roundTrip(value)).toEqual(value)
      })
    }

    it('every typed array kind and DataView, with their offset and length', () => {
      const buffer = new ArrayBuffer(32)
      new Uint8Array(buffer).set(Array.from({ length: 32 }, (_, i) => i * 7))
      const views = [
        new Int8Array(buffer, 1, 3),
        new Uint8Array(buffer, 2, 5),
        new Uint8ClampedArray(buffer, 3, 2),
        new Int16Array(buffer, 2, 3),
        new Uint16Array(buffer, 4, 2),
        new Int32Array(buffer, 4, 2),
        new Uint32Array(buffer, 8, 1),
        new Float32Array(buffer, 12, 2),
        new Float64Array(buffer, 8, 2),
        new BigInt64Array(buffer, 8, 1),
        new BigUint64Array(buffer, 16, 2),
        new DataView(buffer, 5, 9),
      ]
      for (const view of views) {
        const back = roundTrip(view)
        expect(back.constructor).toBe(view.constructor)
        expect([back.byteOffset, back.byteLength]).toEqual([view.byteOffset, view.byteLength])
        expect(new Uint8Array(back.buffer)).toEqual(new Uint8Array(buffer))
      }
    })

    it('undefined inside objects, arrays and Maps (an own property / a present element, not a hole)', () => {
      const back = roundTrip({ a: undefined, b: [undefined, 1], m: new Map([['u', undefined]]) })
      expect(Object.hasOwn(back, 'a')).toBe(true)
      expect(back.a).toBeUndefined()
      expect(0 in back.b).toBe(true)
      expect(back.m.has('u')).toBe(true)
    })

    it('undefined at the top level (Durable Objects refuse it in put(), not in the encoding)', () => {
      expect(roundTrip(undefined)).toBeUndefined()
    })

    it('NaN, -0 and ±Infinity, at the top level and inside', () => {
      for (const n of [Number.NaN, -0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        expect(Object.is(roundTrip(n), n)).toBe(true)
        expect(Object.is(roundTrip([n])[0], n)).toBe(true)
      }
    })

    it('sparse arrays keep their holes and length', () => {
      const sparse: unknown[] = [1, , 3]
      sparse[20] = 'x'
      const back = roundTrip(sparse)
      expect(back.length).toBe(21)
      expect(1 in back).toBe(false)
      expect(Object.keys(back)).toEqual(['0', '2', '20'])
    })

    it('an invalid Date', () => {
      expect(Number.isNaN(roundTrip(new Date(Number.NaN)).getTime())).toBe(true)
    })

    it('Errors keep their type, message, stack, cause and other own properties (as workerd 2026 does)', () => {
      const error = new RangeError('too far', { cause: { code: 7 } }) as RangeError & { extra?: unknown }
      error.extra = { n: [1, 2] }
      Object.defineProperty(error, 'hidden', { value: 5, enumerable: false })
      const back = roundTrip(error) as RangeError & { extra?: unknown; hidden?: number }
      expect(back).toBeInstanceOf(RangeError)
      expect(back.message).toBe('too far')
      expect(back.stack).toBe(error.stack)
      expect(back.cause).toEqual({ code: 7 })
      expect(back.extra).toEqual({ n: [1, 2] })
      // workerd reads every kept property back as enumerable.
      expect(Object.getOwnPropertyDescriptor(back, 'hidden')).toMatchObject({ value: 5, enumerable: true })
    })

    it('an Error of another name reads back as Error keeping that name when it was its own', () => {
      class AppError extends Error {
        override name = 'AppError'
      }
      const back = roundTrip(new AppError('x'))
      expect(back.constructor).toBe(Error)
      expect(back.name).toBe('AppError')
      class ProtoNamed extends Error {}
      Object.defineProperty(ProtoNamed.prototype, 'name', { value: 'ProtoNamed' })
      expect(roundTrip(new ProtoNamed('p')).name).toBe('Error')
      expect(Object.hasOwn(roundTrip(new Error()), 'message')).toBe(false)
      expect(roundTrip(Object.assign(new Error('n'), { name: 'TypeError' }))).toBeInstanceOf(TypeError)
    })

    it('DOMException keeps its name and message', () => {
      const back = roundTrip(new DOMException('gone', 'AbortError'))
      expect(back).toBeInstanceOf(DOMException)
      expect([back.name, back.message]).toEqual(['AbortError', 'gone'])
    })
  })

  describe('objects as V8 clones them', () => {
    it('a class instance becomes a plain object of its own enumerable properties', () => {
      class Account {
        #secret = 1
        constructor(readonly owner: string) {}
        get label() {
          return this.owner + this.#secret
        }
      }
      const back = roundTrip(new Account('ann'))
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
      expect(back).toEqual({ owner: 'ann' })
    })

    it('a null-prototype object reads back with Object.prototype', () => {
      const back = roundTrip(Object.assign(Object.create(null) as object, { a: 1 }))
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype)
      expect(back).toEqual({ a: 1 })
    })

    it('symbol-keyed and non-enumerable properties are skipped', () => {
      const value = { a: 1, [Symbol('s')]: 2 }
      Object.defineProperty(value, 'hidden', { value: 3, enumerable: false })
      expect(Reflect.ownKeys(roundTrip(value))).toEqual(['a'])
    })

    it('a getter runs once, when the value is encoded', () => {
      let runs = 0
      const encoded = encodeValue(
        {
          get n() {
            return ++runs
          },
        },
        'k',
      )
      expect(runs).toBe(1)
      expect(decodeValue(encoded, 'k')).toEqual({ n: 1 })
    })

    it('an object with a then property is an ordinary object', () => {
      expect(roundTrip({ then: 1 })).toEqual({ then: 1 })
    })
  })

  describe('what an object is, V8 decides by its internal slots: a Symbol.toStringTag changes nothing', () => {
    const retag = <T extends object>(value: T, tag: string): T =>
      Object.defineProperty(value, Symbol.toStringTag, { value: tag })
    class Tagged {
      x = 1
      get [Symbol.toStringTag]() {
        return 'Tagged'
      }
    }
    class TaggedMap extends Map<unknown, unknown> {
      override get [Symbol.toStringTag]() {
        return 'TaggedMap'
      }
    }
    // Each makes a fresh value: structuredClone (Node's, V8's serializer) says what Durable Objects keep.
    const cases: Array<[string, () => unknown]> = [
      ['a class instance with a toStringTag getter is a plain object', () => new Tagged()],
      ['a Map subclass with a tag is a Map', () => new TaggedMap([[1, { a: 2 }]])],
      ["a plain object tagged 'Map' is a plain object", () => ({ [Symbol.toStringTag]: 'Map', a: 1 })],
      ["a plain object tagged 'Date' is a plain object", () => ({ [Symbol.toStringTag]: 'Date', a: 1 })],
      ["a plain object tagged 'Uint8Array' is a plain object", () => ({ [Symbol.toStringTag]: 'Uint8Array', a: 1 })],
      ["a plain object tagged 'Error' is a plain object", () => ({ [Symbol.toStringTag]: 'Error', message: 'm' })],
      ['a plain object with a tag defined on itself is a plain object', () => retag({ a: 1 }, 'Custom')],
      [
        "an object whose prototype is tagged 'Set' is a plain object",
        () => Object.create({ [Symbol.toStringTag]: 'Set' }),
      ],
      ['an object made from Map.prototype (without its slot) is a plain object', () => Object.create(Map.prototype)],
      ["a Map retagged 'Object' is still a Map", () => retag(new Map([[1, 2]]), 'Object')],
      ["a Date retagged 'Object' is still a Date", () => retag(new Date(0), 'Object')],
      [
        "a Set, an ArrayBuffer, a typed array, a RegExp and a boxed BigInt retagged 'Object' keep their kind",
        () =>
          [new Set([1]), new Uint8Array([1, 2]).buffer, new Int16Array([3]), /a/gi, Object(5n)].map((v) =>
            retag(v, 'Object'),
          ),
      ],
      ['a Date without a prototype is still a Date', () => Object.setPrototypeOf(new Date(0), null)],
      ['Math is a plain object', () => Math],
    ]
    for (const [what, make] of cases) {
      it(what, () => {
        expect(roundTrip(make())).toStrictEqual(structuredClone(make()))
      })
    }

    it("a subclass's own methods and getters are not what is read (V8 reads the slots)", () => {
      class OddDate extends Date {
        override toISOString() {
          return 'odd'
        }
        override getDate() {
          return Number.NaN
        }
      }
      class OddRegExp extends RegExp {
        override get source() {
          return 'odd'
        }
        override get flags() {
          return ''
        }
      }
      class OddSet extends Set<number> {
        override values() {
          return new Set([0]).values()
        }
        override [Symbol.iterator]() {
          return this.values()
        }
      }
      class OddNumber extends Number {
        override valueOf() {
          return 0
        }
      }
      const make = () => [new OddDate(5), new OddRegExp('a', 'g'), new OddSet([1, 2]), new OddNumber(3)]
      const back = roundTrip(make()) as [Date, RegExp, Set<number>, number]
      expect(back).toStrictEqual(structuredClone(make()))
      expect([back[0].getTime(), back[1].source, back[1].flags, [...back[2]], Number(back[3])]).toEqual([
        5,
        'a',
        'g',
        [1, 2],
        3,
      ])
    })

    it("another realm's built-ins keep their kind", () => {
      const other = runInNewContext(
        '[new Map([[1, 2]]), new Set([3]), new Date(4), /x/g, new Uint8Array([5]), { a: 6 }]',
      )
      expect(roundTrip(other)).toStrictEqual(structuredClone(other))
    })

    it('an Error with a tag is still an Error', () => {
      class TaggedError extends Error {
        get [Symbol.toStringTag]() {
          return 'TaggedError'
        }
      }
      for (const error of [new TaggedError('t'), retag(new RangeError('r'), 'Object')]) {
        const back = roundTrip(error)
        expect(back).toBeInstanceOf(structuredClone(error).constructor)
        expect([back.message, back.stack]).toEqual([error.message, error.stack])
      }
    })

    it('tells Errors apart by Error.isError where the runtime has it (workerd), as without it', () => {
      const isError = Object.getOwnPropertyDescriptor(Error, 'isError')
      Object.defineProperty(Error, 'isError', { value: types.isNativeError, configurable: true, writable: true })
      try {
        expect(roundTrip(retag(new TypeError('t'), 'Object'))).toBeInstanceOf(TypeError)
        expect(roundTrip({ [Symbol.toStringTag]: 'Error', message: 'm' })).toStrictEqual({ message: 'm' })
        expect(roundTrip(Object.create(Error.prototype) as object)).toStrictEqual({})
      } finally {
        if (isError) Object.defineProperty(Error, 'isError', isError)
        else delete (Error as { isError?: unknown }).isError
      }
    })

    it('what V8 refuses stays refused whatever its tag', () => {
      class TaggedPromise extends Promise<void> {
        override get [Symbol.toStringTag]() {
          return 'TaggedPromise'
        }
      }
      class TaggedWeakMap extends WeakMap<object, unknown> {
        override get [Symbol.toStringTag]() {
          return 'TaggedWeakMap'
        }
      }
      const refused = [
        new TaggedPromise(() => {}),
        new TaggedWeakMap(),
        retag(new WeakSet(), 'Object'),
        retag(Object(Symbol('s')), 'Object'),
      ]
      for (const value of refused) {
        expect(() => structuredClone(value)).toThrow()
        expect(catchError(() => encodeValue(value, 'k'))).toBeInstanceOf(DataCloneError)
      }
    })
  })

  describe('shared references and cycles', () => {
    it('a value referenced twice reads back as one object referenced twice', () => {
      const shared = { n: 1 }
      const back = roundTrip({ a: shared, b: [shared], m: new Map([[shared, shared]]) })
      expect(back.a).toBe(back.b[0])
      expect(back.m.get(back.a)).toBe(back.a)
    })

    it('cycles through objects, arrays, Maps and Sets', () => {
      const root: Record<string, unknown> = {}
      const list: unknown[] = [root]
      const map = new Map<unknown, unknown>([['root', root]])
      const set = new Set<unknown>([list])
      Object.assign(root, { self: root, list, map, set })
      const back = roundTrip(root) as typeof root
      expect(back.self).toBe(back)
      expect((back.list as unknown[])[0]).toBe(back)
      expect((back.map as Map<string, unknown>).get('root')).toBe(back)
      expect([...(back.set as Set<unknown>)][0]).toBe(back.list)
    })

    it('views sharing one buffer still share it', () => {
      const bytes = new Uint8Array(8)
      const back = roundTrip({ a: bytes.subarray(2, 4), b: new Uint16Array(bytes.buffer) })
      expect(back.a.buffer).toBe(back.b.buffer)
      back.b[1] = 0xffff
      expect([...back.a]).toEqual([255, 255])
    })

    it('an Error referenced from elsewhere in the value (not from itself)', () => {
      const error = new Error('shared')
      const back = roundTrip({ a: error, b: { cause: error } })
      expect(back.a).toBe(back.b.cause)
    })
  })

  describe('what cannot be stored is refused by name, with a DataCloneError naming key and path', () => {
    const cases: Array<[string, unknown, string, string]> = [
      ['a function', () => 1, '', 'function (anonymous) could not be cloned'],
      ['a named function inside', { a: [function handler() {}] }, '.a[0]', 'function handler could not be cloned'],
      ['a method', { run() {} }, '.run', 'function run could not be cloned'],
      ['a symbol', Symbol('s'), '', 'Symbol(s) could not be cloned'],
      [
        'a symbol inside a Map',
        new Map([['k', Symbol.iterator]]),
        '.get("k")',
        'Symbol(Symbol.iterator) could not be cloned',
      ],
      ['a WeakMap', { w: new WeakMap() }, '.w', '#<WeakMap> could not be cloned'],
      ['a WeakSet', new WeakSet(), '', '#<WeakSet> could not be cloned'],
      ['a WeakRef', new WeakRef({}), '', '#<WeakRef> could not be cloned'],
      ['a Promise', Promise.resolve(1), '', '#<Promise> could not be cloned'],
      ['a URL (workerd refuses it)', new URL('https://example.com/'), '', '#<URL> could not be cloned'],
      ['URLSearchParams', new URLSearchParams('a=1'), '', '#<URLSearchParams> could not be cloned'],
      ['a Blob', new Blob(['x']), '', '#<Blob> could not be cloned'],
      ['a generator', (function* () {})(), '', '#<Generator> could not be cloned'],
      ['a boxed symbol', Object(Symbol('b')), '', '#<Symbol> could not be cloned'],
      [
        'an array with named properties (V8 keeps them; devalue would drop them)',
        Object.assign([1, 2], { extra: true }),
        '',
        'an array with named (non-index) properties is not supported',
      ],
      [
        'an own __proto__ property (V8 keeps it; devalue refuses it)',
        JSON.parse('{"__proto__": 1}'),
        '',
        'an object with an own "__proto__" property is not supported',
      ],
    ]
    for (const [what, value, path, problem] of cases) {
      it(what, () => {
        const error = catchError(() => encodeValue(value, 'the-key', 'value'))
        expect(error).toBeInstanceOf(DataCloneError)
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect(error).toMatchObject({ name: 'DataCloneError', argument: 'value', key: 'the-key', path })
        expect((error as Error).message).toContain(problem)
      })
    }

    it('an Error that refers back to itself (devalue could not read the cycle back)', () => {
      const error = new Error('loop') as Error & { cause?: unknown }
      error.cause = { again: error }
      expect(catchError(() => encodeValue(error, 'k'))).toMatchObject({
        name: 'DataCloneError',
        message: expect.stringContaining('refers back to itself'),
      })
    })

    it("a getter's own error is thrown as it is, as in Durable Objects", () => {
      const boom = new Error('getter')
      expect(
        catchError(() =>
          encodeValue(
            {
              get x() {
                throw boom
              },
            },
            'k',
          ),
        ),
      ).toBe(boom)
    })
  })

  describe('the encoding', () => {
    it('is well-formed text without NUL (what a SQL store keeps verbatim)', () => {
      const encoded = encodeValue({ s: '\0\uD800\uDFFF x', b: new Uint8Array([0, 255]) }, 'k')
      expect(encoded).not.toContain('\0')
      expect(encoded).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/)
    })

    it('of the fixture values is what fixtures/encodings.json records (workerd compares the same file)', () => {
      const encodings = Object.fromEntries(
        Object.entries(fixtureValues()).map(([name, value]) => [name, encodeValue(value, name)]),
      )
      // Regenerate with UPDATE_FIXTURES=1 after a deliberate change of the encoding (a storage format change!).
      if (process.env.UPDATE_FIXTURES) writeFileSync(FIXTURE, `${JSON.stringify(encodings, null, 2)}\n`)
      expect(JSON.parse(readFileSync(FIXTURE, 'utf8'))).toEqual(encodings)
    })

    it('of the fixture values decodes to values equal to the originals', () => {
      for (const [name, value] of Object.entries(fixtureValues())) {
        const back = decodeValue(encodeValue(value, name), name)
        if (name === 'classInstance' || name === 'nullPrototype')
          expect({ ...(back as object) }).toEqual({ ...(value as object) })
        else if (value instanceof Error) {
          // As workerd does, the decoded Error has its stack and cause as enumerable own properties.
          expect(back).toBeInstanceOf(value.constructor)
          expect({ ...(back as object) }).toEqual({ stack: value.stack, cause: value.cause })
          expect((back as Error).message).toBe(value.message)
        } else expect(back, name).toEqual(value)
      }
    })

    it('refuses to decode text it did not write, as a corrupt row (StoreUnavailableError, not retryable)', () => {
      for (const corrupt of ['', 'not json', '[', '{"a":1}', '[["Nope",0]]']) {
        const error = catchError(() => decodeValue(corrupt, 'k'))
        expect(error, corrupt).toBeInstanceOf(StoreUnavailableError)
        expect(error).toMatchObject({ retryable: false })
      }
    })
  })
})

function catchError(f: () => unknown): unknown {
  try {
    f()
  } catch (error) {
    return error
  }
  throw new Error('expected a throw')
}
