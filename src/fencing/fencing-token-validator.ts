import { InvalidArgumentError, StaleFencingTokenError } from '../errors.js'
import { assertDoId, assertToken } from '../validate.js'

/**
 * In-memory fencing for a resource that is not in the lock database (an external API, a file, a
 * cache): remembers the highest token seen per DO id and rejects anything older (Kleppmann, "How to
 * do distributed locking"). Tokens from the same lease (equal) are accepted repeatedly.
 *
 * Only as strong as the process it lives in: the resource itself should call `validate` at the
 * point of the write. For state in the lock database, use a fenced write instead.
 *
 * @example
 * ```ts
 * const fence = new FencingTokenValidator()
 * fence.validate(lock.doId, lock.fencingToken) // throws StaleFencingTokenError if a newer holder wrote
 * ```
 */
export class FencingTokenValidator {
  readonly #highest = new Map<string, number>()

  /** Accepts `token` if it is >= the highest seen for `doId` (and records it); throws otherwise. */
  validate(doId: string, token: number): void {
    assertDoId(doId)
    assertToken(token, 'token')
    const highest = this.#highest.get(doId) ?? 0
    if (token < highest) throw new StaleFencingTokenError(doId, token, highest)
    this.#highest.set(doId, token)
  }

  /** Like {@link validate} but answers instead of throwing. */
  check(doId: string, token: number): boolean {
    try {
      this.validate(doId, token)
      return true
    } catch (error) {
      if (error instanceof StaleFencingTokenError) return false
      throw error
    }
  }

  /** The highest token accepted for `doId` (0 if none). */
  highest(doId: string): number {
    assertDoId(doId)
    return this.#highest.get(doId) ?? 0
  }

  /** Forgets `doId` (e.g. when the resource is deleted). */
  forget(doId: string): void {
    if (typeof doId !== 'string') throw new InvalidArgumentError('doId', 'expected a string')
    this.#highest.delete(doId)
  }
}
