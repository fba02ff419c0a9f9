/**
 * The command line as the CLI understands it: node:util `parseArgs` over every option of every command,
 * then each flag checked against its command and each value validated, so bad input is refused
 * (exit code 2) with the flag named, before any database is opened.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { InvalidArgumentError } from '../errors.js'
import { DEFAULT_LIST_LIMIT, DEFAULT_PRUNE_LIMIT, MAX_LIST_LIMIT, MAX_PRUNE_LIMIT } from '../store/lock-store.js'
import { objectTableFor } from '../store/object-sql.js'
import { DEFAULT_TABLE, assertTableName } from '../store/sql.js'
import { MAX_KEY_BYTES } from '../storage/limits.js'
import { assertDoId, assertIdentifier, assertNodeId } from '../validate.js'
import { parseDuration } from './duration.js'
import { UsageError } from './errors.js'
import { localPath, MalformedFileUrlError } from './file-url.js'
import { HELP } from './help.js'

/** Keys `show` lists unless told `--limit`. */
export const DEFAULT_SHOW_LIMIT = 100
/** The most keys one `show` lists. */
export const MAX_SHOW_LIMIT = 100_000

/** Where the database is and how the tables are called: every command's options. */
export interface DatabaseTarget {
  /** The libSQL URL (a bare path already made a `file:` URL). */
  readonly url: string
  /** For remote databases. */
  readonly authToken: string | undefined
  /** The lock table. */
  readonly table: string
  /** The object storage table. */
  readonly objectTable: string
}

/** One validated command, ready to run. */
export type Command =
  | { readonly name: 'list'; readonly nodeId: string | undefined; readonly limit: number }
  | {
      readonly name: 'show'
      readonly doId: string
      readonly values: boolean
      readonly prefix: string
      readonly limit: number
    }
  | { readonly name: 'force-release'; readonly doId: string }
  | { readonly name: 'prune'; readonly olderThanMs: number; readonly limit: number; readonly once: boolean }

/** What the command line asks for: help, or a command against a database. */
export type Invocation =
  | { readonly kind: 'help'; readonly topic: string }
  | {
      readonly kind: 'run'
      readonly command: Command
      readonly target: DatabaseTarget
      readonly json: boolean
      readonly verbose: boolean
    }

const GLOBAL = ['db', 'auth-token', 'table', 'object-table', 'json', 'verbose', 'help'] as const

