/**
 * The two chaos configurations: a short one with a fixed schedule inside `npm test` (every fault kind
 * at least once), and a long, seeded random one for `npm run chaos`.
 *
 * Short leases (1.5 s, heartbeat every 0.5 s) so kills and pauses play out within seconds. Pauses and
 * outages last longer than the TTL on purpose: that is when a zombie exists and only fencing stops it.
 */
import type { ClockSetting } from './clock.js'
import type { ChaosConfig, Fault, ScheduledFault } from './harness.js'
import { between, pick, seededRandom } from '../support/random.js'

const TTL_MS = 1_500

/** The hot id first: every node keeps coming back to it, so its lease is always contended. */
const IDS = ['hot', 'room-a', 'room-b', 'room-c']

/** Wall clocks minutes off in both directions, and one monotonic clock at half speed (overestimates validity). */
const SKEWED_CLOCKS: Partial<Record<number, ClockSetting>> = {
  1: { nowOffsetMs: 3 * 60_000, rate: 1 },
  2: { nowOffsetMs: -2 * 60_000, rate: 0.5 },
}

const workload = {
  // Each node serves two DOs at a time, so its heartbeats, acquires and releases overlap...
  workers: 2,
  // ...which is when group commit (odd nodes) actually combines them.
  groupCommit: (index: number) => index % 2 === 1,
  ttlMs: TTL_MS,
  ids: IDS,
  hotShare: 0.5,
  incrementsPerLease: 3,
  thinkMs: [2, 15] as [number, number],
  // One lease in twenty is held through a couple of heartbeats: the kind a pause or an outage catches.
  longLeaseShare: 0.05,
  longThinkMs: [100, 400] as [number, number],
  waitMs: 300,
  // Short enough that an outage turns into errors the nodes must live with, not just a long wait.
  busyTimeoutMs: 250,
  clocks: SKEWED_CLOCKS,
}

/** 9 s of workload with each fault once, on a fixed schedule; ~11 s wall time with start-up. */
export function shortChaos(seed: number): ChaosConfig {
  return {
    ...workload,
    nodes: 4,
    // The faults end after ~6 s: the rest shows recovery.
    durationMs: 9_000,
    gapMs: [5, 20],
    seed,
    lanes: [
      [
        { gapMs: 800, fault: { kind: 'kill', respawnAfterMs: 300 } },
        { gapMs: 700, fault: { kind: 'pause', forMs: 2 * TTL_MS } },
        { gapMs: 300, fault: { kind: 'skew', clock: { nowOffsetMs: -5 * 60_000, rate: 0.5 } } },
      ],
      [
        { gapMs: 1_500, fault: { kind: 'corrupt-expiry' } },
        { gapMs: 500, fault: { kind: 'outage', forMs: 2_000 } },
        { gapMs: 800, fault: { kind: 'corrupt-token', forMs: 1_000 } },
      ],
    ],
  }
}

/**
 * `npm run chaos`: more nodes, a minute, faults drawn at random from `seed` in two lanes (process faults
 * and store faults, so they overlap), each lane starting with every one of its kinds once.
 */
export function longChaos(seed: number, options: { nodes?: number; durationMs?: number } = {}): ChaosConfig {
  const durationMs = options.durationMs ?? 60_000
  const random = seededRandom(seed ^ 0x5eed)
  const processFaults = (): Fault[] => [
    { kind: 'kill', respawnAfterMs: between(random, [100, 2_000]) },
    { kind: 'pause', forMs: between(random, [TTL_MS + 200, 3 * TTL_MS]) },
    {
      kind: 'skew',
      clock: { nowOffsetMs: between(random, [-10, 10]) * 60_000, rate: pick(random, [0.5, 0.75, 1, 1.5]) },
    },
  ]
  const storeFaults = (): Fault[] => [
    { kind: 'outage', forMs: between(random, [300, 2 * TTL_MS]) },
    { kind: 'corrupt-expiry' },
    { kind: 'corrupt-token', forMs: between(random, [200, 1_500]) },
  ]
  const lane = (faults: () => Fault[], gap: [number, number]): ScheduledFault[] => {
    const scheduled: ScheduledFault[] = shuffle(random, faults()).map((fault) => ({
      gapMs: between(random, gap),
      fault,
    }))
    // Budget by the gaps and the fault lengths, leaving a few quiet seconds at the end for recovery.
    let budget = durationMs - 4_000
    for (const s of scheduled) budget -= s.gapMs + length(s.fault)
    for (;;) {
      const next = { gapMs: between(random, gap), fault: pick(random, faults()) }
      budget -= next.gapMs + length(next.fault)
      if (budget < 0) return scheduled
      scheduled.push(next)
    }
  }
  return {
    ...workload,
    nodes: options.nodes ?? 6,
    durationMs,
    gapMs: [10, 30],
    seed,
    lanes: [lane(processFaults, [500, 2_500]), lane(storeFaults, [1_000, 4_000])],
  }
}

function length(fault: Fault): number {
  if (fault.kind === 'kill') return fault.respawnAfterMs + 500
  if (fault.kind === 'pause' || fault.kind === 'outage' || fault.kind === 'corrupt-token') return fault.forMs
  return 0
}

function shuffle<T>(random: () => number, items: T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

/**
 * The storage kind (test/chaos/do-node.ts) under the short run's faults and schedule: StatelessDO nodes
 * whose requests are 70% read-modify-write increments through `this.storage`, 30% reads.
 */
export function shortStorageChaos(seed: number, options: { plantUnfencedFlush?: boolean } = {}): ChaosConfig {
  return { ...shortChaos(seed), ...storageWorkload, plantUnfencedFlush: options.plantUnfencedFlush ?? false }
}

/** `npm run chaos`'s storage run: the long run's random faults with storage nodes. */
export function longStorageChaos(seed: number, options: { nodes?: number; durationMs?: number } = {}): ChaosConfig {
  return { ...longChaos(seed, options), ...storageWorkload }
}

const storageWorkload = {
  nodeKind: 'storage' as const,
  readShare: 0.3,
  // Warm between a worker's requests (gaps of 5-30 ms), so caches live across turns and hand-overs.
  idleMs: 200,
}
