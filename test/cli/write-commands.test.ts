/**
 * `stateless-do force-release` and `prune` (alias `vacuum`): they change exactly what they say, and the
 * fencing rules hold across them (the next acquire after a force-release gets token + 1; an id pruned
 * and taken again gets a token above every earlier one).
 */
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { LibSQLLockStore } from '../../src/index.js'
import { STORE_NOW } from '../../src/store/sql.js'
import { cliFixture, freshStore, holdWithStorage, json, runCli } from './cli-harness.js'

const fixture = cliFixture()

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function database(
  name: string,
): Promise<{ store: LibSQLLockStore; file: string; run: (...args: string[]) => ReturnType<typeof runCli> }> {
  const { store, file } = await freshStore(fixture.dir.path, name)
  return { store, file, run: (...args) => runCli(fixture.cli.file, ['--db', file, ...args]) }
}

describe('stateless-do force-release', () => {
  it('frees a held lease, says whose it was, and the next acquire gets token + 1', async () => {
    const { store, run } = await database('force.db')
    await holdWithStorage(store, 'room-1', 'node-a')
    await store.release((await store.get('room-1'))!)
    const lock = await holdWithStorage(store, 'room-1', 'node-a') // token 2
    const r = await run('force-release', 'room-1')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('released room-1: it was held by node-a with token 2; the next acquire gets token 3')
    expect(await store.get('room-1')).toMatchObject({ held: false, fencingToken: 2 })
    const next = await store.acquire({ doId: 'room-1', nodeId: 'node-b', ttlMs: 60_000 })
    expect(next).toMatchObject({ acquired: true, lock: { fencingToken: lock.fencingToken + 1, nodeId: 'node-b' } })
    // The evicted holder is refused like any stale holder.
    expect(await store.release(lock)).toBe(false)
    expect(await store.refresh({ ...lock, ttlMs: 60_000 })).toBeNull()
    store.close()
  })

  it('reports in --json what it freed', async () => {
    const { store, run } = await database('force-json.db')
    await holdWithStorage(store, 'room-2', 'node-a')
    const doc = json(await run('force-release', 'room-2', '--json'))
    expect(doc).toMatchObject({
      doId: 'room-2',
      released: true,
      before: { nodeId: 'node-a', fencingToken: 1, held: true },
    })
    expect((await store.get('room-2'))?.held).toBe(false)
    store.close()
  })

  it('leaves a free lease and an unknown id alone, exit 0, and says so', async () => {
    const { store, run } = await database('force-free.db')
    const lock = await holdWithStorage(store, 'room-3', 'node-a')
    await store.release(lock)
    const free = await run('force-release', 'room-3')
    expect(free.code).toBe(0)
    expect(free.stdout).toMatch(
      /^room-3 was not held: free \(released; last held by node-a, token 1, acquired \S+\); the next acquire gets token 2\. Nothing changed\n$/,
    )
    expect(json(await run('force-release', 'room-3', '--json'))).toMatchObject({
      released: false,
      before: { held: false },
    })
    const unknown = await run('force-release', 'nobody')
    expect(unknown.code).toBe(0)
    expect(unknown.stdout.trim()).toBe('no lease row for nobody (never acquired, or pruned): nothing to release')
    expect(json(await run('force-release', 'nobody', '--json'))).toEqual({
      doId: 'nobody',
      released: false,
      before: null,
      corrupt: null,
    })
    expect(await store.get('room-3')).toMatchObject({ held: false, fencingToken: 1 })
    store.close()
  })
})

