/**
 * The typed errors of Durable Object storage's API (`ObjectStorage`). Each is an
 * {@link InvalidArgumentError} (code `INVALID_ARGUMENT`), thrown before any I/O and before anything is
 * buffered (docs/design.md invariant 8), naming the argument and carrying the fields a caller needs.
 *
 * Durable Objects throw `DOMException`/`RangeError`/`TypeError` for these; a class of ours cannot be
 * those and a `LockError` at once, so the classes differ but the `name` of {@link DataCloneError}
 * matches (`'DataCloneError'`) and the messages quote workerd's wording.
 */
import { InvalidArgumentError } from '../errors.js'

/**
 * A value cannot be stored: structured clone, as Durable Objects apply it, refuses it (a function, a
 * symbol, a `WeakMap`, a `Promise`, a `URL`, ...), or our encoder cannot keep it faithfully (see
 * `encodeValue`). `name` is `'DataCloneError'`, as the `DOMException` Durable Objects throw.
 *
 * @example
 * ```ts
 * try { await storage.put('f', () => 1) }
 * catch (e) { if (e instanceof DataCloneError) console.log(e.key, e.path) } // 'f', ''
 * ```
 */
export class DataCloneError extends InvalidArgumentError {
  /** The storage key the value was for. */
  readonly key: string
  /** Where in the value the offending part sits, e.g. `.items[2].callback`; `''` for the value itself. */
  readonly path: string

  /**
   * @param argument - the argument holding the value, e.g. `value` or `entries["k"]`.
   * @param key - the storage key.
   * @param path - where in the value (`''` at the top).
   * @param problem - what cannot be cloned, e.g. `function f could not be cloned`.
   */
  constructor(argument: string, key: string, path: string, problem: string) {
    super(argument, path === '' ? problem : `${problem} (at ${path})`)
    this.key = key
    this.path = path
  }
}

/**
 * A key is longer than Durable Objects allow (2048 bytes of UTF-8, `MAX_KEY_BYTES`).
 * Durable Objects (KV backend): `RangeError: Keys cannot be larger than 2048 bytes. A key of size N was provided.`
 */
export class KeyTooLargeError extends InvalidArgumentError {
  /** The key's size, UTF-8 bytes. */
  readonly bytes: number
  /** The limit, bytes. */
  readonly limit: number

  /**
   * @param argument - the argument holding the key, e.g. `key` or `keys[3]`.
   * @param bytes - its UTF-8 size.
   * @param limit - the most allowed.
   */
  constructor(argument: string, bytes: number, limit: number) {
    super(argument, `Keys cannot be larger than ${limit} bytes. A key of size ${bytes} was provided.`)
    this.bytes = bytes
    this.limit = limit
  }
}

/**
 * A value is larger than Durable Objects allow (128 KiB of V8 serialization, as workerd measures it).
 * Durable Objects (KV backend): `RangeError: Values cannot be larger than 131072 bytes. A value of size N was provided.`
 */
export class ValueTooLargeError extends InvalidArgumentError {
  /** The storage key the value was for. */
  readonly key: string
  /** The value's size as Durable Objects count it (V8 serialization), bytes; see `serializedSize`. */
  readonly bytes: number
  /** The advertised limit, bytes (workerd allows 34 bytes of slack above it). */
  readonly limit: number

  /**
   * @param argument - the argument holding the value, e.g. `value` or `entries["k"]`.
   * @param key - the storage key.
   * @param bytes - its size.
   * @param limit - the advertised limit.
   */
  constructor(argument: string, key: string, bytes: number, limit: number) {
    super(argument, `Values cannot be larger than ${limit} bytes. A value of size ${bytes} was provided.`)
    this.key = key
    this.bytes = bytes
    this.limit = limit
  }
}

/**
 * One call names more keys than Durable Objects take at a time (128, `MAX_KEYS_PER_CALL`): `get(keys)`,
 * `put(entries)`, `delete(keys)`.
 * Durable Objects (KV backend): `RangeError: Maximum number of key value pairs is 128. N pairs were provided.`
 */
export class TooManyKeysError extends InvalidArgumentError {
  /** How many keys (or entries) the call named. */
  readonly count: number
  /** The most one call takes. */
  readonly limit: number

  /**
   * @param argument - `keys` or `entries`.
   * @param count - how many.
   * @param limit - the most allowed.
   */
  constructor(argument: string, count: number, limit: number) {
    super(argument, `Maximum number of key value pairs is ${limit}. ${count} pairs were provided.`)
    this.count = count
    this.limit = limit
  }
}

/**
 * A `StorageTransaction` was used after it ended: after `rollback()`, or after its closure returned.
 * Durable Objects: `Error: Cannot get() on rolled back transaction`, `Error: Cannot call put() on
 * transaction that has already committed: did you move \`txn\` outside of the closure?`.
 */
export class TransactionEndedError extends InvalidArgumentError {
  /** The method called, e.g. `get`. */
  readonly operation: string
  /** How the transaction ended. */
  readonly state: 'rolled back' | 'committed'

  /**
   * @param operation - the method called.
   * @param state - how the transaction ended.
   */
  constructor(operation: string, state: 'rolled back' | 'committed') {
    super(
      'txn',
      state === 'rolled back'
        ? `Cannot ${operation}() on rolled back transaction`
        : `Cannot call ${operation}() on transaction that has already committed: did you move \`txn\` outside of the closure?`,
    )
    this.operation = operation
    this.state = state
  }
}

/**
 * A write (`put`, `delete`, `deleteAll`, `transaction`) on the storage of a read-only request
 * (`StatelessDO.readOnlyRequest`): such a request holds no lease, so it may read committed state but
 * never write. Thrown before anything is buffered; a handler that throws it is answered 500.
 *
 * @example
 * ```ts
 * await this.storage.put('n', 1) // in handleReadOnlyRequest: ReadOnlyStorageError (argument 'storage')
 * ```
 */
export class ReadOnlyStorageError extends InvalidArgumentError {
  /** @param operation - the write that was refused, e.g. `put`. */
  constructor(operation: string) {
    super('storage', `${operation}() in a read-only request: it holds no lease, so it may read but not write`)
  }
}
