/**
 * The library runs unchanged in Node and in workerd: nothing in src/ may import a package or a Node
 * built-in at run time (type-only imports are erased), nor touch Node globals. One exception, a runtime
 * dependency in package.json: `devalue`, pure JavaScript, the value encoding of src/storage/serializer.ts.
 * src/cli/ is the operator CLI (`dist/cli.js`, Node only): exempt, and nothing else in src/ may import it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = join(import.meta.dirname, '../src')
/** Packages src/ may import at run time (each a `dependencies` entry of package.json). */
const RUNTIME_DEPENDENCIES = new Set(['devalue'])

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
        if (!typeOnly && !RUNTIME_DEPENDENCIES.has(specifier!)) {
          expect(specifier, `${name} imports ${specifier} at run time`).toMatch(/^\.\.?\//)
        }
      }
      expect(source, name).not.toMatch(/\b(require|process|Buffer|__dirname)\s*[.(]/)
      expect(source, name).not.toMatch(/from\s+'node:/)
      expect(source, `${name} imports the Node-only CLI`).not.toMatch(/from\s+'(\.\.?\/)+cli\//)
    }
  })
})