describe('stateless-do list at the largest --limit', () => {
  it('says only that there may be more when it shows as many rows as --limit allows', async () => {
    const { store, run, file } = await database('list-max.db')
    store.close()
    const { createClient } = await import('@libsql/client')
    const client = createClient({ url: pathToFileURL(file).href })
    // 100000 held rows, as acquire writes them, in one statement.
    await client.execute(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
      INSERT INTO do_locks (do_id, node_id, acquired_at, expires_at, fencing_token)
      SELECT printf('id-%06d', i), 'node-a', ${STORE_NOW}, ${STORE_NOW} + 3600000, 1 FROM n`)
    client.close()
    const r = await run('list', '--limit', '100000')
    expect(r.code).toBe(0)
    expect(r.stdout.trim().split('\n').at(-1)).toBe('100000 leases held (the first 100000; there may be more)')
    const last = await run('list', '--limit', '99999')
    expect(last.stdout.trim().split('\n').at(-1)).toBe('99999 leases held (the first 99999; --limit shows more)')
  })
})

describe('stateless-do prune', () => {
  it('removes only rows free for longer than --older-than; held and recently freed rows stay', async () => {
    const { store, run } = await database('prune.db')
    for (const id of ['old-1', 'old-2', 'old-3']) await store.release(await holdWithStorage(store, id, 'node-a'))
    // Generous margins on a loaded machine: the old rows are >= 4 s free, the new ones < 4 s at most
    // by the CLI's start-up, against a bound of 3 s.
    await sleep(4000)
    await store.release(await holdWithStorage(store, 'new-1', 'node-a'))
    const held = await holdWithStorage(store, 'held-1', 'node-b', { k: 1 })
    const r = await run('prune', '--older-than', '3s')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout.trim()).toBe('removed 3 rows nobody held for more than 3s (1 transaction of at most 1000)')
    for (const id of ['old-1', 'old-2', 'old-3']) expect(await store.get(id)).toBeNull()
    expect(await store.get('new-1')).toMatchObject({ held: false, fencingToken: 1 })
    expect(await store.get('held-1')).toMatchObject({ held: true, fencingToken: held.fencingToken })
    // A pruned id taken again gets a token above every token issued before (the high-water mark).
    const again = await store.acquire({ doId: 'old-1', nodeId: 'node-c', ttlMs: 60_000 })
    expect(again).toMatchObject({ acquired: true, lock: { fencingToken: 2 } })
    // Storage rows are not prune's business.
    const doc = json(await run('show', 'held-1', '--json'))
    expect(doc.storage.total.keys).toBe(1)
    store.close()
  })

  it('repeats while a transaction removed --limit rows, or stops after one with --once (vacuum is prune)', async () => {
    const { store, run } = await database('prune-limit.db')
    for (let i = 0; i < 5; i++) await store.release(await holdWithStorage(store, `id-${i}`, 'node-a'))
    const once = await run('vacuum', '--older-than', '0', '--limit', '2', '--once')
    expect(once.code).toBe(0)
    expect(once.stdout.trim()).toBe(
      'removed 2 rows nobody held for more than 0ms (1 transaction of at most 2); more may be left: run it again, or without --once',
    )
    const all = json(await run('prune', '--older-than', '0', '--limit', '2', '--json'))
    expect(all).toEqual({ removed: 3, transactions: 2, olderThanMs: 0, limit: 2, more: false })
    expect(json(await run('list', '--json')).count).toBe(0)
    for (let i = 0; i < 5; i++) expect(await store.get(`id-${i}`)).toBeNull()
    const none = json(await run('prune', '--older-than', '1d', '--json'))
    expect(none).toEqual({ removed: 0, transactions: 1, olderThanMs: 86_400_000, limit: 1000, more: false })
    store.close()
  })

  it('finds its tables whatever the ASCII case of --table, as SQLite does', async () => {
    const { store, run } = await database('prune-case.db')
    await store.release(await holdWithStorage(store, 'old-1', 'node-a'))
    const r = await run('prune', '--older-than', '0', '--table', 'Do_Locks', '--json')
    expect(r.stderr).toBe('')
    expect(json(r)).toMatchObject({ removed: 1 })
    store.close()
  })

  it('refuses a schema from before the high-water mark, naming the table and the upgrade', async () => {
    const { store, run } = await database('prune-old-schema.db')
    store.close()
    const { createClient } = await import('@libsql/client')
    const client = createClient({ url: `file:${fixture.dir.path}/prune-old-schema.db` })
    await client.execute('DROP TABLE do_locks_high_water')
    client.close()
    const r = await run('prune', '--older-than', '1d')
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      /^stateless-do: no table "do_locks_high_water" in .*\. The schema predates this version: run ensureSchema\(\) from the application to upgrade it\.\n$/,
    )
  })
})
