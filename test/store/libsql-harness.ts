/** Harnesses for the shared suites over a libSQL client (Node only: fence-contract.ts also runs in workerd). */
import type { Client } from '@libsql/client'
import type { LibSQLLockStore } from '../../src/index.js'
import { STORE_NOW } from '../../src/store/sql.js'
import type { FenceHarness } from './fence-contract.js'

/** A fence harness: `raw` runs on `client` directly, bypassing any wrapper `store` was given. */
export function fenceHarness(client: Client, store: LibSQLLockStore): FenceHarness {
  return {
    store,
    raw: async (sql) => (await client.execute(sql)).rows.map((r) => ({ ...r })),
    until: async (ms) => {
      while (Number((await client.execute(`SELECT ${STORE_NOW} AS now`)).rows[0]!.now) <= ms) {
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    close: () => client.close(),
  }
}
