/**
 * `npx stateless-do`: the operator CLI's process entry (built to `dist/cli.js` with its shebang). Node
 * only; the library itself never imports anything from src/cli/.
 *
 * @module
 */
import { run } from './run.js'

// `head` closing the pipe is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0)
  throw error
})

// exitCode, not exit(): the output still buffered for a pipe is written before the process ends.
process.exitCode = await run(process.argv.slice(2), process.env, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
})
