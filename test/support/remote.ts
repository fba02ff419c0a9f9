import type { Client } from '@libsql/client'

/**
 * The remote path (Turso over HTTP or WebSocket) without a server: a local client that reports
 * `protocol: 'http'`, so drivers take their remote branch (single statements as plain `execute`, no
 * connection swap after SQLITE_BUSY) against real SQLite. The wire format is @libsql/client's business.
 * `calls` records which client method each request used.
 */
export function asRemote<C extends Client>(client: C): C & { calls: Array<'execute' | 'batch'> } {
  const calls: Array<'execute' | 'batch'> = []
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'protocol') return 'http'
      if (prop === 'calls') return calls
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'execute' || prop === 'batch') {
        return (...args: unknown[]) => {
          calls.push(prop)
          return (value as (...a: unknown[]) => unknown).apply(target, args)
        }
      }
      return value.bind(target)
    },
  }) as C & { calls: Array<'execute' | 'batch'> }
}
