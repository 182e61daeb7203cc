/**
 * The example Worker: a Hono app over edgecache. `npm start` runs it under `wrangler dev`
 * against a local redis-server behind the REST bridge; with real Upstash credentials it
 * deploys as is (see docs/development.md): every route that can read or change keys directly needs
 * `EDGECACHE_ADMIN_TOKEN`, and is off until it is set.
 *
 * - `GET /products/:id`, `GET /products?page=&sort=`: routes backed by a deliberately slow
 *   origin (`ORIGIN_DELAY_MS`, default 300 ms), cached whole with `cached()`: 60 s fresh,
 *   then served stale for 5 minutes while one background refresh runs; tagged `products`
 *   (and `product:<id>`), so `DELETE /_cache/tags/products` refreshes them everywhere.
 * - `GET /origin/products/:id`, `GET /origin/products`: the same origin, uncached, to compare.
 * - `/_cache/*`: the admin API (`cacheAdmin`): inspect, delete, invalidate tags, stats as JSON
 *   and Prometheus, and a live stats page. Needs `EDGECACHE_ADMIN_TOKEN` (16+ characters).
 * - `GET|PUT|DELETE /cache/:key`, `GET /stats`: a JSON key-value API over the cache itself.
 *   It reads and writes any key of the database, so it needs the same token, as
 *   `Authorization: Bearer <EDGECACHE_ADMIN_TOKEN>` (`401` without it); while no token of
 *   16+ characters is set, it answers `404` (see {@link requireAdminToken}).
 * - `/hub/*`: the invalidation hub (`edgecache/cloudflare`), see {@link handleHubRequest}.
 * - `GET /health`: 200 once the Worker runs.
 *
 * It imports the sources (the hub's included, from `src/cloudflare`), so that it can be tried
 * without a build; a user's Worker imports the same pieces from `edgecache`,
 * `edgecache/hono` and `edgecache/cloudflare`.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { type HubEnv, handleHubRequest } from "../src/cloudflare/index.js";
import { fromEnv } from "../src/env.js";
import { type EdgeCacheErrorCode, isEdgeCacheError } from "../src/errors.js";
import { cacheAdmin } from "../src/hono/admin/index.js";
import { cached } from "../src/hono/cached/index.js";
import type { Cache } from "../src/types.js";
import { requireAdminToken } from "./auth.js";

export { InvalidationHub } from "../src/cloudflare/index.js";

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
  /**
   * The bearer token (16+ characters) of the admin API (`/_cache`) and of the raw key-value
   * routes (`/cache/*`, `/stats`); without it they all answer 404.
   */
  EDGECACHE_ADMIN_TOKEN?: string;
  /**
   * How long the example origin takes per request, in ms.
   * @default "300"
   */
  ORIGIN_DELAY_MS?: string;
}

type App = Hono<{ Bindings: Env }>;

/** Largest request body read, in bytes; the cache refuses encoded values over 1 MiB anyway. */
const MAX_BODY_BYTES = 1 << 20;

// One cache and one app per isolate, made by the first request: building them at module
// scope would run before `env` exists, and the L1 must outlive single requests to be of any
// use. They hold no request-bound I/O objects (every L2 call is a fresh fetch), so sharing
// them across requests is safe.
let built: { cache: Cache; app: App } | undefined;

/**
 * The cache, configured by the environment (`UPSTASH_REDIS_REST_*`, `EDGECACHE_*`): the
 * `EDGECACHE_HUB` binding makes writes reach the long-lived subscribers through the hub, by
 * RPC; this isolate itself stays coherent by polling the change log.
 */
function cacheFor(env: Env): Cache {
  return fromEnv(
    { EDGECACHE_NAMESPACE: "edgecache", ...env },
    // Isolates have 128 MB and are often cold: a small L1 is enough. The built-in L1 uses
    // no timers (which a Worker may never run) and checks expiry on read.
    { local: { maxItems: 1_000, maxBytes: 8 << 20 } },
  );
}

// ---- the example origin: a product catalogue that is slow to answer -----------------------

interface Product {
  id: number;
  name: string;
  price: number;
  updatedAt: string;
}

const NAMES = ["Anvil", "Rocket skates", "Giant magnet", "Tornado seeds", "Earthquake pills"];

async function slowOrigin(env: Env): Promise<void> {
  const delay = Number(env.ORIGIN_DELAY_MS ?? "300");
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
}

function product(id: number): Product {
  return {
    id,
    name: `${NAMES[id % NAMES.length]} #${id}`,
    price: ((id * 7919) % 10_000) / 100,
    updatedAt: new Date().toISOString(),
  };
}

async function productRoute(c: Context<{ Bindings: Env }>): Promise<Response> {
  const id = Number(c.req.param("id"));
  if (!Number.isSafeInteger(id) || id < 1 || id > 1_000_000) {
    return c.json({ error: "no such product" }, 404);
  }
  await slowOrigin(c.env);
  return c.json(product(id), 200, { "cache-control": "public, max-age=60" });
}

async function listRoute(c: Context<{ Bindings: Env }>): Promise<Response> {
  const page = Math.max(1, Math.min(100, Number(c.req.query("page") ?? "1") || 1));
  const sort = c.req.query("sort") === "desc" ? "desc" : "asc";
  await slowOrigin(c.env);
  const ids = Array.from({ length: 10 }, (_, i) => (page - 1) * 10 + i + 1);
  if (sort === "desc") ids.reverse();
  return c.json({ page, sort, products: ids.map(product) });
}

