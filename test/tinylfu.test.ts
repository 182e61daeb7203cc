import { describe, expect, it } from "vitest";
import { type CacheOptions, createCache, memoryStore } from "../src/index.js";
import { type LocalCache, type LocalEntry, lruLocal, resolveLocal } from "../src/local.js";
import { FrequencySketch, hashKey } from "../src/sketch.js";
import { tinyLfuLocal } from "../src/tinylfu.js";
import { cluster, fakeClock } from "./helpers.js";
import { rng } from "./rng.mjs";

const entry = (size = 10, version = 1): LocalEntry => ({
  value: version,
  version,
  expiresAt: Number.POSITIVE_INFINITY,
  size,
});

describe("the frequency sketch", () => {
  it("lets the doorkeeper take a first occurrence, then counts up to 16", () => {
    const sketch = new FrequencySketch(1_000);
    const h = hashKey("a");
    expect(sketch.frequency(h)).toBe(0);
    sketch.increment(h);
    expect(sketch.frequency(h)).toBe(1);
    for (let i = 0; i < 5; i++) sketch.increment(h);
    expect(sketch.frequency(h)).toBe(6);
    sketch.increment(h, 100);
    expect(sketch.frequency(h)).toBe(16);
  });

  it("counts several occurrences at once as it counts them one by one", () => {
    const a = new FrequencySketch(1_000);
    const b = new FrequencySketch(1_000);
    const h = hashKey("k");
    for (let i = 0; i < 7; i++) a.increment(h);
    b.increment(h, 7);
    expect(b.frequency(h)).toBe(a.frequency(h));
  });

  it("ages: halves the counters and forgets first occurrences", () => {
    const sketch = new FrequencySketch(1_000);
    const hot = hashKey("hot");
    const once = hashKey("once");
    sketch.increment(hot, 9); // door + 8
    sketch.increment(once);
    sketch.age();
    // The doorkeeper was cleared, so a key seen once reads as new; the counters kept 8 / 2.
    expect(sketch.frequency(once)).toBe(0);
    expect(sketch.frequency(hot)).toBe(4);
    sketch.increment(hot); // the doorkeeper again
    expect(sketch.frequency(hot)).toBe(5);
  });

  it("keeps keys apart: overestimates stay rare with the cache full of others", () => {
    const sketch = new FrequencySketch(10_000);
    for (let i = 0; i < 10_000; i++) sketch.increment(hashKey(`k${i}`), 3);
    let wrong = 0;
    for (let i = 0; i < 10_000; i++) if (sketch.frequency(hashKey(`k${i}`)) !== 3) wrong++;
    expect(wrong).toBeLessThan(100);
  });
});

