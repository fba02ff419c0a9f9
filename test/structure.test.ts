/**
 * The layout shows the architecture: the folders of src/ depend on each other in one direction only.
 * Type-only imports count too: a cycle of types is still a cycle a reader has to untangle.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

const SRC = join(import.meta.dirname, '../src')

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  )
}

/** `store` for src/store/x.ts, `.` for src/x.ts (top-level modules such as errors.ts form their own unit). */
function unitOf(file: string): string {
  const rel = relative(SRC, file)
  return rel.includes('/') ? rel.split('/')[0]! : rel.replace(/\.ts$/, '')
}

/** Edges between units of src/: `from -> to` for every relative import that crosses a unit. */
export function unitGraph(files: string[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>()
  for (const file of files) {
    const from = unitOf(file)
    const edges = graph.get(from) ?? new Set<string>()
    graph.set(from, edges)
    const source = readFileSync(file, 'utf8')
    for (const match of source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)) {
      const target = resolve(dirname(file), match[1]!).replace(/\.js$/, '.ts')
      const to = unitOf(target)
      if (to !== from) edges.add(to)
    }
  }
  return graph
}

/** One cycle (as a path a -> b -> ... -> a) if the graph has any, else undefined. */
export function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>()
  const path: string[] = []
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node]
    state.set(node, 'open')
    path.push(node)
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    path.pop()
    state.set(node, 'done')
    return undefined
  }
  for (const node of graph.keys()) {
    const cycle = visit(node)
    if (cycle) return cycle
  }
  return undefined
}

describe('src/ folders', () => {
  it('depend on each other without a cycle (fencing builds on store, never the reverse)', () => {
    const graph = unitGraph(sources(SRC))
    expect(graph.size).toBeGreaterThan(5)
    expect(findCycle(graph), 'import cycle between src/ folders').toBeUndefined()
    expect(graph.get('store')?.has('fencing')).toBe(false)
  })

  it('the cycle finder reports a cycle when there is one', () => {
    const graph = new Map([
      ['store', new Set(['errors', 'fencing'])],
      ['fencing', new Set(['store'])],
      ['errors', new Set<string>()],
    ])
    expect(findCycle(graph)).toEqual(['store', 'fencing', 'store'])
    graph.get('fencing')!.delete('store')
    expect(findCycle(graph)).toBeUndefined()
  })
})
