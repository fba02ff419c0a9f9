/**
 * StatelessDO over a real libSQL database: what a handler's fenced write that the database refuses
 * is answered. The application's own SQL failing (a constraint, a missing table) is deterministic: a
 * 500, reported, never "retry later".
 */
import { createClient, type Client } from '@libsql/client'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  HybridConsistencyGuard,
  LibSQLLockStore,
  StatelessDO,
  fencedWrite,
  type ConsistencyGuard,
  type Lock,
  type StatelessDOPhase,
} from '../../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-do-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

interface Env {
  store: LibSQLLockStore
  guard: HybridConsistencyGuard
}

/** Inserts a room by name (`/create/<name>`) or writes to a table that does not exist (`/missing`). */
class Rooms extends StatelessDO<Env> {
  // These tests specify the lease-per-request mode; activations have their own (stateless-do-activations.test.ts).
  protected override activationOptions(): false {
    return false
  }
  errors: Array<[unknown, StatelessDOPhase]> = []
  protected createGuard(): ConsistencyGuard {
    return this.env.guard
  }
  protected override doIdFor(): string {
    return 'rooms'
  }
  protected override onError(error: unknown, phase: StatelessDOPhase): void {
    this.errors.push([error, phase])
  }
  protected async handleRequest(request: Request, lock: Lock): Promise<Response> {
    const [, action, name] = new URL(request.url).pathname.split('/')
    const sql =
      action === 'missing' ? 'INSERT INTO no_such_table (x) VALUES (?)' : 'INSERT INTO rooms (name) VALUES (?)'
    await fencedWrite(this.env.store, lock, [{ sql, args: [name ?? 'x'] }])
    return Response.json({ created: name })
  }
}

describe('StatelessDO on libSQL', () => {
  let client: Client
  let env: Env

  beforeEach(async () => {
    client = createClient({ url: `file:${join(dir, `do-${n++}.db`)}` })
    const store = new LibSQLLockStore(client)
    await store.ensureSchema()
    await client.execute('CREATE TABLE rooms (name TEXT PRIMARY KEY)')
    env = { store, guard: new HybridConsistencyGuard({ store, nodeId: 'node-a' }) }
  })
  afterEach(async () => {
    await env.guard.shutdown()
    client.close()
  })

  it("answers 500, reports it and sends no Retry-After when a fenced write breaks the application's own UNIQUE constraint", async () => {
    const room = new Rooms(undefined, env)
    expect((await room.fetch(new Request('https://do/create/lobby'))).status).toBe(200)
    const res = await room.fetch(new Request('https://do/create/lobby'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    const body = (await res.json()) as { error: string; doId: string }
    expect(body).toEqual({ error: 'statement_failed', doId: 'rooms' })
    expect(JSON.stringify(body)).not.toMatch(/UNIQUE|rooms\.name/) // the database's words stay in the logs
    expect(room.errors).toHaveLength(1)
    expect(room.errors[0]![1]).toBe('handler')
    expect(String(room.errors[0]![0])).toMatch(/SQLITE_CONSTRAINT/)
    expect((await env.store.get('rooms'))?.held).toBe(false) // released as usual
  })

  it('answers 500 when a fenced write names a table that does not exist (a retry would fail the same way)', async () => {
    const room = new Rooms(undefined, env)
    const res = await room.fetch(new Request('https://do/missing'))
    expect(res.status).toBe(500)
    expect(res.headers.get('Retry-After')).toBeNull()
    expect(await res.json()).toEqual({ error: 'statement_failed', doId: 'rooms' })
    expect(room.errors.map(([, phase]) => phase)).toEqual(['handler'])
    expect(String(room.errors[0]![0])).toMatch(
      /^StatementError: statement failed \(SQLITE_ERROR\): no such table: no_such_table$/,
    )
  })
})
