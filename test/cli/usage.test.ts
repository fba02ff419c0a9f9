/**
 * Bad input to `stateless-do`: each case gets one clear line on stderr naming the flag or argument,
 * exit code 2, and nothing opened (the database path given alongside is never created). Help is exit 0.
 */
import { copyFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BuiltEntry } from '../support/processes.js'
import { buildCli, runCli, tempDir } from './cli-harness.js'

let cli: BuiltEntry
let dir: ReturnType<typeof tempDir>
let never: string

beforeAll(async () => {
  cli = await buildCli()
  dir = tempDir()
  never = join(dir.path, 'never.db')
})

afterAll(() => {
  dir?.dispose()
  cli?.dispose()
})

const long = (n: number) => 'x'.repeat(n)

/** [what, argv (a `DB` item is replaced by a path that must stay uncreated), the message, its command]. */
const CASES: Array<[string, string[], string, string | undefined]> = [
  ['no command', ['--db', 'DB'], 'no command given', undefined],
  ['an unknown command', ['lisst', '--db', 'DB'], 'unknown command "lisst"', undefined],
  [
    'an unknown flag',
    ['list', '--db', 'DB', '--nodes', 'a'],
    'unknown option --nodes (an argument starting with "-" goes after "--")',
    'list',
  ],
  ['a flag of another command', ['list', '--db', 'DB', '--values'], '--values is not an option of list', 'list'],
  ['a flag without its value', ['list', '--db'], '--db needs a value', 'list'],
  ['a value given to a switch', ['list', '--db', 'DB', '--json=yes'], '--json takes no value', 'list'],
  ['no database', ['list'], 'no database: pass --db <url> or set STATELESS_DO_DB', 'list'],
  ['an empty --db', ['list', '--db', ''], '--db: must not be empty', 'list'],
  [
    'an unsupported URL scheme',
    ['list', '--db', 'postgres://db.example.com/x'],
    '--db: unsupported URL scheme "postgres:" (expected file:, libsql:, http(s):, ws(s): or a path)',
    'list',
  ],
  [
    'a file: URL with a host (file://x.db for file:x.db)',
    ['list', '--db', 'file://x.db'],
    '--db: a file: URL names no host, got "x.db" (file:x.db for a relative path, file:///abs/x.db for an absolute one)',
    'list',
  ],
  [
    'a file: URL with bad percent-encoding',
    ['show', 'a', '--db', 'file:q%b.db'],
    '--db: bad percent-encoding in the file: URL (a "%" must start a %XX escape of UTF-8; "%25" is a "%")',
    'show',
  ],
  ['an empty --auth-token', ['list', '--db', 'DB', '--auth-token', ''], '--auth-token: must not be empty', 'list'],
  [
    'a bad --table',
    ['list', '--db', 'DB', '--table', '1locks'],
    '--table: must match ^[A-Za-z_][A-Za-z0-9_]{0,55}$ (letters, digits, underscore; not starting with a digit)',
    'list',
  ],
  [
    'a reserved --object-table',
    ['show', 'a', '--db', 'DB', '--object-table', 'sqlite_x'],
    '--object-table: "sqlite_x" cannot be used',
    'show',
  ],
  [
    'a zero --limit',
    ['list', '--db', 'DB', '--limit', '0'],
    '--limit: expected a whole number from 1 to 100000, got "0"',
    'list',
  ],
  [
    'a --limit past the maximum',
    ['prune', '--older-than', '1d', '--db', 'DB', '--limit', '100001'],
    '--limit: expected a whole number from 1 to 100000, got "100001"',
    'prune',
  ],
  [
    'a --limit that is not a number',
    ['show', 'a', '--db', 'DB', '--limit', '10k'],
    '--limit: expected a whole number from 1 to 100000, got "10k"',
    'show',
  ],
  [
    'a --node too long',
    ['list', '--db', 'DB', '--node', long(257)],
    '--node: must be at most 256 characters, got 257',
    'list',
  ],
  ['a doId too long', ['show', long(1025), '--db', 'DB'], '<doId>: must be at most 1024 characters, got 1025', 'show'],
  ['an empty doId', ['force-release', '', '--db', 'DB'], '<doId>: must not be empty', 'force-release'],
  ['a missing doId', ['force-release', '--db', 'DB'], 'missing <doId>', 'force-release'],
  ['an extra argument', ['show', 'a', 'b', '--db', 'DB'], 'unexpected argument "b"', 'show'],
  [
    'an option given twice (the last would win: another database)',
    ['force-release', 'room-1', '--db', 'DB', '--db', 'other.db'],
    '--db is given more than once',
    'force-release',
  ],
  [
    'a value option given twice, in either form',
    ['prune', '--db', 'DB', '--older-than', '2d', '--older-than=0'],
    '--older-than is given more than once',
    'prune',
  ],
  ['a switch given twice', ['list', '--db', 'DB', '--json', '--json'], '--json is given more than once', 'list'],
  ['prune without --older-than', ['prune', '--db', 'DB'], '--older-than is required (e.g. --older-than 1d)', 'prune'],
  [
    'a duration without a unit',
    ['prune', '--db', 'DB', '--older-than', '30'],
    '--older-than: "30" is not a duration (whole numbers with ms, s, m, h, d or w: 500ms, 30m, 12h, 1d)',
    'prune',
  ],
  [
    'a duration with an unknown unit',
    ['vacuum', '--db', 'DB', '--older-than', '2y'],
    '--older-than: "2y" is not a duration (whole numbers with ms, s, m, h, d or w: 500ms, 30m, 12h, 1d)',
    'prune',
  ],
  [
    'a negative duration',
    ['prune', '--db', 'DB', '--older-than=-1h'],
    '--older-than: "-1h" is not a duration (whole numbers with ms, s, m, h, d or w: 500ms, 30m, 12h, 1d)',
    'prune',
  ],
]

