import { Redis } from "@upstash/redis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Cache, createCache, type LoaderContext, memoryStore } from "../src/index.js";
import type { Store } from "../src/store/contract.js";
import { storeSuite } from "../src/store/index.js";
import { freshNamespace, META } from "../src/store/suite-case.js";
import { type ShardedStore, shardedStore } from "../src/stores/sharded.js";
import { upstashStore } from "../src/stores/upstash.js";
import { chaosStore, countRequests, fakeClock, rejection } from "./helpers.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
// A second client for looking at and breaking shards behind the stores' backs.
const raw = new Redis({ url, token, automaticDeserialization: false, enableTelemetry: false });

// Three shards in one Redis, told apart by prefix (as three databases would be).
const PREFIXES = ["sh0", "sh1", "sh2"];
const upstashShards = (): Store[] =>
  PREFIXES.map((prefix) => upstashStore({ url, token }, { prefix }));
const redisKey = (shard: number, ns: string, suffix: string) =>
  `${PREFIXES[shard]}:{${ns}}:${suffix}`;

storeSuite({
  name: "sharded-upstash",
  test: { describe, it, expect },
  make: () => {
    const store = shardedStore(upstashShards());
    return {
      store,
      plantForeign: async (ns, key, value) => {
        const shard = Number(store.shardFor(key));
        await raw.set(redisKey(shard, ns, `k:${key}`), value, { px: 60_000 });
      },
    };
  },
  capabilities: {
    leases: true,
    fakeTime: false,
    foreignData: true,
    orderedVersions: false,
    keys: true,
    batchLeases: true,
  },
});

storeSuite({
  name: "sharded-memory",
  test: { describe, it, expect },
  make: () => {
    const clock = fakeClock();
    const store = shardedStore([0, 1, 2].map(() => memoryStore({ now: clock.now })));
    return { store, advance: clock.advance };
  },
  capabilities: {
    leases: true,
    fakeTime: true,
    foreignData: false,
    orderedVersions: false,
    keys: true,
    batchLeases: true,
  },
});

/** Keys `${prefix}0..` until every shard of `store` holds at least `perShard` of them. */
function spreadKeys(store: ShardedStore, shards: number, perShard = 2, prefix = "k"): string[] {
  const counts = new Array(shards).fill(0);
  const keys: string[] = [];
  for (let i = 0; counts.some((c) => c < perShard); i++) {
    const key = `${prefix}${i}`;
    keys.push(key);
    counts[Number(store.shardFor(key))]++;
  }
  return keys;
}

