/**
 * `cacheAdmin()`: an HTTP admin API for edgecache caches, as a Hono sub-app: inspect, delete
 * and invalidate, stats as JSON and as Prometheus metrics, and a live stats page.
 *
 * @module
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { InvalidOptionError, isEdgeCacheError } from "../../errors.js";
import type { Cache } from "../../types.js";
import { MIN_TOKEN_LENGTH } from "../secret.js";
import { entryByUrlRoute, listKeysRoute } from "./entries.js";
import {
  ADMIN_SESSION_COOKIE,
  adminHeaders,
  clearSession,
  loginForm,
  nonceOf,
  requireCredentials,
  sameOriginPosts,
  setSession,
} from "./guard.js";
import {
  type AdminEnv,
  ERROR_STATUS,
  listBody,
  mountOf,
  mountPoint,
  pathSegment,
  problem,
  renderInspect,
  selectCache,
} from "./http.js";
import { PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from "./metrics.js";
import { statsPage } from "./page.js";
import { Credentials } from "./session.js";

/** The session cookie's name (defined beside the code that reads and writes it). */
export { ADMIN_SESSION_COOKIE };

/** Options of {@link cacheAdmin}. */
export interface CacheAdminOptions {
  /** The cache the admin addresses by default (when a request has no `?ns=`). */
  cache: Cache;
  /**
   * The admin token: every route wants it as `Authorization: Bearer <token>` (or the
   * session cookie that signing in with it gives a browser). At least 16 characters; make
   * it random (`openssl rand -base64 32`), not a word a guess could reach, and keep it in a
   * secret (`wrangler secret put EDGECACHE_ADMIN_TOKEN`), never in code. It is
   * compared in constant time and never logged or echoed.
   */
  token: string;
  /**
   * More caches the same admin can address, by id: `?ns=<id>` on any route selects one
   * (e.g. `{ scores: cache.namespace("scores") }`). Ids are 1-64 of letters, digits and
   * `_ . : -`. `GET /metrics` reports them all.
   * @default {}
   */
  caches?: Readonly<Record<string, Cache>>;
  /**
   * How long a browser session lasts after signing in on the stats page, in ms. Sessions
   * are stateless (an HMAC of the expiry, keyed by a PBKDF2 stretch of the token), so they
   * work on every instance. Signing out clears the browser's cookie but cannot revoke a copy
   * of it; changing the token ends every session at once.
   * @default 28_800_000 (8 hours)
   */
  sessionTtl?: number;
  /**
   * The clock sessions expire by, in ms.
   * @default Date.now
   */
  now?: () => number;
}

const DEFAULT_SESSION_TTL = 8 * 60 * 60 * 1000;
const MAX_SESSION_TTL = 30 * 24 * 60 * 60 * 1000;
const MAX_LOGIN_BYTES = 4096;
const CACHE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

const decoder = new TextDecoder();

const isCache = (value: unknown): value is Cache =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as Cache).stats === "function" &&
  typeof (value as Cache).inspect === "function" &&
  typeof (value as Cache).delete === "function";

