/**
 * Durable Objects' limits, checked before any I/O and before anything is buffered (docs/design.md
 * invariant 8), and the conversion of keys as Durable Objects convert them.
 *
 * Which limits: the ones Cloudflare documents for Durable Object storage and workerd enforces in its KV
 * backend (`ActorStorageLimits`, src/workerd/io/actor-storage.h: 2048-byte keys, 128 KiB values + 34
 * bytes of slack, 128 keys per `get(keys)`; the docs also cap `put(entries)` and `delete(keys)` at 128).
 * A SQLite-backed Durable Object (workerd's ActorSqlite, and every object in local workerd) checks none
 * of them: 2025 builds refused key + value past SQLite's row limit (`SQLITE_TOOBIG`, ~2.2 MB), the local
 * workerd of 2026-11 took a 3 MB value (test/workers/storage-semantics.test.ts). We keep the stricter, KV
 * backend's, limits: code within them runs on both backends, the values they admit fit a D1 row whatever
 * our encoding's overhead, and one `get` of at most 128 keys is one request
 * ({@link MAX_KEYS_PER_REQUEST}).
 */
import { InvalidArgumentError } from '../errors.js'
import { MAX_KEYS_PER_REQUEST, type EncodedValue } from '../store/object-store.js'
import { KeyTooLargeError, TooManyKeysError, ValueTooLargeError } from './errors.js'
import { serializedSize } from './serialized-size.js'
import { decodeValue } from './serializer.js'

/** The longest key, UTF-8 bytes (Durable Objects, KV backend). */
export const MAX_KEY_BYTES = 2048

/** The largest value, bytes of V8 serialization as Durable Objects count them (the advertised 128 KiB). */
export const MAX_VALUE_BYTES = 131_072

/**
 * The slack workerd grants above {@link MAX_VALUE_BYTES}: a value is refused only past
 * `MAX_VALUE_BYTES + VALUE_SIZE_SLACK` bytes, so a 128 KiB string or ArrayBuffer (plus its few bytes of
 * tags and header) still fits.
 */
export const VALUE_SIZE_SLACK = 34

/** The most keys one `get(keys)`, `put(entries)` or `delete(keys)` takes. */
export const MAX_KEYS_PER_CALL = MAX_KEYS_PER_REQUEST

const LONE_SURROGATES = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/**
 * A key as Durable Objects take it: any value but a symbol is converted with `String()` (`1` -> `'1'`,
 * `null` -> `'null'`), then the size limit applies to its UTF-8 form.
 *
 * A lone surrogate becomes three U+FFFD: workerd keeps a key as the bytes of its generalized UTF-8
 * (a lone surrogate is 3 bytes that are not UTF-8) and `list()` reads each of those bytes back as
 * U+FFFD, so put/get with the same string, and the keys `list()` returns, agree with Durable Objects.
 * Where we differ: two different lone surrogates (or a key with U+FFFD U+FFFD U+FFFD in their place)
 * name one key here and two there; the SQL stores keep well-formed text only.
 *
 * Where we differ, too: a key with NUL (U+0000) is refused (Durable Objects accept it), because SQLite
 * drivers read text back cut at a NUL and the SQL stores refuse it; better here, at the call, than at
 * the flush.
 *
 * @param argument - the argument's name, for the error (`key`, `keys[2]`, `options.start`).
 * @param value - what the caller passed.
 * @param sized - check {@link MAX_KEY_BYTES} (keys; not list bounds, which Durable Objects never size).
 */
export function toKey(argument: string, value: unknown, sized = true): string {
  // Durable Objects: `TypeError: Cannot convert a Symbol value to a string`.
  if (typeof value === 'symbol') throw new InvalidArgumentError(argument, 'Cannot convert a Symbol value to a string')
  const text = String(value)
  const nul = text.indexOf('\0')
  if (nul >= 0) {
    throw new InvalidArgumentError(
      argument,
      `must not contain NUL (U+0000), found at index ${nul}: the SQL stores cannot give such a key back`,
    )
  }
  if (sized) {
    const bytes = utf8Length(text) // a lone surrogate counts its 3 bytes, as in workerd
    if (bytes > MAX_KEY_BYTES) throw new KeyTooLargeError(argument, bytes, MAX_KEY_BYTES)
  }
  return text.replace(LONE_SURROGATES, '\uFFFD\uFFFD\uFFFD')
}

/** Refuses a call naming more than {@link MAX_KEYS_PER_CALL} keys or entries. */
export function checkKeyCount(argument: string, count: number): void {
  if (count > MAX_KEYS_PER_CALL) throw new TooManyKeysError(argument, count, MAX_KEYS_PER_CALL)
}

/**
 * Refuses a value whose V8 serialization (what Durable Objects measure, see {@link serializedSize})
 * exceeds {@link MAX_VALUE_BYTES} + {@link VALUE_SIZE_SLACK}. It measures the encoded value read back,
 * not the caller's object: that is exactly what is stored, and its getters (which Durable Objects run
 * once, as our encoder did) do not run again.
 *
 * @param argument - the argument that held the value, for the error.
 * @param key - the storage key.
 * @param encoded - the value as `encodeValue` encoded it (an uncloneable value failed there first,
 *   as in Durable Objects).
 */
export function checkValueSize(argument: string, key: string, encoded: EncodedValue): void {
  const bytes = serializedSize(decodeValue(encoded, key))
  if (bytes > MAX_VALUE_BYTES + VALUE_SIZE_SLACK) throw new ValueTooLargeError(argument, key, bytes, MAX_VALUE_BYTES)
}

/** UTF-8 length of a string; a lone surrogate counts 3 bytes (its generalized UTF-8, as workerd stores it). */
export function utf8Length(s: string): number {
  let bytes = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}
