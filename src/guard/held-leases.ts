import type { Lease } from './lease.js'
import type { Lock } from './types.js'

/** The leases a guard holds, by the lock handed out for each. */
export class HeldLeases {
  readonly #leases = new Map<Lock, Lease>()
  /**
   * No held lease's validity ends before this: a lower bound (refreshes only move ends later), so
   * {@link prune} scans the leases only once it has passed, not on every acquire.
   */
  #validityFloor = Infinity
  /**
   * No lease is endangered by a store clock less than this far ahead of ours: a lower bound of each
   * lease's `storeOffsetCeiling + driftMs`, so {@link observeStoreOffset} scans only past it.
   */
  #storeOffsetTrigger = Infinity

  /** Lists a lease just taken. */
  add(lease: Lease): void {
    this.#leases.set(lease.lock, lease)
    this.#validityFloor = Math.min(this.#validityFloor, lease.validUntil)
    this.#storeOffsetTrigger = Math.min(this.#storeOffsetTrigger, lease.storeOffsetCeiling + lease.timings.driftMs)
  }

  /**
   * A store answer showed the store's clock at least `offset` ahead of local monotonic time (store
   * time minus when the answer arrived); `answeredFor` is the lease the answer renewed, if any, whose
   * new ceiling enters the trigger. Leases renewed by the store's clock before it stepped forward
   * shrink their validity ({@link Lease.storeClockAhead}).
   */
  observeStoreOffset(offset: number, answeredFor?: Lease): void {
    if (answeredFor) {
      const trigger = answeredFor.storeOffsetCeiling + answeredFor.timings.driftMs
      this.#storeOffsetTrigger = Math.min(this.#storeOffsetTrigger, trigger)
    }
    if (!(offset > this.#storeOffsetTrigger)) return
    let trigger = Infinity
    for (const lease of this.all()) {
      lease.storeClockAhead(offset)
      if (lease.ended) continue
      trigger = Math.min(trigger, lease.storeOffsetCeiling + lease.timings.driftMs)
      this.#validityFloor = Math.min(this.#validityFloor, lease.validUntil)
    }
    this.#storeOffsetTrigger = trigger
  }

  /** The lease behind `lock`, if it is still held. */
  get(lock: Lock): Lease | undefined {
    return this.#leases.get(lock)
  }

  /** Stops listing a lease that ended. */
  delete(lease: Lease): void {
    this.#leases.delete(lease.lock)
  }

  /** The leases held right now, in the order they were taken. */
  all(): Lease[] {
    return [...this.#leases.values()]
  }

  /**
   * Ends leases whose validity ran out at `now` without their timer firing. In workerd, timers belong
   * to the request that set them, and a request cancelled because its client went away takes them
   * along: its leases would otherwise stay in this (isolate-wide) guard for good.
   */
  prune(now: number): void {
    if (now < this.#validityFloor) return
    let floor = Infinity
    for (const lease of this.all()) {
      if (lease.ended) continue
      if (now >= lease.validUntil) void lease.end({ how: 'ran-out' })
      else floor = Math.min(floor, lease.validUntil)
    }
    this.#validityFloor = floor
  }
}
