/**
 * Table names that mean something inside SQL: every statement the library generates, run through the
 * whole lock contract and the fenced-write contract with such a name.
 */
import { createClient } from '@libsql/client'
import { describe, expect, it } from 'vitest'
import { InvalidArgumentError, LibSQLLockStore } from '../../src/index.js'
import { countingClient } from '../support/counting-client.js'
import { describeLockStoreContract } from './contract.js'
import { describeFenceContract } from './fence-contract.js'
import { fenceHarness } from './libsql-harness.js'

/** Pseudo-tables of triggers and upserts, schema names, keywords, the implicit rowid column. */
const HOSTILE = ['new', 'old', 'excluded', 'main', 'temp', 'select', 'rowid']

for (const table of HOSTILE) {
  describeLockStoreContract(`LibSQLLockStore on :memory:, table "${table}"`, async () => {
    const counted = countingClient(createClient({ url: ':memory:' }))
    return {
      store: new LibSQLLockStore(counted.client, { table }),
      requests: counted.requests,
      close: () => counted.client.close(),
    }
  })
  describeFenceContract(`LibSQLLockStore on :memory:, table "${table}"`, async () => {
    const client = createClient({ url: ':memory:' })
    return fenceHarness(client, new LibSQLLockStore(client, { table }))
  })
}

describeLockStoreContract('LibSQLLockStore with group commit on :memory:, table "excluded"', async () => {
  const counted = countingClient(createClient({ url: ':memory:' }))
  return {
    store: new LibSQLLockStore(counted.client, { table: 'excluded', groupCommit: true }),
    requests: counted.requests,
    close: () => counted.client.close(),
  }
})

describe('table names', () => {
  it('refuses, naming table, a name whose index and fence view SQLite would reserve (sqlite, sqlite_*), before any I/O', () => {
    const client = createClient({ url: ':memory:' })
    try {
      for (const table of ['sqlite', 'SQLite', 'sqlite_locks', 'SQLITE_MASTER']) {
        const error = (() => {
          try {
            new LibSQLLockStore(client, { table })
          } catch (e) {
            return e
          }
        })()
        expect(error).toBeInstanceOf(InvalidArgumentError)
        expect(error).toMatchObject({ argument: 'table', message: expect.stringContaining('sqlite_') })
      }
      expect(new LibSQLLockStore(client, { table: 'sqlite3' }).sql.table).toBe('sqlite3')
    } finally {
      client.close()
    }
  })
})