/**
 * An HTTP admin API for edgecache, as a Hono sub-app to mount under a path of your choice.
 *
 * Every route needs the token, as `Authorization: Bearer <token>`; a browser that signed
 * in on the stats page may use its session cookie instead, for `GET` only (so a forged
 * cross-site request can change nothing). A missing or wrong credential gets `401` with
 * `WWW-Authenticate: Bearer` and no detail. `?ns=<id>` selects one of `caches` on any route
 * (`404 unknown_namespace` otherwise). Errors are JSON `{ "error": code, "message" }`:
 * `400 invalid_encoding | invalid_body | too_many | EC_INVALID_KEY`, `413 body_too_large`,
 * `503`/`504` when L2 fails.
 *
 * | route                  | does                                                                    |
 * | ---------------------- | ----------------------------------------------------------------------- |
 * | `GET /`                | the live stats page (HTML); without a session, `401` and a login form (the mount itself: `/_cache`, no trailing slash) |
 * | `POST /login`          | form field `token`: sets the session cookie, `303` to the page          |
 * | `POST /logout`         | clears the session cookie, `303` to the page                            |
 * | `GET /stats`           | `{ ns, namespace, time, stats, namespaces }`: `stats()` as JSON; `namespaces` lists every `?ns=` with its `traffic` (lookups and writes so far) |
 * | `GET /metrics`         | every cache's stats as Prometheus text (format 0.0.4)                   |
 * | `GET /keys`            | one page of keys: `?prefix=` (default all), `?limit=` (1-1000, default 100), `?cursor=` (from the last page): `{ ns, keys, cursor }`, `cursor` `""` once done; `400 EC_INVALID_OPTION` when the store cannot list |
 * | `GET /keys/:key`       | `inspect(key)`: `{ key, tier, version, ttl, expiresIn, stale, tags, negative, value, valueMeta? }`, or `404 not_found` |
 * | `GET /entries/by-url`  | the entry `cached()` keeps for a GET of `?url=`: its key made as the middleware makes it (`?key=url` or `path`, as its `key` option; `?vary=a,b`, its `vary` option; `?header=name:value`, repeatable, the request's headers), following the URL's `Vary` to the variant those headers select: `{ resource, key, ..., varyKey?, varies? }` (as `GET /keys/:key`), or `404 not_found` |
 * | `DELETE /keys/:key`    | `delete(key)`, `204`                                                    |
 * | `DELETE /keys`         | body `{ "keys": [...] }` (at most 1000): `deleteMany`, `204`            |
 * | `DELETE /tags/:tag`    | `invalidateTag(tag)`, `204`                                             |
 * | `DELETE /tags`         | body `{ "tags": [...] }` (at most 1000): `invalidateTags`, `204`        |
 *
 * `:key` and `:tag` are one path segment, percent-encoded (`encodeURIComponent`), decoded
 * exactly once: `a/b` is `/keys/a%2Fb`. (URL parsers resolve `.` and `..` segments, so
 * keys `.` and `..` can only be deleted through `DELETE /keys`.)
 *
 * The session cookie (`HttpOnly; SameSite=Strict`, `Secure` over https, `Path` = the
 * mount) holds an expiry and its HMAC keyed by a PBKDF2 stretch of the token, never the
 * token itself, and is written and read with Hono's cookie helpers. `/login` and a
 * cookie's `/logout` refuse cross-origin form posts (Hono's `csrf`). Every response carries
 * Hono's `secureHeaders` (a nonce'd CSP, `X-Frame-Options: DENY`, `nosniff`, ...) and
 * `Cache-Control: no-store`.
 *
 * @throws InvalidOptionError when `cache` is missing, `token` is shorter than 16
 *   characters, or `caches` or `sessionTtl` is malformed.
 * @example
 * ```ts
 * import { env } from "cloudflare:workers"; // or process.env elsewhere
 * import { Hono } from "hono";
 * import { fromEnv } from "edgecache";
 * import { cacheAdmin } from "edgecache/hono";
 *
 * // Neither does I/O nor makes random values until the first request.
 * const cache = fromEnv(env);
 * const app = new Hono();
 * app.route("/_cache", cacheAdmin({ cache, token: env.EDGECACHE_ADMIN_TOKEN }));
 * // curl -H "Authorization: Bearer $TOKEN" https://example.com/_cache/keys/user%3A1
 * ```
 * @see docs/hono.md (shipped in the package)
 */
