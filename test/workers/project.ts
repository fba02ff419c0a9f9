/**
 * Builds a vitest project whose test files run INSIDE workerd (the Workers runtime from npm) through
 * `@cloudflare/vitest-pool-workers`. Used by vitest.config.ts; call it again there for another Worker
 * (e.g. `examples/worker/` with its own wrangler config and `main`).
 */
import { fileURLToPath } from 'node:url'
import { defineWorkersProject, type WorkersProjectConfigExport } from '@cloudflare/vitest-pool-workers/config'

/** The package's entry point, for code that imports it by name (examples/worker). */
const packageSource = fileURLToPath(new URL('../../src/index.ts', import.meta.url))
/** The Durable Object entry (`stateless-do/workers`), for the example's Counter. */
const workersSource = fileURLToPath(new URL('../../src/workers/index.ts', import.meta.url))

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
  /**
   * Undo each test's storage writes when it ends (vitest-pool-workers `isolatedStorage`). Off by
   * default: the pool implements it by copying the .sqlite files between tests, which is slow and was
   * seen to fail under load ("Network connection lost" while popping a frame); tests instead use
   * tables/ids of their own (support/tables.ts). Turn it on for a project whose tests need a pristine
   * Durable Object storage and cannot namespace their data.
   */
  isolatedStorage?: boolean
}

export function workersProject(options: WorkersProjectOptions): WorkersProjectConfigExport {
  return defineWorkersProject({
    // `import ... from 'stateless-do'` (the example Worker) runs the repository's source, not dist/.
    resolve: {
      alias: [
        { find: /^stateless-do$/, replacement: packageSource },
        { find: /^stateless-do\/workers$/, replacement: workersSource },
      ],
    },
    test: {
      name: options.name,
      include: options.include,
      // Run after group 0 (the Node tests); all workers projects run together.
      sequence: { groupOrder: 1 },
      poolOptions: {
        workers: {
          wrangler: { configPath: options.wranglerConfig },
          ...(options.main === undefined ? {} : { main: options.main }),
          isolatedStorage: options.isolatedStorage ?? false,
        },
      },
    },
  })
}
