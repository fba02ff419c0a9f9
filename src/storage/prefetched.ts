/**
 * The rows an acquire prefetched (`Lock.prefetched`), as `ObjectStorage` takes them to start its cache
 * with: checked and copied before any I/O (docs/design.md invariant 8).
 *
 * @module
 */
import { InvalidArgumentError } from '../errors.js'
import type { PrefetchedRows } from '../store/lock-store.js'
import type { EncodedValue } from '../store/object-store.js'
import { describe } from '../validate.js'

/**
 * A copy of `options.prefetched`, each field read once: `complete` a boolean, `entries` an array of
 * `[key, encoded value]` string pairs, each key once (values are decoded when read, as the store's).
 */
export function checkPrefetched(prefetched: unknown): { entries: Array<[string, EncodedValue]>; complete: boolean } {
  if (prefetched === null || typeof prefetched !== 'object') {
    throw new InvalidArgumentError('options.prefetched', `expected { entries, complete }, got ${describe(prefetched)}`)
  }
  const { entries, complete } = prefetched as PrefetchedRows
  if (typeof complete !== 'boolean') {
    throw new InvalidArgumentError('options.prefetched.complete', `expected a boolean, got ${describe(complete)}`)
  }
  if (!Array.isArray(entries)) {
    throw new InvalidArgumentError('options.prefetched.entries', `expected an array, got ${describe(entries)}`)
  }
  const copy: Array<[string, EncodedValue]> = []
  const seen = new Set<string>()
  for (let i = 0; i < entries.length; i++) {
    const entry: unknown = entries[i]
    const [key, value] = Array.isArray(entry) ? (entry as unknown[]) : []
    if (typeof key !== 'string' || typeof value !== 'string' || seen.has(key)) {
      const why = seen.has(key as string)
        ? `repeats the key "${key as string}"`
        : `expected [key, encoded value] strings, got ${describe(entry)}`
      throw new InvalidArgumentError(`options.prefetched.entries[${i}]`, why)
    }
    seen.add(key)
    copy.push([key, value])
  }
  return { entries: copy, complete }
}
