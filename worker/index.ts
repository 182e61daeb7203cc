/**
 * A minimal Cloudflare Worker over edgecache: a JSON key-value HTTP API, for trying the cache
 * with `wrangler dev` against the local REST bridge and for the workerd tests.
 *
 * - `GET /cache/:key`: the JSON value, or 404 (also when Redis is unreachable: a cache miss).
 * - `PUT /cache/:key[?ttl=ms]`: stores the JSON body; 204.
 * - `DELETE /cache/:key`: 204.
 * - `GET /stats`: this isolate's cache counters.
 * - `/hub/*`: the invalidation hub (`edgecache/cloudflare`), see {@link handleHubRequest}.
 *
 * The cache parts import the sources, so that they can be tried without a build; the hub
 * imports `edgecache/hub` by name (as a user's Worker would), so `wrangler dev` needs
 * `npm run build` first. The built package is exercised in workerd by
 * `test/workers/runtime.test.ts` and `test/workers/hub.test.ts`.
 *
 * @module
 */
import { type Cache, createCache } from "../src/cache.js";
import { type EdgeCacheErrorCode, isEdgeCacheError } from "../src/errors.js";
import { upstashStore } from "../src/stores/upstash.js";
import { type HubEnv, handleHubRequest, hubShards } from "./hub.js";

export { InvalidationHub } from "./hub.js";

/** The bindings this Worker reads (see wrangler.toml). */
export interface Env extends HubEnv {
  /** REST URL of the Redis database (Upstash, or the local bridge in development). */
  UPSTASH_REDIS_REST_URL: string;
  /** REST token; set it with `wrangler secret put` outside local development. */
  UPSTASH_REDIS_REST_TOKEN: string;
  /**
   * The cache namespace.
   * @default "edgecache"
   */
  EDGECACHE_NAMESPACE?: string;
}

/** Largest request body read, in bytes; the cache refuses encoded values over 1 MiB anyway. */
const MAX_BODY_BYTES = 1 << 20;

// One cache per isolate, created by the first request: building it at module scope would
// run before `env` exists, and its L1 must outlive single requests to be of any use. It
// holds no request-bound I/O objects (every L2 call is a fresh fetch), so sharing it across
// requests is safe.
let cache: Cache | undefined;

function cacheFor(env: Env): Cache {
  cache ??= createCache({
    store: upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
    namespace: env.EDGECACHE_NAMESPACE || "edgecache",
    // Isolates have 128 MB and are often cold: a small L1 is enough. The built-in L1 uses
    // no timers (which a Worker may never run) and checks expiry on read.
    local: { maxItems: 1_000, maxBytes: 8 << 20 },
    // Writes are pushed to the long-lived subscribers through the hub, by RPC on the
    // binding; this isolate itself stays coherent by polling the change log.
    sync: env.EDGECACHE_HUB
      ? { hub: { binding: env.EDGECACHE_HUB, shards: hubShards(env) } }
      : undefined,
  });
  return cache;
}

const json = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });

const problem = (status: number, error: string): Response => json({ error }, status);

const STATUS: Partial<Record<EdgeCacheErrorCode, number>> = {
  EC_INVALID_KEY: 400,
  EC_INVALID_OPTION: 400,
  EC_SERIALIZE: 400,
  EC_VALUE_TOO_LARGE: 413,
  EC_STORE_UNAVAILABLE: 503,
  EC_STORE_AUTH: 503,
  EC_STORE_ERROR: 503,
  EC_STORE_TIMEOUT: 504,
};

async function readJson(request: Request): Promise<{ value: unknown } | Response> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY_BYTES) return problem(413, "body too large");
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) return problem(413, "body too large");
  try {
    return { value: JSON.parse(text) };
  } catch {
    return problem(400, "the body must be JSON");
  }
}

async function handleKey(request: Request, c: Cache, key: string, url: URL): Promise<Response> {
  switch (request.method) {
    case "GET": {
      const value = await c.get(key);
      return value === undefined ? problem(404, "not found") : json(value);
    }
    case "PUT": {
      const body = await readJson(request);
      if (body instanceof Response) return body;
      const ttl = url.searchParams.get("ttl");
      // The cache validates the number; "abc" or "0" comes back as EC_INVALID_OPTION (400).
      await c.set(key, body.value, ttl === null ? undefined : { ttl: Number(ttl) });
      return new Response(null, { status: 204 });
    }
    case "DELETE":
      await c.delete(key);
      return new Response(null, { status: 204 });
    default:
      return new Response(null, { status: 405, headers: { allow: "GET, PUT, DELETE" } });
  }
}

async function route(request: Request, c: Cache): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/stats") {
    if (request.method !== "GET") {
      return new Response(null, { status: 405, headers: { allow: "GET" } });
    }
    return json(c.stats());
  }
  if (url.pathname.startsWith("/cache/")) {
    let key: string;
    try {
      key = decodeURIComponent(url.pathname.slice("/cache/".length));
    } catch {
      return problem(400, "the key is not valid percent-encoding");
    }
    return handleKey(request, c, key, url);
  }
  return problem(404, "no such route");
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    // The hub needs no cache: it keeps working when Redis settings are wrong.
    if (new URL(request.url).pathname.startsWith("/hub/")) return handleHubRequest(request, env);
    let c: Cache;
    try {
      c = cacheFor(env);
    } catch (error) {
      // A missing or malformed binding: the operator's mistake, not the client's.
      console.error("edgecache worker: cannot create the cache:", (error as Error)?.message);
      return problem(500, "the Worker is misconfigured");
    }
    try {
      return await route(request, c);
    } catch (error) {
      if (isEdgeCacheError(error)) {
        // Messages of edgecache errors hold no values or secrets, so they are safe to return.
        return problem(STATUS[error.code] ?? 500, `${error.code}: ${error.message}`);
      }
      console.error("edgecache worker: unexpected error", (error as Error)?.name);
      return problem(500, "internal error");
    }
  },
};
