/**
 * Durable Object storage semantics, found out against the REAL `ctx.storage` of workerd and held
 * against ours. Each scenario runs twice inside workerd: on the storage of a fresh Durable Object
 * (`StorageReference`, SQLite-backed, entered with `runInDurableObject`) and on an `ObjectStorage` over a
 * `MemoryObjectStore`; the two outcomes must be equal. Where ours cannot agree (the limits, NUL in keys,
 * a Proxy), a test states both behaviours and src/storage/ documents why.
 *
 * `sync()` in a scenario is where ours flushes (real storage: a no-op wait), so what follows it
 * exercises the merge of committed rows with unflushed writes.
 */
import { env, runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import {
  DataCloneError,
  KeyTooLargeError,
  MemoryObjectStore,
  ObjectStorage,
  TooManyKeysError,
  ValueTooLargeError,
  encodeValue,
} from '../../src/index.js'
import encodings from '../storage/fixtures/encodings.json'
import { fixtureValues } from '../storage/fixtures/values.js'
import { TestLeases } from '../storage/support/leases.js'

declare module 'cloudflare:test' {
  /** vitest-plugin: runs `callback` inside the object `stub` points to (test/workers/env.d.ts has not got it). */
  export function runInDurableObject<R>(
    stub: Fetcher,
    callback: (instance: unknown, state: { storage: unknown }) => R | Promise<R>,
  ): Promise<R>
}

type Namespace = (typeof env)['TEST_ROOMS']
const bindings = env as unknown as { STORAGE_REFERENCE: Namespace; STORAGE_REFERENCE_KV: Namespace }
const run = crypto.randomUUID().slice(0, 8)
let objects = 0

/** Durable Object storage as both sides offer it (ctx.storage is used through the same methods). */
type Storage = ObjectStorage
type Scenario<R> = (storage: Storage) => Promise<R>

/** Runs `scenario` on the storage of a new, empty Durable Object. */
function onReal<R>(scenario: Scenario<R>, namespace: Namespace = bindings.STORAGE_REFERENCE): Promise<R> {
  const stub = namespace.get(namespace.idFromName(`storage-${run}-${++objects}`))
  return runInDurableObject(stub, (_instance, state) => scenario(state.storage as Storage))
}

/** Runs `scenario` on a new ObjectStorage over an empty MemoryObjectStore, holding the lease. */
async function onOurs<R>(scenario: Scenario<R>): Promise<R> {
  const leases = new TestLeases()
  const taken = await leases.acquire({ doId: `obj-${++objects}`, nodeId: 'node', ttlMs: 30_000 })
  if (!taken.acquired) throw new Error('expected the lease')
  return scenario(new ObjectStorage({ store: new MemoryObjectStore(leases), lease: { ...taken.lock, ttlMs: 30_000 } }))
}

/** The outcome of both, for `expect(ours).toEqual(real)`. */
async function both<R>(scenario: Scenario<R>): Promise<{ real: R; ours: R }> {
  return { real: await onReal(scenario), ours: await onOurs(scenario) }
}

/**
 * A call's result, or its error reduced to what both sides share: the message Durable Objects give
 * (ours prefix it with `invalid <argument>: `), and for clone errors just the name both carry.
 */
async function attempt(f: () => unknown): Promise<{ value: unknown } | { error: string }> {
  try {
    return { value: await f() }
  } catch (error) {
    const { name, message } = error as Error
    return { error: name === 'DataCloneError' ? name : String(message).replace(/^invalid [^:]+: /, '') }
  }
}

const keysOf = (map: Map<string, unknown>) => [...map.keys()]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const codePoints = (keys: string[]) => keys.map((key) => [...key].map((c) => c.codePointAt(0)!.toString(16)).join('.'))

describe('Durable Object storage semantics: real ctx.storage (workerd) and ObjectStorage agree', () => {
  it('orders keys by UTF-8 bytes (code point): non-ASCII after ASCII, astral keys after U+FFFF', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({
        b: 1,
        a: 1,
        B: 1,
        '': 1,
        'a\u0001': 1,
        ab: 1,
        '\u00e9': 1,
        '\uFFFF': 1,
        '\u{1F600}': 1,
        '\u{10000}': 1,
      })
      const committed = codePoints(keysOf(await s.list()))
      await s.sync()
      await s.put({ '\uE000': 2, aa: 2 })
      return {
        committed,
        merged: codePoints(keysOf(await s.list())),
        reversed: codePoints(keysOf(await s.list({ reverse: true }))),
      }
    })
    expect(real.committed).toEqual(['', '42', '61', '61.1', '61.62', '62', 'e9', 'ffff', '10000', '1f600'])
    expect(ours).toEqual(real)
  })

  it('lists within start, startAfter, end and prefix in every combination, with reverse and limit', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ a: 1, ab: 1, abc: 1, abd: 1, b: 1, ba: 1, c: 1, '\u{1F600}x': 1 })
      await s.sync()
      await s.put({ aa: 2, abb: 2, bb: 2 })
      await s.delete(['abc', 'ba'])
      const options: object[] = [
        {},
        { start: 'ab' },
        { startAfter: 'ab' },
        { end: 'b' },
        { start: 'ab', end: 'b' },
        { startAfter: 'a', end: 'abd' },
        { prefix: 'ab' },
        { prefix: 'a', start: 'abb' },
        { prefix: 'a', startAfter: 'abb' },
        { prefix: 'a', end: 'abd' },
        { prefix: 'a', start: 'b' },
        { prefix: 'ab', end: 'a' },
        { prefix: '' },
        { prefix: '\u{1F600}' },
        { start: 'b', end: 'a' },
        { start: 'b', end: 'b' },
        { reverse: true },
        { reverse: true, limit: 2 },
        { reverse: true, start: 'ab', end: 'bb', limit: 3 },
        { limit: 3 },
        { prefix: 'a', limit: 2 },
        { prefix: 'a', reverse: true, limit: 2 },
        { startAfter: 'zzz' },
      ]
      const out: Array<[object, string[]]> = []
      for (const o of options) out.push([o, keysOf(await s.list(o))])
      return out
    })
    expect(ours).toEqual(real)
  })

  it('reads list options as workerd does: conversions and refusals', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ a: 1, b: 2, c: 3, null: 4, undefined: 5 })
      const cases: object[] = [
        { limit: 1.5 },
        { limit: '2' },
        { limit: true },
        { limit: [2] },
        { limit: 0 },
        { limit: -1 },
        { limit: 0.5 },
        { limit: Number.NaN },
        { limit: Number.POSITIVE_INFINITY },
        { limit: 1e10 },
        { limit: null },
        { limit: undefined },
        { reverse: 'false', limit: 1 },
        { reverse: 0, limit: 1 },
        { start: null },
        { end: null },
        { prefix: null },
        { start: 'a', startAfter: 'b' },
        { start: 1 },
        { unknown: true },
      ]
      const out: unknown[] = []
      for (const o of cases) out.push([o, await attempt(async () => keysOf(await s.list(o)))])
      out.push(['null options', await attempt(async () => keysOf(await s.list(null as never)))])
      return out
    })
    expect(ours).toEqual(real)
  })

  it('get: undefined for a missing key; a Map of only the keys found, in key order, each once', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ z: 26, y: 25, x: 24 })
      await s.sync()
      await s.put('w', 23)
      return {
        missing: await s.get('nope'),
        many: [...(await s.get(['z', 'nope', 'x', 'w', 'y', 'x']))],
        none: [...(await s.get([]))],
      }
    })
    expect(real.missing).toBeUndefined()
    expect(ours).toEqual(real)
  })

  it('delete: a boolean for one key, a count (each key once) for many', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ a: 1, b: 2, c: 3 })
      await s.sync()
      await s.put('d', 4)
      return [
        await s.delete('a'),
        await s.delete('a'),
        await s.delete('never'),
        await s.delete(['b', 'd', 'nope', 'b']),
        await s.delete([]),
        keysOf(await s.list()),
      ]
    })
    expect(ours).toEqual(real)
  })

  it('put(key, undefined) is refused; put(entries) skips undefined values; put(entries, non-options) is refused', async () => {
    const { real, ours } = await both(async (s) => [
      await attempt(() => s.put('u', undefined)),
      await attempt(() => (s.put as unknown as (k: string) => Promise<void>)('u')),
      await attempt(() => s.put({ a: 1, b: undefined })),
      await attempt(() => s.put({ c: 1 }, 1 as never)),
      await attempt(() => s.put({ c: 1 }, { allowUnconfirmed: true })),
      await attempt(() => s.put(new Map([['m', 1]]) as never)),
      await attempt(() => s.put({})),
      keysOf(await s.list()),
    ])
    expect(ours).toEqual(real)
  })

  it('a value changed after put is stored as it was at the put (awaited or not)', async () => {
    const { real, ours } = await both(async (s) => {
      const awaited = { n: 1 }
      await s.put('awaited', awaited)
      awaited.n = 2
      const unawaited = { n: 1 }
      const put = s.put('unawaited', unawaited)
      unawaited.n = 2
      await put
      const before = [await s.get('awaited'), await s.get('unawaited')]
      await s.sync()
      return [before, await s.get('awaited'), await s.get('unawaited')]
    })
    expect(real).toEqual([[{ n: 1 }, { n: 1 }], { n: 1 }, { n: 1 }])
    expect(ours).toEqual(real)
  })

  it('every get returns a new copy: never the same object twice, and changing it changes nothing stored', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put('o', { list: [1] })
      const first = await s.get<{ list: number[] }>('o')
      const second = await s.get<{ list: number[] }>('o')
      first!.list.push(2)
      const fromMap = (await s.get<{ list: number[] }>(['o'])).get('o')
      const fromList = (await s.list<{ list: number[] }>()).get('o')
      return { same: first === second, mapSame: fromMap === fromList, after: await s.get('o') }
    })
    expect(real).toEqual({ same: false, mapSame: false, after: { list: [1] } })
    expect(ours).toEqual(real)
  })

  it('converts non-string keys with String(); a symbol key is refused', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put(1 as never, 'one')
      await s.put(null as never, 'null')
      await s.put(undefined as never, 'undefined')
      await s.put({ 7: 'seven' })
      return [
        keysOf(await s.list()),
        await s.get(1 as never),
        await s.get({} as never),
        [...(await s.get([1, 7, null] as unknown as string[]))],
        await attempt(() => s.get(Symbol('s') as never)),
        await attempt(() => s.put(Symbol('s') as never, 1)),
        await s.delete(1 as never),
        keysOf(await s.list({ start: 7 as never })),
        await s.get(new Set(['one']) as never),
      ]
    })
    expect(ours).toEqual(real)
  })

  it('a key with a lone surrogate: the same string finds it, and list() gives it back as three U+FFFD', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put('a\uD800', 1)
      await s.sync()
      return [codePoints(keysOf(await s.list())), await s.get('a\uD800'), [...(await s.get(['a\uD800']))].length]
    })
    expect(real).toEqual([['61.fffd.fffd.fffd'], 1, 1])
    expect(ours).toEqual(real)
  })

  it('refuses what structured clone refuses, and clones the rest as V8 does', async () => {
    class Point {
      #secret = 1
      constructor(readonly x: number) {}
      get doubled() {
        return this.x * 2 + this.#secret
      }
    }
    const { real, ours } = await both(async (s) => {
      const refused: unknown[] = [
        () => 1,
        Symbol('s'),
        new WeakMap(),
        Promise.resolve(1),
        new URL('https://x/'),
        { f() {} },
        [new WeakSet()],
        (function* () {})(),
        Object(Symbol('b')),
      ]
      const out: unknown[] = []
      for (const value of refused) out.push(await attempt(() => s.put('refused', value)))
      out.push(await s.get('refused'))
      await s.put('instance', new Point(3))
      const instance = await s.get<object>('instance')
      out.push(instance, Object.getPrototypeOf(instance) === Object.prototype)
      await s.put('symbolKeys', { a: 1, [Symbol('s')]: 2 })
      out.push(Reflect.ownKeys((await s.get<object>('symbolKeys'))!))
      await s.put('nullProto', Object.assign(Object.create(null) as object, { a: 1 }))
      out.push(Object.getPrototypeOf(await s.get('nullProto')) === Object.prototype)
      const error = Object.assign(new TypeError('boom', { cause: { code: 1 } }), { extra: true })
      error.stack = 'fixed'
      await s.put('error', error)
      const back = await s.get<TypeError & { extra?: boolean }>('error')
      out.push([back instanceof TypeError, back!.message, back!.stack, back!.cause, back!.extra])
      await s.put('renamed', Object.assign(new Error('r'), { name: 'Custom' }))
      out.push((await s.get<Error>('renamed'))!.name)
      await s.put('dom', new DOMException('gone', 'AbortError'))
      const dom = await s.get<DOMException>('dom')
      out.push([dom instanceof DOMException, dom!.name, dom!.message])
      let getterRuns = 0
      await s.put('getter', {
        get n() {
          return ++getterRuns
        },
      })
      out.push([await s.get('getter'), getterRuns])
      return out
    })
    expect(ours).toEqual(real)
  })

  it('stores every value type and reads it back equal (the fixture values)', async () => {
    const { real, ours } = await both(async (s) => {
      const values = fixtureValues()
      const out: Record<string, unknown> = {}
      for (const [name, value] of Object.entries(values)) {
        await s.put(name, value)
        out[name] = await s.get(name)
      }
      await s.sync()
      const listed = await s.list()
      return { out, listedKeys: keysOf(listed), listedEqual: Object.keys(values).every((name) => listed.has(name)) }
    })
    expect(ours.out).toEqual(real.out)
    expect(ours.listedKeys).toEqual(real.listedKeys)
    expect(real.listedEqual && ours.listedEqual).toBe(true)
    const { cycle, sharedRefs, sharedBuffer } = ours.out as Record<string, Record<string, unknown> & unknown[]>
    expect(cycle!.self).toBe(cycle)
    expect(sharedRefs![0]).toBe(sharedRefs![1])
    expect((sharedBuffer!.a as Uint8Array).buffer).toBe((sharedBuffer!.b as Uint16Array).buffer)
  })

  it('transactions: own reads, rollback and throw write nothing, results, nesting, and the misuse errors', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put('k', 'before')
      await s.sync()
      const out: unknown[] = []
      out.push(
        await s.transaction(async (txn) => {
          await txn.put('k', 'txn')
          return [
            await txn.get('k'),
            await s.get('k'),
            keysOf(await txn.list()),
            await txn.delete('k'),
            await txn.get('k'),
          ]
        }),
      )
      out.push(await s.get('k'))
      out.push(
        await s.transaction(async (txn) => {
          await txn.put('r', 1)
          await s.put('viaStorage', 1)
          txn.rollback()
          txn.rollback()
          return 'rolled back result'
        }),
      )
      out.push(await s.get(['r', 'viaStorage']))
      const boom = new Error('boom')
      out.push(
        await attempt(() =>
          s.transaction(async (txn) => {
            await txn.put('t', 1)
            throw boom
          }),
        ),
      )
      out.push(await s.get('t'))
      out.push(
        await s.transaction(async (outer) => {
          await outer.put('n', 'outer')
          await s.transaction(async (inner) => {
            await inner.put('n', 'inner')
            inner.rollback()
          })
          return outer.get('n')
        }),
      )
      out.push(await s.get('n'))
      out.push(await attempt(() => s.transaction(async (txn) => txn.deleteAll())))
      out.push(await attempt(() => s.transaction(async () => s.deleteAll())))
      for (const op of ['get', 'put', 'delete', 'list'] as const) {
        out.push(
          await attempt(() =>
            s.transaction(async (txn) => {
              txn.rollback()
              return op === 'put'
                ? txn.put('x', 1)
                : op === 'list'
                  ? txn.list()
                  : op === 'get'
                    ? txn.get('x')
                    : txn.delete('x')
            }),
          ),
        )
      }
      let kept: Parameters<Parameters<Storage['transaction']>[0]>[0] | undefined
      await s.transaction(async (txn) => {
        kept = txn
      })
      out.push(await attempt(() => kept!.put('late', 1)))
      out.push(await s.transaction(() => 'sync closure'))
      return out
    })
    expect(ours).toEqual(real)
  })

  it('transactions started together (Promise.all) run one after another, and every one keeps its writes', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ a: 0, b: 0, c: 0, total: 0 })
      await s.sync()
      const log: string[] = []
      const results = await Promise.all(
        ['a', 'b', 'c'].map((k) =>
          s.transaction(async (txn) => {
            log.push(`${k} starts`)
            const [own, total] = [(await txn.get<number>(k))!, (await txn.get<number>('total'))!]
            await sleep(1)
            await txn.put({ [k]: own + 1, total: total + 1 })
            log.push(`${k} ends`)
            return `${k}: ${own + 1}`
          }),
        ),
      )
      const inTheTurn = await s.get(['a', 'b', 'c', 'total'])
      await s.sync()
      return { results, log, inTheTurn, stored: await s.get(['a', 'b', 'c', 'total']) }
    })
    expect(real.log).toEqual(['a starts', 'a ends', 'b starts', 'b ends', 'c starts', 'c ends'])
    expect(real.stored).toEqual(new Map(Object.entries({ a: 1, b: 1, c: 1, total: 3 })))
    expect(ours).toEqual(real)
  })

  it('a transaction started with one that fails or rolls back runs after it, sees none of its writes, and keeps its own', async () => {
    const { real, ours } = await both(async (s) => {
      const log: string[] = []
      const failing = attempt(() =>
        s.transaction(async (txn) => {
          await txn.put({ shared: 'failing', own: 'failing' })
          await sleep(5)
          log.push('the first throws')
          throw new Error('the first fails')
        }),
      )
      const after = s.transaction(async (txn) => {
        log.push(`the second starts and sees shared = ${String(await txn.get('shared'))}`)
        await txn.put('second', 'kept')
        return 'the second commits'
      })
      const rollingBack = s.transaction(async (txn) => {
        await txn.put('third', 'rolled back')
        await sleep(5)
        txn.rollback()
        return 'the third rolled back'
      })
      const last = s.transaction(async (txn) => {
        await txn.put('fourth', 'kept')
        return 'the fourth commits'
      })
      const settled = await Promise.all([failing, after, rollingBack, last])
      const inTheTurn = keysOf(await s.list())
      await s.sync()
      return { settled, log, inTheTurn, stored: await s.list() }
    })
    expect(real.log).toEqual(['the first throws', 'the second starts and sees shared = undefined'])
    expect(keysOf(real.stored)).toEqual(['fourth', 'second'])
    expect(ours).toEqual(real)
  })

  it('transactions started together inside a transaction run one after another and join it; its throw discards them', async () => {
    const { real, ours } = await both(async (s) => {
      const log: string[] = []
      const nestedIn = (outcome: 'commits' | 'throws') =>
        attempt(() =>
          s.transaction(async (outer) => {
            await outer.put(`outer-${outcome}`, 1)
            await Promise.all(
              ['p', 'q'].map((k) =>
                s.transaction(async (inner) => {
                  log.push(`${k} starts`)
                  await sleep(1)
                  await inner.put(`${k}-${outcome}`, 1)
                  log.push(`${k} ends`)
                }),
              ),
            )
            if (outcome === 'throws') throw new Error('the outer fails')
            return keysOf(await outer.list())
          }),
        )
      const results = [await nestedIn('commits'), await nestedIn('throws')]
      await s.sync()
      return { results, log, stored: keysOf(await s.list()) }
    })
    expect(real.log).toEqual(['p starts', 'p ends', 'q starts', 'q ends', 'p starts', 'p ends', 'q starts', 'q ends'])
    expect(real.stored).toEqual(['outer-commits', 'p-commits', 'q-commits'])
    expect(ours).toEqual(real)
  })

  it('what the code that started a transaction calls next, before it awaits, is outside it: a put outlives its rollback, deleteAll is allowed', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put('old', 1)
      const rolledBack = s.transaction(async (txn) => {
        await txn.put('in-the-rolled-back', 1)
        await sleep(5)
        txn.rollback()
      })
      const put = await s.put('beside-the-rolled-back', 1)
      await rolledBack
      const committing = s.transaction(async (txn) => {
        await sleep(5)
        await txn.put('in-the-committed', 1)
      })
      const deleteAll = await attempt(() => s.deleteAll())
      await committing
      const inTheTurn = keysOf(await s.list())
      await s.sync()
      return { put, deleteAll, inTheTurn, stored: keysOf(await s.list()) }
    })
    expect(real.stored).toEqual(['in-the-committed'])
    expect(ours).toEqual(real)
  })

  it('a nested transaction its parent did not await still commits after the parent ended', async () => {
    const { real, ours } = await both(async (s) => {
      let inner: Promise<unknown> | undefined
      const outer = await attempt(() =>
        s.transaction(async (txn) => {
          await txn.put('outer', 1)
          inner = attempt(() =>
            s.transaction(async (t) => {
              await sleep(5)
              await t.put('inner', 1)
              return 'inner committed'
            }),
          )
          return 'outer committed'
        }),
      )
      const results = [outer, await inner]
      const inTheTurn = keysOf(await s.list())
      await s.sync()
      return { results, inTheTurn, stored: keysOf(await s.list()) }
    })
    expect(real.stored).toEqual(['inner', 'outer'])
    expect(ours).toEqual(real)
  })

  it('deleteAll removes every key, and what is written after it stays', async () => {
    const { real, ours } = await both(async (s) => {
      await s.put({ a: 1, b: 2 })
      await s.sync()
      await s.put('c', 3)
      const result = await s.deleteAll()
      await s.put('d', 4)
      const before = keysOf(await s.list())
      await s.sync()
      return [result, before, keysOf(await s.list()), await s.get(['a', 'd'])]
    })
    expect(ours).toEqual(real)
  })
})

