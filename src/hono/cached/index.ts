/**
 * `cached(options)`: a Hono middleware that caches whole responses (status, headers, body
 * bytes) in an edgecache {@link Cache} and replays them, following HTTP caching rules
 * (RFC 9111) and reporting what it did in a `Cache-Status` header (RFC 9211).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { cached } from "edgecache/hono";
 *
 * const app = new Hono();
 * app.get(
 *   "/products/*",
 *   cached({ cache: cache.namespace("http"), ttl: 60_000, staleWhileRevalidate: 300_000, tags: () => ["products"] }),
 *   (c) => {
 *     c.var.cacheTag(`product:${c.req.path.split("/")[2]}`);
 *     return c.json(loadProduct(c.req.path));
 *   },
 * );
 * // later, on any instance:
 * await cache.namespace("http").invalidateTag("products");
 * ```
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import type { Cache } from "../../types.js";
import { type CachedContext, openExchange, RecentLoads } from "./exchange.js";
import { handle } from "./request.js";
import { resolve } from "./settings.js";

/** Options of {@link cached}. Validated when `cached` is called (`InvalidOptionError`). */
export interface CachedOptions {
  /**
   * The cache responses are stored in; typically a namespace of its own, e.g.
   * `cache.namespace("http")`, so `clear()` and tags there touch responses only. Handlers
   * find it as `c.var.cache`.
   *
   * Or a function of the request's context returning that cache, for when the cache cannot
   * be made before the routes are registered (a Worker's `env` arrives with the first
   * request). It is called on every request, so it must not build a cache each time:
   * memoize per isolate, e.g. a module-level lazy singleton. A function that returns
   * something else fails the request with `InvalidOptionError` (`EC_INVALID_OPTION`).
   * Where `import { env } from "cloudflare:workers"` is available at module scope, a plain
   * cache made from it works too.
   * @example
   * ```ts
   * let http: Cache | undefined; // one per isolate, made on the first request
   * app.get(
   *   "/api/*",
   *   cached({ cache: (c) => (http ??= fromEnv(c.env).namespace("http")) }),
   *   handler,
   * );
   * ```
   */
  cache: Cache | ((c: Context) => Cache);
  /**
   * How long a stored response is fresh, in ms, when the response itself does not say (see
   * `honorMaxAge`): right for caching your own handlers.
   *
   * `0` is the origin-driven mode, for a caching reverse proxy in front of someone else's
   * origin: a response is stored only when its own headers (`Cache-Control`, a targeted
   * field, `Expires`) or the {@link CachedOptions.heuristic | heuristic} make it fresh, or
   * when it asks to be revalidated on every use (`no-cache` with a validator); nothing else.
   * `staleWhileRevalidate` and `grace` then only cap the response's own
   * `stale-while-revalidate` and `stale-if-error` (RFC 5861). See docs/http-caching.md.
   * @default the namespace's `ttl` when `cache` is a namespace that sets one, else 60_000
   */
  ttl?: number;
  /**
   * For this many ms after a response goes stale, serve it at once (`Cache-Status: ...; hit;
   * ttl=<negative>; detail=stale-while-revalidate`) and refresh it in the background, once
   * per key (with `lock`, once across instances), through `c.executionCtx.waitUntil` where
   * there is one (Workers), in-process otherwise. Passed to `getOrSet`.
   *
   * The refresh runs the rest of the chain (the middleware after this one and the handler) on
   * this request's context, after the stale response has been returned and the middleware
   * before this one have had a macrotask to finish with it; meanwhile the stale response is
   * detached from the context and put back afterwards. Middleware placed before `cached`
   * that still works on `c.res` later than that (after a slow `await` following `next()`)
   * should not be combined with this option.
   *
   * A response's own `stale-while-revalidate=<s>` (RFC 5861) is honoured up to this window;
   * one with `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache` is never
   * served stale (it is revalidated in the foreground instead).
   * @default the namespace's, else 0
   */
  staleWhileRevalidate?: number;
  /**
   * Fail-safe: for this many ms after a response goes stale, keep it, and serve it when the
   * handler fails (throws or answers 5xx): `Cache-Status: ...; fwd=stale; fwd-status=500;
   * detail=stale-if-error`. Passed to `getOrSet`. A response's own `stale-if-error=<s>`
   * (RFC 5861) is honoured up to this window; `must-revalidate`, `proxy-revalidate`,
   * `s-maxage` and `no-cache` responses are never served stale.
   * @default the namespace's, else 0
   */
  grace?: number;
  /**
   * Coalesce misses of one response across instances with a lease in L2, so the handler runs
   * once for all of them (on one instance, concurrent misses always share one run). Passed
   * to `getOrSet`.
   * @default false
   */
  lock?: boolean | { ttl?: number; wait?: number };
  /**
   * Tags of every response stored through this middleware, for `cache.invalidateTag(tag)`: an
   * array, or a function of the request's context (called on misses only). Handlers add
   * more with `c.var.cacheTag(...)`. Non-empty strings of at most 256 characters, at most 64
   * per response. On a cache whose store cannot carry tags (a sharded one), a tagged
   * response is served but not stored (`detail=tag-error`), and the refusal is reported.
   */
  tags?: readonly string[] | ((c: Context) => readonly string[] | Promise<readonly string[]>);
  /**
   * Request methods answered from the cache. `HEAD` is answered from the `GET` response
   * (without its body) and never stores one. Other methods are passed through
   * (`Cache-Status: ...; fwd=method`); when such a method is unsafe (anything but OPTIONS
   * and TRACE) and succeeds (2xx, 3xx), the stored responses of its URL, and of the URLs in
   * its `Location` and `Content-Location` when same-origin, are invalidated (RFC 9111 4.4).
   * A 200 to a HEAD updates the stored GET response's headers (4.3.5). Methods besides GET
   * and HEAD need a `key` function, since a request body is not part of the default key.
   * @default ["GET", "HEAD"]
   */
  methods?: readonly string[];
  /**
   * Response statuses that may be stored; responses with other statuses pass through.
   * @default [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
   */
  statuses?: readonly number[];
  /**
   * Request headers every key varies on, besides those a response names in its `Vary`.
   * Their values enter keys only as a SHA-256 hash. A request with `Authorization` or
   * `Cookie` bypasses the cache unless that header is listed here; listed, it makes one
   * entry per distinct credential.
   * @default []
   */
  vary?: readonly string[];
  /**
   * What identifies the request's resource in its key:
   * - `"url"` (the default): the normalized URL: scheme, host and port, the path as sent,
   *   and the query parameters decoded, re-encoded and sorted by name. Two origins (say two
   *   Node instances on different ports, or `example.com` and `www.example.com`) never
   *   share an entry, and a forged `Host` can only fill entries of its own.
   * - `"path"`: the path and the normalized query only, so every origin that reaches this
   *   middleware shares entries. Use it when the instances serve the same site behind
   *   different hosts or ports, and only when responses do not depend on the host (a
   *   request with a forged `Host` fills the entry everyone reads).
   * - a function of the context returning the resource: whatever it leaves out, responses
   *   must not depend on.
   *
   * The method, the `vary` headers and the response's `Vary` headers are always added.
   * `cacheAdmin`'s `GET /entries/by-url` computes the same keys (pass it the same `key`).
   * @default "url"
   * @example
   * ```ts
   * // Two instances (ports 3000 and 3001) on one Redis share each page.
   * app.get("/pages/*", cached({ cache: http, key: "path" }), handler);
   * ```
   */
  key?: "url" | "path" | ((c: Context) => string | Promise<string>);
  /**
   * Responses with larger bodies are passed through (streamed, not buffered) and not stored.
   * Up to this size a body is read whole before the response goes out, so routes that
   * stream slowly or never finish (long polling, NDJSON feeds) do not belong behind `cached`.
   * Stored bodies are base64 in the entry, so keep `maxBodyBytes * 4 / 3` plus the headers
   * under the cache's `maxValueBytes`.
   * @default 524_288 (512 KiB)
   */
  maxBodyBytes?: number;
  /**
   * Use the response's own freshness as its TTL: `s-maxage`, else `max-age`, else `Expires`
   * minus `Date` (RFC 9111 4.2.1), less its age when received (4.2.3). A response stale on
   * arrival is not stored, unless it asks to be revalidated on every use (`no-cache` with a
   * validator). Stale responses with an `ETag` or `Last-Modified` are revalidated with a
   * conditional request (the handler sees `If-None-Match` / `If-Modified-Since`); a 304
   * refreshes the stored one.
   * @default true
   */
  honorMaxAge?: boolean;
  /**
   * Heuristic freshness (RFC 9111 4.2.2), in origin-driven mode (`ttl: 0`) only: a response
   * with a heuristically cacheable status, a `Last-Modified` and no explicit freshness is
   * fresh for `fraction` of the time since it was last modified, at most `max` ms. `false`
   * turns it off.
   * @default { fraction: 0.1, max: 86_400_000 }
   */
  heuristic?: false | { fraction?: number; max?: number };
  /**
   * Targeted cache-control fields (RFC 9213) this cache obeys, most specific first: the
   * first one a response has (and that parses as a Structured Fields Dictionary) replaces
   * its `Cache-Control` for this cache. `[]` obeys `Cache-Control` only.
   * @default ["Cloudflare-CDN-Cache-Control", "CDN-Cache-Control"]
   */
  targetedFields?: readonly string[];
  /**
   * This cache's name in `Cache-Status` (an RFC 8941 token).
   * @default "edgecache"
   */
  name?: string;
  /**
   * Clock in ms, for `Age` and the `ttl` of `Cache-Status`; tests inject a fake one (the
   * same as the cache's).
   * @default Date.now
   */
  now?: () => number;
  /**
   * Receives the errors the middleware absorbs: a failed cache read or write (the request is
   * then served by the handler), an invalid key or tag. Never given cached values.
   * @default log a warning with the error's code and message
   */
  onError?: (error: unknown) => void;
}

