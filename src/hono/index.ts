/**
 * edgecache for Hono: `cached()` caches whole route responses in the two-level cache with
 * HTTP semantics; `cacheAdmin()` is the admin API (inspect, delete, invalidate tags, stats,
 * Prometheus metrics, a live stats page). Build the cache with `fromEnv()` from `edgecache`.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { fromEnv } from "edgecache";
 * import { cached, cacheAdmin } from "edgecache/hono";
 *
 * const cache = fromEnv(env);
 * app.get("/products/*", cached({ cache, ttl: 60_000, staleWhileRevalidate: 300_000, tags: () => ["products"] }));
 * app.route("/_cache", cacheAdmin({ cache, token: env.EDGECACHE_ADMIN_TOKEN }));
 * await cache.invalidateTag("products");
 * ```
 * @module
 */
export { type CacheAdminOptions, cacheAdmin } from "./admin/index.js";
export { prometheusMetrics } from "./admin/metrics.js";
export {
  type CachedEnv,
  type CachedOptions,
  type CachedVariables,
  cached,
} from "./cached/index.js";
