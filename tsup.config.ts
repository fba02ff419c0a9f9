import { defineConfig, type Options } from 'tsup'

const shared: Options = {
  entry: ['src/index.ts'],
  sourcemap: true,
  target: 'es2022',
  treeshake: true,
  // Users bring their own client (node, web or D1); never bundle it.
  external: ['@libsql/client'],
}

export default defineConfig([
  // ESM imports devalue (the value serializer, a dependency) as users install it.
  { ...shared, format: 'esm', dts: true, clean: true },
  // devalue ships only as ESM: the CommonJS build carries its own copy, so `require('stateless-do')`
  // works on every Node the package supports (>= 20), not only where require() can load ESM (20.19+).
  { ...shared, format: 'cjs', dts: true, noExternal: ['devalue'] },
])