describe('stateless-do, given bad input', () => {
  it.each(CASES)(
    'refuses %s with exit code 2, naming it, before opening anything',
    async (_, argv, message, command) => {
      const r = await runCli(
        cli.file,
        argv.map((a) => (a === 'DB' ? never : a)),
      )
      const help = command === undefined ? 'stateless-do --help' : `stateless-do ${command} --help`
      expect(r.stderr).toMatch(
        new RegExp(`^stateless-do: ${escape(message)}.*\\nRun "${escape(help)}" for usage\\.\\n$`),
      )
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
      expect(existsSync(never)).toBe(false)
    },
  )

  it('takes a --db from STATELESS_DO_DB under the same checks, naming the variable', async () => {
    const r = await runCli(cli.file, ['list'], { env: { STATELESS_DO_DB: 'mysql://x/y' } })
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^stateless-do: STATELESS_DO_DB: unsupported URL scheme "mysql:"/)
    const malformed = await runCli(cli.file, ['list'], { env: { STATELESS_DO_DB: 'file:///x%2Fy.db' } })
    expect(malformed.code).toBe(2)
    expect(malformed.stderr).toMatch(
      /^stateless-do: STATELESS_DO_DB: the file: URL encodes a "\/" in its path \(%2F\)\n/,
    )
  })

  it('fails with exit code 1 (not 2) for a database file that does not exist, and does not create it', async () => {
    const r = await runCli(cli.file, ['list', '--db', never])
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`stateless-do: no database file at ${never}\n`)
    expect(existsSync(never)).toBe(false)
  })

  it('says how to install @libsql/client when it is missing, exit 1', async () => {
    // The same bundle, where no node_modules can be found above it.
    const alone = tempDir()
    try {
      const script = join(alone.path, 'cli.mjs')
      copyFileSync(cli.file, script)
      const r = await runCli(script, ['list', '--db', 'file::memory:'], { cwd: alone.path })
      expect(r.stderr).toBe(
        'stateless-do: the CLI needs @libsql/client, an optional peer dependency of stateless-do: npm install @libsql/client\n',
      )
      expect(r.code).toBe(1)
    } finally {
      alone.dispose()
    }
  })
})

describe('stateless-do --help', () => {
  it('prints the overview with every command, the database options and the exit codes, exit 0', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const r = await runCli(cli.file, argv)
      expect(r.code).toBe(0)
      expect(r.stderr).toBe('')
      for (const word of [
        'list',
        'show <doId>',
        'force-release <doId>',
        'prune --older-than',
        'vacuum',
        'STATELESS_DO_DB',
        'LIBSQL_AUTH_TOKEN',
        '--json',
        'Exit codes: 0 done, 1 failed',
      ]) {
        expect(r.stdout).toContain(word)
      }
    }
  })

  it('says a local D1 database of wrangler dev opens by path', async () => {
    const r = await runCli(cli.file, ['--help'])
    expect(r.stdout).toContain('A local D1 database of `wrangler dev` is an SQLite')
    expect(r.stdout).toContain('--db .wrangler/state/v3/d1')
  })

  it.each([
    [['list', '--help'], 'Usage: stateless-do list'],
    [['help', 'show'], 'Usage: stateless-do show <doId>'],
    [['force-release', '-h'], 'Usage: stateless-do force-release <doId>'],
    [['vacuum', '--help'], 'Usage: stateless-do prune --older-than <duration>'],
    // Help wins over the rest of a wrong line.
    [['prune', '--older-than', 'soon', '--bogus', '--help'], 'Usage: stateless-do prune'],
  ])("%j prints that command's help, exit 0", async (argv, first) => {
    const r = await runCli(cli.file, argv)
    expect(r.code).toBe(0)
    expect(r.stdout.startsWith(first)).toBe(true)
    expect(r.stdout).toContain('--db <url>')
  })

  it('refuses help for an unknown command, exit 2', async () => {
    const r = await runCli(cli.file, ['help', 'purge'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^stateless-do: unknown command "purge"\n/)
  })
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
