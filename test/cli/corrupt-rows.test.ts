/**
 * Lease rows someone else's SQL corrupted (broken JSON, text in an integer column): the library refuses
 * to read them, and the CLI is how an operator finds and frees them, so none of its commands may fail
 * on one or hide it.
 */
import { createClient } from '@libsql/client'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { LibSQLLockStore } from '../../src/index.js'
import { cliFixture, freshStore, holdWithStorage, json, runCli } from './cli-harness.js'

const fixture = cliFixture()

/** A fresh database, a CLI run against it, and `sql` to corrupt its rows the way an operator's tool could. */
async function database(name: string): Promise<{
  store: LibSQLLockStore
  run: (...args: string[]) => ReturnType<typeof runCli>
  sql: (statement: string, ...args: Array<string | number>) => Promise<Array<Record<string, unknown>>>
  close(): void
}> {
  const { store, file } = await freshStore(fixture.dir.path, name)
  const client = createClient({ url: pathToFileURL(file).href })
  return {
    store,
    run: (...args) => runCli(fixture.cli.file, ['--db', file, ...args]),
    sql: async (statement, ...args) => (await client.execute({ sql: statement, args })).rows as never,
    close: () => {
      client.close()
      store.close()
    },
  }
}

describe('stateless-do force-release, on a corrupt row', () => {
  it('frees a held lease whose metadata is not JSON, saying so and that whom it evicted is not known', async () => {
    const db = await database('force-corrupt.db')
    await holdWithStorage(db.store, 'room-1', 'node-a')
    await db.sql("UPDATE do_locks SET metadata = '{oops' WHERE do_id = 'room-1'")
    const r = await db.run('force-release', 'room-1')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      'released room-1: its row is corrupt (metadata is not valid JSON), so whom it evicted is not known\n',
    )
    expect(await db.sql("SELECT expires_at FROM do_locks WHERE do_id = 'room-1'")).toEqual([{ expires_at: 0 }])
    // The token stayed: the next acquire (which rewrites the row) gets token + 1.
    expect(await db.store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 60_000 })).toMatchObject({
      acquired: true,
      lock: { fencingToken: 2 },
    })
    db.close()
  })

  it('reports in --json which column is corrupt, and no holder', async () => {
    const db = await database('force-corrupt-json.db')
    await holdWithStorage(db.store, 'room-2', 'node-a')
    await db.sql("UPDATE do_locks SET acquired_at = 'yesterday' WHERE do_id = 'room-2'")
    expect(json(await db.run('force-release', 'room-2', '--json'))).toEqual({
      doId: 'room-2',
      released: true,
      before: null,
      corrupt: { column: 'acquired_at', problem: 'is not an integer (text)' },
    })
    db.close()
  })

  it('leaves a corrupt row nobody holds as it is, exit 0, and says what is wrong with it', async () => {
    const db = await database('force-corrupt-free.db')
    await db.store.release(await holdWithStorage(db.store, 'room-3', 'node-a'))
    await db.sql("UPDATE do_locks SET node_id = x'00' WHERE do_id = 'room-3'")
    const r = await db.run('force-release', 'room-3')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('room-3 was not held (its row is corrupt: node_id is not text). Nothing changed\n')
    db.close()
  })
})

describe('stateless-do show, on a corrupt row', () => {
  it('prints the lease as corrupt, what is wrong and that force-release frees it, and still lists the storage', async () => {
    const db = await database('show-corrupt.db')
    await holdWithStorage(db.store, 'room-1', 'node-a', { n: 1, m: 2 })
    await db.sql("UPDATE do_locks SET metadata = '{oops' WHERE do_id = 'room-1'")
    const r = await db.run('show', 'room-1')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[1]).toBe('lease    corrupt row: metadata is not valid JSON (force-release frees it if it is held)')
    expect(lines[2]).toMatch(/^storage  do_storage: 2 keys, /)
    expect(lines.slice(5).map((l) => l.split(/\s+/)[0])).toEqual(['m', 'n'])
    const doc = json(await db.run('show', 'room-1', '--json'))
    expect(doc).toMatchObject({
      lease: null,
      corrupt: { column: 'metadata', problem: 'is not valid JSON' },
      storage: { total: { keys: 2 } },
    })
    db.close()
  })
})

describe('stateless-do list, with corrupt rows', () => {
  /** room-1 intact and held; room-2 and room-3 held and corrupt; room-4 and room-5 corrupt and not held. */
  async function mixed(name: string) {
    const db = await database(name)
    for (const id of ['room-1', 'room-2', 'room-3', 'room-4', 'room-5']) await holdWithStorage(db.store, id, 'node-a')
    await db.store.release((await db.store.get('room-4'))!)
    await db.sql("UPDATE do_locks SET metadata = '{oops' WHERE do_id IN ('room-2', 'room-4')")
    await db.sql("UPDATE do_locks SET fencing_token = 'x' WHERE do_id = 'room-3'")
    // A corrupt expires_at counts as expired: the lease is free (acquire takes the row).
    await db.sql("UPDATE do_locks SET expires_at = 'later' WHERE do_id = 'room-5'")
    return db
  }

  it('names the held rows it cannot list after its count, and gives them to --json', async () => {
    const db = await mixed('list-corrupt.db')
    const r = await db.run('list')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[1]).toMatch(/^room-1\s+node-a\s/)
    expect(lines.slice(-2)).toEqual([
      '1 lease held',
      '2 held rows are corrupt and not listed: room-2, room-3 (show / force-release accept them)',
    ])
    const doc = json(await db.run('list', '--json'))
    expect(doc).toMatchObject({
      count: 1,
      truncated: false,
      corrupt: { doIds: ['room-2', 'room-3'], truncated: false },
    })
    const limited = await db.run('list', '--limit', '1')
    expect(limited.stdout.trim().split('\n').at(-1)).toBe(
      '1 held row is corrupt and not listed (the first 1; --limit shows more): room-2 (show / force-release accept it)',
    )
    db.close()
  })

  it('with --node, still names every corrupt row, and says why: its node cannot be trusted', async () => {
    const db = await mixed('list-corrupt-node.db')
    const r = await db.run('list', '--node', 'node-z')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe(
      'no intact leases held by node-z\n' +
        "2 held rows are corrupt and not listed, of any node (a corrupt row's node cannot be trusted): room-2, room-3" +
        ' (show / force-release accept them)\n',
    )
    expect(json(await db.run('list', '--node', 'node-z', '--json')).corrupt.doIds).toEqual(['room-2', 'room-3'])
    db.close()
  })
})
