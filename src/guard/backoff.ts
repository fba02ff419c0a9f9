import { InvalidArgumentError } from '../errors.js'
import { describe } from '../validate.js'
import type { RetryOptions } from './types.js'

/** A {@link RetryOptions} with every field filled in and validated. */
export interface Backoff {
  /** First backoff cap, ms. */
  initialDelayMs: number
  /** Largest backoff cap, ms. */
  maxDelayMs: number
  /** Cap growth per attempt. */
  factor: number
}

/** The backoff used when `retry` is not given: caps 25 ms, 50 ms, 100 ms, ... up to 1 s. */
export const DEFAULT_BACKOFF: Backoff = { initialDelayMs: 25, maxDelayMs: 1000, factor: 2 }

/**
 * `options` merged over {@link DEFAULT_BACKOFF} and validated; throws an `InvalidArgumentError` naming
 * `${argument}.field`.
 */
export function resolveBackoff(options: RetryOptions | undefined, argument = 'retry'): Backoff {
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    // Spread over the defaults, a number or a string would be silently ignored.
    throw new InvalidArgumentError(
      argument,
      `expected an object { initialDelayMs?, maxDelayMs?, factor? }, got ${describe(options)}`,
    )
  }
  const b = { ...DEFAULT_BACKOFF, ...stripUndefined(options ?? {}) }
  for (const key of ['initialDelayMs', 'maxDelayMs'] as const) {
    if (!Number.isFinite(b[key]) || b[key] <= 0)
      throw new InvalidArgumentError(`${argument}.${key}`, 'must be a positive number')
  }
  if (b.maxDelayMs < b.initialDelayMs)
    throw new InvalidArgumentError(`${argument}.maxDelayMs`, 'must be >= initialDelayMs')
  if (!Number.isFinite(b.factor) || b.factor < 1)
    throw new InvalidArgumentError(`${argument}.factor`, 'must be a number >= 1')
  return b
}

/**
 * "Full jitter" (AWS architecture blog, Exponential Backoff and Jitter): a uniform delay in
 * [0, cap], where the cap grows exponentially. Spreads contenders apart better than equal jitter.
 */
export function fullJitterDelay(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const cap = Math.min(b.maxDelayMs, b.initialDelayMs * b.factor ** attempt)
  return random() * cap
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
