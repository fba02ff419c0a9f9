/**
 * What the CLI prints for people cannot drive the operator's terminal: control characters, line and
 * paragraph separators and bidi controls from the database or the command line are shown as escapes.
 * `--json` gives the text exactly (JSON escapes what it must).
 */
import { createClient } from '@libsql/client'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { printable } from '../../src/cli/printable.js'
import type { LibSQLLockStore } from '../../src/index.js'
import type { BuiltEntry } from '../support/processes.js'
import { buildCli, freshStore, holdWithStorage, json, runCli, tempDir } from './cli-harness.js'

describe('printable', () => {
  it.each([
    ['a newline, a carriage return and a tab', 'a\nb\rc\td', 'a\\nb\\rc\\td'],
    ['ESC (an ANSI sequence)', '\x1b[2Jx', '\\x1b[2Jx'],
    ['other C0 controls and DEL', '\x00\x07\x7f', '\\x00\\x07\\x7f'],
    ['C1 controls (CSI, NEL)', '\x9b\x85', '\\x9b\\x85'],
    ['the line and paragraph separators', '\u2028\u2029', '\\u2028\\u2029'],
    ['the bidi overrides, embeddings and isolates', '\u202a\u202e\u2066\u2069', '\\u202a\\u202e\\u2066\\u2069'],
  ])('shows %s as escapes', (_, text, shown) => {
    expect(printable(text)).toBe(shown)
  })

  it('leaves printable text as it is, other scripts and emoji included', () => {
    const text = 'room-1 Zoë 東京 🙂 \\n "quoted"'
    expect(printable(text)).toBe(text)
  })
})

describe('stateless-do, printing hostile text', () => {
  let cli: BuiltEntry
  let dir: ReturnType<typeof tempDir>
  let store: LibSQLLockStore
  let file: string
  const run = (...args: string[]) => runCli(cli.file, ['--db', file, ...args])
  // Clears the screen and writes in red; a newline to forge a line of the listing.
  const doId = 'room-\x1b[2J\x1b[31mred'
  const nodeId = 'node-a\nroom-9  node-z'
  const key = 'k\u202eey'

  beforeAll(async () => {
    cli = await buildCli()
    dir = tempDir()
    ;({ store, file } = await freshStore(dir.path, 'hostile.db'))
    await holdWithStorage(store, doId, nodeId, { [key]: 'v\x1b]0;title\x07' }, 120_000, { note: 'x\u2028y\x85' })
    await holdWithStorage(store, 'bad\x1b[0m', 'node-b')
    const client = createClient({ url: pathToFileURL(file).href })
    await client.execute("UPDATE do_locks SET metadata = '{' WHERE do_id = 'bad' || char(27) || '[0m'")
    client.close()
  })

  afterAll(() => {
    store?.close()
    dir?.dispose()
    cli?.dispose()
  })

  /** No control, separator or bidi character reached the output raw. */
  const clean = (text: string) => expect(text.replace(/\n/g, '')).not.toMatch(/[\p{Cc}\u2028\u2029\p{Bidi_Control}]/u)

  it('escapes ids and node names from the database in list, the corrupt rows it names included', async () => {
    const r = await run('list')
    expect(r.code).toBe(0)
    clean(r.stdout)
    expect(r.stdout).toMatch(/^room-\\x1b\[2J\\x1b\[31mred\s+node-a\\nroom-9  node-z\s+1\s/m)
    expect(r.stdout).toContain('1 held row is corrupt and not listed: bad\\x1b[0m (show / force-release accept it)')
    expect(r.stdout.trim().split('\n')).toHaveLength(5)
    const doc = json(await run('list', '--json'))
    expect(doc.leases[0]).toMatchObject({ doId, nodeId })
    expect(doc.corrupt.doIds).toEqual(['bad\x1b[0m'])
  })

  it('escapes the id argument, the holder, the metadata, the keys and the values in show', async () => {
    const r = await run('show', doId, '--values', '--prefix', 'k\u202e')
    expect(r.code).toBe(0)
    clean(r.stdout)
    expect(r.stdout).toContain('do_id    room-\\x1b[2J\\x1b[31mred\n')
    expect(r.stdout).toContain('held by node-a\\nroom-9  node-z, token 1')
    expect(r.stdout).toContain('metadata {"note":"x\\u2028y\\x85"}')
    expect(r.stdout).toContain('starting with "k\\u202e"')
    expect(r.stdout).toMatch(/^k\\u202eey\s/m)
    expect(json(await run('show', doId, '--values', '--json')).storage.keys[0].key).toBe(key)
  })

  it('escapes the id and the evicted holder in what force-release says', async () => {
    const r = await run('force-release', doId)
    expect(r.code).toBe(0)
    clean(r.stdout)
    expect(r.stdout).toBe(
      'released room-\\x1b[2J\\x1b[31mred: it was held by node-a\\nroom-9  node-z with token 1; the next acquire gets token 2\n',
    )
    const corrupt = await run('force-release', 'bad\x1b[0m')
    clean(corrupt.stdout)
    expect(corrupt.stdout).toMatch(/^released bad\\x1b\[0m: its row is corrupt/)
  })

  it('escapes arguments and paths in its error messages', async () => {
    const usage = await runCli(cli.file, ['list\x1b[2J', '--db', file])
    expect(usage.code).toBe(2)
    clean(usage.stderr)
    expect(usage.stderr).toContain('unknown command "list\\x1b[2J"')
    const missing = join(dir.path, 'no\x1b[2Jne.db')
    const failure = await runCli(cli.file, ['list', '--db', missing])
    expect(failure.code).toBe(1)
    clean(failure.stderr)
    expect(failure.stderr).toBe(`stateless-do: no database file at ${join(dir.path, 'no\\x1b[2Jne.db')}\n`)
  })
})
