/**
 * The unit an {@link ObjectStorage} buffers writes in: the turn's own layer, one per open transaction,
 * and one per flush in flight. Reads resolve a key innermost layer first, then the cache.
 */
import type { EncodedValue } from '../store/object-store.js'

/** A key's state in a layer or the cache: its encoded value, or `null` for deleted / known absent. */
export type Slot = EncodedValue | null

/**
 * Writes not yet committed: the turn's own (the base layer), or a transaction's (a layer over its
 * parent). `cleared` marks a `deleteAll()`: nothing under this layer counts any more. A transaction's
 * layer that ended stays in the chain of a nested one still open: reads skip it (its writes went to
 * the nearest open layer under it, or were dropped), and the nested one commits into that layer.
 */
export interface Layer {
  readonly writes: Map<string, Slot>
  cleared: boolean
  readonly parent: Layer | undefined
  state: 'open' | 'rolled back' | 'committed'
}
