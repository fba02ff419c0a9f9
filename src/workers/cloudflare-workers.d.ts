/**
 * `cloudflare:workers` for this repository's own type-check, whose tsconfig keeps Node and DOM globals
 * and so cannot load `@cloudflare/workers-types` globally. It re-exports the real declarations (the
 * importable form of the package), so `DurableObject` here is the branded class users get: a subclass
 * of it is accepted by `DurableObjectNamespace<T>`. Users' projects declare the module themselves
 * (`"types": ["@cloudflare/workers-types"]` or `wrangler types`); this file is not published.
 */
declare module 'cloudflare:workers' {
  import type { CloudflareWorkersModule } from '@cloudflare/workers-types'
  export const DurableObject: typeof CloudflareWorkersModule.DurableObject
  export type DurableObject<Env = unknown, Props = {}> = CloudflareWorkersModule.DurableObject<Env, Props>
}
