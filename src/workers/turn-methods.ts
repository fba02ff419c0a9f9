/**
 * Which methods of a `StatelessDurableObject` subclass are turns, and how they become turns.
 *
 * Mechanism: the concrete class's prototype is wrapped once, at its first construction. Every method
 * reachable from it down to (not including) `StatelessDurableObject.prototype`, except the names in
 * {@link NOT_TURNS}, gets a wrapper on the concrete prototype that runs the original as a turn. Why
 * the prototype and not the instance or a Proxy: workerd exposes over RPC the methods of the class's
 * prototype chain and never the instance's own properties, and a Proxy as `this` breaks the
 * subclass's `#private` fields. Why the concrete prototype: a `super.method()` call lands on the
 * parent's unwrapped (or, if the parent is itself a bound class, pass-through) definition and so runs
 * inside the caller's turn instead of queueing behind it.
 *
 * @module
 */

/**
 * Names that are never wrapped: the constructor, `fetch` (already a turn, through `handleRequest`),
 * and the hooks StatelessDO calls itself (they run inside turns, or before them: an override wrapped
 * as a turn would hand its caller a promise, or queue behind the turn that called it).
 * stateless-durable-object.ts checks at compile time that every hook it calls is listed here.
 */
export const NOT_TURN_NAMES = [
  'constructor',
  'fetch',
  'createGuard',
  'handleRequest',
  'doId',
  'doIdFor',
  'acquireOptions',
  'turnOptions',
  'onError',
  'objectStore',
  'activationOptions',
  'onStart',
  'readOnlyRequest',
  'handleReadOnlyRequest',
] as const

/** {@link NOT_TURN_NAMES} as a set. */
export const NOT_TURNS: ReadonlySet<string> = new Set<string>(NOT_TURN_NAMES)

/** Runs `call` as a turn of `instance`'s object. */
export type RunTurn = (instance: object, call: () => unknown) => Promise<unknown>

/** A wrapper this module installed, with the class it was installed for. */
interface TurnWrapper {
  (this: object, ...args: unknown[]): unknown
  readonly owner: object
  readonly original: (...args: unknown[]) => unknown
}

const wrappedPrototypes = new WeakSet<object>()

/** The names `wrapTurnMethods` makes turns for instances of the class whose prototype is `prototype`. */
export function turnMethodNames(prototype: object, base: object): string[] {
  const names = new Set<string>()
  // The nearest definition of a name decides: a getter (or a field-like value) in a subclass that
  // shadows a parent's method is not a method of the class, and must not be replaced by a wrapper.
  const seen = new Set<string>()
  for (let p: object | null = prototype; p !== null && p !== base; p = Object.getPrototypeOf(p)) {
    for (const name of Object.getOwnPropertyNames(p)) {
      if (seen.has(name)) continue
      seen.add(name)
      const descriptor = Object.getOwnPropertyDescriptor(p, name)
      if (!NOT_TURNS.has(name) && typeof descriptor?.value === 'function') names.add(name)
    }
  }
  return [...names].sort()
}

/**
 * Wraps the turn methods of `prototype` (the concrete class's) once. `base` is where the walk stops
 * (`StatelessDurableObject.prototype`: its own members are not turns).
 */
export function wrapTurnMethods(prototype: object, base: object, runTurn: RunTurn): void {
  if (wrappedPrototypes.has(prototype)) return
  wrappedPrototypes.add(prototype)
  for (const name of turnMethodNames(prototype, base)) {
    // The definition an external call would reach: the nearest one, unwrapped if it is a wrapper
    // installed for a parent class that is bound on its own.
    let found: unknown
    for (let p: object | null = prototype; p !== null && found === undefined; p = Object.getPrototypeOf(p)) {
      found = Object.getOwnPropertyDescriptor(p, name)?.value
    }
    const original = isWrapper(found) ? found.original : (found as (...args: unknown[]) => unknown)
    const wrapper = function (this: object, ...args: unknown[]): unknown {
      // Reached through `super.name()` from a subclass's method: that call is inside its turn already.
      if (Object.getPrototypeOf(this) !== prototype) return original.apply(this, args)
      return runTurn(this, () => original.apply(this, args))
    } as TurnWrapper
    Object.defineProperties(wrapper, {
      owner: { value: prototype },
      original: { value: original },
      name: { value: name },
      length: { value: original.length },
    })
    const descriptor = Object.getOwnPropertyDescriptor(prototype, name)
    Object.defineProperty(prototype, name, {
      value: wrapper,
      writable: descriptor?.writable ?? true,
      enumerable: descriptor?.enumerable ?? false,
      configurable: true,
    })
  }
}

function isWrapper(value: unknown): value is TurnWrapper {
  return typeof value === 'function' && 'original' in value && 'owner' in value
}
