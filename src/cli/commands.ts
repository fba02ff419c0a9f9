/**
 * What each command does against an open database, and what it reports: one JSON document for
 * `--json`, a table or a sentence for people. Times are the database's clock (ms since the epoch), the
 * one clock that decides expiry. The human form shows database and command-line text only through
 * `printable` (no raw control characters reach the terminal); the JSON form gives it exactly.
 *
 * @module
 */
import { CorruptLockRowError } from '../errors.js'
import { MAX_LIST_LIMIT, type LockInfo } from '../store/lock-store.js'
import { prefixSuccessor } from '../store/object-sql.js'
import type { Command } from './args.js'
import { hasTable, type OpenDatabase } from './database.js'
import { formatBytes, formatDuration, formatExactDuration } from './duration.js'
import { printable } from './printable.js'
import { storageInspectionSql } from './storage-sql.js'
import { renderTable } from './table.js'
import { showValue, type ShownValue } from './values.js'

/** A command's result in both forms. */
export interface CommandOutput {
  /** The `--json` document. */
  readonly json: unknown
  /** The human form (a table or a sentence), without a trailing newline. */
  readonly text: string
}

/** Runs `command` against `db` (whose tables were checked) and reports what it found or did. */
export function runCommand(db: OpenDatabase, command: Command, objectTable: string): Promise<CommandOutput> {
  switch (command.name) {
    case 'list':
      return list(db, command)
    case 'show':
      return show(db, command, objectTable)
    case 'force-release':
      return forceRelease(db, command.doId)
    case 'prune':
      return prune(db, command)
  }
}

/** A lease row as `--json` gives it: the store's fields plus how long it has left. */
function leaseJson(info: LockInfo) {
  return {
    doId: info.doId,
    nodeId: info.nodeId,
    fencingToken: info.fencingToken,
    acquiredAt: info.acquiredAt,
    expiresAt: info.expiresAt,
    held: info.held,
    expiresInMs: info.held ? info.expiresAt - info.storeNow : 0,
    storeNow: info.storeNow,
    ...(info.metadata === undefined ? {} : { metadata: info.metadata }),
  }
}

const iso = (ms: number) => (Number.isFinite(ms) && Math.abs(ms) < 8.64e15 ? new Date(ms).toISOString() : String(ms))

/** Whether a listing left rows out: `maybe` at the store's largest limit, where it cannot tell. */
type Cut = 'no' | 'yes' | 'maybe'

/**
 * How many rows to ask for to show `limit`: one more, so that exactly `limit` rows is not taken for more
 * (none past the store's maximum: there, a full page may or may not be all).
 */
const fetchLimit = (limit: number) => Math.min(limit + 1, MAX_LIST_LIMIT)

/** The first `limit` of `rows` (fetched with {@link fetchLimit}), and whether rows were left out. */
function firstOf<T>(rows: readonly T[], limit: number): { shown: T[]; cut: Cut } {
  const shown = rows.slice(0, limit)
  if (rows.length > limit) return { shown, cut: 'yes' }
  return { shown, cut: limit === MAX_LIST_LIMIT && rows.length === limit ? 'maybe' : 'no' }
}

/** What a listing cut at `limit` says after its count. */
const cutNote = (cut: Cut, limit: number) =>
  cut === 'no' ? '' : ` (the first ${limit}; ${cut === 'yes' ? '--limit shows more' : 'there may be more'})`