// ---- the key-value API over the cache ------------------------------------------------------

const STATUS: Partial<Record<EdgeCacheErrorCode, 400 | 413 | 503 | 504>> = {
  EC_INVALID_KEY: 400,
  EC_INVALID_OPTION: 400,
  EC_SERIALIZE: 400,
  EC_VALUE_TOO_LARGE: 413,
  EC_STORE_UNAVAILABLE: 503,
  EC_STORE_AUTH: 503,
  EC_STORE_ERROR: 503,
  EC_CIRCUIT_OPEN: 503,
  EC_STORE_TIMEOUT: 504,
};

async function readJson(request: Request): Promise<{ value: unknown } | "too large" | "bad"> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY_BYTES) return "too large";
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) return "too large";
  try {
    return { value: JSON.parse(text) };
  } catch {
    return "bad";
  }
}

/** The key after `/cache/`, decoded once; undefined when it is not valid percent-encoding. */
function keyOf(c: Context): string | undefined {
  const path = new URL(c.req.url).pathname;
  try {
    return decodeURIComponent(path.slice("/cache/".length));
  } catch {
    return undefined;
  }
}

function buildApp(env: Env, cache: Cache): App {
  const app: App = new Hono<{ Bindings: Env }>();
  app.get("/health", (c) => c.text("ok"));

  // The example routes: the same origin, cached and not.
  const http = cache.namespace("http");
  const productTags = (c: Context) => ["products", `product:${c.req.param("id")}`];
  const cachedRoute = (tags: (c: Context) => string[]) =>
    cached({ cache: http, ttl: 60_000, staleWhileRevalidate: 300_000, tags });
  app.get("/products/:id", cachedRoute(productTags), productRoute);
  app.get(
    "/products",
    cachedRoute(() => ["products"]),
    listRoute,
  );
  app.get("/origin/products/:id", productRoute);
  app.get("/origin/products", listRoute);

  // The admin API, only when a token is configured.
  const token = env.EDGECACHE_ADMIN_TOKEN;
  if (token) {
    try {
      app.route("/_cache", cacheAdmin({ cache, token, caches: { http } }));
    } catch (error) {
      // A token too short to be safe: the rest of the Worker still runs.
      console.error("edgecache worker: admin API off:", (error as Error)?.message);
    }
  }

  // The raw key-value API reads and writes any key: the admin token or nothing. Registered
  // before the routes, with their exact patterns, so it runs first for every method.
  const guard = requireAdminToken(env.EDGECACHE_ADMIN_TOKEN);
  app.use("/stats", guard);
  app.use("/cache/*", guard);
  app.get("/stats", (c) => c.json(cache.stats()));
  app.get("/cache/*", async (c) => {
    const key = keyOf(c);
    if (key === undefined) return c.json({ error: "the key is not valid percent-encoding" }, 400);
    const value = await cache.get(key);
    return value === undefined ? c.json({ error: "not found" }, 404) : c.json(value);
  });
  app.put("/cache/*", async (c) => {
    const key = keyOf(c);
    if (key === undefined) return c.json({ error: "the key is not valid percent-encoding" }, 400);
    const body = await readJson(c.req.raw);
    if (body === "too large") return c.json({ error: "body too large" }, 413);
    if (body === "bad") return c.json({ error: "the body must be JSON" }, 400);
    const ttl = c.req.query("ttl");
    // The cache validates the number; "abc" or "0" comes back as EC_INVALID_OPTION (400).
    await cache.set(key, body.value, ttl === undefined ? undefined : { ttl: Number(ttl) });
    return c.body(null, 204);
  });
  app.delete("/cache/*", async (c) => {
    const key = keyOf(c);
    if (key === undefined) return c.json({ error: "the key is not valid percent-encoding" }, 400);
    await cache.delete(key);
    return c.body(null, 204);
  });
  app.on(["POST", "PATCH"], "/cache/*", (c) => c.body(null, 405, { allow: "GET, PUT, DELETE" }));
  app.on(["POST", "PUT", "DELETE", "PATCH"], "/stats", (c) => c.body(null, 405, { allow: "GET" }));

  app.notFound((c) => c.json({ error: "no such route" }, 404));
  app.onError((error, c) => {
    if (isEdgeCacheError(error)) {
      // Messages of edgecache errors hold no values or secrets, so they are safe to return.
      return c.json({ error: `${error.code}: ${error.message}` }, STATUS[error.code] ?? 500);
    }
    console.error("edgecache worker: unexpected error", (error as Error)?.name);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    // The hub needs no cache: it keeps working when Redis settings are wrong.
    if (new URL(request.url).pathname.startsWith("/hub/")) return handleHubRequest(request, env);
    if (built === undefined) {
      try {
        const cache = cacheFor(env);
        built = { cache, app: buildApp(env, cache) };
      } catch (error) {
        // A missing or malformed binding: the operator's mistake, not the client's.
        console.error("edgecache worker: cannot start:", (error as Error)?.message);
        return Response.json({ error: "the Worker is misconfigured" }, { status: 500 });
      }
    }
    return built.app.fetch(request, env, ctx);
  },
};
