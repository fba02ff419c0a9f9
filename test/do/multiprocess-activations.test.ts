/**
 * StatelessDO activations across real OS processes sharing one SQLite file: one hot object, 2 and 4
 * nodes, each keeping it warm for a short idleMs and letting go once idle. No update may be lost (every
 * acknowledged increment returned a distinct value, and the final counter is their number), and every
 * node is served once the holder lets go (docs/design.md invariants 9-12). What this does not show: a
 * fair hand-over. A holder whose own queue never empties keeps the object (nothing asks it to let go
 * yet), so the others are served when its run ends; the printed line shows the split.
 */
import { createClient } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { LibSQLLockStore, decodeValue } from '../../src/index.js'
import { buildEntry, configArg, ProcessGroup, type BuiltEntry } from '../support/processes.js'
import type { CounterNodeConfig, CounterNodeResult } from './fixtures/counter-node.js'

describe('StatelessDO activations across processes', () => {
  const group = new ProcessGroup()
  let node: BuiltEntry | undefined
  let dir: string
  let runs = 0

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stateless-do-activations-'))
    node = await buildEntry(new URL('./fixtures/counter-node.ts', import.meta.url))
  })
  afterEach(() => group.killAll())
  afterAll(() => {
    node?.dispose()
    rmSync(dir, { recursive: true, force: true })
  })

  for (const processes of [2, 4]) {
    it(`${processes} processes on one hot object: no lost update, and the object moves on once its holder goes idle`, async () => {
      const url = `file:${join(dir, `hot-${runs++}.db`)}`
      const setup = createClient({ url })
      await setup.execute('PRAGMA journal_mode=WAL')
      await new LibSQLLockStore(setup).ensureSchema()
      setup.close()
      const durationMs = 2_000
      const children = Array.from({ length: processes }, (_, i) => {
        const config: CounterNodeConfig = { url, name: `node-${i}`, durationMs, idleMs: 20, concurrency: 4 }
        return group.spawn(node!.file, { name: config.name, args: configArg(config), timeoutMs: durationMs + 30_000 })
      })
      await Promise.all(children.map((c) => c.waitFor('ready', 15_000)))
      group.broadcast({ type: 'go' })
      await group.waitForAll({ timeoutMs: durationMs + 25_000 })
      const results = await Promise.all(children.map((c) => c.waitFor<CounterNodeResult>('result', 0)))

      const check = createClient({ url })
      const row = (await check.execute("SELECT value FROM do_storage WHERE do_id = 'hot' AND key = 'n'")).rows[0]
      const leases = (await check.execute("SELECT fencing_token FROM do_locks WHERE do_id = 'hot'")).rows[0]
      check.close()
      const final = decodeValue(String(row?.value), 'n') as number
      const acknowledged = results.flatMap((r) => r.acknowledged)
      console.info(
        `${processes} processes, one object, ${durationMs} ms: ${acknowledged.length} acknowledged increments ` +
          `(${results.map((r) => r.acknowledged.length).join('/')}), ${results.reduce((n, r) => n + r.locked, 0)} x 503 locked, ` +
          `${String(leases?.fencing_token)} leases, longest wait ${Math.round(Math.max(...results.map((r) => r.longestWaitMs)))} ms`,
      )
      expect(results.flatMap((r) => r.unexpected)).toEqual([])
      // Every acknowledged increment is in the final state, and none was applied twice or lost.
      expect(final).toBe(acknowledged.length)
      expect(new Set(acknowledged).size).toBe(acknowledged.length)
      expect([...acknowledged].sort((a, b) => a - b)).toEqual(acknowledged.map((_, i) => i + 1))
      // The object changed hands: every process was served (at the latest when the busy holder's run
      // ended and its activation went idle), and no request waited past that.
      for (const r of results) expect(r.acknowledged.length, r.name).toBeGreaterThan(0)
      expect(Number(leases?.fencing_token)).toBeGreaterThan(processes - 1)
      for (const r of results) expect(r.longestWaitMs, r.name).toBeLessThan(10_000)
    }, 60_000)
  }
})
