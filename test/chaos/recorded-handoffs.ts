/**
 * The chaos nodes' own record of their handoffs: every `LockStore.handoff` their guard sends, written to
 * the history before it is sent and with its answer, so the checker can tell a holder's handoff (the
 * next token over its own intact lease, in one statement: legitimate) from a takeover of an intact
 * lease nobody handed over (invariant 1).
 *
 * Recorded at the store seam, below the guard, because nothing above it says a release was a handoff:
 * `release()` resolves `true` and the `release` event says `released: true` either way. And not
 * inferred from the do_locks audit: a handoff's row change (same node, token + 1, fresh expiry) is
 * exactly what a broken acquire taking over its own node's lease would write, so only the holder's
 * record of asking for it can tell the two apart.
 */
import { StoreUnavailableError, type HandoffRequest, type LockRecord, type LockStore } from '../../src/index.js'
import type { HistoryWriter } from './history.js'

/**
 * `store` as the guard should get it: the same store (every other member, `objects` included, is the
 * store's own), whose `handoff` is recorded in `history` as a `handoff` operation.
 */
export function recordHandoffs<S extends LockStore>(store: S, history: HistoryWriter): S {
  if (typeof store.handoff !== 'function') return store
  const handoff = store.handoff.bind(store)
  const recorded = async (request: HandoffRequest): Promise<LockRecord | null> => {
    const { doId, fencingToken: token, toNodeId: toNode } = request
    const op = history.invoke({ kind: 'handoff', doId, token, toNode })
    try {
      const record = await handoff(request)
      history.complete(op, 'ok', record ? { nextToken: record.fencingToken } : {})
      return record
    } catch (error) {
      // Unavailable: it may have committed before the answer got lost. Anything else (invalid
      // arguments, checked before any I/O) changed nothing.
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
      history.complete(op, error instanceof StoreUnavailableError ? 'unknown' : 'failed', { error: text.slice(0, 240) })
      throw error
    }
  }
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'handoff') return recorded
      // The store's own getters and methods, on the store itself (they use its private fields).
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    },
  })
}
