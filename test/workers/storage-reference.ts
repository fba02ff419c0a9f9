/**
 * Durable Objects whose only purpose is to expose workerd's REAL storage to storage-semantics.test.ts:
 * the test enters one with `runInDurableObject` and runs a scenario on `state.storage`, then the same
 * scenario on an `ObjectStorage` (src/storage/), and compares.
 *
 * - `StorageReference` (binding STORAGE_REFERENCE): SQLite-backed (`new_sqlite_classes`), what
 *   Cloudflare recommends for every new class.
 * - `StorageReferenceKv` (STORAGE_REFERENCE_KV): declared KV-backed (`new_classes`). Local workerd keeps
 *   it in SQLite too (ActorSqlite), so the KV backend's limits (ActorCache: 2048-byte keys, 128 KiB
 *   values, 128 keys per get) are not enforced locally; the tests record that.
 */
export class StorageReference {
  constructor(
    readonly ctx: { storage: { put(key: string, value: unknown): Promise<void> } },
    readonly env: unknown,
  ) {}

  /** `/put-then-throw`: a request that writes and then fails (do its writes stay?). */
  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).pathname === '/put-then-throw') {
      await this.ctx.storage.put('written-before-the-throw', true)
      throw new Error('the handler failed after its write')
    }
    return new Response('storage reference: enter it with runInDurableObject')
  }
}

/** The same class, declared KV-backed in wrangler.jsonc. */
export class StorageReferenceKv extends StorageReference {}
