// A Cloudflare Worker as a caching reverse proxy in front of someone else's origin, with
// `cached()` in its origin-driven mode (`ttl: 0`): a response is stored only for as long as
// its own headers (Cache-Control, CDN-Cache-Control, Expires), or the heuristic for a
// Last-Modified, make it fresh. Stale responses are revalidated with conditional requests
// (the origin's 304s refresh them), and the origin's stale-while-revalidate / stale-if-error
// are honoured up to the windows given here. See docs/http-caching.md.
//
// wrangler.toml of such a Worker: main = "examples/reverse-proxy.mjs", and the vars
// ORIGIN_URL, UPSTASH_REDIS_REST_URL, UPSTASH_REDIS_REST_TOKEN (a secret).
//
// Also a module: `createProxy()` is what test/hono/reverse-proxy-example.test.ts runs.
import { fromEnv } from "edgecache";
import { cached } from "edgecache/hono";
import { Hono } from "hono";

/** Request fields that only concern the hop from the client to this Worker. */
const HOP = ["host", "connection", "keep-alive", "te", "upgrade", "proxy-authorization"];

/**
 * The proxy: every request goes through `cached`, then to `origin` with the same method,
 * path, query, headers and body.
 * @param {{ cache: import("edgecache").Cache, origin: string, now?: () => number }} options
 */
export function createProxy({ cache, origin, now }) {
  const app = new Hono();
  app.all(
    "*",
    cached({
      cache,
      ttl: 0,
      // The most the origin's own stale-while-revalidate / stale-if-error are honoured for.
      staleWhileRevalidate: 60_000,
      grace: 600_000,
      ...(now ? { now } : {}),
    }),
    async (c) => {
      const url = new URL(c.req.url);
      const headers = new Headers(c.req.raw.headers);
      for (const name of HOP) headers.delete(name);
      // Stored bodies are replayed as received: ask for them unencoded, so a body the
      // runtime decoded never goes out under the origin's Content-Encoding.
      headers.set("accept-encoding", "identity");
      const method = c.req.method;
      const res = await fetch(new URL(url.pathname + url.search, origin), {
        method,
        headers,
        body: method === "GET" || method === "HEAD" ? undefined : await c.req.arrayBuffer(),
        redirect: "manual",
      });
      // A fetched response's headers are immutable in Workers: cached() adds Cache-Status.
      // The body is piped into a stream of our own: Node's fetch cancels a fetched body once
      // its response object is garbage-collected, and this body outlives `res`.
      return new Response(res.body?.pipeThrough(new TransformStream()) ?? null, {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    },
  );
  return app;
}

// One app per isolate, made by the first request (env does not exist at module scope).
let app;

export default {
  /** @param {Request} request @param {Record<string, string>} env @param {ExecutionContext} ctx */
  fetch(request, env, ctx) {
    app ??= createProxy({ cache: fromEnv(env).namespace("proxy"), origin: env.ORIGIN_URL });
    return app.fetch(request, env, ctx);
  },
};
