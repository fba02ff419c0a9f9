// Installs the Node.js build for this platform from the npm registry (the packages `node@22` itself
// uses: node-<platform>-<arch>) into ./node_modules/.runtime/. Not a dependency of this package on purpose: npm
// would hoist it and link its `node` bin into the repository's node_modules/.bin, which npm scripts
// and npx put first on PATH, so the Node suite (and every script) would silently run on Node 22.
// scripts/test.mjs runs only the workerd project with this binary.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nodeBinary, nodeVersion } from './paths.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const pkg = `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}@${nodeVersion}`

if (existsSync(nodeBinary) && execFileSync(nodeBinary, ['-v'], { encoding: 'utf8' }).trim() === `v${nodeVersion}`) {
  process.exit(0)
}
// npm_execpath is the npm that is running this install; fall back to the npm on PATH.
const npm = process.env.npm_execpath
const args = [
  'install',
  '--no-save',
  '--no-package-lock',
  '--no-audit',
  '--no-fund',
  '--prefix',
  join(here, 'node_modules', '.runtime'),
  pkg,
]
if (npm !== undefined && npm.endsWith('.js')) execFileSync(process.execPath, [npm, ...args], { stdio: 'inherit' })
else
  execFileSync(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, {
    stdio: 'inherit',
    shell: process.platform === 'win32',
  })
