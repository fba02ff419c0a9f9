import { remoteErrorName } from 'stateless-do/workers'
import { Room, roomName, type Env } from './room.js'

// Durable Object classes must be exported by the Worker's main module (see wrangler.jsonc).
export { Room, type Env } from './room.js'
export { Counter } from './counter.js'

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const { pathname } = new URL(request.url)
    const counter = /^\/counters\/([\w-]+)$/.exec(pathname)?.[1]
    if (counter !== undefined) return counterRoute(request, env, counter)
    const name = roomName(pathname)
    if (name === undefined)
      return new Response('try POST /rooms/:name, POST /worker/rooms/:name or POST /counters/:name\n', { status: 404 })

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

/**
 * The Durable Object form (Counter): typed RPC on a stub instead of fetch. POST increments, GET reads.
 * A call that finds the counter held elsewhere, or whose lease was lost (nothing of it written), is
 * answered 503 naming the error.
 */
async function counterRoute(request: Request, env: Env, name: string): Promise<Response> {
  const stub = env.COUNTERS.get(env.COUNTERS.idFromName(name))
  try {
    if (request.method === 'POST') return Response.json(await stub.increment(1))
    if (request.method === 'GET') return Response.json(await stub.read())
    return new Response('use GET or POST\n', { status: 405, headers: { Allow: 'GET, POST' } })
  } catch (error) {
    // workerd delivers a plain Error; remoteErrorName reads the library error's class from it.
    const kind = remoteErrorName(error)
    if (kind !== 'LockContendedError' && kind !== 'LockLostError' && kind !== 'StaleFencingTokenError') throw error
    return Response.json({ error: kind }, { status: 503, headers: { 'Retry-After': '1' } })
  }
}