export function cacheAdmin(options: CacheAdminOptions): Hono {
  if (typeof options !== "object" || options === null || !isCache(options.cache)) {
    throw new InvalidOptionError("cacheAdmin needs { cache, token }");
  }
  const { token } = options;
  if (token === undefined || token === null || token === "") {
    throw new InvalidOptionError(
      "cacheAdmin: token is missing: pass a random secret of at least " +
        `${MIN_TOKEN_LENGTH} characters, e.g. from EDGECACHE_ADMIN_TOKEN ` +
        "(`openssl rand -base64 24`; `npx wrangler secret put EDGECACHE_ADMIN_TOKEN` in a Worker)",
    );
  }
  if (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH) {
    throw new InvalidOptionError(
      `cacheAdmin: token must be at least ${MIN_TOKEN_LENGTH} characters`,
    );
  }
  const sessionTtl = options.sessionTtl ?? DEFAULT_SESSION_TTL;
  if (
    typeof sessionTtl !== "number" ||
    !Number.isFinite(sessionTtl) ||
    sessionTtl < 1000 ||
    sessionTtl > MAX_SESSION_TTL
  ) {
    throw new InvalidOptionError("cacheAdmin: sessionTtl must be from 1 s to 30 days, in ms");
  }
  if (options.now !== undefined && typeof options.now !== "function") {
    throw new InvalidOptionError("cacheAdmin: now must be a function returning ms");
  }
  const now = options.now ?? Date.now;
  const byId = new Map<string, Cache>([["", options.cache]]);
  if (options.caches !== undefined) {
    if (typeof options.caches !== "object" || options.caches === null) {
      throw new InvalidOptionError("cacheAdmin: caches must be a record of caches by id");
    }
    for (const [id, cache] of Object.entries(options.caches)) {
      if (!CACHE_ID.test(id)) {
        throw new InvalidOptionError(
          "cacheAdmin: cache ids must be 1-64 of letters, digits and _ . : -",
        );
      }
      if (!isCache(cache)) throw new InvalidOptionError(`cacheAdmin: caches.${id} is not a cache`);
      byId.set(id, cache);
    }
  }
  const credentials = new Credentials(token, sessionTtl, now);
  const namespaces = [...byId].map(([id, cache]) => ({ id, name: cache.name }));
  const target = selectCache(byId);

  const app = new Hono<AdminEnv>();

  app.onError((error, c) => {
    if (isEdgeCacheError(error)) {
      // Messages of edgecache errors carry no values or secrets.
      return c.json({ error: error.code, message: error.message }, ERROR_STATUS[error.code] ?? 500);
    }
    // Hono's csrf refuses a cross-origin form post by throwing a 403.
    if (error instanceof HTTPException && error.status === 403) {
      return problem(c, 403, "cross_origin", "cross-origin request refused");
    }
    return c.json({ error: "internal" }, 500);
  });

  app.use("*", mountPoint);
  app.use("*", adminHeaders());

  // The one route without a credential: it exchanges the token for a session.
  app.post("/login", sameOriginPosts, async function adminLogin(c) {
    const type = c.req.header("content-type") ?? "";
    const declared = Number(c.req.header("content-length") ?? 0);
    if (!type.startsWith("application/x-www-form-urlencoded") || declared > MAX_LOGIN_BYTES) {
      return problem(c, 400, "invalid_body", "post the form field token");
    }
    const bytes = await c.req.arrayBuffer();
    const presented =
      bytes.byteLength > MAX_LOGIN_BYTES
        ? ""
        : (new URLSearchParams(decoder.decode(bytes)).get("token") ?? "");
    if (!(await credentials.token(presented))) return loginForm(c, true);
    setSession(c, await credentials.mint(), Math.floor(credentials.ttl / 1000));
    return c.redirect(mountOf(c).raw || "/", 303);
  });

  app.use("*", requireCredentials(credentials));

  app.get("/", function adminPage(c) {
    return c.html(statsPage({ base: mountOf(c).raw, nonce: nonceOf(c) }), 200);
  });

  app.post("/logout", function adminLogout(c) {
    clearSession(c);
    return c.redirect(mountOf(c).raw || "/", 303);
  });

  app.get("/stats", target, function adminStats(c) {
    const { id, cache } = c.var.target;
    // Each namespace's traffic (lookups and writes), so the page can open on a busy one.
    const listed = namespaces.map((n) => {
      const s = byId.get(n.id)!.stats();
      return { ...n, traffic: s.l1Hits + s.l1Misses + s.sets + s.deletes };
    });
    const stats = cache.stats();
    return c.json({ ns: id, namespace: cache.name, time: now(), stats, namespaces: listed });
  });

  app.get("/metrics", function adminMetrics(c) {
    // One sample set per cache object; a cache registered twice would repeat its label set.
    const seen = new Set<string>();
    const entries = [];
    for (const cache of new Set(byId.values())) {
      if (seen.has(cache.name)) continue;
      seen.add(cache.name);
      entries.push({ namespace: cache.name, stats: cache.stats() });
    }
    return c.body(prometheusMetrics(entries), 200, { "content-type": PROMETHEUS_CONTENT_TYPE });
  });

  app.get("/keys", target, function adminListKeys(c) {
    return listKeysRoute(c, c.var.target.id, c.var.target.cache);
  });

  app.get("/entries/by-url", target, function adminEntryByUrl(c) {
    return entryByUrlRoute(c, c.var.target.cache);
  });

  app.get("/keys/:key", target, pathSegment, async function adminInspect(c) {
    const result = await c.var.target.cache.inspect(c.var.segment);
    if (result === undefined) return problem(c, 404, "not_found", "no entry under that key");
    return c.json(renderInspect(result));
  });

  app.delete("/keys/:key", target, pathSegment, async function adminDelete(c) {
    await c.var.target.cache.delete(c.var.segment);
    return c.body(null, 204);
  });

  app.delete("/keys", target, listBody("keys"), async function adminDeleteMany(c) {
    await c.var.target.cache.deleteMany(c.var.list);
    return c.body(null, 204);
  });

  app.delete("/tags/:tag", target, pathSegment, async function adminInvalidate(c) {
    await c.var.target.cache.invalidateTag(c.var.segment);
    return c.body(null, 204);
  });

  app.delete("/tags", target, listBody("tags"), async function adminInvalidateMany(c) {
    await c.var.target.cache.invalidateTags(c.var.list);
    return c.body(null, 204);
  });

  // Its handlers' variables are the admin's own business: mounted, it is a plain sub-app.
  return app as unknown as Hono;
}
