/**
 * One invocation of the CLI, from the command line to an exit code, with its output sent through
 * {@link CliOutput} (so it can be run and read without a process).
 *
 * @module
 */
import { LockError } from '../errors.js'
import { parseInvocation, helpText, type CliEnvironment } from './args.js'
import { runCommand } from './commands.js'
import { assertTables, locateDatabase, openDatabase, requiredTables } from './database.js'
import { CommandFailure, EXIT, UsageError } from './errors.js'
import { printable } from './printable.js'

/** Where the CLI writes: results to `stdout`, messages to `stderr`. */
export interface CliOutput {
  /** Writes a result (a table, a sentence, or the `--json` document). */
  stdout(text: string): void
  /** Writes a message (an error, a hint). */
  stderr(text: string): void
}

/**
 * Runs the CLI for `argv` (the arguments after the script) and resolves its exit code: 0 done, 1 the
 * command failed, 2 bad usage (found before any I/O).
 */
export async function run(argv: readonly string[], env: CliEnvironment, out: CliOutput): Promise<number> {
  let invocation
  try {
    invocation = parseInvocation(argv, env)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    const help = error.command === undefined ? 'stateless-do --help' : `stateless-do ${error.command} --help`
    // The message quotes the command line, which may hold anything.
    out.stderr(`stateless-do: ${printable(error.message)}\nRun "${help}" for usage.\n`)
    return EXIT.usage
  }
  if (invocation.kind === 'help') {
    out.stdout(`${helpText(invocation.topic)}\n`)
    return EXIT.ok
  }

  const { command, target, json, verbose } = invocation
  let db
  let name = target.url
  try {
    const location = locateDatabase(target)
    name = location.name
    db = await openDatabase(location, target)
    assertTables(db, requiredTables(command.name, target))
    const output = await runCommand(db, command, target.objectTable)
    out.stdout(json ? `${JSON.stringify(output.json, null, 2)}\n` : `${output.text}\n`)
    return EXIT.ok
  } catch (error) {
    out.stderr(`stateless-do: ${describeFailure(error, name)}\n`)
    if (verbose) out.stderr(`${stackOf(error)}\n`)
    else if (!(error instanceof CommandFailure)) out.stderr('(--verbose shows the stack)\n')
    return EXIT.failure
  } finally {
    db?.close()
  }
}

/**
 * One line saying what failed: the CLI's own finding, or the database's error as the driver gave it
 * (with the network error underneath, e.g. `fetch failed (connect ECONNREFUSED ...)`).
 */
function describeFailure(error: unknown, database: string): string {
  // The CLI's own messages are printable as built; a driver's may quote anything (a path, SQL text).
  if (error instanceof CommandFailure) return error.message
  return printable(describeDatabaseError(error, database))
}

function describeDatabaseError(error: unknown, database: string): string {
  const e = error as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown } | null
  const message = typeof e?.message === 'string' ? e.message : String(error)
  const cause = e?.cause as { code?: unknown; message?: unknown } | undefined
  const causeCode = typeof cause?.code === 'string' ? cause.code : undefined
  const fromDatabase =
    error instanceof LockError ||
    e?.name === 'LibsqlError' ||
    typeof e?.code === 'string' ||
    causeCode !== undefined ||
    // A driver wrapping its I/O failure (undici's `fetch failed` over the network error).
    e?.cause instanceof Error
  if (!fromDatabase) return `unexpected error: ${message}`
  const code = typeof e?.code === 'string' && !message.includes(e.code) ? ` [${e.code}]` : ''
  const under = typeof cause?.message === 'string' && !message.includes(cause.message) ? ` (${cause.message})` : ''
  return `database error (${database}): ${message}${code}${under}`
}

/** The stack and every cause's, for `--verbose`. */
function stackOf(error: unknown): string {
  const parts: string[] = []
  for (let e: unknown = error, depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(e instanceof Error ? (e.stack ?? String(e)) : String(e))
    e = e instanceof Error ? e.cause : undefined
    if (e !== undefined) parts.push('caused by:')
  }
  // Line by line: the stack's line breaks stay (a message's own too, in this debugging aid); every
  // other control character is escaped.
  return parts.join('\n').split('\n').map(printable).join('\n')
}