describe("the tinylfu L1", () => {
  it("admits a frequently used key over a one-off, and keeps it through a scan", () => {
    const l1 = tinyLfuLocal({ max: 100, maxSize: 1 << 20 });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 50; i++) {
        if (l1.get(`hot${i}`) === undefined) l1.set(`hot${i}`, entry());
      }
    }
    for (let i = 0; i < 1_000; i++)
      if (l1.get(`scan${i}`) === undefined) l1.set(`scan${i}`, entry());
    let kept = 0;
    for (let i = 0; i < 50; i++) if (l1.get(`hot${i}`) !== undefined) kept++;
    // An LRU would keep none of them; the newest may still be in the window when it starts.
    expect(kept).toBeGreaterThanOrEqual(49);
    expect(l1.size).toBeLessThanOrEqual(100);
    expect(l1.evictions).toBeGreaterThan(0);
  });

  it("turns away a new key that was used less than the entry it would push out", () => {
    const l1 = tinyLfuLocal({ max: 10, maxSize: 1 << 20 });
    for (let i = 0; i < 10; i++) l1.set(`k${i}`, entry());
    for (let r = 0; r < 3; r++) for (let i = 0; i < 10; i++) l1.get(`k${i}`);
    l1.set("new", entry());
    l1.set("newer", entry()); // pushes "new" out of the window: it loses to every resident
    expect(l1.get("new")).toBeUndefined();
    expect(l1.size).toBe(10);
    // Used more often than the residents, it gets in.
    for (let i = 0; i < 6; i++) l1.set("new", entry());
    l1.get("new");
    for (let i = 0; i < 6; i++) l1.set(`new${i}`, entry());
    expect(l1.size).toBe(10);
  });

  it("grows its window where recency rules, to about the LRU's hit ratio", () => {
    // A working set of 250 keys sliding by one new key every 10 reads: the LRU keeps it all.
    const random = rng(3);
    const hitRatio = (l1: LocalCache) => {
      let hits = 0;
      for (let i = 0; i < 300_000; i++) {
        const key = `k${Math.floor(i / 10) + Math.floor(random() * 250)}`;
        if (l1.get(key) !== undefined) hits++;
        else l1.set(key, entry());
      }
      return hits / 300_000;
    };
    const lru = hitRatio(lruLocal({ maxItems: 500 }));
    const lfu = hitRatio(tinyLfuLocal({ max: 500, maxSize: 1 << 20 }));
    expect(lru).toBeGreaterThan(0.85);
    expect(lfu).toBeGreaterThan(lru - 0.03); // without the climber: about 0.40
  });

  it("holds maxItems and maxBytes under a random workload, with exact size and bytes", () => {
    const random = rng(7);
    const max = 200;
    const maxSize = 5_000;
    const l1 = tinyLfuLocal({ max, maxSize });
    // The size of each key's latest set: a key L1 holds must hold exactly that entry.
    const latest = new Map<string, number>();
    const key = (i: number) => `k${i}`;
    for (let op = 0; op < 50_000; op++) {
      const k = key(Math.floor(random() ** 2 * 2_000));
      const dice = random();
      if (dice < 0.6) {
        const got = l1.get(k);
        if (got !== undefined) expect(got.size).toBe(latest.get(k));
      } else if (dice < 0.9) {
        // Sizes up to past maxBytes: such an entry is not kept, nor an older copy of it.
        const size = 1 + Math.floor(random() ** 4 * 6_000);
        l1.set(k, entry(size));
        if (size > maxSize) {
          expect(l1.get(k)).toBeUndefined();
          latest.delete(k);
        } else latest.set(k, size);
      } else if (dice < 0.999) {
        l1.delete(k);
        latest.delete(k);
        expect(l1.get(k)).toBeUndefined();
      } else {
        l1.clear();
        latest.clear();
        expect(l1.size).toBe(0);
        expect(l1.bytes).toBe(0);
      }
      expect(l1.size).toBeLessThanOrEqual(max);
      expect(l1.bytes).toBeLessThanOrEqual(maxSize);
      if (op % 1_000 === 0) {
        // size and bytes are exactly what a read of every key finds.
        let items = 0;
        let bytes = 0;
        for (let i = 0; i < 2_000; i++) {
          const got = l1.get(key(i));
          if (got === undefined) continue;
          expect(got.size).toBe(latest.get(key(i)));
          items++;
          bytes += got.size;
        }
        expect(l1.size).toBe(items);
        expect(l1.bytes).toBe(bytes);
      }
    }
  });

  it("drops on delete and clear at once, whatever the segment", () => {
    const l1 = tinyLfuLocal({ max: 100, maxSize: 1 << 20 });
    for (let i = 0; i < 100; i++) l1.set(`k${i}`, entry(3));
    for (let i = 0; i < 50; i++) l1.get(`k${i}`); // some promoted to protected
    l1.delete("k0");
    l1.delete("k99");
    l1.delete("absent");
    expect(l1.get("k0")).toBeUndefined();
    expect(l1.get("k99")).toBeUndefined();
    expect(l1.size).toBe(98);
    expect(l1.bytes).toBe(98 * 3);
    l1.set("k1", entry(10, 2));
    expect(l1.get("k1")?.version).toBe(2);
    expect(l1.bytes).toBe(97 * 3 + 10);
    l1.clear();
    expect(l1.size).toBe(0);
    expect(l1.bytes).toBe(0);
    for (let i = 0; i < 100; i++) expect(l1.get(`k${i}`)).toBeUndefined();
    l1.set("after", entry());
    expect(l1.get("after")).toBeDefined();
  });

  it("is what local.policy picks, and the policy is checked", () => {
    const lfu = resolveLocal({ policy: "tinylfu", maxItems: 10 })!.cache;
    const lru = resolveLocal({ policy: "lru", maxItems: 10 })!.cache;
    for (const l1 of [lfu, lru]) for (let i = 0; i < 20; i++) l1.set(`k${i}`, entry());
    expect(lfu.size).toBe(10);
    expect(lru.size).toBe(10);
    expect(lfu).not.toBe(lru);
    for (const policy of ["lfu", "", null, 1]) {
      expect(() =>
        createCache({ store: memoryStore(), local: { policy } as CacheOptions["local"] }),
      ).toThrowError(expect.objectContaining({ code: "EC_INVALID_OPTION" }));
    }
  });
});

