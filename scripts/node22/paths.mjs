// Where install.mjs puts the Node 22 binary; read by scripts/test.mjs.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The Node.js version the workerd suite runs on (wrangler 4 and @cloudflare/vitest-plugin need >= 22). */
export const nodeVersion = '22.23.3'

const here = dirname(fileURLToPath(import.meta.url))
const pkgDir = join(
  here,
  'node_modules',
  '.runtime',
  'node_modules',
  `node-${process.platform === 'win32' ? 'win' : process.platform}-${process.arch}`,
)

/** The installed binary (bin/node on POSIX, node.exe at the package root on Windows). */
export const nodeBinary = process.platform === 'win32' ? join(pkgDir, 'bin', 'node.exe') : join(pkgDir, 'bin', 'node')
