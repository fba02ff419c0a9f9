import { defineConfig, type Options } from 'tsup'

const shared: Options = {
  entry: ['src/index.ts'],
  sourcemap: true,
  target: 'es2022',
  treeshake: true,
  // Users bring their own client (node, web or D1); never bundle it. `cloudflare:workers` exists only
  // in workerd: only the `stateless-do/workers` entry imports it.
  external: ['@libsql/client', 'libsql', 'cloudflare:workers'],
}

export default defineConfig([
  // ESM imports devalue (the value serializer, a dependency) as users install it. The main entry and
  // `stateless-do/workers` (the Durable Object form) are built together so that they share one copy of
  // the core (split into a common chunk): a class from one is the same class in the other.
  {
    ...shared,
    entry: { index: 'src/index.ts', workers: 'src/workers/index.ts' },
    format: 'esm',
    splitting: true,
    dts: true,
    clean: true,
  },
  // devalue ships only as ESM: the CommonJS build carries its own copy, so `require('stateless-do')`
  // works on every Node the package supports (>= 20), not only where require() can load ESM (20.19+).
  { ...shared, format: 'cjs', dts: true, noExternal: ['devalue'] },
  // The operator CLI (`npx stateless-do`): Node only, ESM, with its shebang.
  {
    ...shared,
    entry: { cli: 'src/cli/main.ts' },
    format: 'esm',
    dts: false,
    sourcemap: false,
    banner: { js: '#!/usr/bin/env node' },
  },
])