async function list(db: OpenDatabase, command: Extract<Command, { name: 'list' }>): Promise<CommandOutput> {
  const rows = await db.store.list({
    ...(command.nodeId === undefined ? {} : { nodeId: command.nodeId }),
    limit: fetchLimit(command.limit),
  })
  const { shown: leases, cut } = firstOf(rows, command.limit)
  // `truncated` for scripts: the listing may not be complete (at the largest --limit, it cannot tell).
  const truncated = cut !== 'no'
  const corrupt = await listCorrupt(db, command.limit)
  const whose = command.nodeId === undefined ? '' : ` by ${printable(command.nodeId)}`
  let text: string
  if (leases.length === 0) {
    text = `no ${corrupt.doIds.length === 0 ? '' : 'intact '}leases held${whose}`
  } else {
    const table = renderTable(
      ['DO ID', 'NODE', 'TOKEN', 'ACQUIRED', 'EXPIRES IN'],
      leases.map((l) => [
        l.doId,
        l.nodeId,
        String(l.fencingToken),
        iso(l.acquiredAt),
        formatDuration(l.expiresAt - l.storeNow),
      ]),
    )
    const count = `${leases.length} lease${leases.length === 1 ? '' : 's'} held${whose}`
    text = `${table}\n\n${count}${cutNote(cut, command.limit)}`
  }
  const k = corrupt.doIds.length
  if (k > 0) {
    // Not filtered by --node: a corrupt row's node_id is not to be trusted, so any node's may be the one.
    const anyNode = command.nodeId === undefined ? '' : ", of any node (a corrupt row's node cannot be trusted)"
    text +=
      `\n${k} held row${k === 1 ? ' is' : 's are'} corrupt and not listed${anyNode}${cutNote(corrupt.cut, command.limit)}` +
      `: ${corrupt.doIds.map(printable).join(', ')} (show / force-release accept ${k === 1 ? 'it' : 'them'})`
  }
  const json = {
    leases: leases.map(leaseJson),
    count: leases.length,
    limit: command.limit,
    truncated,
    corrupt: { doIds: corrupt.doIds, truncated: corrupt.cut !== 'no' },
  }
  return { json, text }
}

/**
 * The ids of held rows the store cannot read, which its list skips: without them, "N leases held" would
 * be wrong and the operator could not find the rows to repair. Up to `limit`, any node's.
 */
async function listCorrupt(db: OpenDatabase, limit: number): Promise<{ doIds: string[]; cut: Cut }> {
  const result = await db.client.execute({ sql: db.store.sql.listCorrupt, args: [fetchLimit(limit)] })
  const ids = Array.from(result.rows as ArrayLike<{ do_id: unknown }>, (row) => String(row.do_id))
  const { shown, cut } = firstOf(ids, limit)
  return { doIds: shown, cut }
}

/** One storage key as `show` reports it. */
interface KeyRow {
  key: string
  bytes: number
  value?: ShownValue
}

async function show(
  db: OpenDatabase,
  command: Extract<Command, { name: 'show' }>,
  objectTable: string,
): Promise<CommandOutput> {
  const { doId, prefix, limit } = command
  const { info, corrupt } = await readLease(db, doId)
  let storage: { table: string; keys: KeyRow[]; total: { keys: number; bytes: number }; truncated: boolean } | null =
    null
  if (hasTable(db, objectTable)) {
    const sql = storageInspectionSql(objectTable, command.values)
    const end = prefix === '' ? null : (prefixSuccessor(prefix) ?? null)
    // One read transaction: the keys and their totals from the same snapshot.
    const [keys, totals] = await db.client.batch(
      [
        { sql: sql.keys, args: [doId, prefix, end, limit] },
        { sql: sql.totals, args: [doId, prefix, end] },
      ],
      'read',
    )
    const rows = Array.from(keys!.rows as ArrayLike<Record<string, unknown>>, (row): KeyRow => {
      const key = String(row.key)
      const entry: KeyRow = { key, bytes: Number(row.bytes) }
      if (command.values) entry.value = showValue(String(row.value), key)
      return entry
    })
    const t = (totals!.rows as ArrayLike<Record<string, unknown>>)[0]!
    const total = { keys: Number(t.keys), bytes: Number(t.bytes) }
    storage = { table: objectTable, keys: rows, total, truncated: rows.length < total.keys }
  }

  const lease =
    corrupt === null
      ? describeLease(info)
      : `corrupt row: ${printable(`${corrupt.column} ${corrupt.problem}`)} (force-release frees it if it is held)`
  // Every text from the database or the command line is made printable: see printable.ts.
  const lines = [`do_id    ${printable(doId)}`, `lease    ${lease}`]
  if (info?.metadata !== undefined) lines.push(`metadata ${printable(JSON.stringify(info.metadata))}`)
  if (storage === null) {
    lines.push(`storage  no table "${objectTable}" in ${printable(db.name)} (--object-table names another)`)
  } else {
    const scope = prefix === '' ? '' : ` starting with ${printable(JSON.stringify(prefix))}`
    const { keys, bytes } = storage.total
    lines.push(`storage  ${storage.table}: ${keys} key${keys === 1 ? '' : 's'}${scope}, ${formatBytes(bytes)} encoded`)
    if (storage.keys.length > 0) {
      const header = command.values ? ['KEY', 'SIZE', 'VALUE'] : ['KEY', 'SIZE']
      const cells = storage.keys.map((r) =>
        command.values ? [r.key, formatBytes(r.bytes), r.value!.display] : [r.key, formatBytes(r.bytes)],
      )
      lines.push('', renderTable(header, cells))
      if (storage.truncated) lines.push('', `(the first ${storage.keys.length} of ${keys}; --limit shows more)`)
    }
  }
  const json = {
    doId,
    lease: info === null ? null : leaseJson(info),
    corrupt,
    storage:
      storage === null
        ? null
        : {
            ...storage,
            keys: storage.keys.map((r) => ({ key: r.key, bytes: r.bytes, ...(r.value ? { value: r.value } : {}) })),
          },
  }
  return { json, text: lines.join('\n') }
}

