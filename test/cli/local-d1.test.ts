/**
 * The CLI against a real local D1 database as `wrangler dev` keeps it: Miniflare (workerd) persisting
 * D1 under `.wrangler/state/v3/d1`, the lock table written there by D1LockStore through the D1 binding,
 * read and repaired by the CLI given only that directory, and read back through D1.
 */
import { join } from 'node:path'
import { Miniflare } from 'miniflare'
import { describe, expect, it } from 'vitest'
import { D1LockStore, type D1DatabaseLike } from '../../src/index.js'
import { cliFixture, json, runCli } from './cli-harness.js'

const fixture = cliFixture()

/** Runs `use` with a D1LockStore over the project's local D1 database, as a Worker under wrangler dev sees it. */
async function withLocalD1<T>(use: (store: D1LockStore) => Promise<T>): Promise<T> {
  const mf = new Miniflare({
    modules: true,
    script: 'export default { fetch() { return new Response("") } }',
    d1Databases: { DB: 'stateless-do-cli-test' },
    d1Persist: join(fixture.dir.path, '.wrangler/state/v3/d1'),
  })
  try {
    return await use(new D1LockStore((await mf.getD1Database('DB')) as unknown as D1DatabaseLike))
  } finally {
    await mf.dispose()
  }
}

describe('stateless-do on a wrangler dev local D1 database', () => {
  it('lists and force-releases by the state directory, and D1 then hands out token + 1', async () => {
    const lock = await withLocalD1(async (store) => {
      await store.ensureSchema()
      const result = await store.acquire({ doId: 'counter', nodeId: 'worker-a', ttlMs: 600_000 })
      if (!result.acquired) throw new Error('counter was held')
      return result.lock
    })
    const opts = { cwd: fixture.dir.path }
    const listed = await runCli(fixture.cli.file, ['list', '--db', '.wrangler/state/v3/d1'], opts)
    expect(listed.stderr).toBe('')
    expect(listed.stdout).toMatch(/^counter\s+worker-a\s+1\s/m)

    const released = await runCli(fixture.cli.file, ['force-release', 'counter', '--db', '.wrangler/state/v3/d1'], opts)
    expect(released.code).toBe(0)
    expect(released.stdout.trim()).toBe(
      'released counter: it was held by worker-a with token 1; the next acquire gets token 2',
    )
    expect(json(await runCli(fixture.cli.file, ['list', '--json', '--db', '.wrangler/state/v3/d1'], opts)).count).toBe(
      0,
    )

    await withLocalD1(async (store) => {
      const next = await store.acquire({ doId: 'counter', nodeId: 'worker-b', ttlMs: 60_000 })
      expect(next).toMatchObject({ acquired: true, lock: { fencingToken: lock.fencingToken + 1 } })
      expect(await store.release(lock)).toBe(false)
    })
  })
})
