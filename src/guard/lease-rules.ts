/**
 * The local lease rules, as pure functions: how long a node may trust a lease by its own clock, how
 * often it renews it, and how a per-acquire ttl scales the guard's settings. The store decides expiry
 * (docs/design.md invariant 4); these rules only keep the node's own belief on the safe side of it.
 */

/** Lease length when none is given, ms. */
export const DEFAULT_TTL_MS = 30_000

/** Heartbeats per lease length by default: a heartbeat every `ttlMs / 3` (10 s for a 30 s lease). */
export const DEFAULT_HEARTBEATS_PER_TTL = 3

/** Default drift margin, proportional part: 1% of the lease, for clock-rate drift (as Redlock). */
export const DEFAULT_DRIFT_RATIO = 0.01

/** Default drift margin, fixed part added to the proportional one, ms: for timer lateness. */
export const DEFAULT_DRIFT_FIXED_MS = 2

/** Heartbeat period and drift margin of one lease, ms. */
export interface LeaseTimings {
  /** Lease length asked of the store. */
  readonly ttlMs: number
  /** Time from one heartbeat request to the next. */
  readonly heartbeatMs: number
  /** Margin subtracted from the lease for the local validity window. */
  readonly driftMs: number
}

/** A guard's own timings, and which of them the caller set (those scale with a per-acquire ttl). */
export interface GuardTimings extends LeaseTimings {
  /** `heartbeatMs` was given explicitly. */
  readonly explicitHeartbeat: boolean
  /** `driftMs` was given explicitly. */
  readonly explicitDrift: boolean
}

/** The default heartbeat period for a lease of `ttlMs`: a third of it, at least 1 ms. */
export function defaultHeartbeatMs(ttlMs: number): number {
  return Math.max(1, Math.floor(ttlMs / DEFAULT_HEARTBEATS_PER_TTL))
}

/**
 * The default drift margin for a lease of `ttlMs`: 1% + 2 ms (Redlock's rule), but never more than half
 * a (very short) lease, so that some validity is left.
 */
export function defaultDriftMs(ttlMs: number): number {
  return Math.min(Math.ceil(ttlMs * DEFAULT_DRIFT_RATIO) + DEFAULT_DRIFT_FIXED_MS, Math.floor(ttlMs / 2))
}

/**
 * The local validity deadline of a lease whose request (acquire or refresh) was sent at `sentAt`: the
 * store read its clock after that instant, so the lease lasts at least until `sentAt + ttl` by a clock
 * running at the store's rate; the drift margin covers rate differences and timer lateness.
 */
export function validityEnd(sentAt: number, timings: LeaseTimings): number {
  return sentAt + timings.ttlMs - timings.driftMs
}

/**
 * Whether an acquire answered at `answeredAt` came back after its lease's safe window: by the local,
 * conservative clock the lease may already have run out, so it must not be handed out as held.
 */
export function answeredAfterSafeWindow(sentAt: number, answeredAt: number, timings: LeaseTimings): boolean {
  return answeredAt >= validityEnd(sentAt, timings)
}

/**
 * Heartbeat period and drift margin for a lease of `ttlMs` from a guard with `guard`'s settings. A
 * per-acquire ttl keeps the guard's settings in proportion: values the caller set are scaled with the
 * lease, defaults are recomputed for it (a day-long lease gets a day-long lease's drift margin, not a
 * 30 s one's). An explicit heartbeat keeps its place within the validity window (ttl - drift), not
 * within the ttl: the drift is not proportional (its default has a fixed 2 ms), and a heartbeat past
 * the window's end would lose every lease.
 */
export function timingsForTtl(guard: GuardTimings, ttlMs: number): LeaseTimings {
  if (ttlMs === guard.ttlMs) return { ttlMs, heartbeatMs: guard.heartbeatMs, driftMs: guard.driftMs }
  const driftMs = guard.explicitDrift
    ? Math.min(Math.ceil(guard.driftMs * (ttlMs / guard.ttlMs)), Math.floor(ttlMs / 2))
    : defaultDriftMs(ttlMs)
  const heartbeatMs = guard.explicitHeartbeat
    ? Math.max(1, Math.floor(guard.heartbeatMs * ((ttlMs - driftMs) / (guard.ttlMs - guard.driftMs))))
    : defaultHeartbeatMs(ttlMs)
  return { ttlMs, heartbeatMs, driftMs }
}

/**
 * How long from `now` until the next heartbeat of a lease that a request sent at `sentAt` made valid
 * until `validUntil`. The period counts from when the request was SENT, as the validity does: counted
 * from the answer, a slow store (an acquire slower than about 2/3 of the ttl) would push the first
 * heartbeat past the end of the validity it was meant to extend. And the heartbeat keeps its place in
 * what is left of the window (`ttl - drift`) when less is left than a whole window, so that a
 * shortened validity is renewed sooner. Never negative: an overdue heartbeat is sent at once.
 */
export function nextHeartbeatDelay(timings: LeaseTimings, sentAt: number, now: number, validUntil: number): number {
  const byPeriod = sentAt + timings.heartbeatMs - now
  const window = timings.ttlMs - timings.driftMs
  const byWhatIsLeft = ((validUntil - now) * timings.heartbeatMs) / window
  return Math.max(0, Math.min(byPeriod, byWhatIsLeft))
}

/**
 * The validity left to a lease once a store answer shows the store's clock ran ahead of ours. Offsets
 * are the store's wall clock minus local monotonic time. At the lease's last answer the store's clock
 * was at most `storeOffsetCeiling` ahead (store time minus when the request was sent); a later answer
 * shows it at least `storeOffsetFloor` ahead (store time minus when that answer arrived). If the
 * floor passed the ceiling by more than the drift margin, the store's clock stepped forward (NTP, a
 * VM resuming) and reaches the lease's `storeExpiresAt` sooner than `validUntil` assumed: at local
 * `storeExpiresAt - storeOffsetFloor`, minus the margin. Otherwise the validity stands.
 */
export function validityAfterStoreClockStep(
  lease: { validUntil: number; storeExpiresAt: number; storeOffsetCeiling: number; driftMs: number },
  storeOffsetFloor: number,
): number {
  if (!(storeOffsetFloor - lease.storeOffsetCeiling > lease.driftMs)) return lease.validUntil
  return Math.min(lease.validUntil, lease.storeExpiresAt - storeOffsetFloor - lease.driftMs)
}

/** Whether a heartbeat every `heartbeatMs` comes before the local validity (`ttl - drift`) ends. */
export function heartbeatFits(timings: LeaseTimings): boolean {
  return timings.heartbeatMs < timings.ttlMs - timings.driftMs
}
