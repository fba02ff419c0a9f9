/**
 * `npm run chaos`: the long chaos runs, one per node kind, one after the other (6 node processes, ~60 s
 * each, every fault kind, seeded at random): the counter nodes (test/chaos/node.ts) and the StatelessDO
 * storage nodes (test/chaos/do-node.ts). Prints ONE summary line per run (violations, if any, are listed
 * on stderr before it) and exits 1 on any violation, keeping the database and histories for a post-mortem.
 *
 *   npm run chaos -- --seed 42 --nodes 6 --seconds 60 --verbose --keep
 *   npm run chaos -- --kind storage  # one kind only (counter | storage)
 *   npm run chaos -- --plant-bug     # counter: the fence check replaced by a no-op; storage: flushes
 *                                    # sent without the fence. Must exit 1.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { buildEntry, ProcessGroup } from '../support/processes.js'
import { longChaos, longStorageChaos } from './configs.js'
import { runChaos, type ChaosConfig } from './harness.js'

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    nodes: { type: 'string' },
    seconds: { type: 'string' },
    'plant-bug': { type: 'boolean', default: false },
    kind: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
})
const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
if (values.kind !== undefined && values.kind !== 'counter' && values.kind !== 'storage') {
  console.error(`--kind: expected counter or storage, got ${JSON.stringify(values.kind)}`)
  process.exit(2)
}
const sizes = {
  ...(values.nodes === undefined ? {} : { nodes: Number(values.nodes) }),
  ...(values.seconds === undefined ? {} : { durationMs: Number(values.seconds) * 1000 }),
}
const runs: Array<{ kind: string; entry: URL; config: ChaosConfig }> = []
if (values.kind !== 'storage') {
  const config = longChaos(seed, sizes)
  config.plantBug = values['plant-bug']
  runs.push({ kind: 'counter', entry: new URL('./node.ts', import.meta.url), config })
}
if (values.kind !== 'counter') {
  const config = longStorageChaos(seed, sizes)
  config.plantUnfencedFlush = values['plant-bug']
  runs.push({ kind: 'storage', entry: new URL('./do-node.ts', import.meta.url), config })
}

const group = new ProcessGroup()
// Ctrl-C must not leave frozen or running nodes behind.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void group.killAll().finally(() => process.exit(130)))
}

let exitCode = 0
for (const run of runs) {
  const dir = mkdtempSync(join(tmpdir(), `stateless-do-chaos-${run.kind}-`))
  const entry = await buildEntry(run.entry)
  let failed = true
  try {
    const started = Date.now()
    const log = values.verbose
      ? (line: string) => console.error(`[${run.kind} ${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`)
      : undefined
    const report = await runChaos(entry.file, group, run.config, { dir, ...(log ? { log } : {}) })
    if (report.violations.length) {
      console.error(['faults:', ...report.timeline, 'violations:', ...report.violations].join('\n'))
    }
    for (const line of report.storage?.verdict.explained ?? []) console.error(`explained: ${line}`)
    console.log(report.summary)
    failed = report.violations.length > 0
  } catch (error) {
    console.error(error)
  } finally {
    await group.killAll()
    entry.dispose()
    if (!failed && !values.keep) rmSync(dir, { recursive: true, force: true })
    else console.error(`${run.kind}: database and histories kept in ${dir}`)
  }
  if (failed) exitCode = 1
}
process.exit(exitCode)
