/**
 * Lease rows someone else's SQL corrupted (broken JSON, text in an integer column): the library refuses
 * to read them, and the CLI is how an operator finds and frees them, so none of its commands may fail
 * on one or hide it.
 */
import { createClient } from '@libsql/client'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LibSQLLockStore } from '../../src/index.js'
import type { BuiltEntry } from '../support/processes.js'
import { buildCli, freshStore, holdWithStorage, json, runCli, tempDir } from './cli-harness.js'

let cli: BuiltEntry
let dir: ReturnType<typeof tempDir>

beforeAll(async () => {
  cli = await buildCli()
  dir = tempDir()
})

afterAll(() => {
  dir?.dispose()
  cli?.dispose()
})

/** A fresh database, a CLI run against it, and `sql` to corrupt its rows the way an operator's tool could. */
async function database(name: string): Promise<{
  store: LibSQLLockStore
  run: (...args: string[]) => ReturnType<typeof runCli>
  sql: (statement: string, ...args: Array<string | number>) => Promise<Array<Record<string, unknown>>>
  close(): void
}> {
  const { store, file } = await freshStore(dir.path, name)
  const client = createClient({ url: pathToFileURL(file).href })
  return {
    store,
    run: (...args) => runCli(cli.file, ['--db', file, ...args]),
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
