// `npm test`: the Node project on the Node that runs this script (the machine's, Node 20 here), then the
// workerd project on the Node 22 that scripts/node22 installed from npm, since the pool (wrangler 4,
// miniflare 5) refuses Node < 22 and the library must keep passing on the Node its `engines` admit.
// Prints each project's Node version and time, and one closing "N passed, N failed" line for both.
//
//   node scripts/test.mjs [node|workers] [-- vitest arguments, e.g. a test file]
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nodeBinary, nodeVersion } from './node22/paths.mjs'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs')
const argv = process.argv.slice(2)
const only = argv[0] === 'node' || argv[0] === 'workers' ? argv.shift() : undefined
if (argv[0] === '--') argv.shift()

// A `node` bin in node_modules/.bin would put every npm script (and the Node suite) on that Node.
if (existsSync(join(root, 'node_modules', '.bin', 'node'))) {
  fail('node_modules/.bin/node exists: a dependency ships a `node` bin; npm scripts would run on it')
}
if (!existsSync(nodeBinary))
  fail(`no Node ${nodeVersion} at ${nodeBinary}: run npm install (scripts/node22 installs it)`)

// A project that has not finished by then is stopped and fails: a test that hangs workerd (seen once a
// Durable Object threw an uncaught exception under the workers pool) must not eat CI's whole budget.
const limitMs = Number(process.env.STATELESS_DO_TEST_PROJECT_LIMIT_MS ?? 20 * 60_000)

const projects = [
  { name: 'node', node: process.execPath },
  { name: 'workers', node: nodeBinary, expect: `v${nodeVersion}` },
].filter((p) => only === undefined || p.name === only)

mkdirSync(join(root, '.tmp'), { recursive: true })
const totals = { passed: 0, failed: 0, skipped: 0 }
let status = 0
for (const project of projects) {
  const version = run(project.node, ['-p', 'process.version'], 'pipe').stdout.trim()
  if (project.expect !== undefined && version !== project.expect)
    fail(`${project.node} is ${version}, not ${project.expect}`)
  if (project.name === 'node' && project.node === nodeBinary)
    fail('the Node project would run on the Node 22 of scripts/node22')
  console.log(`\n== ${project.name}: Node ${version} (${project.node})\n`)
  const report = join(root, '.tmp', `vitest-${project.name}.json`)
  rmSync(report, { force: true })
  const started = Date.now()
  const args = [vitest, 'run', '--project', project.name, '--reporter=default', '--reporter=json']
  args.push(`--outputFile.json=${report}`, ...(argv.length > 0 ? ['--passWithNoTests', ...argv] : []))
  const result = run(project.node, args, 'inherit', limitMs)
  if (result.error?.code === 'ETIMEDOUT') console.error(`== ${project.name}: stopped after ${limitMs / 1000} s`)
  const seconds = ((Date.now() - started) / 1000).toFixed(0)
  const counts = existsSync(report) ? JSON.parse(readFileSync(report, 'utf8')) : undefined
  if (counts !== undefined) {
    totals.passed += counts.numPassedTests
    totals.failed += counts.numFailedTests
    totals.skipped += counts.numPendingTests + (counts.numTodoTests ?? 0)
  }
  console.log(`== ${project.name}: Node ${version}, ${seconds} s, exit ${result.status ?? result.signal}`)
  if (result.status !== 0) status = 1
}
console.log(`\ntests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`)
process.exit(status)

function run(command, args, stdio, timeout = 60_000) {
  // The Node tests spawn `process.execPath`; PATH's `node` is the same Node for anything that asks PATH.
  const env = {
    ...process.env,
    PATH: `${dirname(command)}${process.platform === 'win32' ? ';' : ':'}${process.env.PATH}`,
  }
  const result = spawnSync(command, args, { cwd: root, stdio, env, encoding: 'utf8', timeout })
  if (result.error !== undefined && result.error.code !== 'ETIMEDOUT') fail(`${command}: ${result.error.message}`)
  return result
}

function fail(message) {
  console.error(`scripts/test.mjs: ${message}`)
  process.exit(1)
}
