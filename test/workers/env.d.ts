/**
 * Types for "cloudflare:test" as the workers tests use it. Declared here (instead of referencing
 * `@cloudflare/vitest-plugin` + `@cloudflare/workers-types` globally) so the repository's single
 * tsconfig keeps its Node/DOM globals. Add bindings from wrangler.jsonc to `env`, and further exports
 * (`SELF`, `runInDurableObject`, ...) as tests start using them.
 */
declare module 'cloudflare:test' {
  export interface D1PreparedStatement {
    bind(...values: unknown[]): D1PreparedStatement
    first<T = Record<string, unknown>>(): Promise<T | null>
    all<T = Record<string, unknown>>(): Promise<{ results: T[]; meta: { changes: number } }>
    run<T = Record<string, unknown>>(): Promise<{ results: T[]; meta: { changes: number } }>
    raw<T = unknown[]>(): Promise<T[]>
  }
  /** The D1 binding as workerd provides it (the slice tests touch). */
  export interface D1Database {
    prepare(query: string): D1PreparedStatement
    batch(statements: D1PreparedStatement[]): Promise<Array<{ results: unknown[]; meta: { changes: number } }>>
    exec(query: string): Promise<{ count: number; duration: number }>
  }

  /** Something requests can be sent to: `SELF`, a Durable Object stub. */
  export interface Fetcher {
    fetch(input: string | Request, init?: RequestInit): Promise<Response>
  }
  /** A Durable Object namespace binding (the slice tests touch). */
  export interface DurableObjectNamespace {
    idFromName(name: string): { toString(): string }
    get(id: { toString(): string }): Fetcher
  }

  export const env: {
    /** test/workers/wrangler.jsonc `d1_databases[0]`. */
    DB: D1Database
    /** examples/worker's `Room` (its Worker routes /rooms/:name here). */
    ROOMS: DurableObjectNamespace
    /** `TestRoom` from example-worker.ts: the example's Room with test hooks. */
    TEST_ROOMS: DurableObjectNamespace
    /**
     * `RpcCounter` (durable-object-classes.ts), typed as a Workers project types it: the namespace
     * and its stubs are those of `@cloudflare/workers-types`, so RPC calls are type-checked.
     */
    RPC_COUNTERS: import('@cloudflare/workers-types').DurableObjectNamespace<
      import('./durable-object-classes.js').RpcCounter
    >
    /** examples/worker's `Counter` (a StatelessDurableObject; its Worker routes /counters/:name here). */
    COUNTERS: import('@cloudflare/workers-types').DurableObjectNamespace<
      import('../../examples/worker/src/counter.js').Counter
    >
  }

  /** The `main` Worker's default export (example-worker.ts: examples/worker's Worker). */
  export const SELF: Fetcher
}
