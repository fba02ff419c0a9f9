/** Durations as `prune --older-than` reads them and as the CLI prints them. */
import { describe, expect, it } from 'vitest'
import { formatBytes, formatDuration, formatExactDuration, parseDuration } from '../../src/cli/duration.js'

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['30m', 1_800_000],
    ['12h', 43_200_000],
    ['1d', 86_400_000],
    ['2w', 1_209_600_000],
    ['1h30m', 5_400_000],
    ['1m500ms', 60_500],
    ['0', 0],
    ['0s', 0],
  ])('reads %s as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms)
  })

  it.each(['', '30', '1.5h', '-1h', '1 h', '1H', '1y', 'h', '1hm', ' 1h', '99999999999999999999w'])(
    'refuses %j',
    (text) => {
      expect(parseDuration(text)).toBeUndefined()
    },
  )

  it('is the inverse of formatExactDuration', () => {
    for (const ms of [0, 1, 999, 1000, 61_001, 5_400_000, 86_400_000, 700_000_000_123]) {
      expect(parseDuration(formatExactDuration(ms))).toBe(ms)
    }
    expect(formatExactDuration(5_400_000)).toBe('1h30m')
  })
})

describe('formatDuration and formatBytes', () => {
  it('print two units at most, for a table cell', () => {
    expect([850, 12_340, 245_000, 12_000_000, 187_200_000, -1500].map(formatDuration)).toEqual([
      '850ms',
      '12.3s',
      '4m 05s',
      '3h 20m',
      '2d 04h',
      '-1.5s',
    ])
    expect([512, 1229, 3_565_158].map(formatBytes)).toEqual(['512 B', '1.2 KiB', '3.4 MiB'])
  })
})
