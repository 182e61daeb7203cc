/**
 * The `cached` Hono middleware: tags, and tags on a cache that cannot carry them. Through
 * `app.request`, over real caches (`upstashStore` on the REST bridge, or `memoryStore` where a
 * test moves the clock); every rule is asserted by counting handler runs, so a rule that breaks
 * fails its case.
 */
import type { Context } from "hono";
import { describe, expect, it } from "vitest";
import type { CachedEnv } from "../../src/hono/cached/index.js";
import { createCache, memoryStore } from "../../src/index.js";
import { shardedStore } from "../../src/stores/sharded.js";
import { bridged, cacheStatus, fresh, site } from "./cached-helpers.js";

describe("cached: tags", () => {
  it("the tags option and c.var.cacheTag tag the entry; invalidateTag makes it a miss", async () => {
    const cache = bridged();
    const s = site({ cache, tags: (c) => [`path:${c.req.path}`, "products"] }, (c, n) => {
      c.var.cacheTag(`product:${c.req.path.slice(-1)}`);
      return c.text(`${c.req.path} ${n}`);
    });
    await s.get("/p/1");
    await s.get("/p/2");
    await cache.invalidateTag("product:1");
    expect(await (await s.get("/p/1")).text()).toBe("/p/1 3");
    expect(await (await s.get("/p/2")).text()).toBe("/p/2 2");
    await cache.invalidateTag("products");
    expect(await (await s.get("/p/2")).text()).toBe("/p/2 4");
    await cache.invalidateTag("path:/p/1");
    expect(await (await s.get("/p/1")).text()).toBe("/p/1 5");
  });

  it("invalidateTag on one instance is a miss on the other (two caches over the bridge)", async () => {
    const namespace = fresh();
    const a = bridged(namespace);
    const b = bridged(namespace);
    const body = (who: string) => (c: Context<CachedEnv>, n: number) => {
      c.var.cacheTag("product:42");
      return c.text(`${who} ${n}`);
    };
    const siteA = site({ cache: a, tags: ["products"] }, body("a"));
    const siteB = site({ cache: b, tags: ["products"] }, body("b"));
    expect(await (await siteA.get("/products/42")).text()).toBe("a 1");
    expect(await (await siteB.get("/products/42")).text()).toBe("a 1");
    expect(siteB.calls).toBe(0);
    await a.invalidateTag("products");
    const afterA = await siteB.get("/products/42");
    expect(await afterA.text()).toBe("b 1");
    expect(cacheStatus(afterA)).toMatch(/fwd=miss; fwd-status=200; stored/);
    expect(await (await siteA.get("/products/42")).text()).toBe("b 1");
    await b.invalidateTag("product:42");
    expect(await (await siteA.get("/products/42")).text()).toBe("a 2");
    expect([siteA.calls, siteB.calls]).toEqual([2, 1]);
  });
});

describe("cached: tags on a cache that cannot carry them (a sharded store)", () => {
  it("serves the response unstored, says so, and reports the refusal", async () => {
    const store = shardedStore([memoryStore(), memoryStore()]);
    const cache = createCache({ store, namespace: "hono", logger: false });
    const reported: string[] = [];
    const s = site({
      cache,
      tags: ["products"],
      onError: (e) => reported.push((e as { code?: string }).code ?? "?"),
    });
    const first = await s.get("/p");
    expect(await first.text()).toBe("body 1");
    expect(cacheStatus(first)).toContain("detail=tag-error");
    expect(cacheStatus(first)).not.toContain("stored");
    expect(await (await s.get("/p")).text()).toBe("body 2");
    expect(reported).toEqual(["EC_INVALID_OPTION", "EC_INVALID_OPTION"]);
    expect(cache.stats().sets).toBe(0);
  });
});