/** A lease row the store refused to read: the column, and what is wrong with it (`is not valid JSON`). */
interface Corruption {
  readonly column: string
  readonly problem: string
}

/**
 * The row for `doId` with the store's verdict, or what makes it unreadable: `show` and `force-release`
 * are how an operator finds and frees a corrupt row, so they must not fail on one.
 */
async function readLease(
  db: OpenDatabase,
  doId: string,
): Promise<{ info: LockInfo | null; corrupt: Corruption | null }> {
  try {
    return { info: await db.store.get(doId), corrupt: null }
  } catch (error) {
    if (!(error instanceof CorruptLockRowError)) throw error
    // The message is `lock row "<id>" is corrupt: <column> <problem>`; the error carries only the column.
    const prefix = `lock row "${error.doId}" is corrupt: ${error.column} `
    const problem = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message
    return { info: null, corrupt: { column: error.column, problem } }
  }
}

function describeLease(info: LockInfo | null): string {
  if (info === null) return 'no lease row (never acquired, or pruned)'
  const by = `${printable(info.nodeId)}, token ${info.fencingToken}, acquired ${iso(info.acquiredAt)}`
  if (info.held) return `held by ${by}, expires in ${formatDuration(info.expiresAt - info.storeNow)}`
  const end = info.expiresAt === 0 ? 'released' : `expired ${formatDuration(info.storeNow - info.expiresAt)} ago`
  return `free (${end}; last held by ${by}); the next acquire gets token ${info.fencingToken + 1}`
}

async function forceRelease(db: OpenDatabase, doId: string): Promise<CommandOutput> {
  // Read first only to say whom it evicted: the release itself is one statement, whoever holds it then,
  // and it frees a corrupt row too (that is when an operator needs it most).
  const { info: before, corrupt } = await readLease(db, doId)
  const released = await db.store.forceRelease(doId)
  const id = printable(doId)
  let text: string
  if (corrupt !== null) {
    const what = printable(`${corrupt.column} ${corrupt.problem}`)
    text = released
      ? `released ${id}: its row is corrupt (${what}), so whom it evicted is not known`
      : `${id} was not held (its row is corrupt: ${what}). Nothing changed`
  } else if (released && before?.held) {
    text = `released ${id}: it was held by ${printable(before.nodeId)} with token ${before.fencingToken}; the next acquire gets token ${before.fencingToken + 1}`
  } else if (released) {
    text = `released ${id} (acquired again after it was read, so the evicted holder is not known)`
  } else if (before === null) {
    text = `no lease row for ${id} (never acquired, or pruned): nothing to release`
  } else {
    text = `${id} was not held: ${describeLease(before)}. Nothing changed`
  }
  const json = { doId, released, before: before === null ? null : leaseJson(before), corrupt }
  return { json, text }
}

async function prune(db: OpenDatabase, command: Extract<Command, { name: 'prune' }>): Promise<CommandOutput> {
  const { olderThanMs, limit, once } = command
  let removed = 0
  let transactions = 0
  for (;;) {
    const result = await db.store.prune({ olderThanMs, limit })
    removed += result.removed
    transactions += 1
    if (once || result.removed < limit) break
  }
  const more = once && removed === limit
  const age = formatExactDuration(olderThanMs)
  const text =
    `removed ${removed} row${removed === 1 ? '' : 's'} nobody held for more than ${age}` +
    ` (${transactions} transaction${transactions === 1 ? '' : 's'} of at most ${limit})` +
    (more ? '; more may be left: run it again, or without --once' : '')
  return { json: { removed, transactions, olderThanMs, limit, more }, text }
}
