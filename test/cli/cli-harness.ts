/**
 * The operator CLI as users run it: src/cli/main.ts bundled with esbuild (the way tsup builds
 * dist/cli.js) and run as a child process with this Node, against real libSQL files the tests fill
 * through the library.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll } from 'vitest'
import { LibSQLLockStore } from '../../src/index.js'
import { encodeValue } from '../../src/storage/serializer.js'
import { buildEntry, type BuiltEntry } from '../support/processes.js'

/** What one run of the CLI did. */
export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Bundles the CLI once (beforeAll); the bundle resolves @libsql/client from the repo's node_modules. */
export function buildCli(): Promise<BuiltEntry> {
  return buildEntry(new URL('../../src/cli/main.ts', import.meta.url), { external: ['libsql'] })
}

/**
 * Runs `script` with `args`. The environment is the parent's without any variable the CLI reads, plus
 * `env`: a test says every input the CLI gets.
 */
export function runCli(
  script: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(STATELESS_DO_|LIBSQL_)/.test(name)) env[name] = value
  }
  Object.assign(env, options.env)
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [script, ...args],
      { env, cwd: options.cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

/**
 * What a test file of the CLI needs, made before its tests and removed after them: the bundled CLI
 * (`fixture.cli.file`) and a directory for its databases (`fixture.dir.path`). Read them inside tests.
 */
export function cliFixture(): { readonly cli: BuiltEntry; readonly dir: { readonly path: string } } {
  let cli: BuiltEntry | undefined
  let dir: ReturnType<typeof tempDir> | undefined
  beforeAll(async () => {
    cli = await buildCli()
    dir = tempDir()
  })
  afterAll(() => {
    dir?.dispose()
    cli?.dispose()
  })
  const ready = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('cliFixture: read outside a test')
    return value
  }
  return {
    get cli() {
      return ready(cli)
    },
    get dir() {
      return ready(dir)
    },
  }
}

/** A directory for one test file's databases, removed by `dispose()`. */
export function tempDir(): { path: string; dispose(): void } {
  const path = mkdtempSync(join(tmpdir(), 'stateless-do-cli-'))
  return { path, dispose: () => rmSync(path, { recursive: true, force: true }) }
}

/** A lock store over a fresh file `name` in `dir`, schema created (the application's ensureSchema). */
export async function freshStore(
  dir: string,
  name: string,
  options: { table?: string; pragmas?: string[] } = {},
): Promise<{ store: LibSQLLockStore; file: string }> {
  const file = join(dir, name)
  const store = new LibSQLLockStore(pathToFileURL(file).href, {
    ...(options.table === undefined ? {} : { table: options.table }),
    ...(options.pragmas === undefined ? {} : { pragmas: options.pragmas }),
  })
  await store.ensureSchema()
  return { store, file }
}

/** Takes `doId` for `nodeId` and flushes `values` (encoded as this.storage.put would) under the lease. */
export async function holdWithStorage(
  store: LibSQLLockStore,
  doId: string,
  nodeId: string,
  values: Record<string, unknown> | Map<string, unknown> = {},
  ttlMs = 120_000,
  metadata?: unknown,
) {
  const result = await store.acquire({ doId, nodeId, ttlMs, ...(metadata === undefined ? {} : { metadata }) })
  if (!result.acquired) throw new Error(`${doId} is held by ${result.holder.nodeId}`)
  const entries = new Map<string, string>()
  for (const [key, value] of values instanceof Map ? values : Object.entries(values)) {
    entries.set(key, encodeValue(value, key))
  }
  if (entries.size > 0) {
    await store.objects.flush({ doId, nodeId, fencingToken: result.lock.fencingToken, ttlMs }, { entries })
  }
  return result.lock
}

/** Parses the one JSON document `--json` printed. */
export function json(run: CliRun): any {
  try {
    return JSON.parse(run.stdout)
  } catch {
    throw new Error(`not one JSON document (exit ${run.code}):\n${run.stdout}\n--- stderr\n${run.stderr}`)
  }
}
