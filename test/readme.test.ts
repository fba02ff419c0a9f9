/**
 * The README's code runs as written. Every ```ts block preceded by `<!-- test: runs -->` is compiled
 * as it stands (esbuild strips the types; `import ... from 'stateless-do'` is this repository's source)
 * and run with Node in an empty directory, as an ES module: top-level await, its own `file:` database.
 * A block may say what it prints in a comment `// prints: <text>`: the output must contain each.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

const root = fileURLToPath(new URL('..', import.meta.url))
const readme = readFileSync(join(root, 'README.md'), 'utf8')

/** The marked blocks, with the heading they sit under. */
function runnableBlocks(markdown: string): Array<{ heading: string; code: string }> {
  const blocks: Array<{ heading: string; code: string }> = []
  let heading = '(top)'
  const lines = markdown.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '')
    if (line.trim() !== '<!-- test: runs -->') continue
    const fence = lines[i + 1]?.trim()
    if (fence !== '```ts')
      throw new Error(`README: "<!-- test: runs -->" under "${heading}" must precede a \`\`\`ts block`)
    const end = lines.indexOf('```', i + 2)
    blocks.push({ heading, code: lines.slice(i + 2, end).join('\n') })
    i = end
  }
  return blocks
}

const blocks = runnableBlocks(readme)

describe('README code blocks', () => {
  it('has runnable blocks, the Quick start among them', () => {
    expect(blocks.map((b) => b.heading)).toContain('Quick start')
  })

  for (const [index, { heading, code }] of blocks.entries()) {
    it(`"${heading}" (block ${index + 1}) runs as written`, async () => {
      // Bundled under node_modules so that the packages it imports resolve as a user's would.
      const outDir = join(root, 'node_modules', '.cache', 'readme-test')
      mkdirSync(outDir, { recursive: true })
      const outfile = join(outDir, `block-${index + 1}.mjs`)
      await build({
        stdin: { contents: code, loader: 'ts', resolveDir: root, sourcefile: `README block ${index + 1}.ts` },
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        outfile,
        alias: { 'stateless-do': join(root, 'src', 'index.ts') },
        external: ['@libsql/client', 'libsql'],
        logLevel: 'silent',
      })
      const cwd = mkdtempSync(join(tmpdir(), 'readme-'))
      try {
        writeFileSync(join(cwd, 'package.json'), '{ "type": "module" }\n')
        const { stdout } = await promisify(execFile)(process.execPath, [outfile], { cwd, timeout: 20_000 })
        for (const [, expected] of code.matchAll(/\/\/ prints: (.+)$/gm)) expect(stdout).toContain(expected!.trim())
      } finally {
        rmSync(cwd, { recursive: true, force: true })
      }
    })
  }
})