describe("a cache with local: { policy: 'tinylfu' }", () => {
  function setup(local: CacheOptions["local"] = {}) {
    const clock = fakeClock();
    const store = memoryStore({ now: clock.now });
    const options = { store, namespace: "app", now: clock.now };
    const cache = createCache({
      ...options,
      local: { policy: "tinylfu", ...(local as object) },
    });
    return { cache, clock, store, options };
  }

  it("serves L1 hits and sees writes, deletes and clears at once", async () => {
    const { cache } = setup();
    await cache.set("a", 1);
    expect(cache.peek("a")).toBe(1);
    expect(await cache.get("a")).toBe(1);
    expect(cache.stats()).toMatchObject({ l1Hits: 2, l1Items: 1 });
    await cache.set("a", 2);
    expect(cache.peek("a")).toBe(2);
    await cache.delete("a");
    expect(cache.peek("a")).toBeUndefined();
    expect(await cache.get("a")).toBeUndefined();
    await cache.set("b", 1);
    await cache.clear();
    expect(cache.peek("b")).toBeUndefined();
    expect(cache.stats().l1Items).toBe(0);
    await cache.close();
  });

  it("stays within maxItems and maxBytes, counting evictions", async () => {
    const { cache } = setup({ maxItems: 1_000, maxBytes: 2_000 });
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, "x".repeat(100));
    const s = cache.stats();
    expect(s.l1Bytes).toBeLessThanOrEqual(2_000);
    expect(s.l1Items).toBeLessThan(100);
    expect(s.l1Evictions).toBeGreaterThan(0);
    expect(await cache.get("k0")).toBe("x".repeat(100)); // evicted from L1, still in L2
    await cache.close();
  });

  it("expires L1 entries on the cache's clock", async () => {
    const { cache, clock } = setup({ ttl: 100 });
    await cache.set("k", "v", { ttl: 10_000 });
    expect(cache.peek("k")).toBe("v");
    clock.advance(101);
    expect(cache.peek("k")).toBeUndefined();
    expect(await cache.get("k")).toBe("v"); // from L2, back in L1
    expect(cache.peek("k")).toBe("v");
    await cache.close();
  });

  it("gives a namespace a tinylfu L1 of its own", async () => {
    const { cache } = setup({ maxItems: 50 });
    const child = cache.namespace("child");
    await cache.set("k", "parent");
    await child.set("k", "child");
    expect(cache.peek("k")).toBe("parent");
    expect(child.peek("k")).toBe("child");
    await cache.close();
  });

  it("takes another instance's set and delete once the window has passed", async () => {
    const { clock, instance } = cluster({
      sync: { maxStaleness: 1_000 },
      local: { policy: "tinylfu" },
    });
    const a = instance();
    const b = instance();
    await a.set("k", "v1");
    expect(await b.get("k")).toBe("v1");
    await a.set("k", "v2");
    clock.advance(999);
    expect(await b.get("k")).toBe("v1"); // inside the window: allowed
    clock.advance(1);
    expect(await b.get("k")).toBe("v2");
    await a.delete("k");
    clock.advance(1_000);
    expect(await b.get("k")).toBeUndefined();
    await a.set("y", 1);
    expect(await b.get("y")).toBe(1);
    await a.clear();
    clock.advance(1_000);
    expect(await b.get("y")).toBeUndefined();
    expect(b.stats().flushes).toBe(1);
  });
});
