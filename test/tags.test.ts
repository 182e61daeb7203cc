import { afterAll, describe, expect, inject, it, vi } from "vitest";
import { type CacheOptions, createCache, isEdgeCacheError } from "../src/index.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { upstashStore } from "../src/stores/upstash.js";
import { cluster, countRequests } from "./helpers.js";

function setup(options: Partial<CacheOptions> = {}) {
  const { instance, ...rest } = cluster({ sync: { maxStaleness: 0 }, ...options });
  return { ...rest, cache: instance(), make: instance };
}

describe("tags", () => {
  it("invalidateTag makes every entry with the tag a miss, here and on other instances", async () => {
    const { cache, make } = setup();
    const other = make();
    await cache.set("p1", "one", { tags: ["products", "p:1"] });
    await cache.set("p2", "two", { tags: ["products"] });
    await cache.set("u1", "user", { tags: ["users"] });
    await cache.set("plain", "x");
    // The other instance holds them all in L1.
    expect(await other.getMany(["p1", "p2", "u1", "plain"])).toEqual(["one", "two", "user", "x"]);
    await cache.invalidateTag("products");
    expect(await cache.get("p1")).toBeUndefined();
    expect(cache.peek("p2")).toBeUndefined();
    expect(await cache.get("u1")).toBe("user");
    expect(await other.getMany(["p1", "p2", "u1", "plain"])).toEqual([
      undefined,
      undefined,
      "user",
      "x",
    ]);
    // Entries written after the invalidation hold.
    await other.set("p1", "one again", { tags: ["products"] });
    expect(await cache.get("p1")).toBe("one again");
    expect(await other.get("p1")).toBe("one again");
  });

  it("with a staleness bound, another instance stops serving a tagged entry once the bound has passed", async () => {
    const { cache, make, clock } = setup();
    const other = make({ sync: { maxStaleness: 500 } });
    await cache.set("p1", "one", { tags: ["products"] });
    await cache.set("u1", "user", { tags: ["users"] });
    expect(await other.getMany(["p1", "u1"])).toEqual(["one", "user"]);
    await cache.invalidateTag("products");
    // Within the bound the other instance may answer from L1 without asking (it does).
    clock.advance(499);
    expect(other.peek("p1")).toBe("one");
    clock.advance(2);
    expect(other.peek("p1")).toBeUndefined();
    expect(await other.get("p1")).toBeUndefined();
    expect(await other.get("u1")).toBe("user");
  });

  it("a cold instance reading an old tagged entry from L2 checks the tag's marker", async () => {
    const { cache, make } = setup();
    await cache.set("k", "v", { tags: ["t"] });
    await cache.invalidateTag("t");
    const cold = make();
    expect(await cold.get("k")).toBeUndefined();
    expect(await cold.has("k")).toBe(false);
    const noSync = make({ sync: false });
    expect(await noSync.get("k")).toBeUndefined();
  });

  it("without coherence, every L2 read checks the markers again", async () => {
    const { cache, make } = setup({ sync: false });
    const other = make({ local: false });
    await cache.set("k", "v", { tags: ["t"] });
    expect(await other.get("k")).toBe("v");
    await cache.invalidateTag("t");
    expect(await other.get("k")).toBeUndefined();
  });

  it("invalidateTags invalidates several at once; bad tags are refused and change nothing", async () => {
    const { cache, chaos } = setup();
    await cache.set("a", 1, { tags: ["x"] });
    await cache.set("b", 2, { tags: ["y"] });
    await cache.set("c", 3, { tags: ["z"] });
    const calls = chaos.calls;
    await cache.invalidateTags(["x", "y", "x"]);
    expect(chaos.calls).toBe(calls + 1);
    expect(await cache.getMany(["a", "b", "c"])).toEqual([undefined, undefined, 3]);
    for (const bad of [
      [""],
      ["a".repeat(257)],
      [3],
      "x",
      Array.from({ length: 65 }, (_, i) => `t${i}`),
    ]) {
      // biome-ignore lint/suspicious/noExplicitAny: bad input on purpose
      await expect(cache.invalidateTags(bad as any)).rejects.toMatchObject({
        code: "EC_INVALID_OPTION",
      });
      // biome-ignore lint/suspicious/noExplicitAny: bad input on purpose
      await expect(cache.set("d", 4, { tags: bad as any })).rejects.toMatchObject({
        code: "EC_INVALID_OPTION",
      });
    }
    expect(await cache.get("d")).toBeUndefined();
    expect(await cache.get("c")).toBe(3);
  });

  it("tags survive unusual characters, and keys may not use the reserved prefix", async () => {
    const { cache, make } = setup();
    const tag = "a,b:c#d~e%f ü/\u0000";
    await cache.set("k", "v", { tags: [tag, "other"] });
    expect(await make().get("k")).toBe("v");
    expect((await cache.inspect("k"))?.tags).toEqual([tag, "other"]);
    await cache.invalidateTag(tag);
    expect(await make().get("k")).toBeUndefined();
    await expect(cache.get("\u0000t:x")).rejects.toMatchObject({ code: "EC_INVALID_KEY" });
    await expect(cache.set("\u0000t:x", 1)).rejects.toMatchObject({ code: "EC_INVALID_KEY" });
  });

  it("after a gap in the log, tags are learned again instead of trusted", async () => {
    const { make } = setup();
    // A keeps the log to one record, so B falls off its end.
    const a = make({ sync: { maxStaleness: 0, logLength: 1 } });
    const b = make();
    await a.set("k", "v", { tags: ["t"] });
    expect(await b.get("k")).toBe("v"); // B now knows tag t, never invalidated
    await a.invalidateTag("t");
    await a.set("x1", 1);
    await a.set("x2", 2);
    expect(await b.get("k")).toBeUndefined();
    expect(b.stats().flushes).toBe(1);
  });

  it("a clear forgets invalidations along with the entries", async () => {
    const { cache, make } = setup();
    await cache.invalidateTag("t");
    await cache.clear();
    await cache.set("k", "v", { tags: ["t"] });
    expect(await cache.get("k")).toBe("v");
    expect(await make().get("k")).toBe("v");
  });

  it("getOrSet: tags from the options and from the loader; stale values of an invalidated tag are not served", async () => {
    const { cache, clock, make } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 60_000, tags: ["feed"] };
    expect(
      await cache.getOrSet(
        "k",
        async (_key, ctx) => {
          ctx.tag("item:1");
          return "v1";
        },
        options,
      ),
    ).toBe("v1");
    expect((await make().inspect("k"))?.tags).toEqual(["feed", "item:1"]);
    clock.advance(2000);
    await cache.invalidateTag("item:1");
    // Stale, but its tag was invalidated: loaded in the foreground, not served stale.
    expect(await cache.getOrSet("k", async () => "v2", options)).toBe("v2");
  });

  it("ctx.setTtl overrides the TTL; ctx.noStore neither caches nor shares", async () => {
    const { cache, chaos } = setup();
    await cache.getOrSet("short", async (_key, ctx) => {
      ctx.setTtl(1234);
      return 1;
    });
    expect((await chaos.store.get("app", ["short"])).entries[0]?.ttl).toBe(1234);
    let calls = 0;
    const privateLoad = async (_key: string, ctx: { noStore(): void }) => {
      const me = ++calls;
      ctx.noStore();
      await new Promise((r) => setTimeout(r, 0));
      return `for caller ${me}`;
    };
    const answers = await Promise.all([
      cache.getOrSet("private", privateLoad),
      cache.getOrSet("private", privateLoad),
      cache.getOrSet("private", privateLoad),
    ]);
    // Each caller got its own load's value, none was cached.
    expect(calls).toBe(3);
    expect(new Set(answers).size).toBe(3);
    expect(await cache.get("private")).toBeUndefined();
    expect((await chaos.store.get("app", ["private"])).entries[0]).toBeUndefined();
  });

  it("a marker that cannot be read makes its entries misses, never stale hits", async () => {
    const { cache, make, chaos, errors } = setup();
    await cache.set("k", "v", { tags: ["t"] });
    const cold = make();
    // The entry read succeeds, the marker read right after it fails.
    const original = chaos.store.get;
    let n = 0;
    vi.spyOn(chaos.store, "get").mockImplementation((ns, keys, sync) => {
      n++;
      if (n === 2) return Promise.reject(new Error("down"));
      return original(ns, keys, sync);
    });
    expect(await cold.get("k")).toBeUndefined();
    expect(errors.length).toBeGreaterThan(0);
    vi.restoreAllMocks();
    expect(await cold.get("k")).toBe("v");
  });
});

