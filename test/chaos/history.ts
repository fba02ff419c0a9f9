/**
 * What chaos nodes record, one JSON object per line in a file per process incarnation, and how the
 * harness reads it back into operations for the checker.
 *
 * A file, not stdout: a line is written with one `write(2)` before the operation is sent and another
 * after it returns, so a SIGKILL between the two leaves exactly the "invoked, never completed" record
 * the checker needs to treat the operation as indeterminate.
 *
 * Times are wall-clock ms from `Date.now()` on the REAL clock: every node runs on this machine, so they
 * share one clock, and only the library sees the skewed one (through its Clock seam).
 */
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'

/**
 * `write` and `read`: requests to a storage node's object (test/chaos/do-node.ts). `handoff`: a
 * release that passes the lease to the next caller of the node's guard in one store request
 * (`LockStore.handoff`), recorded at the store seam (test/chaos/recorded-handoffs.ts).
 */
export type OperationKind = 'acquire' | 'increment' | 'release' | 'handoff' | 'write' | 'read'

/**
 * - `ok`: the call returned normally (for an acquire this includes "held elsewhere");
 * - `failed`: it threw an error that guarantees nothing happened (stale token, lost lease, corrupt row);
 * - `unknown`: it may or may not have taken effect (killed mid-call, store unavailable).
 */
export type Outcome = 'ok' | 'failed' | 'unknown'

/** One operation, as the checker sees it. */
export interface Operation {
  /** Unique across the run: `<node>/<incarnation>/<sequence>`. */
  op: string
  node: string
  kind: OperationKind
  doId: string
  invokedAt: number
  /** Undefined when the process died before the call returned. */
  completedAt: number | undefined
  outcome: Outcome
  /**
   * acquire: the token granted (ok and acquired); increment, release, handoff: the lease's token; read
   * answered 200: the token of the lease it was served under.
   */
  token?: number
  /** handoff: the node the lease was to pass to. */
  toNode?: string
  /** handoff with outcome ok: the token the store granted the next holder; absent: it refused, nothing changed. */
  nextToken?: number
  /** acquire with outcome ok: false if someone else held the id. */
  acquired?: boolean
  /** release with outcome ok: whether the store freed the lease (false: it was already gone). */
  released?: boolean
  /** increment: the counter value read (outside the fenced batch) before writing `read + 1`. */
  read?: number
  /** increment: when the fenced write itself was sent (after the read and the think time). */
  writeAt?: number
  /** Error class (and message) of a failed or unknown call. */
  error?: string
  /** acquire: tries it took (more than 1: the id was held elsewhere, or the store busy). */
  attempts?: number
  /** write, read: the HTTP status of the answer. */
  status?: number
  /** write, read answered 200: the counter value it returned (a write: the value it produced). */
  value?: number
  /**
   * read: the node's clock ran slow enough, around the read, that its lease's local validity may have
   * outlasted the lease (ChaosClock.mayOverestimateValidity).
   */
  slowClock?: boolean
}

/** An increment's invoke line carries what the log row will carry, so the two can be matched. */
type InvokeLine =
  | { k: 'invoke'; op: string; node: string; kind: 'acquire'; doId: string; at: number }
  | {
      k: 'invoke'
      op: string
      node: string
      kind: 'increment'
      doId: string
      at: number
      token: number
      read: number
      writeAt: number
    }
  | { k: 'invoke'; op: string; node: string; kind: 'release'; doId: string; at: number; token: number }
  | { k: 'invoke'; op: string; node: string; kind: 'handoff'; doId: string; at: number; token: number; toNode: string }
  | { k: 'invoke'; op: string; node: string; kind: 'write' | 'read'; doId: string; at: number }

interface CompletionLine {
  k: Outcome
  op: string
  at: number
  token?: number
  acquired?: boolean
  released?: boolean
  nextToken?: number
  error?: string
  attempts?: number
  status?: number
  value?: number
  slowClock?: boolean
}

