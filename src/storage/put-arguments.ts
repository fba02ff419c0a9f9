/**
 * `put()`'s two call forms, `put(key, value, options?)` and `put(entries, options?)`, turned into
 * checked, encoded writes before anything is buffered, so that a refused call buffers nothing.
 */
import { InvalidArgumentError } from '../errors.js'
import type { EncodedValue } from '../store/object-store.js'
import { checkKeyCount, checkValueSize, toKey } from './limits.js'
import { toOptions } from './options.js'
import { encodeValue } from './serializer.js'

/**
 * The writes one `put()` call asks for, each key with its encoded value, or throws as Durable Objects
 * do. `argumentCount` is the call's `arguments.length`.
 */
export function toWrites(
  keyOrEntries: unknown,
  value: unknown,
  options: unknown,
  argumentCount: number,
): Array<[string, EncodedValue]> {
  const writes: Array<[string, EncodedValue]> = []
  if (typeof keyOrEntries === 'object' && keyOrEntries !== null && !Array.isArray(keyOrEntries)) {
    // put(entries, options?): the second argument, if any, must be the options.
    if (argumentCount > 1 && value !== undefined && (typeof value !== 'object' || value === null)) {
      throw new InvalidArgumentError(
        'options',
        'put() may only be called with a single key-value pair and optional options as put(key, value, options) or with multiple key-value pairs and optional options as put(entries, options)',
      )
    }
    toOptions('options', value)
    const entries = keyOrEntries as Record<string, unknown>
    for (const name of Object.keys(entries)) {
      const entry = entries[name]
      if (entry === undefined) continue // skipped silently, as Durable Objects do
      const argument = `entries[${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name)}]`
      const key = toKey(argument, name)
      const encoded = encodeValue(entry, key, argument)
      checkValueSize(argument, key, encoded)
      writes.push([key, encoded])
    }
    checkKeyCount('entries', writes.length)
  } else {
    toOptions('options', options)
    const key = toKey('key', keyOrEntries)
    if (value === undefined) throw new InvalidArgumentError('value', 'put() called with undefined value.')
    const encoded = encodeValue(value, key)
    checkValueSize('value', key, encoded)
    writes.push([key, encoded])
  }
  return writes
}
