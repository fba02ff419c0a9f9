/**
 * MurmurHash3 (x86, 32-bit) over the UTF-8 bytes of a string.
 *
 * Routing must agree between every member of a cluster, whether it runs on Node, workerd or a
 * browser, so the hash is plain integer arithmetic (`Math.imul`, shifts) with no platform API.
 * UTF-8 (rather than UTF-16 code units) is hashed so the values match every other MurmurHash3
 * implementation, e.g. `mmh3.hash(key, seed, signed=False)` in Python; lone surrogates are
 * encoded as U+FFFD exactly as `TextEncoder` does.
 *
 * @module
 */

const C1 = 0xcc9e2d51
const C2 = 0x1b873593

/** Reused buffer for the non-ASCII path; grows on demand and is never shrunk. */
let scratch = new Uint8Array(256)

/**
 * Hashes a string with MurmurHash3 x86_32 over its UTF-8 encoding.
 *
 * ASCII strings (the common case: ids, URLs, uuids) are hashed straight from `charCodeAt`
 * without allocating; other strings are encoded into a reused buffer first.
 *
 * @param key - the string to hash.
 * @param seed - a 32-bit seed (default 0); different seeds give independent-looking hashes.
 * @returns an unsigned 32-bit integer.
 *
 * @example
 * ```ts
 * murmurHash3('The quick brown fox jumps over the lazy dog') // 0x2e4ff723
 * ```
 */
export function murmurHash3(key: string, seed = 0): number {
  const length = key.length
  const blockEnd = length & ~3
  let h = seed | 0
  let i = 0
  for (; i < blockEnd; i += 4) {
    const c0 = key.charCodeAt(i)
    const c1 = key.charCodeAt(i + 1)
    const c2 = key.charCodeAt(i + 2)
    const c3 = key.charCodeAt(i + 3)
    if ((c0 | c1 | c2 | c3) >= 0x80) return murmurHash3Utf8(key, seed)
    let k = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24)
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, C2)
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const rest = length - blockEnd
  if (rest > 0) {
    let k = 0
    for (let j = rest - 1; j >= 0; j--) {
      const c = key.charCodeAt(i + j)
      if (c >= 0x80) return murmurHash3Utf8(key, seed)
      k = (k << 8) | c
    }
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, C2)
  }
  return finalize(h, length)
}

/**
 * Hashes raw bytes with MurmurHash3 x86_32.
 *
 * @param bytes - the bytes to hash; only the first `length` are read.
 * @param seed - a 32-bit seed (default 0).
 * @param length - how many bytes to hash (default `bytes.length`).
 * @returns an unsigned 32-bit integer.
 */
export function murmurHash3Bytes(bytes: Uint8Array, seed = 0, length = bytes.length): number {
  const blockEnd = length & ~3
  let h = seed | 0
  let i = 0
  for (; i < blockEnd; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24)
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, C2)
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  const rest = length - blockEnd
  if (rest > 0) {
    let k = 0
    for (let j = rest - 1; j >= 0; j--) k = (k << 8) | bytes[i + j]!
    k = Math.imul(k, C1)
    k = (k << 15) | (k >>> 17)
    h ^= Math.imul(k, C2)
  }
  return finalize(h, length)
}

function finalize(hash: number, byteLength: number): number {
  let h = hash ^ byteLength
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

function murmurHash3Utf8(key: string, seed: number): number {
  const byteLength = encodeUtf8(key)
  return murmurHash3Bytes(scratch, seed, byteLength)
}

/** Encodes `key` into {@link scratch} (growing it if needed) and returns the byte length. */
function encodeUtf8(key: string): number {
  // Every UTF-16 code unit becomes at most 3 UTF-8 bytes (a surrogate pair is 2 units -> 4 bytes).
  if (scratch.length < key.length * 3) scratch = new Uint8Array(key.length * 3)
  const out = scratch
  let n = 0
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i)
    if (c < 0x80) {
      out[n++] = c
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6)
      out[n++] = 0x80 | (c & 0x3f)
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < key.length ? key.charCodeAt(i + 1) : 0
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
          i++
          out[n++] = 0xf0 | (cp >> 18)
          out[n++] = 0x80 | ((cp >> 12) & 0x3f)
          out[n++] = 0x80 | ((cp >> 6) & 0x3f)
          out[n++] = 0x80 | (cp & 0x3f)
          continue
        }
        c = 0xfffd
      }
      out[n++] = 0xe0 | (c >> 12)
      out[n++] = 0x80 | ((c >> 6) & 0x3f)
      out[n++] = 0x80 | (c & 0x3f)
    }
  }
  return n
}
