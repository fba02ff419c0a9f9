/**
 * The package's declarations work in a Workers user's project as it comes: the example Worker
 * (examples/worker/src) type-checks with its own tsconfig (`lib: ["ES2022"]`, `@cloudflare/workers-types`,
 * no Node types, no `ESNext.Disposable`) against the declarations the package ships, and with
 * `skipLibCheck: false`, so a declaration that needs a lib or a Node type the user has not got fails here.
 *
 * The declarations are emitted from src/ by TypeScript into a temporary folder (tsup's `dts` build
 * bundles the same declarations), so the test needs no prior `npm run build`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'
import { afterAll, describe, expect, it } from 'vitest'

const ROOT = join(import.meta.dirname, '..')
const EXAMPLE = join(ROOT, 'examples/worker')
const ENTRIES = { 'stateless-do': 'src/index.ts', 'stateless-do/workers': 'src/workers/index.ts' }

const out = mkdtempSync(join(tmpdir(), 'stateless-do-dts-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

/** Messages of `diagnostics`, one line each, with the file they are in. */
function messages(diagnostics: readonly ts.Diagnostic[]): string[] {
  return diagnostics.map((d) => {
    const where = d.file ? `${d.file.fileName.replace(ROOT, '.')}: ` : ''
    return where + ts.flattenDiagnosticMessageText(d.messageText, ' ')
  })
}

/** Emits src/'s declarations into `out` with the repository's own compiler options. */
function emitDeclarations(): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: () => {},
    },
  )!
  const program = ts.createProgram(
    Object.values(ENTRIES).map((entry) => join(ROOT, entry)),
    {
      ...config.options,
      noEmit: false,
      declaration: true,
      emitDeclarationOnly: true,
      outDir: out,
      rootDir: join(ROOT, 'src'),
      paths: undefined,
    },
  )
  return messages(program.emit().diagnostics)
}

/** Type-checks examples/worker/src with its tsconfig, `stateless-do` resolved to the emitted declarations. */
function checkExample(): string[] {
  const raw = ts.parseConfigFileTextToJson('tsconfig.json', readFileSync(join(EXAMPLE, 'tsconfig.json'), 'utf8'))
    .config as { compilerOptions: object }
  const { options, fileNames } = ts.parseJsonConfigFileContent(
    { ...raw, compilerOptions: { ...raw.compilerOptions, skipLibCheck: false } },
    ts.sys,
    EXAMPLE,
  )
  const paths = Object.fromEntries(
    Object.entries(ENTRIES).map(([name, entry]) => [
      name,
      [join(out, entry.replace(/^src\//, '').replace(/\.ts$/, '.d.ts'))],
    ]),
  )
  // The example has no node_modules here: its @cloudflare/workers-types resolves to the repository's.
  const program = ts.createProgram(fileNames, { ...options, paths })
  const declarations = program.getSourceFiles().filter((f) => f.fileName.startsWith(out)).length
  if (declarations === 0) throw new Error('the example did not resolve stateless-do to the emitted declarations')
  return messages(ts.getPreEmitDiagnostics(program))
}

describe("the package's declarations in a Workers project", () => {
  it('are emitted from src/ without errors', () => {
    expect(emitDeclarations()).toEqual([])
  })

  it('type-check the example Worker with its own tsconfig (lib ES2022, workers types) and skipLibCheck off', () => {
    expect(checkExample()).toEqual([])
  }, 60_000)
})
