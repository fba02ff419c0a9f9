import { describe, expect, it } from 'vitest'
import { murmurHash3, murmurHash3Bytes } from '../../src/ring/hash.js'

describe('murmurHash3', () => {
  // Reference vectors of MurmurHash3_x86_32 (SMHasher), also what Python's mmh3 returns unsigned.
  const vectors: Array<[string, number, number]> = [
    ['', 0, 0],
    ['', 1, 0x514e28b7],
    ['', 0xffffffff, 0x81f16f39],
    ['\0\0\0\0', 0, 0x2362f9de],
    ['a', 0x9747b28c, 0x7fa09ea6],
    ['ab', 0x9747b28c, 0x74875592],
    ['abc', 0x9747b28c, 0xc84a62dd],
    ['abcd', 0x9747b28c, 0xf0478627],
    ['aaaa', 0x9747b28c, 0x5a97808a],
    ['abc', 0, 0xb3dd93fa],
    ['Hello, world!', 0x9747b28c, 0x24884cba],
    ['ππππππππ', 0x9747b28c, 0xd58063c1],
    ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
    ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ]

  it.each(vectors)('hashes %j with seed %i to the reference MurmurHash3_x86_32 value', (input, seed, expected) => {
    expect(murmurHash3(input, seed)).toBe(expected)
  })

  it('hashes a string exactly as its UTF-8 bytes, including astral characters and lone surrogates', () => {
    const encoder = new TextEncoder()
    const samples = [
      'é',
      'do-é',
      'abcé',
      'abcdé',
      'ключ-42',
      '鍵/🔑/键',
      '🔑',
      'x\ud800',
      '\udc00abc',
      'a\ud83d\ude00b\ud83d',
      'plain-ascii-then-ü-at-the-end',
      'ü'.repeat(300),
    ]
    for (const sample of samples) {
      for (const seed of [0, 7, 0x9747b28c]) {
        expect(murmurHash3(sample, seed), sample).toBe(murmurHash3Bytes(encoder.encode(sample), seed))
      }
    }
  })

  it('returns unsigned 32-bit integers', () => {
    for (let i = 0; i < 1000; i++) {
      const h = murmurHash3(`key-${i}`)
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true)
    }
  })
})
