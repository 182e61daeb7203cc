/**
 * The admin API and fromEnv inside workerd: a cache built by `fromEnv` from the Worker's own
 * bindings (the REST bridge's URL and token, the InvalidationHub Durable Object binding and
 * EDGECACHE_HUB_SHARDS), served by `cacheAdmin` through Hono's fetch handler.
 */
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromEnv } from "../../src/env.js";
import { cacheAdmin } from "../../src/hono/admin/index.js";
import type { Cache } from "../../src/types.js";

const TOKEN = `workerd-admin-${crypto.randomUUID()}`;
const ORIGIN = "https://admin.test";
const namespace = `workerd.admin.${crypto.randomUUID()}`;
let cache: Cache;
let app: Hono;

const call = (path: string, init: RequestInit = {}) =>
  app.fetch(new Request(`${ORIGIN}${path}`, init));
const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

/**
 * Checks Prometheus text 0.0.4: it ends in a newline; every line is a `# HELP` or `# TYPE`
 * (counter or gauge, once per family) or a sample, and every sample follows its family's
 * HELP and TYPE.
 */
function checkExposition(text: string): void {
  expect(text.endsWith("\n"), "ends in a newline").toBe(true);
  const families = new Map<string, { help: boolean; type: boolean }>();
  let current: string | undefined;
  let samples = 0;
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta !== null) {
      const [, what, name, rest] = meta as unknown as [string, string, string, string];
      const family = families.get(name) ?? { help: false, type: false };
      if (what === "HELP") {
        expect(family.help, `one HELP for ${name}`).toBe(false);
        family.help = true;
      } else {
        expect(family.type, `one TYPE for ${name}`).toBe(false);
        expect(["counter", "gauge"], `TYPE of ${name}`).toContain(rest);
        family.type = true;
      }
      families.set(name, family);
      current = name;
      continue;
    }
    const sample =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.]+(?:[eE][+-]?[0-9]+)?|NaN|[+-]Inf)$/.exec(
        line,
      );
    expect(sample, `a sample line: ${JSON.stringify(line)}`).not.toBeNull();
    const name = sample![1]!;
    expect(name, `${name} follows its family's HELP and TYPE`).toBe(current);
    expect(families.get(name), `HELP and TYPE of ${name}`).toEqual({ help: true, type: true });
    samples++;
  }
  expect(samples).toBeGreaterThan(0);
}

beforeAll(() => {
  cache = fromEnv({ ...env, EDGECACHE_NAMESPACE: namespace }, { logger: false });
  app = new Hono();
  app.route("/_cache", cacheAdmin({ cache, token: TOKEN }));
});

afterAll(async () => {
  await cache.close();
});

describe("fromEnv in workerd", () => {
  it("builds a cache from the Worker's bindings, publishing through the hub binding", async () => {
    await cache.set("greeting", "hello", { tags: ["hello"] });
    expect(await cache.get("greeting")).toBe("hello");
    const hub = cache.stats().hub;
    expect(hub).toBeDefined();
    expect(hub!.published).toBeGreaterThan(0);
    expect(hub!.publishErrors).toBe(0);
    // A publisher that does not subscribe: healthy while its publishes go through.
    expect(hub).toMatchObject({ subscribed: false, healthy: true, connected: 0 });
  });
});

