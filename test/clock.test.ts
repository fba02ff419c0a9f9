import { afterEach, describe, expect, it, vi } from 'vitest'
import { systemClock } from '../src/index.js'

describe('systemClock', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('never lets monotonic() go back, even where performance.now() follows a wall clock that steps back (workerd)', () => {
    const base = systemClock.monotonic()
    vi.spyOn(performance, 'now')
      .mockReturnValueOnce(base + 1_000)
      .mockReturnValueOnce(base + 10)
      .mockReturnValueOnce(base + 2_000)
    expect(systemClock.monotonic()).toBe(base + 1_000)
    expect(systemClock.monotonic()).toBe(base + 1_000) // the step back is held, not followed
    expect(systemClock.monotonic()).toBe(base + 2_000)
  })

  it('reads the wall clock for now()', () => {
    vi.spyOn(Date, 'now').mockReturnValueOnce(1_234)
    expect(systemClock.now()).toBe(1_234)
  })
})
