/**
 * The admin API and fromEnv inside workerd: a cache built by `fromEnv` from the Worker's own
 * bindings (the REST bridge's URL and token, the InvalidationHub Durable Object binding and
 * EDGECACHE_HUB_SHARDS), served by `cacheAdmin` through Hono's fetch handler.
 */
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fromEnv } from "../../src/env.js";
import { cacheAdmin } from "../../src/hono/admin.js";
import type { Cache } from "../../src/types.js";

const TOKEN = `workerd-admin-${crypto.randomUUID()}`;
const ORIGIN = "https://admin.test";
const namespace = `workerd.admin.${crypto.randomUUID()}`;
let cache: Cache;
let app: Hono;

const call = (path: string, init: RequestInit = {}) =>
  app.fetch(new Request(`${ORIGIN}${path}`, init));
const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

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
  });
});

describe("cacheAdmin in workerd", () => {
  it("wants the token on every route", async () => {
    const routes: Array<[string, string]> = [
      ["GET", "/_cache/stats"],
      ["GET", "/_cache/metrics"],
      ["GET", "/_cache/keys/greeting"],
      ["DELETE", "/_cache/keys/greeting"],
      ["DELETE", "/_cache/tags/hello"],
    ];
    for (const [method, path] of routes) {
      for (const headers of [{}, bearer(`${TOKEN}x`), bearer(TOKEN.slice(0, -1))]) {
        const res = await call(path, { method, headers });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toBe("Bearer");
        expect(await res.json()).toEqual({ error: "unauthorized" });
      }
    }
    const page = await call("/_cache");
    expect(page.status).toBe(401);
    expect(await page.text()).toContain('name="token"');
  });

  it("inspects, deletes and invalidates", async () => {
    const key = "user/ü%1";
    await cache.set(key, { born: new Date(Date.UTC(1815, 11, 10)) }, { tags: ["users"] });
    const path = `/_cache/keys/${encodeURIComponent(key)}`;
    const res = await call(path, { headers: bearer() });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      key: string;
      tier: string;
      value: unknown;
      tags: string[];
    };
    expect(body).toMatchObject({ key, tier: "l1", tags: ["users"] });
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
    expect(setCookie).toMatch(/; HttpOnly; SameSite=Strict; Secure$/);
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