describe("inspect", () => {
  it("reports value, version, TTL, tier, staleness and tags", async () => {
    const { cache, clock, make } = setup();
    await cache.set("k", { n: 1 }, { ttl: 5000, tags: ["a"] });
    const here = await cache.inspect("k");
    expect(here).toMatchObject({ key: "k", tier: "l1", value: { n: 1 }, ttl: 5000, stale: false });
    expect(here?.tags).toEqual(["a"]);
    const there = await make().inspect("k");
    expect(there).toMatchObject({ tier: "l2", value: { n: 1 }, version: here?.version });
    await cache.getOrSet("s", async () => 1, { ttl: 1000, grace: 10_000 });
    clock.advance(1500);
    expect(await cache.inspect("s")).toMatchObject({ stale: true, ttl: -500, expiresIn: 9500 });
    expect(await cache.inspect("absent")).toBeUndefined();
    await cache.getOrSet("neg", async () => undefined, { negativeTtl: 1000 });
    expect(await cache.inspect("neg")).toMatchObject({ negative: "absent", value: undefined });
    await cache.invalidateTag("a");
    expect(await cache.inspect("k")).toBeUndefined();
  });
});

describe("tags over the real bridge", () => {
  const url = inject("bridgeUrl");
  const token = inject("bridgeToken");
  const requests = countRequests(url);
  afterAll(() => requests.restore());

  it("invalidateTag = 1 request; a cold tagged read = 2 (entry, marker), then L1 = 0", async () => {
    const namespace = freshNamespace("tags");
    const writer = createCache({ store: upstashStore({ url, token }), namespace });
    const reader = createCache({ store: upstashStore({ url, token }), namespace });
    await writer.set("k", "v", { tags: ["t"] });
    requests.reset();
    expect(await reader.get("k")).toBe("v");
    expect(requests.count).toBe(2);
    requests.reset();
    expect(await reader.get("k")).toBe("v");
    expect(requests.count).toBe(0);
    requests.reset();
    await writer.invalidateTag("t");
    expect(requests.count).toBe(1);
    expect(await writer.get("k")).toBeUndefined();
    const third = createCache({ store: upstashStore({ url, token }), namespace });
    expect(await third.get("k")).toBeUndefined();
    const err = await reader.invalidateTag("").catch((e: unknown) => e);
    expect(isEdgeCacheError(err, "EC_INVALID_OPTION")).toBe(true);
  });
});
