/**
 * Which methods of a `StatelessDurableObject` subclass become turns (src/workers/turn-methods.ts). The
 * module imports nothing of `cloudflare:workers`, so its rule is checked here in Node on plain classes;
 * test/workers/durable-object.test.ts checks the wrapped class over RPC in workerd.
 */
import { describe, expect, it } from 'vitest'
import { NOT_TURN_NAMES, turnMethodNames, wrapTurnMethods } from '../../src/workers/turn-methods.js'

/** Stands in for `StatelessDurableObject`: where the walk stops. */
class Base {
  baseMethod(): string {
    return 'base'
  }
}

/** A subclass overriding every hook the class calls itself, plus two methods of its own. */
function subclassWithEveryHook(): { prototype: object } {
  class Sub extends Base {
    increment(): string {
      return 'increment'
    }
    alarm(): string {
      return 'alarm'
    }
    get value(): number {
      return 1
    }
  }
  for (const name of NOT_TURN_NAMES) {
    if (name === 'constructor') continue
    Object.defineProperty(Sub.prototype, name, { value: () => name, writable: true, configurable: true })
  }
  return Sub
}

describe('turn methods of a StatelessDurableObject subclass', () => {
  it('are its own methods, alarm() included, and none of the hooks the class calls itself (doIdFor among them)', () => {
    const Sub = subclassWithEveryHook()
    expect(NOT_TURN_NAMES).toContain('doIdFor')
    expect(turnMethodNames(Sub.prototype, Base.prototype)).toEqual(['alarm', 'increment'])
  })

  it("leave a subclass's getter alone where it shadows a parent's method: the nearest definition decides", () => {
    class Parent extends Base {
      status(): string {
        return 'parent method'
      }
    }
    // In JavaScript (TypeScript refuses an accessor over a method, so it is defined by hand here).
    class Child extends Parent {}
    Object.defineProperty(Child.prototype, 'status', { get: () => 'child getter', configurable: true })
    expect(turnMethodNames(Child.prototype, Base.prototype)).toEqual([])
    wrapTurnMethods(Child.prototype, Base.prototype, async (_instance, call) => call())
    expect((Object.create(Child.prototype) as { status: unknown }).status).toBe('child getter')
  })

  it('leave a hook override answering its caller directly after wrapping, while a method runs as a turn', async () => {
    const Sub = subclassWithEveryHook()
    const turns: string[] = []
    wrapTurnMethods(Sub.prototype, Base.prototype, async (_instance, call) => {
      turns.push('turn')
      return call()
    })
    const instance = Object.create(Sub.prototype) as Record<string, () => unknown>
    expect(instance.doIdFor!()).toBe('doIdFor') // a string, not a promise
    expect(instance.doId!()).toBe('doId')
    expect(turns).toEqual([])
    await expect(instance.increment!()).resolves.toBe('increment')
    expect(turns).toEqual(['turn'])
  })
})
