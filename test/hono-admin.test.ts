/**
 * The admin API (src/hono/admin.ts) mounted in a Hono app, over real caches on the REST
 * bridge: authentication on every route (bearer token, session cookie, CSRF), inspect,
 * delete, invalidate, namespaces, stats and the Prometheus exposition.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { deserialize } from "superjson";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createCache } from "../src/cache.js";
import { InvalidOptionError } from "../src/errors.js";
import { ADMIN_SESSION_COOKIE, cacheAdmin } from "../src/hono/admin/index.js";
import { escapeLabelValue, prometheusMetrics } from "../src/hono/admin/metrics.js";
import type { Cache, CacheStats } from "../src/index.js";
import { upstashStore } from "../src/stores/upstash.js";
import { fakeClock } from "./helpers.js";

const url = inject("bridgeUrl");
const bridgeToken = inject("bridgeToken");
const TOKEN = `admin-${randomBytes(18).toString("base64url")}`;
const ORIGIN = "http://admin.test";

const store = upstashStore({ url, token: bridgeToken });
const namespace = `admin.${crypto.randomUUID()}`;
let cache: Cache;
let other: Cache;
let scores: Cache;
let app: Hono;

const call = (path: string, init: RequestInit = {}, target: Hono = app) =>
  target.fetch(new Request(`${ORIGIN}${path}`, init));
const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });
const withBearer = (init: RequestInit = {}, token = TOKEN): RequestInit => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), ...bearer(token) },
});
const jsonBody = (body: unknown): RequestInit => ({
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});
const key = (k: string) => `/_cache/keys/${encodeURIComponent(k)}`;

function loginRequest(token: string, headers: Record<string, string> = {}, origin = ORIGIN) {
  return new Request(`${origin}/_cache/login`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin,
      "sec-fetch-site": "same-origin",
      ...headers,
    },
    body: new URLSearchParams({ token }).toString(),
  });
}

/** The attributes of a Set-Cookie value (what follows `name=value`). */
const cookieAttributes = (header: string) => header.split("; ").slice(1);

/** Signs in through the form and returns the `Cookie` header value to send back. */
async function session(target: Hono = app, token = TOKEN): Promise<string> {
  const res = await target.fetch(loginRequest(token));
  expect(res.status).toBe(303);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

beforeAll(() => {
  cache = createCache({ store, namespace });
  other = createCache({ store, namespace: `${namespace}.other`, sync: false });
  scores = cache.namespace("scores");
  app = new Hono();
  app.get("/", (c) => c.text("the app"));
  app.route("/_cache", cacheAdmin({ cache, token: TOKEN, caches: { scores, other } }));
});

afterAll(async () => {
  await cache.close();
  await other.close();
});

describe("construction", () => {
  it("refuses a missing or short token, and never puts the token in the message", () => {
    const short = "0123456789abcde"; // 15 characters
    for (const token of [undefined, "", short, 1234567890123456]) {
      let error: unknown;
      try {
        cacheAdmin({ cache, token: token as string });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as Error).message).not.toContain(short);
    }
    expect(() => cacheAdmin({ cache, token: `${short}f` })).not.toThrow();
  });

  it("refuses a missing cache, bad cache ids and a bad sessionTtl", () => {
    expect(() => cacheAdmin({ token: TOKEN } as never)).toThrow(InvalidOptionError);
    expect(() => cacheAdmin({ cache, token: TOKEN, caches: { "bad id": scores } })).toThrow(
      InvalidOptionError,
    );
    expect(() => cacheAdmin({ cache, token: TOKEN, caches: { x: {} as Cache } })).toThrow(
      InvalidOptionError,
    );
    expect(() => cacheAdmin({ cache, token: TOKEN, sessionTtl: 0 })).toThrow(InvalidOptionError);
  });
});

