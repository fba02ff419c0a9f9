/**
 * A LockStore wrapper for fault injection: records what each request carried when it was made, and
 * lets a test replace how a method answers (slowly, never, with an error) around the real store.
 */
import type {
  AcquireRequest,
  HandoffRequest,
  LockInfo,
  LockRecord,
  LockRef,
  LockStore,
  RefreshRequest,
  StoreAcquireResult,
} from '../../../src/index.js'

type Fault<Req, Res> = (request: Req, real: (request: Req) => Promise<Res>) => Promise<Res>

/** Faults by method; unset methods pass straight through. */
export interface Faults {
  acquire?: Fault<AcquireRequest, StoreAcquireResult>
  refresh?: Fault<RefreshRequest, LockRecord | null>
  release?: Fault<LockRef, boolean>
  get?: Fault<string, LockInfo | null>
  handoff?: Fault<HandoffRequest, LockRecord | null>
}

/** A wrapped store, what it received, and the faults it answers with. */
export interface RecordingStore {
  /** Pass this to the guard. Every method the faults do not cover goes to the inner store. */
  readonly store: LockStore
  /** Copies of the requests as they were made, by method. */
  readonly received: {
    acquire: AcquireRequest[]
    refresh: RefreshRequest[]
    release: LockRef[]
    handoff: HandoffRequest[]
  }
  /** How methods answer instead of the inner store; set and clear freely. */
  faults: Faults
}

/** Options of {@link recordingStore}. */
export interface RecordingOptions {
  /**
   * Whether the wrapped store offers `handoff` (when the inner one has it). `false`: a store without
   * it, as every store was before `LockStore.handoff` (a release and the next acquire, two commits).
   */
  handoff?: boolean
}

export function recordingStore(inner: LockStore, options: RecordingOptions = {}): RecordingStore {
  const recorder: RecordingStore = {
    store: undefined as unknown as LockStore,
    received: { acquire: [], refresh: [], release: [], handoff: [] },
    faults: {},
  }
  const hidden = new Set<PropertyKey>(options.handoff === false || !inner.handoff ? ['handoff'] : [])
  const intercepted = {
    acquire(request: AcquireRequest) {
      recorder.received.acquire.push({ ...request })
      const real = (r: AcquireRequest) => inner.acquire(r)
      return recorder.faults.acquire ? recorder.faults.acquire(request, real) : real(request)
    },
    refresh(request: RefreshRequest) {
      recorder.received.refresh.push({ ...request })
      const real = (r: RefreshRequest) => inner.refresh(r)
      return recorder.faults.refresh ? recorder.faults.refresh(request, real) : real(request)
    },
    release(request: LockRef) {
      recorder.received.release.push({ ...request })
      const real = (r: LockRef) => inner.release(r)
      return recorder.faults.release ? recorder.faults.release(request, real) : real(request)
    },
    get(doId: string) {
      const real = (id: string) => inner.get(id)
      return recorder.faults.get ? recorder.faults.get(doId, real) : real(doId)
    },
    handoff(request: HandoffRequest) {
      recorder.received.handoff.push({ ...request })
      const real = (r: HandoffRequest) => inner.handoff!(r)
      return recorder.faults.handoff ? recorder.faults.handoff(request, real) : real(request)
    },
  }
  // A Proxy, so that methods the LockStore interface gains later pass through without a change here.
  ;(recorder as { store: LockStore }).store = new Proxy(inner, {
    get(target, key) {
      if (hidden.has(key)) return undefined
      if (Object.hasOwn(intercepted, key)) return intercepted[key as keyof typeof intercepted]
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return recorder
}

/** A promise that never settles: a request whose answer never comes (workerd, cancelled I/O). */
export function never<T>(): Promise<T> {
  return new Promise<T>(() => {})
}

/** An object whose `key` answers `first` on the first read and `after` on every later one. */
export function shifty<T extends object>(base: T, key: string, first: unknown, after: unknown): T {
  let reads = 0
  return Object.defineProperty({ ...base }, key, {
    enumerable: true,
    get: () => (reads++ === 0 ? first : after),
  })
}