describe('what the owner of an ObjectStorage must do to behave like a Durable Object', () => {
  it('flush when the handler threw: a Durable Object keeps the writes a failed request made', async () => {
    const namespace = bindings.STORAGE_REFERENCE
    const id = namespace.idFromName(`storage-${run}-${++objects}`)
    const failed = await namespace
      .get(id)
      .fetch('https://reference/put-then-throw')
      .then(
        (response) => response.status,
        (error: unknown) => String(error),
      )
    expect(failed).not.toBe(200)
    expect(
      await runInDurableObject(namespace.get(id), (_instance, state) =>
        (state.storage as Storage).get('written-before-the-throw'),
      ),
    ).toBe(true)
  })
})

describe('where ObjectStorage differs from local workerd, on purpose', () => {
  it('keys: workerd (SQLite-backed, also a class declared KV-backed, locally) takes 2049-byte keys; we refuse them as the KV backend does', async () => {
    const key = 'k'.repeat(2049)
    const real = await onReal((s) => attempt(() => s.put(key, 1)))
    const kv = await onReal((s) => attempt(() => s.put(key, 1)), bindings.STORAGE_REFERENCE_KV)
    expect(real).toEqual({ value: undefined })
    expect(kv).toEqual({ value: undefined })
    const error = await onOurs((s) => s.put(key, 1).catch((e: unknown) => e))
    expect(error).toBeInstanceOf(KeyTooLargeError)
    expect((error as Error).message).toContain(
      'Keys cannot be larger than 2048 bytes. A key of size 2049 was provided.',
    )
    expect(await onOurs((s) => attempt(() => s.put('k'.repeat(2048), 1)))).toEqual({ value: undefined })
  })

  it('values: local workerd takes 3 MB (2025 builds refused past ~2.2 MB with SQLITE_TOOBIG); we refuse past 128 KiB + 34 bytes of V8 serialization', async () => {
    const big = 'x'.repeat(200_000)
    expect(await onReal((s) => attempt(() => s.put('v', big)))).toEqual({ value: undefined })
    expect(await onReal((s) => attempt(() => s.put('v', 'x'.repeat(3_000_000))))).toEqual({ value: undefined })
    const error = await onOurs((s) => s.put('v', big).catch((e: unknown) => e))
    expect(error).toBeInstanceOf(ValueTooLargeError)
    expect((error as Error).message).toContain(
      'Values cannot be larger than 131072 bytes. A value of size 200006 was provided.',
    )
    expect(await onOurs((s) => attempt(() => s.put('v', new Uint8Array(131_072))))).toEqual({ value: undefined })
  })

  it('keys per call: workerd takes 129 locally; we refuse more than 128 as the docs (and the KV backend for get) do', async () => {
    const keys = Array.from({ length: 129 }, (_, i) => `k${i}`)
    const entries = Object.fromEntries(keys.map((k) => [k, 1]))
    const calls = (s: Storage) => [() => s.get(keys), () => s.put(entries), () => s.delete(keys)]
    const real = await onReal(async (s) => Promise.all(calls(s).map((call) => attempt(call))))
    expect(real.every((outcome) => 'value' in outcome)).toBe(true)
    const ours = await onOurs(async (s) => Promise.all(calls(s).map((call) => call().catch((e: unknown) => e))))
    for (const error of ours) expect(error).toBeInstanceOf(TooManyKeysError)
  })

  it('a call made after an await while a transaction is open: workerd runs it after the transaction, outside it; we take it as part of the innermost open one (nothing tells us who called)', async () => {
    const scenario: Scenario<unknown> = async (s) => {
      const log: string[] = []
      const open = s.transaction(async (txn) => {
        await txn.put('in-the-open-one', 1)
        await sleep(20)
        log.push('the open one rolls back')
        txn.rollback()
      })
      await sleep(1)
      const later = s.transaction(async (txn) => {
        log.push(`the later one starts and sees ${String(await txn.get('in-the-open-one'))}`)
        await txn.put('in-the-later-one', 1)
        return 'the later one commits'
      })
      await s.put('put-after-the-await', 1)
      log.push('the put resolved')
      const results = await Promise.all([open, later])
      await s.sync()
      return { results, log, stored: keysOf(await s.list()) }
    }
    const results = [undefined, 'the later one commits']
    expect(await onReal(scenario)).toEqual({
      results,
      log: ['the open one rolls back', 'the put resolved', 'the later one starts and sees undefined'],
      stored: ['in-the-later-one', 'put-after-the-await'],
    })
    expect(await onOurs(scenario)).toEqual({
      results,
      log: ['the later one starts and sees 1', 'the put resolved', 'the open one rolls back'],
      stored: [],
    })
  })

  it('NUL in a key: workerd stores it; we refuse it (the SQL stores cannot give it back)', async () => {
    expect(await onReal((s) => attempt(async () => (await s.put('a\0b', 1), s.get('a\0b'))))).toEqual({ value: 1 })
    expect(await onOurs((s) => attempt(() => s.put('a\0b', 1)))).toEqual({ error: expect.stringContaining('NUL') })
  })

  it('a Proxy: workerd refuses it; we store the object it shows (JavaScript cannot tell a Proxy)', async () => {
    expect(await onReal((s) => attempt(() => s.put('p', new Proxy({ a: 1 }, {}))))).toEqual({ error: 'DataCloneError' })
    expect(await onOurs(async (s) => (await s.put('p', new Proxy({ a: 1 }, {})), s.get('p')))).toEqual({ a: 1 })
  })

  it('lone surrogates in keys: workerd keeps each as its own bytes; we cannot tell two of them apart', async () => {
    const scenario: Scenario<unknown[]> = async (s) => {
      await s.put('a\uD800', 1)
      return [await s.get('a\uDBFF'), await s.get('a\uFFFD\uFFFD\uFFFD')]
    }
    expect(await onReal(scenario)).toEqual([undefined, undefined])
    expect(await onOurs(scenario)).toEqual([1, 1])
  })

  it('a Blob: workerd stores it; we refuse it (its bytes can only be read asynchronously, a put encodes at once)', async () => {
    const scenario: Scenario<unknown> = async (s) => {
      await s.put('b', new Blob(['xy'], { type: 'text/plain' }))
      const back = await s.get<Blob>('b')
      return [back instanceof Blob, back!.type, await back!.text()]
    }
    expect(await onReal(scenario)).toEqual([true, 'text/plain', 'xy'])
    expect(await onOurs((s) => attempt(() => s.put('b', new Blob(['xy']))))).toEqual({ error: 'DataCloneError' })
  })

  it('arrays with named properties: workerd keeps them; we refuse them rather than drop them', async () => {
    const named = () => Object.assign([1], { extra: 'x' })
    expect(await onReal(async (s) => (await s.put('a', named()), (await s.get<{ extra: string }>('a'))!.extra))).toBe(
      'x',
    )
    expect(await onOurs((s) => s.put('a', named()).catch((e: unknown) => e))).toBeInstanceOf(DataCloneError)
  })
})

describe('the encoding inside workerd', () => {
  it('is byte for byte what Node computed for the fixture values (fixtures/encodings.json)', () => {
    const here = Object.fromEntries(
      Object.entries(fixtureValues()).map(([name, value]) => [name, encodeValue(value, name)]),
    )
    expect(here).toEqual(encodings)
  })
})
