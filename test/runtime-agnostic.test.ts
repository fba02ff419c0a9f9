/**
 * The library runs unchanged in Node and in workerd: nothing in src/ may import a package or a Node
 * built-in at run time (type-only imports are erased), nor touch Node globals. One exception, a runtime
 * dependency in package.json: `devalue`, pure JavaScript, the value encoding of src/storage/serializer.ts.
 * src/cli/ is the operator CLI (`dist/cli.js`, Node only): exempt, and nothing else in src/ may import it.
 * src/workers/ is the `stateless-do/workers` entry (workerd only): it alone may import
 * `cloudflare:workers`, and the main entry's import graph never reaches it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = join(import.meta.dirname, '../src')
/** Packages src/ may import at run time (each a `dependencies` entry of package.json). */
const RUNTIME_DEPENDENCIES = new Set(['devalue'])
/** The workerd built-in only src/workers/ may import. */
const WORKERS_MODULE = 'cloudflare:workers'

/** Run-time import specifiers of a source file (type-only imports are erased). */
function runtimeImports(source: string): string[] {
  return [...source.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)]
    .filter((match) => !match[2])
    .map((match) => match[3]!)
}

/** Every file the module graph of `entry` reaches at run time (relative imports, `.js` -> `.ts`). */
function graph(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    const imports = runtimeImports(readFileSync(file, 'utf8'))
    seen.set(file, imports)
    for (const specifier of imports) {
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'))
    }
  }
  visit(entry)
  return seen
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  )
}

describe('src/', () => {
  it('imports only its own modules at run time and uses no Node globals', () => {
    const files = sources(SRC).filter((file) => !relative(SRC, file).startsWith('cli/'))
    expect(files.length).toBeGreaterThan(20)
    for (const file of files) {
      const name = relative(SRC, file)
      const source = readFileSync(file, 'utf8')
      for (const match of source.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)) {
        const [, , typeOnly, specifier] = match
        const workersOnly = specifier === WORKERS_MODULE && name.startsWith('workers/')
        if (!typeOnly && !RUNTIME_DEPENDENCIES.has(specifier!) && !workersOnly) {
          expect(specifier, `${name} imports ${specifier} at run time`).toMatch(/^\.\.?\//)
        }
      }
      expect(source, name).not.toMatch(/\b(require|process|Buffer|__dirname)\s*[.(]/)
      expect(source, name).not.toMatch(/from\s+'node:/)
      expect(source, `${name} imports the Node-only CLI`).not.toMatch(/from\s+'(\.\.?\/)+cli\//)
    }
  })

  it('keeps cloudflare:workers out of everything the main entry imports', () => {
    const reached = graph(join(SRC, 'index.ts'))
    expect(reached.size).toBeGreaterThan(20)
    for (const [file, imports] of reached) {
      const name = relative(SRC, file)
      expect(name, `the main entry reaches ${name}`).not.toMatch(/^workers\//)
      expect(imports, `${name} imports ${WORKERS_MODULE}`).not.toContain(WORKERS_MODULE)
    }
  })

  it('gives stateless-do/workers the core by relative imports and cloudflare:workers, nothing else', () => {
    const reached = graph(join(SRC, 'workers/index.ts'))
    const external = [...reached.values()].flat().filter((specifier) => !specifier.startsWith('.'))
    expect(new Set(external)).toEqual(new Set([WORKERS_MODULE, 'devalue']))
    // It reuses the core (StatelessDO's turn runner), not a copy of it.
    expect([...reached.keys()].map((file) => relative(SRC, file))).toContain('do/stateless-do.ts')
  })
})
