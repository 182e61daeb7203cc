/**
 * The `cached` Hono middleware: freshness, stale-while-revalidate, grace and conditional
 * requests. Through `app.request`, over real caches (`upstashStore` on the REST bridge, or
 * `memoryStore` where a test moves the clock); every rule is asserted by counting handler runs,
 * so a rule that breaks fails its case.
 */
import { Hono } from "hono";
import { etag } from "hono/etag";
import { describe, expect, it } from "vitest";
import { type CachedEnv, cached } from "../../src/hono/cached/index.js";
import { until } from "../helpers.js";
import { bridged, cacheStatus, clocked, executionContext, site } from "./cached-helpers.js";

describe("cached: freshness, stale-while-revalidate and grace", () => {
  it("takes the response's s-maxage, else max-age less Age, else Expires as the TTL", async () => {
    const { clock, cache } = clocked();
    let headers: Record<string, string> = { "cache-control": "max-age=30, s-maxage=5" };
    const s = site({ cache, ttl: 60_000, now: clock.now }, (c, n) => c.text(`${n}`, 200, headers));
    expect(cacheStatus(await s.get("/f"))).toMatch(/stored; ttl=5$/);
    clock.advance(5_001);
    expect(await (await s.get("/f")).text()).toBe("2");
    headers = { "cache-control": "max-age=30", age: "10" };
    expect(cacheStatus(await s.get("/g"))).toMatch(/stored; ttl=20$/);
    clock.advance(15_000);
    const aged = await s.get("/g");
    expect(aged.headers.get("age")).toBe("25");
    expect(cacheStatus(aged)).toBe("edgecache; hit; ttl=5");
    // Date has whole seconds: on a whole second, it says the response is 0 s old (4.2.3).
    clock.advance(999);
    headers = {
      date: new Date(clock.now()).toUTCString(),
      expires: new Date(clock.now() + 42_000).toUTCString(),
    };
    expect(cacheStatus(await s.get("/h"))).toMatch(/stored; ttl=42$/);
    expect(s.calls).toBe(4);
  });

  it("with honorMaxAge: false, the ttl option decides", async () => {
    const s = site({ cache: bridged(), ttl: 7_000, honorMaxAge: false }, (c) =>
      c.text("x", 200, { "cache-control": "max-age=300" }),
    );
    expect(cacheStatus(await s.get("/t"))).toMatch(/stored; ttl=7$/);
  });

  it("serves a stale response at once and refreshes it in the background (waitUntil)", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    let calls = 0;
    const app = new Hono<CachedEnv>();
    // A middleware before cached that sets a per-request header before and after next().
    let request = 0;
    app.use(async (c, next) => {
      c.header("x-request", String(++request));
      await next();
      c.header("x-after", "yes");
    });
    app.get(
      "/feed",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      (c) => {
        calls++;
        return c.text(`v${version}`, 200, { "x-version": String(version) });
      },
    );
    expect(await (await app.request("/feed")).text()).toBe("v1");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/feed", {}, undefined, ec.ctx);
    expect(cacheStatus(stale)).toBe("edgecache; hit; ttl=-1; detail=stale-while-revalidate");
    expect(stale.headers.get("x-version")).toBe("1");
    expect(stale.headers.get("x-request")).toBe("2");
    expect(stale.headers.get("x-after")).toBe("yes");
    expect(await stale.text()).toBe("v1");
    await ec.settle();
    expect(calls).toBe(2);
    const refreshed = await app.request("/feed");
    expect(await refreshed.text()).toBe("v2");
    expect(refreshed.headers.get("x-version")).toBe("2");
    // Nothing of the stale replay leaked into the refreshed entry.
    expect(cacheStatus(refreshed)).toBe("edgecache; hit; ttl=1");
    expect(refreshed.headers.get("age")).toBe("0");
    expect(refreshed.headers.get("x-request")).toBe("3");
    expect(calls).toBe(2);
  });

  it("refreshes only after middleware before it is done with the stale response", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    const app = new Hono<CachedEnv>();
    // Middleware that works on the response after an asynchronous step, and a handler that
    // takes one too: the refresh must not run the handler on the context in between.
    const tick = () => new Promise((r) => setTimeout(r, 0));
    app.use(async (c, next) => {
      await next();
      await tick();
      c.header("x-after", "yes");
    });
    app.get(
      "/slow",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      async (c) => {
        const v = version;
        await tick();
        return c.text(`v${v}`, 200, { "x-version": String(v) });
      },
    );
    await app.request("/slow");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/slow", {}, undefined, ec.ctx);
    expect(stale.status).toBe(200);
    expect(stale.headers.get("x-after")).toBe("yes");
    expect(stale.headers.get("x-version")).toBe("1");
    expect(await stale.text()).toBe("v1");
    await ec.settle();
    expect(await (await app.request("/slow")).text()).toBe("v2");
  });

  it("refreshes in-process where there is no executionCtx (Node, Bun)", async () => {
    const { clock, cache } = clocked();
    const s = site({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now });
    await s.get("/feed");
    clock.advance(2_000);
    expect(await (await s.get("/feed")).text()).toBe("body 1");
    await until(() => s.calls === 2);
    await until(async () => (await (await s.get("/feed")).text()) === "body 2");
    expect(s.calls).toBe(2);
  });

  it("a stale response survives an upstream etag middleware during the refresh", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    const app = new Hono<CachedEnv>();
    app.use(etag());
    app.get(
      "/e",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      (c) => c.text(`version ${version}`),
    );
    const first = await app.request("/e");
    const tag1 = first.headers.get("etag");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/e", {}, undefined, ec.ctx);
    expect(await stale.text()).toBe("version 1");
    expect(stale.headers.get("etag")).toBe(tag1);
    await ec.settle();
    const fresh2 = await app.request("/e");
    expect(await fresh2.text()).toBe("version 2");
    expect(fresh2.headers.get("etag")).not.toBe(tag1);
  });

  it("serves the stale response within grace when the handler fails (stale-if-error)", async () => {
    const { clock, cache } = clocked();
    let mode: "ok" | "500" | "throw" = "ok";
    const s = site({ cache, ttl: 1_000, grace: 60_000, now: clock.now }, (c, n) => {
      if (mode === "throw") throw new Error("down");
      return mode === "500" ? c.text("oops", 500) : c.text(`good ${n}`);
    });
    await s.get("/g");
    clock.advance(2_000);
    mode = "500";
    const graced = await s.get("/g");
    expect(graced.status).toBe(200);
    expect(await graced.text()).toBe("good 1");
    expect(cacheStatus(graced)).toBe(
      "edgecache; fwd=stale; fwd-status=500; ttl=-1; detail=stale-if-error",
    );
    expect(s.calls).toBe(2);
    clock.advance(10_000); // past the grace backoff
    mode = "throw";
    const thrown = await s.get("/g");
    expect(await thrown.text()).toBe("good 1");
    expect(thrown.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(s.calls).toBe(3);
    clock.advance(60_000); // past grace: the failure shows
    expect((await s.get("/g")).status).toBe(500);
  });

  it("answers a matching conditional request with 304 from the stored response", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text("doc", 200, { etag: 'W/"abc"', "last-modified": new Date(1_000_000).toUTCString() }),
    );
    await s.get("/doc");
    const inm = await s.get("/doc", { headers: { "if-none-match": '"x", "abc"' } });
    expect(inm.status).toBe(304);
    expect(await inm.text()).toBe("");
    expect(inm.headers.get("etag")).toBe('W/"abc"');
    expect(cacheStatus(inm)).toMatch(/; hit;/);
    expect((await s.get("/doc", { headers: { "if-none-match": '"other"' } })).status).toBe(200);
    const ims = { "if-modified-since": new Date(2_000_000).toUTCString() };
    expect((await s.get("/doc", { headers: ims })).status).toBe(304);
    expect(s.calls).toBe(1);
  });
});
