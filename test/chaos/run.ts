/**
 * `npm run chaos`: the long chaos run (6 node processes, ~60 s, every fault kind, seeded at random).
 * Prints ONE summary line (violations, if any, are listed on stderr before it) and exits 1 on any
 * violation, keeping the database and histories for a post-mortem.
 *
 *   npm run chaos -- --seed 42 --nodes 6 --seconds 60 --verbose --keep
 *   npm run chaos -- --plant-bug     # the fence check replaced by a no-op: must exit 1
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildEntry, ProcessGroup } from '../support/processes.js'
import { longChaos } from './configs.js'
import { runChaos } from './harness.js'

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    nodes: { type: 'string' },
    seconds: { type: 'string' },
    'plant-bug': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
})
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
const config = longChaos(seed, {
  ...(values.nodes === undefined ? {} : { nodes: Number(values.nodes) }),
  ...(values.seconds === undefined ? {} : { durationMs: Number(values.seconds) * 1000 }),
})
config.plantBug = values['plant-bug']

const group = new ProcessGroup()
// Ctrl-C must not leave frozen or running nodes behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void group.killAll().finally(() => process.exit(130)))
}

const dir = mkdtempSync(join(tmpdir(), 'stateless-do-chaos-'))
const entry = await buildEntry(new URL('./node.ts', import.meta.url))
let exitCode = 1
try {
  const started = Date.now()
  const log = values.verbose
    ? (line: string) => console.error(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`)
    : undefined
  const report = await runChaos(entry.file, group, config, { dir, ...(log ? { log } : {}) })
  if (report.violations.length) {
    console.error(['faults:', ...report.timeline, 'violations:', ...report.violations].join('\n'))
  }
  console.log(report.summary)
  exitCode = report.violations.length ? 1 : 0
} catch (error) {
  console.error(error)
} finally {
  await group.killAll()
  entry.dispose()
  if (exitCode === 0 && !values.keep) rmSync(dir, { recursive: true, force: true })
  else console.error(`database and histories kept in ${dir}`)
}
process.exit(exitCode)
