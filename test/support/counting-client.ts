import type { LibSQLClientLike } from '../../src/index.js'

/** Wraps a libSQL client and counts requests (execute/batch calls): docs/design.md invariant 6. */
export function countingClient<C extends LibSQLClientLike>(
  client: C,
): { client: C; requests: () => number; reset: () => void } {
  let count = 0
  const wrapped = new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'execute' || prop === 'batch' || prop === 'executeMultiple' || prop === 'transaction') {
        return (...args: unknown[]) => {
          count++
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
      }
      return value.bind(target)
    },
  })
  return { client: wrapped, requests: () => count, reset: () => (count = 0) }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
