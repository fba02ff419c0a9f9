/**
 * The peer range of `@libsql/client` (package.json `peerDependencies`) is what is tested: its oldest
 * and newest release, installed side by side as npm aliases (`libsql-client-0.14`, `libsql-client-0.18`),
 * each running the lock-store and object-store contracts on `:memory:` and on a `file:` database.
 * Raising the range's top means adding the new minor's alias here first (and running the whole Node
 * suite with it as the main dev client: its SQLITE_BUSY recovery depends on how the client pools
 * local connections, see src/store/libsql.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import * as oldest from 'libsql-client-0.14'
import * as newest from 'libsql-client-0.18'
import { LibSQLLockStore, type LibSQLClientLike } from '../../src/index.js'
import { SqlObjectStore } from '../../src/store/sql-object-store.js'
import { countingClient } from '../support/counting-client.js'
import { describeObjectStoreContract } from '../storage/object-store-contract.js'
import { libsqlDriver } from '../storage/support/libsql-driver.js'
import { describeLockStoreContract } from './contract.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-libsql-versions-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let fileNo = 0
const freshFile = () => `file:${join(dir, `db-${fileNo++}.db`)}`

const installed = (alias: string): string =>
  JSON.parse(readFileSync(new URL(`../../node_modules/${alias}/package.json`, import.meta.url), 'utf8')).version

const versions = [
  { alias: 'libsql-client-0.14', minor: '0.14.', createClient: oldest.createClient },
  { alias: 'libsql-client-0.18', minor: '0.18.', createClient: newest.createClient },
]

const peerRange: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  .peerDependencies['@libsql/client']

describe('@libsql/client versions under test', () => {
  it('are the oldest and newest minor the peer range admits', () => {
    expect(peerRange).toBe('>=0.14.0 <0.19.0')
    expect(versions.map((v) => installed(v.alias).slice(0, v.minor.length))).toEqual(versions.map((v) => v.minor))
  })
})

for (const { alias, createClient } of versions) {
  const version = installed(alias)
  // Each version's own Client, seen through the structural type the library asks for.
  const open = async (url: string): Promise<LibSQLClientLike & { close(): void }> => {
    const client = createClient({ url })
    if (url.startsWith('file:')) {
      await client.execute('PRAGMA journal_mode=WAL')
      await client.execute('PRAGMA busy_timeout=5000')
    }
    return client
  }

  for (const url of [':memory:', 'file:']) {
    const where = url === ':memory:' ? ':memory:' : 'a file: database (WAL)'
    describeLockStoreContract(`LibSQLLockStore on @libsql/client ${version}, ${where}`, async () => {
      const raw = await open(url === 'file:' ? freshFile() : url)
      const counted = countingClient(raw)
      return { store: new LibSQLLockStore(counted.client), requests: counted.requests, close: () => raw.close() }
    })

    describeObjectStoreContract(`SqlObjectStore on @libsql/client ${version}, ${where}`, async () => {
      const raw = await open(url === 'file:' ? freshFile() : url)
      const counted = countingClient(raw)
      return {
        locks: new LibSQLLockStore(counted.client),
        objects: new SqlObjectStore(libsqlDriver(counted.client)),
        requests: counted.requests,
        close: () => raw.close(),
      }
    })
  }
}
