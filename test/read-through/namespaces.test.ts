import { describe, expect, it } from "vitest";
import type { CacheOptions, LocalCache } from "../../src/index.js";
import type { LocalEntry } from "../../src/local.js";
import { realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

describe("namespaces", () => {
  it("scopes keys, TTL and L1 budget, and reads through its loader", async () => {
    const { cache, clock, chaos } = setup();
    const calls: string[] = [];
    const scores = cache.namespace("scores", {
      loader: async (key: string) => {
        calls.push(key);
        return key.length * 10;
      },
      ttl: 2000,
      local: { maxItems: 2 },
    });
    expect(scores.name).toBe("app/scores");
    // has and peek do not load.
    expect(await scores.has("Tom")).toBe(false);
    expect(scores.peek("Tom")).toBeUndefined();
    expect(calls).toEqual([]);
    expect(await scores.get("Tom")).toBe(30);
    expect(await scores.has("Tom")).toBe(true);
    expect(await scores.get("Tom")).toBe(30);
    expect(calls).toEqual(["Tom"]);
    // getMany reads through it too, loading only what it misses.
    expect(await scores.getMany(["Tom", "Al"])).toEqual([30, 20]);
    expect(calls).toEqual(["Tom", "Al"]);
    await scores.delete("Al");
    // Disjoint from the parent and from siblings.
    expect(await cache.get("Tom")).toBeUndefined();
    const other = cache.namespace("other");
    expect(await other.get("Tom")).toBeUndefined();
    await cache.set("Tom", "parent");
    expect(await scores.get("Tom")).toBe(30);
    // Its own L1 budget.
    await scores.get("Ann");
    await scores.get("Joe");
    expect(scores.stats().l1Items).toBe(2);
    // Its own TTL.
    clock.advance(2001);
    expect(await scores.get("Tom")).toBe(30);
    expect(calls.filter((k) => k === "Tom").length).toBe(2);
    // In L2 under its own namespace.
    const { entries } = await chaos.store.get("app/scores", ["Tom"]);
    expect(entries[0]).toBeDefined();
  });

  it("never shares a LocalCache instance the parent was given: each namespace gets its own L1", async () => {
    const shared = new Map<string, LocalEntry>();
    const local: LocalCache = {
      get: (k) => shared.get(k),
      set: (k, e) => void shared.set(k, e),
      delete: (k) => void shared.delete(k),
      clear: () => shared.clear(),
      get size() {
        return shared.size;
      },
      get bytes() {
        return 0;
      },
    };
    // Bare (the form before `local: { cache }`, still accepted at run time) and as `cache`.
    const options: CacheOptions["local"][] = [
      local as CacheOptions["local"],
      { cache: local, maxItems: 100 },
    ];
    for (const option of options) {
      shared.clear();
      const { cache, chaos } = setup({ local: option, sync: false });
      const a = cache.namespace("a");
      const b = cache.namespace("b");
      await a.set("k", "from a");
      chaos.mode = "fail"; // only L1 could answer now
      expect(await b.get("k")).toBeUndefined();
      expect(b.peek("k")).toBeUndefined();
      expect(a.peek("k")).toBe("from a");
      await cache.close();
    }
  });

  it("holds its L1 to its own byte budget (the seed's cacheBytes)", async () => {
    const { cache } = setup();
    const big = "x".repeat(400);
    const pages = cache.namespace("pages", {
      loader: async (k: string) => `${k}:${big}`,
      local: { maxBytes: 1000 },
    });
    for (let i = 0; i < 10; i++) await pages.get(`p${i}`);
    const { l1Bytes, l1Items } = pages.stats();
    expect(l1Bytes).toBeLessThanOrEqual(1000);
    expect(l1Bytes).toBeGreaterThan(400);
    expect(l1Items).toBeLessThan(10);
    // The parent's budget is its own: ten such values fit there.
    for (let i = 0; i < 10; i++) await cache.set(`p${i}`, big);
    expect(cache.stats().l1Items).toBe(10);
  });

  it("is one object per name; other options for a taken name are refused", () => {
    const { cache } = setup();
    const options = { ttl: 5 };
    const a = cache.namespace("a", options);
    expect(cache.namespace("a")).toBe(a);
    expect(cache.namespace("a", options)).toBe(a);
    expect(() => cache.namespace("a", { ttl: 6 })).toThrow(/exists/);
    for (const bad of ["", "has space", "x{y}", "z".repeat(200)]) {
      expect(() => cache.namespace(bad)).toThrow(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
    expect(() => cache.namespace("b", { ttl: -1 })).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
  });

  it("keeps its own change log: a write on one instance reaches the other's namespace", async () => {
    const { make } = setup({ sync: { maxStaleness: 0 } });
    const a = make().namespace("users");
    const b = make().namespace("users");
    await a.set("u1", "v1");
    expect(await b.get("u1")).toBe("v1");
    await a.set("u1", "v2");
    expect(await b.get("u1")).toBe("v2");
    await a.clear();
    expect(await b.get("u1")).toBeUndefined();
  });

  it("shares the parent's breaker, and closes with it", async () => {
    const { cache, chaos } = setup({ breaker: { threshold: 2, cooldown: 1000 } });
    const child = cache.namespace("c");
    chaos.mode = "fail";
    await child.get("x");
    await cache.get("y");
    expect(cache.stats().breaker?.state).toBe("open");
    expect(child.stats().breaker?.state).toBe("open");
    await cache.close();
    await expect(child.get("x")).rejects.toMatchObject({ code: "EC_CLOSED" });
  });

  it("getOrSet in a namespace uses its defaults, overridable per call", async () => {
    const { cache, chaos } = setup();
    const ns = cache.namespace("d", { ttl: 5000, staleWhileRevalidate: 1000 });
    await ns.getOrSet("k", async () => 1);
    await ns.getOrSet("k2", async () => 1, { ttl: 100, staleWhileRevalidate: 0 });
    const { entries } = await chaos.store.get("app/d", ["k", "k2"]);
    expect(entries[0]!.ttl).toBe(6000);
    expect(entries[1]!.ttl).toBe(100);
  });
});