describe("ring", () => {
  const KEYS = 100_000;
  const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`);
  const ownersFor = (n: number): string[] => {
    const store = shardedStore(Array.from({ length: n }, () => memoryStore()));
    return keys.map((k) => store.shardFor(k));
  };

  it("spreads 100,000 keys within 10% of the mean load on 2 to 10 shards", () => {
    for (let n = 2; n <= 10; n++) {
      const counts = new Map<string, number>();
      for (const o of ownersFor(n)) counts.set(o, (counts.get(o) ?? 0) + 1);
      expect(counts.size).toBe(n);
      const mean = KEYS / n;
      expect(Math.max(...counts.values()) / mean).toBeLessThanOrEqual(1.1);
      expect(Math.min(...counts.values()) / mean).toBeGreaterThanOrEqual(0.9);
    }
  });

  it("adding a shard moves about 1/(n+1) of the keys, every one of them to the new shard", () => {
    let before = ownersFor(2);
    for (let n = 2; n <= 10; n++) {
      const after = ownersFor(n + 1);
      let moved = 0;
      let elsewhere = 0;
      for (let i = 0; i < KEYS; i++) {
        if (after[i] === before[i]) continue;
        moved++;
        if (after[i] !== String(n)) elsewhere++; // the new shard's default id is its index
      }
      expect(elsewhere).toBe(0);
      const expected = KEYS / (n + 1);
      expect(Math.abs(moved - expected) / expected).toBeLessThanOrEqual(0.1);
      before = after;
    }
  });

  it("places keys by shard id, not by position in the list, and weights scale the share", () => {
    const [a, b, c] = [memoryStore(), memoryStore(), memoryStore()];
    const one = shardedStore([
      { id: "a", store: a },
      { id: "b", store: b },
      { id: "c", store: c },
    ]);
    const reordered = shardedStore([
      { id: "c", store: c },
      { id: "a", store: a },
      { id: "b", store: b },
    ]);
    const sample = keys.slice(0, 10_000);
    expect(sample.map((k) => reordered.shardFor(k))).toEqual(sample.map((k) => one.shardFor(k)));

    const weighted = shardedStore([
      { id: "light", store: a },
      { id: "heavy", store: b, weight: 2 },
    ]);
    const heavy = keys.filter((k) => weighted.shardFor(k) === "heavy").length;
    expect(heavy / KEYS).toBeGreaterThan(0.6);
    expect(heavy / KEYS).toBeLessThan(0.73);
  });

  it("hashes the key's UTF-8 bytes: a lone surrogate is U+FFFD, as TextEncoder has it", () => {
    const store = shardedStore(Array.from({ length: 10 }, () => memoryStore()));
    expect(store.shardFor("x\ud800y")).toBe(store.shardFor("x\ufffdy"));
    const spread = new Set(["é", "世界", "🌍", "a🌍b", "\u0000", ""].map((k) => store.shardFor(k)));
    expect(spread.size).toBeGreaterThan(1);
  });

  it("refuses bad shards and options with EC_INVALID_OPTION", () => {
    const m = memoryStore();
    const bad = [
      () => shardedStore([]),
      () => shardedStore([m, { id: "0", store: memoryStore() }]),
      () => shardedStore([{ id: "", store: m }]),
      () => shardedStore([{} as Store]),
      () => shardedStore([{ id: "a", store: {} as Store }]),
      () => shardedStore([m], { replicas: 0 }),
      () => shardedStore([m], { replicas: 1.5 }),
      () => shardedStore([m], { replicas: Number.NaN }),
      () => shardedStore([m], null as never),
      () => shardedStore([{ id: "a", store: m, weight: 0 }]),
      () => shardedStore([{ id: "a", store: m, weight: Number.POSITIVE_INFINITY }]),
      () => shardedStore("nope" as never),
    ];
    for (const make of bad) {
      expect(make).toThrowError(expect.objectContaining({ code: "EC_INVALID_OPTION" }));
    }
    expect(shardedStore([m, memoryStore()]).name).toBe("sharded(memory,memory)");
  });
});

describe("routing", () => {
  it("keeps each entry only on its key's shard", async () => {
    const shards = upstashShards();
    const store = shardedStore(shards);
    const ns = freshNamespace("route");
    const keys = spreadKeys(store, 3, 5);
    await store.set(
      ns,
      keys.map((key) => ({ key, value: `v-${key}`, ttl: 60_000, propagate: false })),
      META,
    );
    for (let s = 0; s < shards.length; s++) {
      const { entries } = await shards[s]!.get(ns, keys);
      keys.forEach((key, i) => {
        const owned = store.shardFor(key) === String(s);
        expect(entries[i]?.value).toBe(owned ? `v-${key}` : undefined);
      });
    }
    expect((await store.get(ns, keys)).entries.map((e) => e?.value)).toEqual(
      keys.map((k) => `v-${k}`),
    );
    // Deletes reach only the shards that hold the keys, but each of them.
    await store.delete(ns, keys.slice(0, 4), META);
    const after = await store.get(ns, keys);
    expect(after.entries.map((e) => e?.value)).toEqual(
      keys.map((k, i) => (i < 4 ? undefined : `v-${k}`)),
    );
  });

  it("takes leases on the key's shard, and offers them only if every shard does", async () => {
    const shards = [memoryStore(), memoryStore(), memoryStore()];
    const store = shardedStore(shards);
    const [key] = spreadKeys(store, 3, 1).filter((k) => store.shardFor(k) === "2");
    expect(await store.acquireLease!("ns", key!, "t1", 10_000)).toBe(true);
    expect(await shards[2]!.acquireLease!("ns", key!, "t2", 10_000)).toBe(false);
    expect(await shards[0]!.acquireLease!("ns", key!, "t2", 10_000)).toBe(true);
    await store.releaseLease!("ns", key!, "t1");
    expect(await shards[2]!.acquireLease!("ns", key!, "t2", 10_000)).toBe(true);

    const { acquireLease, releaseLease, ...withoutLeases } = memoryStore();
    const partial = shardedStore([memoryStore(), withoutLeases]);
    expect(partial.acquireLease).toBeUndefined();
    expect(partial.releaseLease).toBeUndefined();
  });

  it("closes every shard that can be closed", async () => {
    let closed = 0;
    const closable = (): Store => ({
      ...memoryStore(),
      close: async () => {
        closed++;
      },
    });
    await shardedStore([closable(), memoryStore(), closable()]).close!();
    expect(closed).toBe(2);
  });
});

describe("coherence through real caches", () => {
  const cacheOn = (store: Store, namespace: string): Cache =>
    createCache({ store, namespace, sync: { maxStaleness: 0 }, logger: false });

  function pair() {
    const namespace = freshNamespace("coh");
    const a = cacheOn(shardedStore(upstashShards()), namespace);
    const b = cacheOn(shardedStore(upstashShards()), namespace);
    const keys = spreadKeys(shardedStore(upstashShards()), 3, 2);
    return { namespace, a, b, keys };
  }

  it("writes, deletes and clears on one instance are seen by the other on its next read", async () => {
    const { a, b, keys } = pair();
    await a.setMany(keys.map((k) => [k, `v1-${k}`]));
    expect(await b.getMany(keys)).toEqual(keys.map((k) => `v1-${k}`));
    expect(b.stats().l1Items).toBe(keys.length);

    // One setMany across all shards, values propagated: b updates its L1 in place.
    await a.setMany(keys.map((k) => [k, `v2-${k}`]));
    const hits = b.stats().l1Hits;
    expect(await b.getMany(keys)).toEqual(keys.map((k) => `v2-${k}`));
    expect(b.stats().l1Hits - hits).toBe(keys.length);

    // Invalidation only: b drops its copies and reads L2.
    for (const k of keys) await a.setWithInvalidate(k, `v3-${k}`);
    expect(await b.getMany(keys)).toEqual(keys.map((k) => `v3-${k}`));

    const gone = keys.filter((_, i) => i % 2 === 0);
    await a.deleteMany(gone);
    expect(await b.getMany(keys)).toEqual(
      keys.map((k, i) => (i % 2 === 0 ? undefined : `v3-${k}`)),
    );

    await a.clear();
    expect(await b.getMany(keys)).toEqual(keys.map(() => undefined));
    await a.set(keys[1]!, "after");
    expect(await b.get(keys[1]!)).toBe("after");
    // The merged log stayed contiguous throughout: nobody had to drop L1 for a gap.
    expect(a.stats().flushes).toBe(0);
    // a's clear, applied as such: one clear record per shard, each counted.
    expect(b.stats().flushes).toBe(3);
  });

  it("a failing shard: reads miss and count the error, writes reject, and all is coherent after", async () => {
    const namespace = freshNamespace("down");
    const chaosA = chaosStore(upstashStore({ url, token }, { prefix: PREFIXES[1] }));
    const chaosB = chaosStore(upstashStore({ url, token }, { prefix: PREFIXES[1] }));
    const [s0a, , s2a] = upstashShards();
    const [s0b, , s2b] = upstashShards();
    const a = cacheOn(shardedStore([s0a!, chaosA.store, s2a!]), namespace);
    const b = cacheOn(shardedStore([s0b!, chaosB.store, s2b!]), namespace);
    const ring = shardedStore([memoryStore(), memoryStore(), memoryStore()]);
    const keys = spreadKeys(ring, 3, 2);
    const healthy = keys.find((k) => ring.shardFor(k) === "0")!;
    const broken = keys.find((k) => ring.shardFor(k) === "1")!;
    await a.setMany(keys.map((k) => [k, "v1"]));
    expect(await b.getMany(keys)).toEqual(keys.map(() => "v1"));

    chaosB.mode = "fail";
    const errors = b.stats().errors;
    // No sync can vouch for L1 while a shard's log is out of reach: misses, not stale values.
    expect(await b.get(healthy)).toBeUndefined();
    expect(await b.get(broken)).toBeUndefined();
    expect(b.stats().errors).toBeGreaterThan(errors);

    chaosA.mode = "fail";
    // Lands on its healthy shard, but the call failed as a whole: it must not resolve.
    expect((await rejection(a.set(healthy, "v2"))).code).toBe("EC_STORE_UNAVAILABLE");
    expect((await rejection(a.set(broken, "v2"))).code).toBe("EC_STORE_UNAVAILABLE");
    expect((await rejection(a.clear())).code).toBe("EC_STORE_UNAVAILABLE");

    chaosA.mode = "ok";
    chaosB.mode = "ok";
    // The clear reached shards 0 and 2 but not 1; the write to `healthy` landed before it.
    const expected = keys.map((k) => (ring.shardFor(k) === "1" ? "v1" : undefined));
    expect(await b.getMany(keys)).toEqual(expected);
    expect(await a.getMany(keys)).toEqual(expected);
    await a.setMany(keys.map((k) => [k, "v3"]));
    expect(await b.getMany(keys)).toEqual(keys.map(() => "v3"));
  });

  it("a shard whose log was lost makes readers drop L1 instead of serving stale values", async () => {
    const { namespace, a, b, keys } = pair();
    const ring = shardedStore(upstashShards());
    const [k1, k2] = keys.filter((k) => ring.shardFor(k) === "1");
    await a.setMany(keys.map((k) => [k, "old"]));
    expect(await b.getMany(keys)).toEqual(keys.map(() => "old"));

    await a.set(k1!, "new");
    await raw.del(redisKey(1, namespace, "log"));
    let flushes = b.stats().flushes;
    expect(await b.get(k1!)).toBe("new");
    expect(b.stats().flushes).toBe(flushes + 1);

    // A lost counter: it comes back from Redis' clock, far ahead; the jump reads as a gap.
    expect(await b.getMany(keys)).toEqual(keys.map((k) => (k === k1 ? "new" : "old")));
    await raw.del(redisKey(1, namespace, "v"));
    await a.set(k2!, "new");
    flushes = b.stats().flushes;
    expect(await b.get(k2!)).toBe("new");
    expect(b.stats().flushes).toBe(flushes + 1);
    expect(await b.getMany(keys)).toEqual(keys.map((k) => (k === k1 || k === k2 ? "new" : "old")));
  });

  it("an answer older than a merge already made cannot leave a stale value in L1", async () => {
    // Two caches share one sharded store; one's read of k is answered from before another
    // instance's write of k, and arrives after the other cache's call merged that write.
    // Memory shards: the read runs at once and only its answer waits, deterministically.
    const shards = [memoryStore(), memoryStore(), memoryStore()];
    const k = "user:1";
    const s = Number(shardedStore(shards).shardFor(k));
    const chaos = chaosStore(shards[s]!);
    const shared = shardedStore(shards.map((x, i) => (i === s ? chaos.store : x)));
    const writer = cacheOn(shardedStore(shards), "lag");
    const reader = cacheOn(shared, "lag");
    const other = cacheOn(shared, "lag");
    await writer.set(k, "old");
    await reader.get("warm");
    await other.get("warm");

    const release = chaos.holdNextRead();
    const pending = reader.get(k);
    await writer.setWithInvalidate(k, "new");
    await other.get("something");
    release();
    expect(await pending).toBe("old"); // it started before the write: a fine answer then
    expect(await reader.get(k)).toBe("new");

    // The same for a write whose answer is overtaken.
    const releaseWrite = chaos.holdNextWrite();
    const writing = reader.set(k, "mine");
    await writer.setWithInvalidate(k, "theirs");
    await other.get("something");
    releaseWrite();
    await writing;
    expect(await reader.get(k)).toBe("theirs");
    expect(reader.stats().flushes).toBe(0);
  });
});

describe("request counts against the real bridge", () => {
  const requests = countRequests(url);
  afterAll(() => requests.restore());

  it("with sync, a get of one key costs one request per shard; without, one per shard involved", async () => {
    const namespace = freshNamespace("count");
    const a = createCache({ store: shardedStore(upstashShards()), namespace });
    const b = createCache({
      store: shardedStore(upstashShards()),
      namespace,
      sync: { maxStaleness: 0 },
    });
    requests.reset();
    await a.set("k", 1);
    expect(requests.count).toBe(3);

    requests.reset();
    expect(await b.get("k")).toBe(1); // cold: k's shard reads and syncs, the others sync
    expect(requests.count).toBe(3);

    requests.reset();
    expect(await b.get("k")).toBe(1); // in L1, window 0: a sync of every shard
    expect(requests.count).toBe(3);

    const solo = createCache({ store: shardedStore(upstashShards()), namespace, sync: false });
    const keys = spreadKeys(shardedStore(upstashShards()), 3, 1);
    requests.reset();
    expect(await solo.get("k")).toBe(1);
    expect(requests.count).toBe(1);
    requests.reset();
    await solo.getMany(keys.slice(0, 1));
    await solo.setMany(keys.map((k) => [k, 1]));
    expect(requests.count).toBe(1 + 3);
  });
});

describe("tags", () => {
  // A tag's marker and its entries live on different shards, whose counters do not compare:
  // an entry on a busier shard would outrank a later invalidation. So tags are refused.
  it("are refused with a typed error, changing nothing, on a sharded store", async () => {
    const sharded = shardedStore([0, 1].map(() => memoryStore()));
    expect(sharded.orderedVersions).toBe(false);
    const chaos = chaosStore(sharded);
    const store = chaos.store;
    const cache = createCache({ store, namespace: "app" });
    for (const attempt of [
      () => cache.set("k", 1, { tags: ["t"] }),
      () => cache.setMany([["k", 1, { tags: ["t"] }]]),
      () => cache.invalidateTag("t"),
      () => cache.invalidateTags(["t", "u"]),
      () => cache.getOrSet("k", async () => 1, { tags: ["t"] }),
      () => cache.namespace("group").getOrSet("k", async () => 1, { tags: ["t"] }),
    ]) {
      const err = await rejection(attempt());
      expect(err.code).toBe("EC_INVALID_OPTION");
      expect(err.message).toContain("sharded");
    }
    expect(chaos.calls).toBe(0);
    expect(await cache.get("k")).toBeUndefined();
    // A loader's ctx.tag throws the same error, so the caller learns of it.
    const tagging = async (_k: string, ctx: LoaderContext) => {
      ctx.tag("t");
      return 7;
    };
    expect((await rejection(cache.getOrSet("k2", tagging))).code).toBe("EC_INVALID_OPTION");
    expect(await cache.get("k2")).toBeUndefined();
    // Not remembered as a loader failure by negativeTtl: it is the call's mistake.
    for (let i = 0; i < 2; i++) {
      const err = await rejection(cache.getOrSet("k3", tagging, { negativeTtl: 60_000 }));
      expect(err.code).toBe("EC_INVALID_OPTION");
    }
    // Untagged writes go on as before.
    await cache.set("k", 2);
    expect(await cache.get("k")).toBe(2);
  });

  it("a tagged entry already in a sharded L2 (an older release's) is never served", async () => {
    const sharded = shardedStore([0, 1].map(() => memoryStore()));
    // The older release: it did not know to refuse tags (as a wrapper that drops the flag).
    const { orderedVersions: _, ...older } = sharded;
    const legacy = createCache({ store: older as Store, namespace: "app" });
    await legacy.set("k", "tagged", { tags: ["t"] });
    await legacy.set("plain", "untagged");
    const cache = createCache({ store: sharded, namespace: "app" });
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.get("plain")).toBe("untagged");
  });

  it("a single store, and wrappers around one, keep them", () => {
    expect(memoryStore().orderedVersions).toBeUndefined();
    expect(chaosStore(memoryStore()).store.orderedVersions).toBeUndefined();
    expect(chaosStore(shardedStore([memoryStore(), memoryStore()])).store.orderedVersions).toBe(
      false,
    );
  });
});