/** Every route, with a request that succeeds when authorized. */
const ROUTES: ReadonlyArray<{
  name: string;
  method: string;
  path: string;
  init?: RequestInit;
  ok: number;
}> = [
  { name: "page", method: "GET", path: "/_cache", ok: 200 },
  { name: "stats", method: "GET", path: "/_cache/stats", ok: 200 },
  { name: "metrics", method: "GET", path: "/_cache/metrics", ok: 200 },
  { name: "inspect", method: "GET", path: "/_cache/keys/auth-probe", ok: 404 },
  { name: "delete", method: "DELETE", path: "/_cache/keys/auth-probe", ok: 204 },
  {
    name: "delete many",
    method: "DELETE",
    path: "/_cache/keys",
    init: jsonBody({ keys: ["auth-probe"] }),
    ok: 204,
  },
  { name: "invalidate", method: "DELETE", path: "/_cache/tags/auth-probe", ok: 204 },
  {
    name: "invalidate many",
    method: "DELETE",
    path: "/_cache/tags",
    init: jsonBody({ tags: ["auth-probe"] }),
    ok: 204,
  },
  { name: "logout", method: "POST", path: "/_cache/logout", ok: 303 },
  { name: "an unknown route", method: "GET", path: "/_cache/nope", ok: 404 },
];