/** What `cached` puts on `c.var` for the handlers after it. */
export interface CachedVariables {
  /** The cache of the `cache` option. */
  cache: Cache;
  /**
   * Adds tags to the response being stored (besides the `tags` option), for
   * `cache.invalidateTag`. Calls where nothing is stored (a hit, a bypass) are ignored.
   */
  cacheTag: (...tags: string[]) => void;
}

/**
 * The Hono environment `cached` provides: `new Hono<CachedEnv>()` (or intersect it with
 * your own) types `c.var.cache` and `c.var.cacheTag` everywhere; handlers registered after
 * `cached` on a route get them without it.
 */
export interface CachedEnv {
  /** What `cached()` sets on the context: `c.var.cachedRun`. */
  Variables: CachedVariables;
}

/**
 * A Hono middleware that caches whole responses in `options.cache` and replays them. On a
 * miss the rest of the chain runs inside `cache.getOrSet`, so concurrent misses of a
 * response run the handler once (across instances too with `lock`). Only GET and HEAD by
 * default; responses with `Cache-Control: no-store` or `private`, with `Set-Cookie`, with
 * `Vary: *`, or with a status not in `statuses` are never stored; requests with
 * `Authorization` or `Cookie` bypass the cache unless `vary` names them. Every response
 * through it carries a `Cache-Status` header (RFC 9211).
 *
 * @throws InvalidOptionError when an option is invalid (and, from the request, when a
 *   `cache` function returns no cache).
 * @example
 * ```ts
 * app.get("/posts/:id", cached({ cache: cache.namespace("http"), ttl: 30_000 }), (c) =>
 *   c.json(loadPost(c.req.param("id"))),
 * );
 * ```
 * @see docs/hono.md and docs/http-caching.md (shipped in the package)
 */
export function cached(options: CachedOptions): MiddlewareHandler<CachedEnv> {
  const settingsFor = resolve(options);
  const recent = new RecentLoads();
  return async function cached(c, next) {
    const settings = settingsFor(c);
    const { exchange, finish } = openExchange(settings, recent, c as CachedContext, next);
    try {
      await handle(exchange);
    } finally {
      // A background refresh of this request waits for its response to be handed over.
      finish();
    }
  };
}
