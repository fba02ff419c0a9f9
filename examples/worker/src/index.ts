import type { ExecutionContext } from '@cloudflare/workers-types'
import { Room, roomName, type Env } from './room.js'

// Durable Object classes must be exported by the Worker's main module (see wrangler.jsonc).
export { Room, type Env } from './room.js'

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const { pathname } = new URL(request.url)
    const name = roomName(pathname)
    if (name === undefined) return new Response('try POST /rooms/:name or POST /worker/rooms/:name\n', { status: 404 })

    // Plain Worker: the same class, built for this one request, with a lease per request (no ctx.id);
    // ctx.waitUntil keeps the release running after the response. The lease does what the platform's
    // single instance would.
    if (pathname.startsWith('/worker/')) return new Room(ctx, env).fetch(request)

    // Durable Object: one object per room name, whose requests are turns of the room's activation
    // (queued, one at a time, the lease kept while warm). It coordinates through the same lease table,
    // so both routes serve the same rooms one at a time.
    const stub = env.ROOMS.get(env.ROOMS.idFromName(name))
    // The casts only bridge the DOM lib this repository also type-checks the example with; with
    // @cloudflare/workers-types alone (this folder's tsconfig.json) `return stub.fetch(request)` is enough.
    return stub.fetch(request as never) as unknown as Promise<Response>
  },
}
