import type { D1Database, D1PreparedStatement } from 'cloudflare:test'

/**
 * Wraps a D1 binding and counts requests to D1 (docs/design.md invariant 6): every `batch`, `exec` and
 * `dump` on the database, and every `first`/`all`/`run`/`raw` on a statement prepared through it.
 * `prepare` and `bind` are local and not counted. Statements handed back to `batch` are unwrapped, so
 * the real binding sees its own objects.
 */
export function countingD1(db: D1Database): { db: D1Database; requests: () => number; reset: () => void } {
  let count = 0
  const raw = new WeakMap<object, D1PreparedStatement>()
  const counted = <F extends (...args: never[]) => unknown>(f: F): F =>
    ((...args: Parameters<F>) => {
      count++
      return f(...args)
    }) as F

  const wrapStatement = (statement: D1PreparedStatement): D1PreparedStatement => {
    const wrapped: D1PreparedStatement = {
      bind: (...values) => wrapStatement(statement.bind(...values)),
      first: counted(() => statement.first()),
      all: counted(() => statement.all()),
      run: counted(() => statement.run()),
      raw: counted(() => statement.raw()),
    } as D1PreparedStatement
    raw.set(wrapped, statement)
    return wrapped
  }
  const unwrap = (statement: D1PreparedStatement) => raw.get(statement) ?? statement

  const wrapped = new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return (query: string) => wrapStatement(target.prepare(query))
      if (prop === 'batch') return counted((statements: D1PreparedStatement[]) => target.batch(statements.map(unwrap)))
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'exec' || prop === 'dump') return counted((...args: unknown[]) => value.apply(target, args))
      return value.bind(target)
    },
  })
  return { db: wrapped, requests: () => count, reset: () => (count = 0) }
}
