/**
 * The limit of a warm read, played deterministically (docs/design.md invariant 11): node-holder keeps
 * an object warm; the harness corrupts the lease row's `expires_at`, which the store counts as expired,
 * so the lease ends under its holder without the holder knowing; node-successor takes the object and
 * writes. Until its next heartbeat (10 s away: the lease is 30 s) the holder still answers reads from
 * its cache, stale, while its writes are fenced out; once it takes the object again it reads what the
 * successor wrote. The checker, told of the revocation, explains the stale read; without it, the
 * history is not linearizable.
 */
import type { ProcessGroup } from '../support/processes.js'
import { TRUE_CLOCK } from './clock.js'
import { checkStorage, type Revocation, type StorageVerdict } from './linearizability.js'
import type { DoAnswered } from './protocol.js'
import { StorageScript } from './storage-script.js'

export interface RevokedLeaseReport {
  /** The holder's answers in order: write, read, (revocation, successor's write), read, write, read. */
  holder: DoAnswered[]
  successor: DoAnswered
  /** The token `expires_at` was corrupted under. */
  revokedToken: number | undefined
  /** Final `n` in storage. */
  n: unknown
  /** Judged with the revocation. */
  verdict: StorageVerdict
  /** Judged as if the lease model always held. */
  strict: StorageVerdict
  crashed: string[]
}

export async function runRevokedLeaseScenario(
  entryFile: string,
  group: ProcessGroup,
  options: { dir: string },
): Promise<RevokedLeaseReport> {
  const doId = 'revoked'
  const script = await StorageScript.create(entryFile, group, {
    dir: options.dir,
    name: 'storage-revoked',
    ttlMs: 30_000,
    doId,
  })
  try {
    const holderNode = script.spawn('node-holder', TRUE_CLOCK, { waitMs: 5_000, idleMs: 60_000 })
    // The successor lets go as soon as it is idle, so the holder can take the object back.
    const successorNode = script.spawn('node-successor', TRUE_CLOCK, { waitMs: 5_000, idleMs: 100 })
    await script.go()
    const write = { write: true, thinkMs: 0 }
    const read = { write: false, thinkMs: 0 }
    const holder: DoAnswered[] = []
    holder.push(await script.request(holderNode, write))
    holder.push(await script.request(holderNode, read))
    const at = Date.now()
    const corrupted = await script.db.run((c) =>
      c.execute({
        sql: "UPDATE do_locks SET expires_at = 'garbage' WHERE do_id = ?1 RETURNING fencing_token",
        args: [doId],
      }),
    )
    const token = corrupted.rows[0]?.fencing_token
    const revokedToken = typeof token === 'number' ? token : undefined
    const successor = await script.request(successorNode, write)
    holder.push(await script.request(holderNode, read))
    holder.push(await script.request(holderNode, write))
    holder.push(await script.request(holderNode, read))
    const { operations, storage, crashed } = await script.finish()
    const revocations: Revocation[] = revokedToken === undefined ? [] : [{ doId, token: revokedToken, at }]
    return {
      holder,
      successor,
      revokedToken,
      n: storage[doId]?.get('n'),
      verdict: checkStorage(operations, storage, revocations),
      strict: checkStorage(operations, storage),
      crashed,
    }
  } finally {
    await script.dispose()
  }
}