/** Things worth counting that are not operations: lost leases, heartbeat errors, clock changes. */
export interface NoteLine {
  k: 'note'
  node: string
  at: number
  what: string
  detail?: string
}

export type HistoryLine = InvokeLine | CompletionLine | NoteLine

export type InvokeFields =
  | { kind: 'acquire'; doId: string }
  | { kind: 'increment'; doId: string; at: number; token: number; read: number }
  | { kind: 'release'; doId: string; token: number }
  | { kind: 'handoff'; doId: string; token: number; toNode: string }
  | { kind: 'write' | 'read'; doId: string }

/** Child side: appends lines synchronously, so each one is in the file before the next step runs. */
export class HistoryWriter {
  readonly #fd: number
  readonly #prefix: string
  readonly #node: string
  #sequence = 0

  constructor(file: string, node: string, incarnation: number) {
    this.#fd = openSync(file, 'a')
    this.#node = node
    this.#prefix = `${node}/${incarnation}/`
  }

  /** Records the call about to be made; returns its operation id. */
  invoke(fields: InvokeFields): string {
    const op = `${this.#prefix}${++this.#sequence}`
    const now = Date.now()
    const line: InvokeLine =
      fields.kind === 'increment'
        ? { k: 'invoke', op, node: this.#node, ...fields, writeAt: now }
        : { k: 'invoke', op, node: this.#node, ...fields, at: now }
    this.#write(line)
    return op
  }

  complete(op: string, outcome: Outcome, fields: Omit<CompletionLine, 'k' | 'op' | 'at'> = {}): void {
    this.#write({ k: outcome, op, at: Date.now(), ...fields })
  }

  note(what: string, detail?: string): void {
    this.#write({ k: 'note', node: this.#node, at: Date.now(), what, ...(detail === undefined ? {} : { detail }) })
  }

  close(): void {
    closeSync(this.#fd)
  }

  #write(line: HistoryLine): void {
    writeSync(this.#fd, `${JSON.stringify(line)}\n`)
  }
}

export interface ParsedHistory {
  operations: Operation[]
  notes: NoteLine[]
  /** Lines that did not parse: only a killed process's last, half-written line is excusable. */
  torn: number
}

/** Parent side: reads every history file and joins invoke lines with their completions. */
export function readHistories(files: string[]): ParsedHistory {
  const operations = new Map<string, Operation>()
  const notes: NoteLine[] = []
  let torn = 0
  for (const file of files) {
    for (const text of readFileSync(file, 'utf8').split('\n')) {
      if (text === '') continue
      let line: HistoryLine
      try {
        line = JSON.parse(text) as HistoryLine
      } catch {
        torn++
        continue
      }
      if (line.k === 'note') {
        notes.push(line)
      } else if (line.k === 'invoke') {
        const { op, node, kind, doId, at } = line
        const operation: Operation = { op, node, kind, doId, invokedAt: at, completedAt: undefined, outcome: 'unknown' }
        if (line.kind === 'increment' || line.kind === 'release' || line.kind === 'handoff')
          operation.token = line.token
        if (line.kind === 'handoff') operation.toNode = line.toNode
        if (line.kind === 'increment') {
          operation.read = line.read
          operation.writeAt = line.writeAt
        }
        operations.set(op, operation)
      } else {
        const operation = operations.get(line.op)
        if (!operation) continue // a completion without its invoke cannot be written by HistoryWriter
        operation.completedAt = line.at
        operation.outcome = line.k
        if (line.token !== undefined) operation.token = line.token
        if (line.acquired !== undefined) operation.acquired = line.acquired
        if (line.released !== undefined) operation.released = line.released
        if (line.nextToken !== undefined) operation.nextToken = line.nextToken
        if (line.error !== undefined) operation.error = line.error
        if (line.attempts !== undefined) operation.attempts = line.attempts
        if (line.status !== undefined) operation.status = line.status
        if (line.value !== undefined) operation.value = line.value
        if (line.slowClock !== undefined) operation.slowClock = line.slowClock
      }
    }
  }
  return { operations: [...operations.values()], notes, torn }
}