const OPTIONS = {
  db: { type: 'string' },
  'auth-token': { type: 'string' },
  table: { type: 'string' },
  'object-table': { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  node: { type: 'string' },
  limit: { type: 'string' },
  values: { type: 'boolean' },
  prefix: { type: 'string' },
  'older-than': { type: 'string' },
  once: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

type OptionName = keyof typeof OPTIONS

/** Per command: its own flags and its positional arguments. `vacuum` is `prune`. */
const COMMANDS: Readonly<Record<Command['name'], { flags: readonly OptionName[]; positionals: readonly string[] }>> = {
  list: { flags: ['node', 'limit'], positionals: [] },
  show: { flags: ['values', 'prefix', 'limit'], positionals: ['<doId>'] },
  'force-release': { flags: [], positionals: ['<doId>'] },
  prune: { flags: ['older-than', 'limit', 'once'], positionals: [] },
}

const ALIASES: Readonly<Record<string, Command['name']>> = { vacuum: 'prune' }

/** The environment variables the CLI reads. */
export interface CliEnvironment {
  /** The database URL when `--db` is not given. */
  readonly STATELESS_DO_DB?: string | undefined
  /** The auth token when `--auth-token` is not given. */
  readonly STATELESS_DO_AUTH_TOKEN?: string | undefined
  /** The auth token when neither `--auth-token` nor `STATELESS_DO_AUTH_TOKEN` is given. */
  readonly LIBSQL_AUTH_TOKEN?: string | undefined
}

/** Reads `argv` (without node and the script) and `env`; throws {@link UsageError} on bad input. */
export function parseInvocation(argv: readonly string[], env: CliEnvironment): Invocation {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true, tokens: true })
  } catch (error) {
    // Asked for help: give it even when the rest of the line is wrong.
    const topic = helpTopic(argv)
    if (topic !== undefined) return { kind: 'help', topic }
    throw new UsageError(parseArgsMessage(error), commandName(argv.find((a) => !a.startsWith('-'))))
  }
  const { values, positionals, tokens } = parsed
  const [word, ...rest] = positionals
  if (word === 'help') {
    const topic = rest[0] === undefined ? '' : commandName(rest[0])
    if (topic === undefined) throw new UsageError(`unknown command "${rest[0]}"`)
    return { kind: 'help', topic }
  }
  const name = word === undefined ? undefined : commandName(word)
  if (values.help) return { kind: 'help', topic: name ?? '' }
  if (word === undefined) throw new UsageError('no command given')
  if (name === undefined) throw new UsageError(`unknown command "${word}"`)

  const spec = COMMANDS[name]
  const seen = new Set<string>()
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    const flag = token.name as OptionName
    if (!(GLOBAL as readonly string[]).includes(flag) && !spec.flags.includes(flag)) {
      throw new UsageError(`${token.rawName} is not an option of ${name}`, name)
    }
    // parseArgs keeps the last value: `--db staging.db --db prod.db` would act on prod.db unasked.
    if (seen.has(flag)) throw new UsageError(`--${flag} is given more than once`, name)
    seen.add(flag)
  }
  if (rest.length > spec.positionals.length) {
    throw new UsageError(`unexpected argument "${rest[spec.positionals.length]}"`, name)
  }
  if (rest.length < spec.positionals.length) {
    throw new UsageError(`missing ${spec.positionals[rest.length]}`, name)
  }

  const command = buildCommand(name, rest, values)
  const target = buildTarget(values, env, name)
  return { kind: 'run', command, target, json: values.json === true, verbose: values.verbose === true }
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; tokens: true }>>['values']

function buildCommand(name: Command['name'], rest: string[], values: Values): Command {
  switch (name) {
    case 'list': {
      const nodeId = values.node
      if (nodeId !== undefined) named('--node', name, () => assertNodeId(nodeId, '--node'))
      return { name, nodeId, limit: limitOf(values.limit, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, name) }
    }
    case 'show': {
      const doId = rest[0]!
      named('<doId>', name, () => assertDoId(doId, '<doId>'))
      const prefix = values.prefix ?? ''
      if (prefix !== '') named('--prefix', name, () => assertIdentifier('--prefix', prefix, MAX_KEY_BYTES))
      return {
        name,
        doId,
        values: values.values === true,
        prefix,
        limit: limitOf(values.limit, DEFAULT_SHOW_LIMIT, MAX_SHOW_LIMIT, name),
      }
    }
    case 'force-release': {
      const doId = rest[0]!
      named('<doId>', name, () => assertDoId(doId, '<doId>'))
      return { name, doId }
    }
    case 'prune': {
      const text = values['older-than']
      if (text === undefined) throw new UsageError('--older-than is required (e.g. --older-than 1d)', name)
      const olderThanMs = parseDuration(text)
      if (olderThanMs === undefined) {
        throw new UsageError(
          `--older-than: "${text}" is not a duration (whole numbers with ms, s, m, h, d or w: 500ms, 30m, 12h, 1d)`,
          name,
        )
      }
      return {
        name,
        olderThanMs,
        limit: limitOf(values.limit, DEFAULT_PRUNE_LIMIT, MAX_PRUNE_LIMIT, name),
        once: values.once === true,
      }
    }
  }
}

