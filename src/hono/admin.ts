/**
 * `cacheAdmin()`: an HTTP admin API for edgecache caches, as a Hono sub-app: inspect, delete
 * and invalidate, stats as JSON and as Prometheus metrics, and a live stats page.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { basePath } from "hono/route";
import { type SuperJSONValue, serialize } from "superjson";
import { type EdgeCacheErrorCode, InvalidOptionError, isEdgeCacheError } from "../errors.js";
import type { Cache, InspectResult } from "../types.js";
import { PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from "./metrics.js";
import { loginPage, pageCsp, statsPage } from "./page.js";
import { bearerMatches, MIN_TOKEN_LENGTH, SecretCheck, tokenCheck } from "./secret.js";

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

/** The session cookie's name. */
export const ADMIN_SESSION_COOKIE = "edgecache_admin";

const DEFAULT_SESSION_TTL = 8 * 60 * 60 * 1000;
const MAX_SESSION_TTL = 30 * 24 * 60 * 60 * 1000;
/** Largest JSON body read (`DELETE /keys`, `DELETE /tags`), and most items in one. */
const MAX_BODY_BYTES = 1 << 20;
const MAX_ITEMS = 1000;
const MAX_LOGIN_BYTES = 4096;
const CACHE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const SAFE_METHODS = new Set(["GET", "HEAD"]);
const SESSION = /^([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const isCache = (value: unknown): value is Cache =>
  typeof value === "object" &&
  value !== null &&
  typeof (value as Cache).stats === "function" &&
  typeof (value as Cache).inspect === "function" &&
  typeof (value as Cache).delete === "function";

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * PBKDF2 rounds that stretch the token into the session MAC key. A session cookie is an
 * HMAC over a known message, so whoever holds one could test guesses of the token against
 * it offline; stretching makes each guess cost this many HMACs. It runs once per admin
 * instance (about 10 ms), when a session is first minted or checked.
 */
const SESSION_KEY_ROUNDS = 20_000;

async function sessionKey(token: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", encoder.encode(token), "PBKDF2", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: encoder.encode("edgecache-admin-session/v2"),
      iterations: SESSION_KEY_ROUNDS,
    },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

/**
 * Token and session checks. Both compare HMAC digests under random keys (`SecretCheck`), so
 * the comparison takes the same time whatever the inputs' lengths and contents.
 */
class Credentials {
  readonly #token: string;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #check = new SecretCheck();
  /** Whether a presented string is the token. */
  readonly token: (presented: string) => Promise<boolean>;
  // Made on first use, not at construction: a Worker may build the admin at module scope.
  #sessionKey: Promise<CryptoKey> | undefined;

  constructor(token: string, ttl: number, now: () => number) {
    this.#token = token;
    this.#ttl = ttl;
    this.#now = now;
    this.token = tokenCheck(token);
  }

  get ttl(): number {
    return this.#ttl;
  }

  async #mac(expires: number): Promise<string> {
    if (this.#sessionKey === undefined) {
      const made = sessionKey(this.#token);
      this.#sessionKey = made;
      // A failure is not kept: the next session check derives the key again.
      made.catch(() => {
        if (this.#sessionKey === made) this.#sessionKey = undefined;
      });
    }
    const key = await this.#sessionKey;
    const mac = await crypto.subtle.sign(
      "HMAC",
      key,
      encoder.encode(`edgecache-admin-session/v2/${expires}`),
    );
    return base64url(new Uint8Array(mac));
  }

  /** A new session value: its expiry and an HMAC of it (keyed by the stretched token). */
  async mint(): Promise<string> {
    const expires = this.#now() + this.#ttl;
    return `${expires}.${await this.#mac(expires)}`;
  }

  /** Whether `value` is a session this token minted that has not expired. */
  async session(value: string): Promise<boolean> {
    const match = SESSION.exec(value);
    if (match === null) return false;
    const expires = Number(match[1]);
    const now = this.#now();
    // A session expiring further out than a new one would was not made with this ttl.
    if (!(expires > now) || expires > now + this.#ttl + 60_000) return false;
    return this.#check.equal(value, this.#check.digest(`${expires}.${await this.#mac(expires)}`));
  }
}

/** How a request authenticated. */
type Auth = "bearer" | "cookie" | "none" | "invalid";

async function authenticate(c: Context, credentials: Credentials): Promise<Auth> {
  const header = c.req.header("authorization");
  if (header !== undefined) {
    return (await bearerMatches(header, credentials.token)) ? "bearer" : "invalid";
  }
  const sessions = cookieValues(c.req.header("cookie"), ADMIN_SESSION_COOKIE);
  for (const value of sessions) {
    if (await credentials.session(value)) return "cookie";
  }
  return sessions.length > 0 ? "invalid" : "none";
}

/** The values of every cookie named `name` (a browser sends the most specific path first). */
function cookieValues(header: string | undefined, name: string): string[] {
  if (header === undefined) return [];
  const out: string[] = [];
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    out.push(part.slice(eq + 1).trim());
    if (out.length === 4) break;
  }
  return out;
}

/**
 * Whether a browser sent this request from the admin's own origin. Requests that carry
 * neither `Sec-Fetch-Site` nor `Origin` come from non-browser clients, which cannot be
 * forged into sending a victim's cookie.
 */
function sameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === new URL(c.req.url).host;
  } catch {
    // "null" (sandboxed frames, redirects across origins) and garbage.
    return false;
  }
}

/** The request path as it went over the wire (percent-encoding intact). */
const rawPath = (c: Context) => new URL(c.req.url).pathname;

/**
 * Where the admin is mounted, as the browser addresses it: the raw path's first segments,
 * as many as the routed mount path has (routing never decodes `%2F`, so segments line up).
 */
function mountOf(c: Context): { path: string; raw: string } {
  const path = basePath(c).replace(/\/+$/, "");
  if (path === "") return { path, raw: "" };
  return { path, raw: rawPath(c).split("/").slice(0, path.split("/").length).join("/") };
}

const isHttps = (c: Context) =>
  new URL(c.req.url).protocol === "https:" ||
  c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";

/** Characters of a path that can go into a cookie's `Path` as they are. */
const COOKIE_PATH = /^[A-Za-z0-9\-._~!$&'()*+=:@%/]*$/;

function sessionCookie(c: Context, value: string, maxAge: number): string {
  const raw = mountOf(c).raw;
  // A mount with a parameter could put `;` into the path: never into the cookie's attributes.
  const path = raw !== "" && COOKIE_PATH.test(raw) ? raw : "/";
  return (
    `${ADMIN_SESSION_COOKIE}=${value}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict` +
    (isHttps(c) ? "; Secure" : "")
  );
}

function nonce(): string {
  return base64url(crypto.getRandomValues(new Uint8Array(16)));
}

const problem = (c: Context, status: 400 | 403 | 404 | 413, error: string, message: string) =>
  c.json({ error, message }, status);

function unauthorized(c: Context): Response {
  c.header("www-authenticate", "Bearer");
  return c.json({ error: "unauthorized" }, 401);
}

function htmlPage(c: Context, body: string, nonceValue: string, status: 200 | 401): Response {
  c.header("content-security-policy", pageCsp(nonceValue));
  if (status === 401) c.header("www-authenticate", "Bearer");
  return c.html(body, status);
}

/** The key or tag in the last path segment, percent-decoded exactly once. */
function lastSegment(c: Context): string | undefined {
  const path = rawPath(c);
  try {
    return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    return undefined;
  }
}

/** `{ [field]: string[] }` from a JSON body of at most 1 MiB, or an error response. */
async function readList(c: Context, field: "keys" | "tags"): Promise<string[] | Response> {
  const declared = Number(c.req.header("content-length") ?? 0);
  if (declared > MAX_BODY_BYTES) {
    return problem(c, 413, "body_too_large", "the body is over 1 MiB");
  }
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > MAX_BODY_BYTES) {
    return problem(c, 413, "body_too_large", "the body is over 1 MiB");
  }
  const text = decoder.decode(bytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return problem(c, 400, "invalid_body", `the body must be JSON: { "${field}": [...] }`);
  }
  const list = (body as Record<string, unknown> | null)?.[field];
  if (!Array.isArray(list) || !list.every((item) => typeof item === "string")) {
    return problem(c, 400, "invalid_body", `"${field}" must be an array of strings`);
  }
  if (list.length > MAX_ITEMS) {
    return problem(c, 400, "too_many", `at most ${MAX_ITEMS} ${field} per request`);
  }
  return list as string[];
}

/**
 * An inspect result as JSON. The value goes through superjson, so Dates, Maps, Sets,
 * BigInts and cycles come out as JSON plus a `valueMeta` that says how to revive them.
 */
function renderInspect(result: InspectResult): Record<string, unknown> {
  let value: unknown = null;
  let meta: unknown;
  if (result.value !== undefined) {
    const out = serialize(result.value as SuperJSONValue);
    value = out.json ?? null;
    meta = out.meta;
  }
  return {
    key: result.key,
    tier: result.tier,
    version: result.version,
    ttl: result.ttl,
    expiresIn: result.expiresIn,
    stale: result.stale,
    tags: result.tags,
    negative: result.negative ?? null,
    value,
    ...(meta === undefined ? {} : { valueMeta: meta }),
  };
}

const ERROR_STATUS: Partial<Record<EdgeCacheErrorCode, 400 | 503 | 504>> = {
  EC_INVALID_KEY: 400,
  EC_INVALID_OPTION: 400,
  EC_STORE_UNAVAILABLE: 503,
  EC_STORE_AUTH: 503,
  EC_STORE_ERROR: 503,
  EC_CIRCUIT_OPEN: 503,
  EC_CLOSED: 503,
  EC_STORE_TIMEOUT: 504,
};

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
 * | `GET /stats`           | `{ ns, namespace, time, stats, namespaces }`: `stats()` as JSON         |
 * | `GET /metrics`         | every cache's stats as Prometheus text (format 0.0.4)                   |
 * | `GET /keys/:key`       | `inspect(key)`: `{ key, tier, version, ttl, expiresIn, stale, tags, negative, value, valueMeta? }`, or `404 not_found` |
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
 * token itself.
 * `/login` and `/logout` refuse cross-origin posts.
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
 */
export function cacheAdmin(options: CacheAdminOptions): Hono {
  if (typeof options !== "object" || options === null || !isCache(options.cache)) {
    throw new InvalidOptionError("cacheAdmin needs { cache, token }");
  }
  const { token } = options;
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

  /** The cache `?ns=` selects, or a 404 answer. */
  const selected = (c: Context): { id: string; cache: Cache } | Response => {
    const id = c.req.query("ns") ?? "";
    const cache = byId.get(id);
    return cache === undefined
      ? problem(c, 404, "unknown_namespace", "no cache with that ns")
      : { id, cache };
  };

  const app = new Hono();

  app.onError((error, c) => {
    if (isEdgeCacheError(error)) {
      // Messages of edgecache errors carry no values or secrets.
      return c.json({ error: error.code, message: error.message }, ERROR_STATUS[error.code] ?? 500);
    }
    return c.json({ error: "internal" }, 500);
  });

  app.use("*", async function adminHeaders(c, next) {
    c.header("cache-control", "no-store");
    c.header("x-content-type-options", "nosniff");
    // Not no-referrer: with it, browsers send `Origin: null` on form posts, which /login refuses.
    c.header("referrer-policy", "same-origin");
    c.header("x-frame-options", "DENY");
    await next();
  });

  // The one route without a credential: it exchanges the token for a session.
  app.post("/login", async function adminLogin(c) {
    if (!sameOrigin(c)) return problem(c, 403, "cross_origin", "cross-origin sign-in refused");
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
    const action = `${mountOf(c).raw}/login`;
    if (!(await credentials.token(presented))) {
      const value = nonce();
      return htmlPage(c, loginPage({ action, nonce: value, failed: true }), value, 401);
    }
    c.header(
      "set-cookie",
      sessionCookie(c, await credentials.mint(), Math.floor(credentials.ttl / 1000)),
    );
    return c.redirect(mountOf(c).raw || "/", 303);
  });

  app.use("*", async function adminAuth(c, next) {
    const auth = await authenticate(c, credentials);
    if (auth === "bearer") return next();
    const logout = c.req.method === "POST" && c.req.path === `${mountOf(c).path}/logout`;
    if (auth === "cookie") {
      if (SAFE_METHODS.has(c.req.method) || (logout && sameOrigin(c))) return next();
      // A cookie rides along on any request a browser sends: it authorizes reading only.
      return problem(
        c,
        403,
        "bearer_required",
        "changes need the Authorization header, not the session cookie",
      );
    }
    if (c.req.method === "GET" && c.req.path === (mountOf(c).path || "/")) {
      const value = nonce();
      const action = `${mountOf(c).raw}/login`;
      return htmlPage(c, loginPage({ action, nonce: value, failed: false }), value, 401);
    }
    return unauthorized(c);
  });

  app.get("/", function adminPage(c) {
    const value = nonce();
    return htmlPage(c, statsPage({ base: mountOf(c).raw, nonce: value }), value, 200);
  });

  app.post("/logout", function adminLogout(c) {
    c.header("set-cookie", sessionCookie(c, "", 0));
    return c.redirect(mountOf(c).raw || "/", 303);
  });

  app.get("/stats", function adminStats(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    return c.json({
      ns: target.id,
      namespace: target.cache.name,
      time: now(),
      stats: target.cache.stats(),
      namespaces,
    });
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

  app.get("/keys/:key", async function adminInspect(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    const key = lastSegment(c);
    if (key === undefined) return problem(c, 400, "invalid_encoding", "bad percent-encoding");
    const result = await target.cache.inspect(key);
    if (result === undefined) return problem(c, 404, "not_found", "no entry under that key");
    return c.json(renderInspect(result));
  });

  app.delete("/keys/:key", async function adminDelete(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    const key = lastSegment(c);
    if (key === undefined) return problem(c, 400, "invalid_encoding", "bad percent-encoding");
    await target.cache.delete(key);
    return c.body(null, 204);
  });

  app.delete("/keys", async function adminDeleteMany(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    const keys = await readList(c, "keys");
    if (keys instanceof Response) return keys;
    await target.cache.deleteMany(keys);
    return c.body(null, 204);
  });

  app.delete("/tags/:tag", async function adminInvalidate(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    const tag = lastSegment(c);
    if (tag === undefined) return problem(c, 400, "invalid_encoding", "bad percent-encoding");
    await target.cache.invalidateTag(tag);
    return c.body(null, 204);
  });

  app.delete("/tags", async function adminInvalidateMany(c) {
    const target = selected(c);
    if (target instanceof Response) return target;
    const tags = await readList(c, "tags");
    if (tags instanceof Response) return tags;
    await target.cache.invalidateTags(tags);
    return c.body(null, 204);
  });

  return app;
}
