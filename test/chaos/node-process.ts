/**
 * What both chaos node processes (node.ts: lock and counter; do-node.ts: StatelessDO storage) do alike:
 * open their connection, follow the clock settings the parent sends, describe errors for the history,
 * and exit non-zero on anything unhandled.
 */
import { createClient, type Client } from '@libsql/client'
import type { ChildChannel } from '../support/processes.js'
import type { ChaosClock } from './clock.js'
import type { HistoryWriter } from './history.js'
import type { ClockMessage } from './protocol.js'

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** An error as one history line: its class and message, cut at 240 characters. */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  return text.length > 240 ? `${text.slice(0, 240)}...` : text
}

/** The node's own connection to the chaos database. */
export async function open(url: string, busyTimeoutMs: number): Promise<Client> {
  // One connection, so the PRAGMAs below hold for every statement (@libsql/client 0.18 pools 20 by default).
  const client = createClient({ url, concurrency: 1 })
  await client.execute(`PRAGMA busy_timeout = ${busyTimeoutMs}`)
  // Commits skip the fsync (WAL's usual companion): the run is about faults, not the disk.
  await client.execute('PRAGMA synchronous = NORMAL')
  return client
}

/** Applies every clock setting the parent sends (skew, rate), noting each in the history; runs for good. */
export function followClock(channel: ChildChannel, clock: ChaosClock, history: HistoryWriter): void {
  void (async () => {
    for (;;) {
      const setting = await channel.receive<ClockMessage>('clock')
      clock.set(setting)
      history.note('clock', `offset ${setting.nowOffsetMs} ms, rate ${setting.rate}`)
    }
  })()
}

/** Runs the node's `main`; an unhandled rejection or a throw ends the process with exit code 1. */
export function runNodeProcess(main: () => Promise<void>): void {
  const report = (prefix: string, error: unknown) =>
    process.stderr.write(`${prefix}${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
  process.on('unhandledRejection', (error) => {
    report('unhandled rejection: ', error)
    process.exit(1)
  })
  main().catch((error: unknown) => {
    report('', error)
    process.exit(1)
  })
}
