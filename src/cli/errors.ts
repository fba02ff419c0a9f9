/**
 * The CLI's two ways to fail, each with its exit code: the command line was wrong (2, nothing was
 * opened), or the command ran and could not do its job (1).
 *
 * @module
 */

/** Bad input, found before any I/O: exit code 2, the message names the flag or argument. */
export class UsageError extends Error {
  /** The command whose `--help` explains the fix, when there is one. */
  readonly command: string | undefined

  constructor(message: string, command?: string) {
    super(message)
    this.name = 'UsageError'
    this.command = command
  }
}

/**
 * The command could not do its job (no such database file, table missing): exit code 1. Its message is
 * printed as it is, so the text it quotes (paths, table names) must already be `printable`.
 */
export class CommandFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CommandFailure'
  }
}

/** Exit codes: success, failure, bad usage. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const