function buildTarget(values: Values, env: CliEnvironment, command: string): DatabaseTarget {
  const given = values.db ?? env.STATELESS_DO_DB
  const from = values.db !== undefined ? '--db' : 'STATELESS_DO_DB'
  if (given === undefined) throw new UsageError('no database: pass --db <url> or set STATELESS_DO_DB', command)
  const url = databaseUrl(given, from, command)
  const authToken = values['auth-token'] ?? env.STATELESS_DO_AUTH_TOKEN ?? env.LIBSQL_AUTH_TOKEN
  if (values['auth-token'] === '') throw new UsageError('--auth-token: must not be empty', command)
  const table = values.table ?? DEFAULT_TABLE
  named('--table', command, () => assertTableName(table))
  const objectTable = named('--object-table', command, () => {
    const t = objectTableFor(table, values['object-table'])
    assertTableName(t)
    return t
  })
  return { url, authToken: authToken === '' ? undefined : authToken, table, objectTable }
}

/** libSQL's URL schemes; anything else with a scheme is refused here rather than by the client. */
const SCHEMES = /^(?:file|libsql|http|https|ws|wss):/i

/**
 * A URL libSQL accepts: `file:`, `libsql:`, `http(s):`, `ws(s):` and `:memory:` as given; a bare
 * path becomes a `file:` URL (encoded, so `#` and `?` in a name stay part of the path).
 */
function databaseUrl(given: string, from: string, command: string): string {
  if (given === '') throw new UsageError(`${from}: must not be empty`, command)
  if (given === ':memory:') return given
  if (SCHEMES.test(given)) {
    // Checked here, so a file: URL naming no file is bad usage (exit 2) rather than a failure to open it.
    try {
      localPath(given)
    } catch (error) {
      if (!(error instanceof MalformedFileUrlError)) throw error
      throw new UsageError(`${from}: ${error.reason}`, command)
    }
    return given
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]+):\/\//.exec(given)
  if (scheme) {
    throw new UsageError(
      `${from}: unsupported URL scheme "${scheme[1]}:" (expected file:, libsql:, http(s):, ws(s): or a path)`,
      command,
    )
  }
  return `file:${encodeURI(given).replace(/[?#]/g, encodeURIComponent)}`
}

function limitOf(text: string | undefined, fallback: number, max: number, command: string): number {
  if (text === undefined) return fallback
  const n = /^[1-9]\d*$/.test(text) ? Number(text) : NaN
  if (!(n <= max)) throw new UsageError(`--limit: expected a whole number from 1 to ${max}, got "${text}"`, command)
  return n
}

/** Runs a library check and reports its InvalidArgumentError as a UsageError naming `flag`. */
function named<T>(flag: string, command: string, check: () => T): T {
  try {
    return check()
  } catch (error) {
    if (!(error instanceof InvalidArgumentError)) throw error
    const detail = error.message.slice(`invalid ${error.argument}: `.length)
    throw new UsageError(`${flag}: ${detail}`, command)
  }
}

function commandName(word: string | undefined): Command['name'] | undefined {
  if (word === undefined) return undefined
  if (Object.hasOwn(COMMANDS, word)) return word as Command['name']
  return ALIASES[word]
}

/** `-h`/`--help` before any `--`: the help topic (a command, or `''`), else `undefined`. */
function helpTopic(argv: readonly string[]): string | undefined {
  const end = argv.indexOf('--')
  const head = end === -1 ? argv : argv.slice(0, end)
  if (!head.includes('--help') && !head.includes('-h')) return undefined
  return commandName(head.find((a) => !a.startsWith('-'))) ?? ''
}

/** parseArgs' messages, reworded to name the flag the way the rest of the CLI does. */
function parseArgsMessage(error: unknown): string {
  const { code, message } = error as { code?: string; message: string }
  const flag = /'(-[^' ]+)/.exec(message)?.[1]
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) {
    return `unknown option ${flag} (an argument starting with "-" goes after "--")`
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && flag) {
    return /argument missing/.test(message) ? `${flag} needs a value` : `${flag} takes no value`
  }
  return message
}

/** The help text for `topic` (a command name, or `''` for the overview). */
export function helpText(topic: string): string {
  return HELP[topic] ?? HELP['']!
}
