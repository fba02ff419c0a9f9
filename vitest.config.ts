import { configDefaults, defineConfig } from 'vitest/config'
import { workersProject } from './test/workers/project.js'

export default defineConfig({
  test: {
    // Multi-process and workerd tests spawn their own processes; keep the machine's two cores for them.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Node tests in Node, test/workers/ inside workerd. The workers pool needs Node >= 22 while the Node
    // tests must run on the machine's Node (20): `npm test` (scripts/test.mjs) runs each project with
    // its own Node; `vitest run` alone runs both only when its Node is >= 22.
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          sequence: { groupOrder: 0 },
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/workers/**'],
        },
      },
      {
        extends: true,
        // After the Node project, not beside it: workerd would compete with the multi-process and
        // timing-sensitive Node tests for the machine's two cores.
        ...workersProject({
          name: 'workers',
          wranglerConfig: './test/workers/wrangler.jsonc',
          include: ['test/workers/**/*.test.ts'],
        }),
      },
    ],
  },
})
