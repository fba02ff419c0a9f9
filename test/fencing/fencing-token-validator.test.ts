import { describe, expect, it } from 'vitest'
import { FencingTokenValidator, InvalidArgumentError, StaleFencingTokenError } from '../../src/index.js'

describe('FencingTokenValidator', () => {
  it('accepts the same or a newer token and rejects an older one', () => {
    const fence = new FencingTokenValidator()
    fence.validate('x', 3)
    fence.validate('x', 3)
    fence.validate('x', 5)
    const error = (() => {
      try {
        fence.validate('x', 4)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(StaleFencingTokenError)
    expect(error).toMatchObject({ doId: 'x', token: 4, currentToken: 5 })
    expect(fence.highest('x')).toBe(5)
  })

  it('keeps ids independent and can forget one', () => {
    const fence = new FencingTokenValidator()
    fence.validate('a', 9)
    expect(fence.check('b', 1)).toBe(true)
    expect(fence.check('a', 8)).toBe(false)
    fence.forget('a')
    expect(fence.check('a', 1)).toBe(true)
  })

  it('rejects malformed tokens and ids with a typed error', () => {
    const fence = new FencingTokenValidator()
    expect(() => fence.validate('x', 0)).toThrow(InvalidArgumentError)
    expect(() => fence.validate('x', 1.5)).toThrow(/token/)
    expect(() => fence.validate('', 1)).toThrow(/doId/)
    expect(() => fence.check('x', Number.NaN)).toThrow(InvalidArgumentError)
  })
})
