/**
 * The Workers globals examples/worker uses, for the repository's own type-check. A Workers project gets
 * them from `"types": ["@cloudflare/workers-types"]` (examples/worker/tsconfig.json, checked as a user's
 * project by test/package-types.test.ts); this tsconfig keeps Node and DOM globals instead, so here they
 * are aliases of the package's importable form, the same declarations `cloudflare:workers` re-exports
 * (src/workers/cloudflare-workers.d.ts). Mixing the two forms in one program makes TypeScript compare
 * them structurally, which took minutes.
 */
declare global {
  type DurableObjectState = import('@cloudflare/workers-types').DurableObjectState
  type D1Database = import('@cloudflare/workers-types').D1Database
  type ExecutionContext = import('@cloudflare/workers-types').ExecutionContext
  type DurableObjectNamespace<
    T extends import('@cloudflare/workers-types').Rpc.DurableObjectBranded | undefined = undefined,
  > = import('@cloudflare/workers-types').DurableObjectNamespace<T>
}
export {}