describe("authentication", () => {
  const wrong = [
    ["no credential", {}],
    [
      "a wrong token of the same length",
      bearer(TOKEN.replace(/.$/, (c) => (c === "x" ? "y" : "x"))),
    ],
    ["a shorter token", bearer(TOKEN.slice(0, -1))],
    ["a longer token", bearer(`${TOKEN}x`)],
    ["an empty bearer", { authorization: "Bearer " }],
    ["another scheme", { authorization: `Basic ${btoa(`admin:${TOKEN}`)}` }],
    [
      "a forged session cookie",
      { cookie: `${ADMIN_SESSION_COOKIE}=9999999999999.${"A".repeat(43)}` },
    ],
  ] as const;

  for (const route of ROUTES) {
    it(`${route.name}: ${route.method} ${route.path} wants the token`, async () => {
      for (const [, headers] of wrong) {
        const res = await call(route.path, {
          ...route.init,
          method: route.method,
          headers: { ...(route.init?.headers as Record<string, string>), ...headers },
        });
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe("Bearer");
        const body = await res.text();
        expect(body).not.toContain(TOKEN);
        if (route.name === "page") {
          // The page answers with the login form, and nothing about the cache.
          expect(body).toContain('name="token"');
          expect(body).not.toContain("data-stat");
          expect(body).not.toContain(namespace);
        } else {
          expect(JSON.parse(body)).toEqual({ error: "unauthorized" });
        }
      }
      const res = await call(route.path, withBearer({ ...route.init, method: route.method }));
      expect(res.status).toBe(route.ok);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    });
  }

  it("leaves the rest of the app alone", async () => {
    const res = await call("/");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("the app");
  });

  it("accepts the Bearer scheme in any case", async () => {
    const res = await call("/_cache/stats", { headers: { authorization: `bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
  });

  it("refuses a wrong bearer even next to a valid session cookie", async () => {
    const cookie = await session();
    const res = await call("/_cache/stats", { headers: { cookie, ...bearer(`${TOKEN}x`) } });
    expect(res.status).toBe(401);
  });
});

describe("browser sessions", () => {
  it("signs in with the form: an HttpOnly, SameSite=Strict cookie for the mount path, not the token", async () => {
    const res = await app.fetch(loginRequest(TOKEN));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/_cache");
    const cookie = res.headers.get("set-cookie")!;
    expect(cookie).toMatch(new RegExp(`^${ADMIN_SESSION_COOKIE}=[0-9]+\\.[A-Za-z0-9_-]{43}; `));
    expect(cookie).toContain("; Path=/_cache;");
    expect(cookie).toContain("; HttpOnly");
    expect(cookie).toContain("; SameSite=Strict");
    expect(cookie).toMatch(/; Max-Age=28800;/);
    expect(cookie).not.toContain("Secure");
    expect(cookie).not.toContain(TOKEN);
  });

  it("makes a cookie no cheap oracle for the token: its MAC is not keyed by the token itself", async () => {
    const value = (await session()).split("=")[1]!;
    const [expires, mac] = value.split(".") as [string, string];
    const enc = new TextEncoder();
    const direct = await crypto.subtle.importKey(
      "raw",
      enc.encode(TOKEN),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    // What an offline guesser would test each candidate token with, for any message spelling.
    for (const message of [
      expires,
      `edgecache-admin-session/v1/${expires}`,
      `edgecache-admin-session/v2/${expires}`,
    ]) {
      const guess = new Uint8Array(await crypto.subtle.sign("HMAC", direct, enc.encode(message)));
      const b64 = btoa(String.fromCharCode(...guess))
        .replace(/\+/g, "-")
        .replace(/\//g, "_")
        .replace(/=+$/, "");
      expect(b64).not.toBe(mac);
    }
  });

  it("marks the cookie Secure over https", async () => {
    const res = await app.fetch(loginRequest(TOKEN, {}, "https://admin.test"));
    expect(res.status).toBe(303);
    expect(cookieAttributes(res.headers.get("set-cookie")!)).toContain("Secure");
  });

  it("answers a wrong token with the login form again", async () => {
    for (const token of ["", "nope", `${TOKEN}x`]) {
      const res = await app.fetch(loginRequest(token));
      expect(res.status).toBe(401);
      expect(res.headers.get("set-cookie")).toBeNull();
      const html = await res.text();
      expect(html).toContain("That token was not accepted.");
      expect(html).not.toContain(TOKEN);
    }
  });

  it("refuses a cross-site sign-in, and a body that is not the form", async () => {
    const evil = await app.fetch(loginRequest(TOKEN, { origin: "http://evil.test" }));
    expect(evil.status).toBe(403);
    expect(evil.headers.get("set-cookie")).toBeNull();
    const site = await app.fetch(loginRequest(TOKEN, { "sec-fetch-site": "cross-site" }));
    expect(site.status).toBe(403);
    const json = await call("/_cache/login", {
      method: "POST",
      ...jsonBody({ token: TOKEN }),
    });
    expect(json.status).toBe(400);
    expect(await json.json()).toMatchObject({ error: "invalid_body" });
  });

  it("lets the cookie read: the page, stats, metrics, inspect", async () => {
    const cookie = await session();
    for (const path of ["/_cache", "/_cache/stats", "/_cache/metrics", "/_cache/keys/absent"]) {
      const res = await call(path, { headers: { cookie } });
      expect(res.status, path).toBe(path.endsWith("absent") ? 404 : 200);
    }
  });

  it("serves the page under a strict CSP whose nonce is on its only script and style", async () => {
    const cookie = await session();
    const res = await call("/_cache", { headers: { cookie } });
    const csp = res.headers.get("content-security-policy")!;
    const nonce = /script-src 'nonce-([A-Za-z0-9_-]+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).toContain(`<script nonce="${nonce}">`);
    expect(html).toContain(`<style nonce="${nonce}">`);
    expect(html).not.toMatch(/src="http|href="http/);
    expect(html).toContain('data-base="/_cache"');
    // A new nonce per response.
    const again = await call("/_cache", { headers: { cookie } });
    expect(again.headers.get("content-security-policy")).not.toBe(csp);
  });

  it("does not let the cookie change anything (CSRF): deletes and invalidations need the bearer", async () => {
    const cookie = await session();
    await cache.set("csrf-target", "kept", { tags: ["csrf-tag"] });
    for (const route of ROUTES.filter((r) => r.method === "DELETE")) {
      const path = route.path
        .replace("auth-probe", "csrf-target")
        .replace(/tags\/csrf-target/, "tags/csrf-tag");
      const res = await call(path, {
        ...route.init,
        method: "DELETE",
        headers: { ...(route.init?.headers as Record<string, string>), cookie, origin: ORIGIN },
      });
      expect(res.status, path).toBe(403);
      expect(await res.json()).toMatchObject({ error: "bearer_required" });
    }
    const fresh = createCache({ store, namespace, local: false });
    expect(await fresh.get("csrf-target")).toBe("kept");
    await fresh.close();
  });

  it("logs out same-origin only, clearing the cookie", async () => {
    const cookie = await session();
    const evil = await call("/_cache/logout", {
      method: "POST",
      headers: { cookie, origin: "http://evil.test" },
    });
    expect(evil.status).toBe(403);
    const res = await call("/_cache/logout", {
      method: "POST",
      headers: { cookie, origin: ORIGIN, "sec-fetch-site": "same-origin" },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/_cache");
    // Exactly these attributes, in any order (the order carries no meaning).
    const cleared = res.headers.get("set-cookie")!;
    expect(cleared.startsWith(`${ADMIN_SESSION_COOKIE}=; `)).toBe(true);
    expect(cookieAttributes(cleared).sort()).toEqual(
      ["HttpOnly", "Max-Age=0", "Path=/_cache", "SameSite=Strict"].sort(),
    );
  });

  it("expires sessions, and a session of another token is worth nothing", async () => {
    const clock = fakeClock();
    const timed = new Hono();
    timed.route("/_cache", cacheAdmin({ cache, token: TOKEN, sessionTtl: 60_000, now: clock.now }));
    const cookie = await session(timed);
    expect((await call("/_cache/stats", { headers: { cookie } }, timed)).status).toBe(200);
    clock.advance(60_001);
    expect((await call("/_cache/stats", { headers: { cookie } }, timed)).status).toBe(401);

    // Sessions are stateless: another admin with the same token (another instance) accepts
    // them, one with another token does not.
    const mine = await session();
    const twin = new Hono().route("/_cache", cacheAdmin({ cache, token: TOKEN }));
    expect((await call("/_cache/stats", { headers: { cookie: mine } }, twin)).status).toBe(200);
    const stranger = new Hono().route("/_cache", cacheAdmin({ cache, token: `${TOKEN}-other` }));
    expect((await call("/_cache/stats", { headers: { cookie: mine } }, stranger)).status).toBe(401);
  });

  it("refuses a tampered session", async () => {
    const cookie = await session();
    const [name, value] = cookie.split("=") as [string, string];
    const [expires, mac] = value.split(".") as [string, string];
    const tampered = [
      `${name}=${Number(expires) + 1000}.${mac}`,
      `${name}=${expires}.${mac.slice(0, -1)}${mac.endsWith("A") ? "B" : "A"}`,
      `${name}=${expires}`,
      `${name}=${TOKEN}`,
    ];
    for (const c of tampered) {
      expect((await call("/_cache/stats", { headers: { cookie: c } })).status).toBe(401);
    }
  });
});

describe("inspect", () => {
  it("shows value, version, TTL left, tier and tags; Dates, Maps and BigInts survive as JSON", async () => {
    const value = {
      born: new Date(Date.UTC(1815, 11, 10)),
      roles: new Map([["admin", true]]),
      big: 12345678901234567890n,
      tags: new Set(["a"]),
    };
    await cache.set("user:1", value, { ttl: 30_000, tags: ["users", "team/α"] });
    const res = await call(key("user:1"), withBearer());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = await res.json();
    expect(body).toMatchObject({
      key: "user:1",
      tier: "l1",
      stale: false,
      negative: null,
      tags: ["users", "team/α"],
    });
    expect(body.version).toBeGreaterThan(0);
    expect(body.ttl).toBeGreaterThan(25_000);
    expect(body.ttl).toBeLessThanOrEqual(30_000);
    expect(body.value.born).toBe("1815-12-10T00:00:00.000Z");
    expect(body.value.big).toBe("12345678901234567890");
    expect(deserialize({ json: body.value, meta: body.valueMeta })).toEqual(value);
  });

  it("reports L2 when this instance's L1 does not hold the key", async () => {
    const writer = createCache({ store, namespace });
    await writer.set("from-elsewhere", [1, 2, 3]);
    await writer.close();
    const body = await (await call(key("from-elsewhere"), withBearer())).json();
    expect(body).toMatchObject({ key: "from-elsewhere", tier: "l2", value: [1, 2, 3] });
  });

  it("answers 404 for an absent key", async () => {
    const res = await call(key("never-written"), withBearer());
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: "not_found" });
  });

  it("decodes keys exactly once: /, %, unicode, ?, #, and escapes that look like escapes", async () => {
    const keys = ["a/b", "a%2Fb", "100%", "%25", "é ü 🚀", "q?x=1#frag", "a+b", "~!*()'", "..."];
    await cache.setMany(keys.map((k, i) => [k, i] as const));
    for (const [i, k] of keys.entries()) {
      const res = await call(key(k), withBearer());
      expect(res.status, k).toBe(200);
      expect(await res.json(), k).toMatchObject({ key: k, value: i });
    }
    const res = await call(`/_cache/keys/${encodeURIComponent("a/b")}`, {
      method: "DELETE",
      headers: bearer(),
    });
    expect(res.status).toBe(204);
    expect(await cache.get("a/b")).toBeUndefined();
    expect(await cache.get("a%2Fb")).toBe(1);
  });

  it("refuses bad percent-encoding and invalid keys with 400 and a code", async () => {
    const bad = await call("/_cache/keys/%E0%A4%A", withBearer());
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid_encoding" });
    const reserved = await call(key("\u0000tag"), withBearer());
    expect(reserved.status).toBe(400);
    expect(await reserved.json()).toMatchObject({ error: "EC_INVALID_KEY" });
    const long = await call(key("k".repeat(2000)), withBearer());
    expect(long.status).toBe(400);
    expect(await long.json()).toMatchObject({ error: "EC_INVALID_KEY" });
  });

  it("answers 400, never 500, for keys and tags with lone surrogates, which would alias U+FFFD", async () => {
    await cache.set("\uFFFD", "replacement", { tags: ["\uFFFD"] });
    // A lone surrogate percent-encoded as if it were UTF-8 is not UTF-8: bad encoding.
    for (const [method, path] of [
      ["GET", "/_cache/keys/%ED%A0%80"],
      ["DELETE", "/_cache/keys/%ED%A0%80"],
      ["DELETE", "/_cache/keys/a%ED%B0%80b"],
      ["DELETE", "/_cache/tags/%ED%A0%80"],
    ] as const) {
      const res = await call(path, withBearer({ method }));
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(await res.json()).toMatchObject({ error: "invalid_encoding" });
    }
    // JSON bodies can carry them (`"\ud800"`): the cache refuses them with a typed error.
    const keys = await call(
      "/_cache/keys",
      withBearer({ method: "DELETE", ...jsonBody({ keys: ["ok", "\uD800"] }) }),
    );
    expect(keys.status).toBe(400);
    expect(await keys.json()).toEqual({
      error: "EC_INVALID_KEY",
      message: "keys must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
    });
    const tags = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: ["\uDC00"] }) }),
    );
    expect(tags.status).toBe(400);
    expect(await tags.json()).toMatchObject({ error: "EC_INVALID_OPTION" });
    const ns = await call("/_cache/keys/k?ns=%ED%A0%80", withBearer());
    expect(ns.status).toBe(404);
    expect(await ns.json()).toMatchObject({ error: "unknown_namespace" });
    // The U+FFFD entry and its tag are untouched.
    const res = await call(key("\uFFFD"), withBearer());
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ key: "\uFFFD", value: "replacement" });
  });
});

describe("delete and invalidate", () => {
  it("deletes one key, here and in L2", async () => {
    await cache.set("doomed", "x");
    const res = await call(key("doomed"), withBearer({ method: "DELETE" }));
    expect(res.status).toBe(204);
    expect(await cache.get("doomed")).toBeUndefined();
    const fresh = createCache({ store, namespace, local: false });
    expect(await fresh.get("doomed")).toBeUndefined();
    await fresh.close();
  });

  it("deletes several keys from a JSON body", async () => {
    await cache.setMany([
      ["m1", 1],
      ["m/2", 2],
      ["m3", 3],
    ]);
    const res = await call(
      "/_cache/keys",
      withBearer({ method: "DELETE", ...jsonBody({ keys: ["m1", "m/2"] }) }),
    );
    expect(res.status).toBe(204);
    expect(await cache.getMany(["m1", "m/2", "m3"])).toEqual([undefined, undefined, 3]);
  });

  it("refuses malformed bodies with 400 (or 413) and a code, changing nothing", async () => {
    await cache.set("survivor", true);
    const cases: Array<[RequestInit, number, string]> = [
      [{ body: "not json" }, 400, "invalid_body"],
      [jsonBody({ keys: "survivor" }), 400, "invalid_body"],
      [jsonBody({ keys: ["survivor", 1] }), 400, "invalid_body"],
      [jsonBody(["survivor"]), 400, "invalid_body"],
      [jsonBody(null), 400, "invalid_body"],
      [jsonBody({ keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }), 400, "too_many"],
      [{ body: `{"keys":["${"x".repeat(1 << 20)}"]}` }, 413, "body_too_large"],
      [jsonBody({ keys: ["survivor", ""] }), 400, "EC_INVALID_KEY"],
    ];
    for (const [init, status, error] of cases) {
      const res = await call("/_cache/keys", withBearer({ method: "DELETE", ...init }));
      expect(res.status, error).toBe(status);
      expect(await res.json()).toMatchObject({ error });
    }
    expect(await cache.get("survivor")).toBe(true);
  });

  it("invalidates one tag: its entries go, others stay", async () => {
    await cache.set("t1", 1, { tags: ["team/α"] });
    await cache.set("t2", 2, { tags: ["other"] });
    const res = await call(
      `/_cache/tags/${encodeURIComponent("team/α")}`,
      withBearer({ method: "DELETE" }),
    );
    expect(res.status).toBe(204);
    expect(await cache.get("t1")).toBeUndefined();
    expect(await cache.get("t2")).toBe(2);
    expect((await call(key("t1"), withBearer())).status).toBe(404);
  });

  it("invalidates several tags from a JSON body", async () => {
    await cache.set("u1", 1, { tags: ["x"] });
    await cache.set("u2", 2, { tags: ["y"] });
    await cache.set("u3", 3, { tags: ["z"] });
    const res = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: ["x", "y"] }) }),
    );
    expect(res.status).toBe(204);
    expect(await cache.getMany(["u1", "u2", "u3"])).toEqual([undefined, undefined, 3]);
    const bad = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: [""] }) }),
    );
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^EC_INVALID/);
  });

  it("answers 503 with the store's code when L2 refuses, without secrets", async () => {
    const broken = createCache({
      store: upstashStore({ url, token: "wrong-bridge-token" }),
      namespace,
      logger: false,
    });
    const admin = new Hono().route("/_cache", cacheAdmin({ cache: broken, token: TOKEN }));
    const res = await call(key("k"), withBearer({ method: "DELETE" }), admin);
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ error: "EC_STORE_AUTH" });
    expect(text).not.toContain("wrong-bridge-token");
    expect(text).not.toContain(bridgeToken);
    await broken.close();
  });
});

describe("namespaces", () => {
  it("addresses the extra caches with ?ns=", async () => {
    await scores.set("Tom", 630);
    await other.set("Tom", "other");
    const inScores = await (await call(`${key("Tom")}?ns=scores`, withBearer())).json();
    expect(inScores).toMatchObject({ key: "Tom", value: 630 });
    const inOther = await (await call(`${key("Tom")}?ns=other`, withBearer())).json();
    expect(inOther).toMatchObject({ key: "Tom", value: "other" });
    expect((await call(key("Tom"), withBearer())).status).toBe(404);

    const del = await call(`${key("Tom")}?ns=scores`, withBearer({ method: "DELETE" }));
    expect(del.status).toBe(204);
    expect(await scores.get("Tom")).toBeUndefined();
    expect(await other.get("Tom")).toBe("other");
  });

  it("answers 404 for an unknown ns", async () => {
    for (const ns of ["nope", "__proto__", "constructor"]) {
      const res = await call(`/_cache/stats?ns=${ns}`, withBearer());
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: "unknown_namespace" });
    }
  });
});

describe("stats", () => {
  it("is stats() as JSON, with the namespaces the admin knows", async () => {
    await cache.get("user:1");
    const res = await call("/_cache/stats", withBearer());
    const body = await res.json();
    expect(body.stats).toEqual(JSON.parse(JSON.stringify(cache.stats())));
    expect(body).toMatchObject({ ns: "", namespace });
    expect(typeof body.time).toBe("number");
    expect(body.namespaces).toEqual([
      { id: "", name: namespace },
      { id: "scores", name: `${namespace}/scores` },
      { id: "other", name: `${namespace}.other` },
    ]);
    const scoped = await (await call("/_cache/stats?ns=other", withBearer())).json();
    expect(scoped).toMatchObject({ ns: "other", namespace: `${namespace}.other` });
    expect(scoped.stats).toEqual(JSON.parse(JSON.stringify(other.stats())));
  });
});

/** Parses Prometheus text 0.0.4 strictly enough to catch format slips. */
function parseExposition(text: string) {
  const families = new Map<string, { help?: string; type?: string; samples: number }>();
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  expect(text.endsWith("\n")).toBe(true);
  let current: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, what, name, rest] = meta as unknown as [string, string, string, string];
      const family = families.get(name) ?? { samples: 0 };
      if (what === "HELP") {
        expect(family.help, `one HELP for ${name}`).toBeUndefined();
        expect(family.samples).toBe(0);
        family.help = rest;
      } else {
        expect(family.type, `one TYPE for ${name}`).toBeUndefined();
        expect(["counter", "gauge"]).toContain(rest);
        family.type = rest;
      }
      families.set(name, family);
      current = name;
      continue;
    }
    const sample =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\} (\S+)$/.exec(
        line,
      );
    expect(sample, `a sample line: ${line}`).not.toBeNull();
    const [, name, labelText, value] = sample as unknown as [string, string, string, string];
    expect(name, "samples follow their family's HELP and TYPE").toBe(current);
    const family = families.get(name)!;
    expect(family.help).toBeDefined();
    expect(family.type).toBeDefined();
    if (family.type === "counter") expect(name.endsWith("_total")).toBe(true);
    family.samples++;
    const labels: Record<string, string> = {};
    for (const m of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name, labels, value: Number(value) });
  }
  return { families, samples };
}

describe("metrics", () => {
  it("is Prometheus text 0.0.4 whose values are stats()", async () => {
    await cache.get("user:1");
    await cache.get("never-written");
    await scores.get("nobody");
    const res = await call("/_cache/metrics", withBearer());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const { families, samples } = parseExposition(await res.text());
    const value = (name: string, ns: string, extra: Record<string, string> = {}) => {
      const found = samples.filter(
        (s) =>
          s.name === name &&
          s.labels.namespace === ns &&
          Object.entries(extra).every(([k, v]) => s.labels[k] === v),
      );
      expect(found, `${name}{namespace="${ns}"}`).toHaveLength(1);
      return found[0]!.value;
    };
    for (const [c, name] of [
      [cache, namespace],
      [scores, `${namespace}/scores`],
      [other, `${namespace}.other`],
    ] as const) {
      const s: CacheStats = c.stats();
      const expected: Record<string, number> = {
        edgecache_l1_hits_total: s.l1Hits,
        edgecache_l1_misses_total: s.l1Misses,
        edgecache_l2_hits_total: s.l2Hits,
        edgecache_l2_misses_total: s.l2Misses,
        edgecache_sets_total: s.sets,
        edgecache_deletes_total: s.deletes,
        edgecache_clears_total: s.clears,
        edgecache_errors_total: s.errors,
        edgecache_corrupt_total: s.corrupt,
        edgecache_l1_evictions_total: s.l1Evictions,
        edgecache_syncs_total: s.syncs,
        edgecache_changes_applied_total: s.changesApplied,
        edgecache_flushes_total: s.flushes,
        edgecache_loads_total: s.loads,
        edgecache_load_errors_total: s.loadErrors,
        edgecache_coalesced_total: s.coalesced,
        edgecache_lock_waits_total: s.lockWaits,
        edgecache_stale_hits_total: s.staleHits,
        edgecache_grace_hits_total: s.graceHits,
        edgecache_l1_items: s.l1Items,
        edgecache_l1_bytes: s.l1Bytes,
        edgecache_sync_lag: s.syncLag,
        edgecache_cursor: s.cursor,
      };
      for (const [metric, v] of Object.entries(expected))
        expect(value(metric, name), metric).toBe(v);
      // A breaker is reported once, under the namespace that owns it: a namespace shares
      // its parent's, so summing over the label must not count it twice.
      const owner = s.breaker!.owner;
      expect(owner).toBe(c === scores ? namespace : name);
      const breaker: Record<string, number> = {
        edgecache_breaker_failures: s.breaker!.failures,
        edgecache_breaker_opens_total: s.breaker!.opens,
        edgecache_breaker_rejected_total: s.breaker!.rejected,
      };
      for (const [metric, v] of Object.entries(breaker))
        expect(value(metric, owner), metric).toBe(v);
      expect(value("edgecache_breaker_state", owner, { state: s.breaker!.state })).toBe(1);
      expect(
        samples
          .filter((x) => x.name === "edgecache_breaker_state" && x.labels.namespace === owner)
          .map((x) => x.value)
          .sort(),
      ).toEqual([0, 0, 1]);
    }
    expect(
      samples.filter(
        (x) =>
          x.name.startsWith("edgecache_breaker_") && x.labels.namespace === `${namespace}/scores`,
      ),
    ).toEqual([]);
    expect(value("edgecache_l1_hits_total", namespace)).toBeGreaterThan(0);
    expect(families.get("edgecache_l1_items")!.type).toBe("gauge");
    expect(families.get("edgecache_l1_hits_total")!.type).toBe("counter");
    // No cache here has a hub: its families are left out rather than faked.
    expect([...families.keys()].some((n) => n.startsWith("edgecache_hub_"))).toBe(false);
  });

  it("escapes label values and reports the hub when there is one", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const stats: CacheStats = {
      ...cache.stats(),
      hub: {
        healthy: true,
        connected: 2,
        reconnects: 1,
        framesReceived: 7,
        framesDropped: 0,
        published: 3,
        publishErrors: 0,
      },
      breaker: undefined,
    };
    const text = prometheusMetrics([{ namespace: 'we"ird\\ns\n', stats }]);
    const { samples, families } = parseExposition(text);
    const healthy = samples.find((s) => s.name === "edgecache_hub_healthy")!;
    expect(healthy.labels.namespace).toBe('we"ird\\ns\n');
    expect(healthy.value).toBe(1);
    expect(samples.find((s) => s.name === "edgecache_hub_frames_received_total")!.value).toBe(7);
    expect(families.has("edgecache_breaker_state")).toBe(false);
    expect(text).toContain('namespace="we\\"ird\\\\ns\\n"');
  });
});