describe("cacheAdmin in workerd", () => {
  it("wants the token on every route, and lets the right one through", async () => {
    const json = (body: unknown) => ({
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
    const routes: Array<{ method: string; path: string; init?: RequestInit; ok: number }> = [
      { method: "GET", path: "/_cache/stats", ok: 200 },
      { method: "GET", path: "/_cache/metrics", ok: 200 },
      { method: "GET", path: "/_cache/keys/auth-probe", ok: 404 },
      { method: "GET", path: "/_cache/keys?prefix=auth-probe", ok: 200 },
      { method: "GET", path: "/_cache/entries/by-url?url=https%3A%2F%2Fx.test%2Fp", ok: 404 },
      { method: "DELETE", path: "/_cache/keys/auth-probe", ok: 204 },
      { method: "DELETE", path: "/_cache/keys", init: json({ keys: ["auth-probe"] }), ok: 204 },
      { method: "DELETE", path: "/_cache/tags/auth-probe", ok: 204 },
      { method: "DELETE", path: "/_cache/tags", init: json({ tags: ["auth-probe"] }), ok: 204 },
      { method: "POST", path: "/_cache/logout", ok: 303 },
    ];
    for (const { method, path, init, ok } of routes) {
      const extra = (init?.headers ?? {}) as Record<string, string>;
      for (const headers of [{}, bearer(`${TOKEN}x`), bearer(TOKEN.slice(0, -1))]) {
        const res = await call(path, { ...init, method, headers: { ...extra, ...headers } });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe("Bearer");
        expect(await res.json()).toEqual({ error: "unauthorized" });
      }
      const res = await call(path, {
        ...init,
        method,
        headers: { ...extra, ...bearer() },
        redirect: "manual",
      });
      expect(res.status, `${method} ${path} with the token`).toBe(ok);
      await res.body?.cancel();
    }
    const page = await call("/_cache");
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('name="token"');
    const signedIn = await call("/_cache", { headers: bearer() });
    expect(signedIn.status).toBe(200);
    expect(await signedIn.text()).not.toContain('name="token"');
  });

  it("deletes many keys and invalidates many tags from a JSON body, with the token", async () => {
    await cache.setMany([
      ["bulk/1", 1],
      ["bulk/2", 2],
      ["bulk/3", 3],
    ]);
    const json = (body: unknown): RequestInit => ({
      method: "DELETE",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json", ...bearer() },
    });
    const refused = await call("/_cache/keys", {
      ...json({ keys: ["bulk/1"] }),
      headers: { "content-type": "application/json" },
    });
    expect(refused.status).toBe(401);
    expect(await cache.get("bulk/1")).toBe(1);
    expect((await call("/_cache/keys", json({ keys: ["bulk/1", "bulk/2"] }))).status).toBe(204);
    expect(await cache.getMany(["bulk/1", "bulk/2", "bulk/3"])).toEqual([undefined, undefined, 3]);

    await cache.set("tagged/x", 1, { tags: ["bulk-x"] });
    await cache.set("tagged/y", 2, { tags: ["bulk-y"] });
    await cache.set("tagged/z", 3, { tags: ["bulk-z"] });
    expect((await call("/_cache/tags", json({ tags: ["bulk-x", "bulk-y"] }))).status).toBe(204);
    expect(await cache.getMany(["tagged/x", "tagged/y", "tagged/z"])).toEqual([
      undefined,
      undefined,
      3,
    ]);
  });

  it("inspects, deletes and invalidates", async () => {
    const key = "user/ü%1";
    await cache.set(
      key,
      { born: new Date(Date.UTC(1815, 11, 10)) },
      { ttl: 30_000, tags: ["users"] },
    );
    const path = `/_cache/keys/${encodeURIComponent(key)}`;
    const res = await call(path, { headers: bearer() });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      key: string;
      tier: string;
      version: unknown;
      ttl: unknown;
      value: unknown;
      tags: string[];
    };
    expect(body).toMatchObject({ key, tier: "l1", tags: ["users"] });
    expect(typeof body.version).toBe("number");
    expect(body.version as number).toBeGreaterThan(0);
    expect(typeof body.ttl).toBe("number");
    expect(body.ttl as number).toBeGreaterThan(25_000);
    expect(body.ttl as number).toBeLessThanOrEqual(30_000);
    expect(body.value).toEqual({ born: "1815-12-10T00:00:00.000Z" });

    expect((await call("/_cache/tags/users", { method: "DELETE", headers: bearer() })).status).toBe(
      204,
    );
    expect(await cache.get(key)).toBeUndefined();

    await cache.set("doomed", 1);
    expect(
      (await call("/_cache/keys/doomed", { method: "DELETE", headers: bearer() })).status,
    ).toBe(204);
    expect((await call("/_cache/keys/doomed", { headers: bearer() })).status).toBe(404);
  });

  it("serves stats and metrics, including the hub", async () => {
    const stats = (await (await call("/_cache/stats", { headers: bearer() })).json()) as {
      namespace: string;
      stats: { hub: { published: number } };
    };
    expect(stats.namespace).toBe(namespace);
    expect(stats.stats.hub.published).toBe(cache.stats().hub!.published);
    const metrics = await call("/_cache/metrics", { headers: bearer() });
    expect(metrics.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const text = await metrics.text();
    checkExposition(text);
    expect(text).toContain("# TYPE edgecache_hub_published_total counter");
    expect(text).toContain(
      `edgecache_hub_published_total{namespace="${namespace}"} ${cache.stats().hub!.published}`,
    );
  });

  it("signs a browser in with a Secure cookie that reads but cannot delete", async () => {
    const login = await call("/_cache/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
      body: new URLSearchParams({ token: TOKEN }).toString(),
      redirect: "manual",
    });
    expect(login.status).toBe(303);
    const setCookie = login.headers.get("set-cookie")!;
    // The attributes, in any order (the order carries no meaning).
    expect(setCookie.split("; ").slice(1)).toEqual(
      expect.arrayContaining(["HttpOnly", "SameSite=Strict", "Secure"]),
    );
    const cookie = setCookie.split(";")[0]!;
    expect((await call("/_cache/stats", { headers: { cookie } })).status).toBe(200);
    await cache.set("kept", true);
    const csrf = await call("/_cache/keys/kept", {
      method: "DELETE",
      headers: { cookie, origin: ORIGIN },
    });
    expect(csrf.status).toBe(403);
    expect(await cache.get("kept")).toBe(true);
  });
});
