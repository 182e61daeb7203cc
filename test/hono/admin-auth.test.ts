/**
 * The admin API (src/hono/admin) mounted in a Hono app, over real caches on the REST bridge:
 * construction, and authentication on every route: the bearer token, browser sessions (the
 * login form, the session cookie and its MAC, expiry), and CSRF.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/cache.js";
import { InvalidOptionError } from "../../src/errors.js";
import { ADMIN_SESSION_COOKIE, cacheAdmin } from "../../src/hono/admin/index.js";
import type { Cache } from "../../src/index.js";
import { fakeClock } from "../helpers.js";
import {
  app,
  bearer,
  cache,
  call,
  cookieAttributes,
  jsonBody,
  loginRequest,
  namespace,
  ORIGIN,
  scores,
  session,
  store,
  TOKEN,
  useAdminApp,
  withBearer,
} from "./admin-helpers.js";

useAdminApp();

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
      // A token that is not there is called missing, not short.
      expect((error as Error).message).toMatch(
        token === undefined || token === ""
          ? /token is missing.*EDGECACHE_ADMIN_TOKEN/
          : /at least 16/,
      );
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

  it("knows its mount path wherever it is mounted: nested, with a parameter, or at the root", async () => {
    for (const [mount, base] of [
      ["/ops/_cache", "/ops/_cache"],
      ["/:tenant/_cache", "/acme/_cache"],
      ["/", ""],
    ] as const) {
      const outer = new Hono().route(mount, cacheAdmin({ cache, token: TOKEN }));
      const login = new Request(`${ORIGIN}${base}/login`, loginRequest(TOKEN));
      const res = await outer.fetch(login);
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe(base || "/");
      expect(res.headers.get("set-cookie")).toContain(`; Path=${base || "/"};`);
      const cookie = res.headers.get("set-cookie")!.split(";")[0]!;
      const page = await outer.fetch(
        new Request(`${ORIGIN}${base || "/"}`, { headers: { cookie } }),
      );
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`data-base="${base}"`);
    }
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
