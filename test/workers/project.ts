/**
 * Builds a vitest project whose test files run INSIDE workerd (the Workers runtime from npm) through
 * `@cloudflare/vitest-plugin`. Used by vitest.config.ts; call it again there for another Worker
 * (e.g. `examples/worker/` with its own wrangler config and `main`).
 *
 * The pool (wrangler 4, miniflare 5) needs Node >= 22: `npm test` runs this project with the Node 22
 * that scripts/node22 installs from npm (scripts/test.mjs), and the Node project with the machine's.
 */
import { fileURLToPath } from 'node:url'
import { cloudflareTest } from '@cloudflare/vitest-plugin'
import type { TestProjectInlineConfiguration } from 'vitest/config'

/** The package's entry point, for code that imports it by name (examples/worker). */
const packageSource = fileURLToPath(new URL('../../src/index.ts', import.meta.url))
/** The `stateless-do/workers` entry (the Durable Object class form), for the same. */
const workersSource = fileURLToPath(new URL('../../src/workers/index.ts', import.meta.url))

/** What differs between the repository's workerd projects. */
export interface WorkersProjectOptions {
  /** Project name, shown in vitest output and usable with `vitest run --project <name>`. */
  name: string
  /** Wrangler config (jsonc/toml) with the bindings, compatibility date and `nodejs_compat`. */
  wranglerConfig: string
  /** Test files, relative to the repository root. */
  include: string[]
  /**
   * Entrypoint run in the same isolate as the tests: needed for `SELF` and for Durable Object classes
   * declared in the wrangler config without a `script_name`. Overrides the config's `main`.
   */
  main?: string
}

/**
 * A vitest project (for `test.projects`) running `options.include` inside workerd with the bindings of
 * `options.wranglerConfig`. Storage is not undone between tests (the pool's isolated storage was
 * removed in vitest-pool-workers 0.23 and was slow and flaky under load before); tests use tables/ids of their own
 * (support/tables.ts).
 */
export function workersProject(options: WorkersProjectOptions): TestProjectInlineConfiguration {
  return {
    // `import ... from 'stateless-do'` (the example Worker) runs the repository's source, not dist/.
    resolve: {
      alias: [
        { find: /^stateless-do$/, replacement: packageSource },
        { find: /^stateless-do\/workers$/, replacement: workersSource },
      ],
    },
    plugins: [
      cloudflareTest({
        wrangler: { configPath: options.wranglerConfig },
        ...(options.main === undefined ? {} : { main: options.main }),
      }),
    ],
    test: {
      name: options.name,
      include: options.include,
      // Run after group 0 (the Node tests) when both run in one vitest; all workers projects together.
      sequence: { groupOrder: 1 },
    },
  }
}
