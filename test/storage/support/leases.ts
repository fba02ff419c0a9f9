/**
 * Leases in memory that answer {@link LeaseCheck} (what MemoryObjectStore needs) and the part of
 * `LockStore` the storage tests and the ObjectStore contract use (acquire, release, get). Until
 * `MemoryLockStore` implements `LeaseCheck` itself, this is the same lease logic, compact: store clock,
 * token + 1 per acquisition, only the holder (same node and token, unexpired) extends or releases.
 */
import type {
  AcquireRequest,
  LeaseCheck,
  LeaseRef,
  LockInfo,
  LockRecord,
  LockRef,
  LockStore,
  StoreAcquireResult,
} from '../../../src/index.js'

interface Row {
  nodeId: string
  fencingToken: number
  acquiredAt: number
  expiresAt: number
}

export class TestLeases implements Pick<LockStore, 'ensureSchema' | 'acquire' | 'release' | 'get'>, LeaseCheck {
  readonly #rows = new Map<string, Row>()
  /** The store clock, ms; advance it by hand (`now += ms`) or leave it on the system clock. */
  now: () => number

  constructor(now: () => number = () => Date.now()) {
    this.now = now
  }

  /** This as the `LockStore` the ObjectStore contract takes (it calls only the methods above). */
  asLockStore(): LockStore {
    return this as unknown as LockStore
  }

  holds(ref: LeaseRef): boolean {
    return this.#held(ref) !== undefined
  }

  holdsAndExtend(ref: LeaseRef, ttlMs: number): number | null {
    const row = this.#held(ref)
    if (!row) return null
    row.expiresAt = Math.round(this.now()) + ttlMs
    return row.expiresAt
  }

  async ensureSchema(): Promise<void> {}

  async acquire({ doId, nodeId, ttlMs }: AcquireRequest): Promise<StoreAcquireResult> {
    const now = Math.round(this.now())
    const row = this.#rows.get(doId)
    if (row && row.expiresAt > now) return { acquired: false, holder: record(doId, row), storeNow: now }
    const next = { nodeId, fencingToken: (row?.fencingToken ?? 0) + 1, acquiredAt: now, expiresAt: now + ttlMs }
    this.#rows.set(doId, next)
    return { acquired: true, lock: record(doId, next) }
  }

  async release(ref: LockRef): Promise<boolean> {
    const row = this.#held(ref)
    if (!row) return false
    row.expiresAt = 0
    return true
  }

  async get(doId: string): Promise<LockInfo | null> {
    const row = this.#rows.get(doId)
    if (!row) return null
    const now = Math.round(this.now())
    return { ...record(doId, row), held: row.expiresAt > now, storeNow: now }
  }

  #held(ref: LeaseRef): Row | undefined {
    const row = this.#rows.get(ref.doId)
    if (!row || row.nodeId !== ref.nodeId || row.fencingToken !== ref.fencingToken) return undefined
    return row.expiresAt > Math.round(this.now()) ? row : undefined
  }
}

function record(doId: string, row: Row): LockRecord {
  return {
    doId,
    nodeId: row.nodeId,
    fencingToken: row.fencingToken,
    acquiredAt: row.acquiredAt,
    expiresAt: row.expiresAt,
  }
}
