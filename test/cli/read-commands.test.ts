/**
 * `stateless-do list` and `show`: what an operator sees of the lease table and an object's storage,
 * in table and `--json` form, and that looking never writes.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LibSQLLockStore } from '../../src/index.js'
import type { BuiltEntry } from '../support/processes.js'
import { buildCli, freshStore, holdWithStorage, json, runCli, tempDir } from './cli-harness.js'

let cli: BuiltEntry
let dir: ReturnType<typeof tempDir>
let store: LibSQLLockStore
let file: string
const run = (...args: string[]) => runCli(cli.file, ['--db', file, ...args])

beforeAll(async () => {
  cli = await buildCli()
  dir = tempDir()
  ;({ store, file } = await freshStore(dir.path, 'app.db'))
  await holdWithStorage(store, 'room-1', 'node-a', {
    n: 42,
    'user:ann': { name: 'Ann', tags: ['x'] },
    'user:bob': new Map([['since', new Date(0)]]),
    big: 'x'.repeat(5000),
  })
  await holdWithStorage(store, 'room-2', 'node-b', {}, 120_000, { region: 'eu', shard: 3 })
  await holdWithStorage(store, 'room-3', 'node-a')
  const released = await holdWithStorage(store, 'room-old', 'node-c', { left: true })
  await store.release(released)
})

afterAll(() => {
  store?.close()
  dir?.dispose()
  cli?.dispose()
})

describe('stateless-do list', () => {
  it('prints the current holders as a table, released leases left out', async () => {
    const r = await run('list')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^DO ID\s+NODE\s+TOKEN\s+ACQUIRED\s+EXPIRES IN$/)
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/).slice(0, 3))).toEqual([
      ['room-1', 'node-a', '1'],
      ['room-2', 'node-b', '1'],
      ['room-3', 'node-a', '1'],
    ])
    expect(lines[1]).toMatch(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s+1m \d\ds$/)
    expect(r.stdout).not.toContain('room-old')
    expect(lines.at(-1)).toBe('3 leases held')
  })

  it('gives scripts one JSON document with the store-clock times and the time left', async () => {
    const r = await run('list', '--json')
    expect(r.code).toBe(0)
    const doc = json(r)
    expect(doc).toMatchObject({ count: 3, limit: 1000, truncated: false })
    expect(doc.leases.map((l: { doId: string }) => l.doId)).toEqual(['room-1', 'room-2', 'room-3'])
    const [first] = doc.leases
    expect(first).toMatchObject({ doId: 'room-1', nodeId: 'node-a', fencingToken: 1, held: true })
    expect(first.expiresAt - first.storeNow).toBe(first.expiresInMs)
    expect(first.expiresInMs).toBeGreaterThan(60_000)
    expect(first.expiresInMs).toBeLessThanOrEqual(120_000)
    expect(first.acquiredAt).toBeLessThanOrEqual(first.storeNow)
  })

  it('filters by --node and stops at --limit, saying so only when rows were left out', async () => {
    const byNode = json(await run('list', '--node', 'node-a', '--json'))
    expect(byNode.leases.map((l: { doId: string }) => l.doId)).toEqual(['room-1', 'room-3'])
    const limited = await run('list', '--limit', '2')
    expect(limited.code).toBe(0)
    expect(limited.stdout).toContain('2 leases held (the first 2; --limit shows more)')
    expect(limited.stdout).not.toContain('room-3')
    expect(json(await run('list', '--limit', '2', '--json'))).toMatchObject({ count: 2, truncated: true })
    const exact = await run('list', '--limit', '3')
    expect(exact.stdout.trim().split('\n').at(-1)).toBe('3 leases held')
    expect(json(await run('list', '--limit', '3', '--json'))).toMatchObject({ count: 3, truncated: false })
    const none = await run('list', '--node', 'node-z')
    expect(none.stdout.trim()).toBe('no leases held by node-z')
  })
})

describe('stateless-do show', () => {
  it("prints a held object's lease and its keys with their encoded sizes, in key order", async () => {
    const r = await run('show', 'room-1')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toBe('do_id    room-1')
    expect(lines[1]).toMatch(/^lease {4}held by node-a, token 1, acquired \S+Z, expires in 1m \d\ds$/)
    expect(lines[2]).toMatch(/^storage  do_storage: 4 keys, 5\.\d KiB encoded$/)
    const rows = lines.slice(5).map((l) => l.split(/\s{2,}/))
    expect(rows.map((row) => row[0])).toEqual(['big', 'n', 'user:ann', 'user:bob'])
    expect(rows[1]).toEqual(['n', `${'[42]'.length} B`])
  })

  it('decodes values with --values as this.storage.get() returns them', async () => {
    const r = await run('show', 'room-1', '--values', '--prefix', 'user:')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('do_storage: 2 keys starting with "user:"')
    expect(r.stdout).toMatch(/user:ann\s+\d+ B\s+\{ name: 'Ann', tags: \[ 'x' \] \}/)
    expect(r.stdout).toMatch(/user:bob\s+\d+ B\s+Map\(1\) \{ 'since' => 1970-01-01T00:00:00\.000Z \}/)
    expect(r.stdout).not.toMatch(/^n\s/m)
  })

  it("shows the lease's metadata when it has some", async () => {
    const r = await run('show', 'room-2')
    expect(r.stdout).toContain('\nmetadata {"region":"eu","shard":3}\n')
    expect(json(await run('show', 'room-2', '--json')).lease.metadata).toEqual({ region: 'eu', shard: 3 })
    expect((await run('show', 'room-1')).stdout).not.toContain('metadata')
  })

  it('gives --json the lease, the keys with sizes, and each value as JSON only when JSON keeps it', async () => {
    const doc = json(await run('show', 'room-1', '--values', '--json'))
    expect(doc.doId).toBe('room-1')
    expect(doc.lease).toMatchObject({ nodeId: 'node-a', fencingToken: 1, held: true })
    expect(doc.storage).toMatchObject({ table: 'do_storage', total: { keys: 4 }, truncated: false })
    const byKey = Object.fromEntries(doc.storage.keys.map((k: { key: string }) => [k.key, k]))
    expect(byKey.n).toEqual({ key: 'n', bytes: 4, value: { display: '42', json: 42 } })
    expect(byKey['user:ann'].value.json).toEqual({ name: 'Ann', tags: ['x'] })
    expect(byKey['user:bob'].value).not.toHaveProperty('json')
    expect(byKey['user:bob'].value.display).toContain('Map(1)')
    expect(byKey.big.bytes).toBe(5002 + 2)
    expect(doc.storage.total.bytes).toBe(doc.storage.keys.reduce((s: number, k: { bytes: number }) => s + k.bytes, 0))
  })

  it('stops at --limit and says how many keys there are', async () => {
    const r = await run('show', 'room-1', '--limit', '2')
    expect(r.stdout).toContain('(the first 2 of 4; --limit shows more)')
    const doc = json(await run('show', 'room-1', '--limit', '2', '--json'))
    expect(doc.storage.keys.map((k: { key: string }) => k.key)).toEqual(['big', 'n'])
    expect(doc.storage).toMatchObject({ truncated: true, total: { keys: 4 } })
  })

  it('says a released lease is free and which token comes next, and an unknown id has no row', async () => {
    const r = await run('show', 'room-old')
    expect(r.stdout).toMatch(
      /lease {4}free \(released; last held by node-c, token 1, acquired \S+\); the next acquire gets token 2/,
    )
    expect(r.stdout).toContain('do_storage: 1 key, ')
    const doc = json(await run('show', 'room-old', '--json'))
    expect(doc.lease).toMatchObject({ held: false, expiresAt: 0, expiresInMs: 0, fencingToken: 1 })
    const unknown = await run('show', 'nobody')
    expect(unknown.code).toBe(0)
    expect(unknown.stdout).toContain('lease    no lease row (never acquired, or pruned)')
    expect(json(await run('show', 'nobody', '--json'))).toMatchObject({ lease: null, storage: { keys: [] } })
  })
})

describe('the database', () => {
  it('comes from STATELESS_DO_DB when --db is not given, and --db wins over it', async () => {
    const env = { STATELESS_DO_DB: `file:${file}` }
    const fromEnv = await runCli(cli.file, ['list', '--json'], { env })
    expect(json(fromEnv).count).toBe(3)
    const other = await freshStore(dir.path, 'other.db')
    other.store.close()
    const flagWins = await runCli(cli.file, ['list', '--json', '--db', other.file], { env })
    expect(json(flagWins).count).toBe(0)
  })

  it('opens a bare relative path, a file: URL and a path with a space or # in it', async () => {
    expect(json(await runCli(cli.file, ['list', '--json', '--db', 'app.db'], { cwd: dir.path })).count).toBe(3)
    expect(json(await runCli(cli.file, ['list', '--json', '--db', `file:${file}`])).count).toBe(3)
    const odd = await freshStore(dir.path, 'my #1 db.sqlite')
    await holdWithStorage(odd.store, 'a', 'node-a')
    odd.store.close()
    expect(json(await runCli(cli.file, ['list', '--json', '--db', odd.file])).count).toBe(1)
  })

  it('opens a wrangler dev local D1 database by its directory (its one *.sqlite file)', async () => {
    const d1 = join(dir.path, '.wrangler/state/v3/d1/miniflare-D1DatabaseObject')
    mkdirSync(d1, { recursive: true })
    const local = await freshStore(d1, 'f00d.sqlite')
    await holdWithStorage(local.store, 'counter', 'node-w')
    local.store.close()
    const r = await runCli(cli.file, ['list', '--db', '.wrangler/state/v3/d1'], { cwd: dir.path })
    expect(r.stderr).toBe('')
    expect(r.stdout).toMatch(/^counter\s+node-w\s+1\s/m)
  })

  it('is never written by list or show (the file stays byte for byte the same)', async () => {
    // Rollback-journal mode: every committed write lands in the file itself.
    const quiet = await freshStore(dir.path, 'quiet.db', { pragmas: ['journal_mode = DELETE'] })
    await holdWithStorage(quiet.store, 'room-1', 'node-a', { n: 1 })
    quiet.store.close()
    const hash = () => createHash('sha256').update(readFileSync(quiet.file)).digest('hex')
    const before = hash()
    for (const args of [['list'], ['show', 'room-1', '--values'], ['list', '--json'], ['show', 'x', '--json']]) {
      expect((await runCli(cli.file, [...args, '--db', quiet.file])).code).toBe(0)
    }
    expect(hash()).toBe(before)
  })

  it('without the lock table: says so, names the tables it has, exits 1 and creates nothing', async () => {
    const plain = join(dir.path, 'plain.db')
    const { createClient } = await import('@libsql/client')
    const client = createClient({ url: `file:${plain}` })
    await client.execute('CREATE TABLE rooms (id TEXT)')
    const r = await runCli(cli.file, ['list', '--db', plain])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(
      `stateless-do: no table "do_locks" in ${plain} (its tables: rooms). Not a stateless-do database, or its lock table has another name (--table).\n`,
    )
    expect(r.stdout).toBe('')
    const tables = await client.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    expect(tables.rows.map((row) => row.name)).toEqual(['rooms'])
    client.close()
    const wrongTable = await run('show', 'room-1', '--table', 'tenant_locks')
    expect(wrongTable.code).toBe(1)
    expect(wrongTable.stderr).toContain('no table "tenant_locks" in ')
  })

  it('reads a lock table named by --table and the storage table beside it', async () => {
    const tenant = await freshStore(dir.path, 'tenant.db', { table: 'tenant_locks' })
    await holdWithStorage(tenant.store, 'room-9', 'node-t', { k: 'v' })
    tenant.store.close()
    const doc = json(
      await runCli(cli.file, ['show', 'room-9', '--json', '--db', tenant.file, '--table', 'tenant_locks']),
    )
    expect(doc.lease).toMatchObject({ nodeId: 'node-t', held: true })
    expect(doc.storage).toMatchObject({ table: 'tenant_locks_storage', total: { keys: 1 } })
    const missingStorage = await runCli(cli.file, [
      'show',
      'room-9',
      ...['--db', tenant.file, '--table', 'tenant_locks', '--object-table', 'nope'],
    ])
    expect(missingStorage.code).toBe(0)
    expect(missingStorage.stdout).toContain('storage  no table "nope" in ')
  })

  it('matches table names as SQLite does, whatever their ASCII case', async () => {
    const r = await run('list', '--table', 'DO_LOCKS', '--json')
    expect(r.stderr).toBe('')
    expect(json(r).count).toBe(3)
    const doc = json(await run('show', 'room-1', '--object-table', 'DO_STORAGE', '--json'))
    expect(doc.storage).toMatchObject({ table: 'DO_STORAGE', total: { keys: 4 } })
  })

  it('reports a file that is not a database as a database error, exit 1, the stack only with --verbose', async () => {
    const junk = join(dir.path, 'junk.db')
    writeFileSync(junk, 'this is not an SQLite database, just text long enough to have a header........')
    const r = await runCli(cli.file, ['list', '--db', junk])
    expect(r.code).toBe(1)
    expect(r.stdout).toBe('')
    expect(r.stderr).toMatch(
      new RegExp(`^stateless-do: database error \\(${junk.replace(/[.]/g, '\\.')}\\): .*not a database`),
    )
    expect(r.stderr).toContain('(--verbose shows the stack)')
    expect(r.stderr).not.toMatch(/^\s+at /m)
    const verbose = await runCli(cli.file, ['list', '--db', junk, '--verbose'])
    expect(verbose.code).toBe(1)
    expect(verbose.stderr).toMatch(/^\s+at /m)
  })

  it('reports an unreachable remote database as a database error, exit 1', async () => {
    // A port nobody listens on: bound, then closed.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    await new Promise((resolve) => server.close(resolve))
    const r = await runCli(cli.file, ['list', '--db', `http://127.0.0.1:${port}`])
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(
      new RegExp(`^stateless-do: database error \\(http://127\\.0\\.0\\.1:${port}\\): fetch failed \\(.*ECONNREFUSED`),
    )
    expect(r.stderr).not.toMatch(/^\s+at /m)
  })
})
