import { describe, expect, it, vi } from "vitest";
import {
  type Cache,
  type CacheOptions,
  createCache,
  type EdgeCacheError,
  isEdgeCacheError,
  type LocalCache,
  memoryStore,
} from "../src/index.js";
import { storeSuite } from "../src/store/index.js";
import { chaosStore, fakeClock } from "./helpers.js";

storeSuite({
  name: "memory",
  test: { describe, it, expect },
  make: () => {
    const clock = fakeClock();
    return { store: memoryStore({ now: clock.now }), advance: clock.advance };
  },
  capabilities: {
    leases: true,
    fakeTime: true,
    foreignData: false,
    orderedVersions: true,
    keys: true,
    batchLeases: true,
  },
});

function setup(options: Partial<CacheOptions> = {}) {
  const clock = fakeClock();
  const chaos = chaosStore(memoryStore({ now: clock.now }));
  const errors: EdgeCacheError[] = [];
  const cache = createCache({
    store: chaos.store,
    namespace: "app",
    now: clock.now,
    onError: (e) => errors.push(e),
    ...options,
  });
  return { cache, chaos, clock, errors };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<EdgeCacheError> {
  try {
    await p;
  } catch (err) {
    expect(isEdgeCacheError(err)).toBe(true);
    expect((err as EdgeCacheError).code).toBe(code);
    return err as EdgeCacheError;
  }
  throw new Error(`expected a rejection with ${code}`);
}

describe("reads and writes", () => {
  it("round-trips rich values through L2 with superjson", async () => {
    const { cache, chaos } = setup();
    const other = createCache({ store: chaos.store, namespace: "app" });
    const value = {
      name: "Ada",
      born: new Date(1815, 11, 10),
      tags: new Set(["math"]),
      notes: new Map([["k", 1]]),
      big: 2n ** 70n,
      nothing: undefined,
      nil: null,
    };
    await cache.set("user:1", value);
    // `other` has an empty L1, so this comes from L2 through the codec.
    expect(await other.get("user:1")).toEqual(value);
    expect(other.stats()).toMatchObject({ l1Misses: 1, l2Hits: 1 });
  });

  it("serves an L1 hit without touching the store", async () => {
    const { cache, chaos } = setup();
    await cache.set("a", 1);
    const before = chaos.calls;
    expect(await cache.get("a")).toBe(1);
    expect(cache.peek("a")).toBe(1);
    expect(await cache.has("a")).toBe(true);
    expect(chaos.calls).toBe(before);
    expect(cache.stats()).toMatchObject({ l1Hits: 3, l1Misses: 0, sets: 1 });
  });

  it("fills L1 from L2 once, then serves from L1", async () => {
    const { chaos } = setup();
    const a = createCache({ store: chaos.store, namespace: "app" });
    const b = createCache({ store: chaos.store, namespace: "app" });
    await a.set("k", "v");
    const before = chaos.calls;
    expect(await b.get("k")).toBe("v");
    expect(await b.get("k")).toBe("v");
    expect(chaos.calls - before).toBe(1);
    expect(b.stats()).toMatchObject({ l1Hits: 1, l1Misses: 1, l2Hits: 1, l2Misses: 0 });
  });

  it("returns undefined for misses and counts them", async () => {
    const { cache } = setup();
    expect(await cache.get("nope")).toBeUndefined();
    expect(await cache.has("nope")).toBe(false);
    expect(cache.peek("nope")).toBeUndefined();
    expect(cache.stats()).toMatchObject({ l1Misses: 3, l2Misses: 2 });
  });

  it("getMany aligns results with keys, handles duplicates, and uses one L2 call for misses", async () => {
    const { cache, chaos } = setup();
    const reader = createCache({ store: chaos.store, namespace: "app" });
    await cache.setMany([
      ["a", 1],
      ["b", 2, { ttl: 1_000 }],
      ["c", { x: 3 }],
    ]);
    await reader.get("a");
    const before = chaos.calls;
    expect(await reader.getMany(["c", "zz", "a", "b", "c"])).toEqual([
      { x: 3 },
      undefined,
      1,
      2,
      { x: 3 },
    ]);
    expect(chaos.calls - before).toBe(1);
    expect(await reader.getMany([])).toEqual([]);
  });

  it("deleteMany and delete remove from L1 and L2", async () => {
    const { cache, chaos } = setup();
    const other = createCache({ store: chaos.store, namespace: "app" });
    await cache.setMany([
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ]);
    await cache.deleteMany(["a", "b"]);
    await cache.delete("c");
    expect(await cache.getMany(["a", "b", "c"])).toEqual([undefined, undefined, undefined]);
    expect(await other.getMany(["a", "b", "c"])).toEqual([undefined, undefined, undefined]);
    expect(cache.stats().deletes).toBe(3);
  });

  it("clear empties this namespace only", async () => {
    const { cache, chaos } = setup();
    const neighbour = createCache({ store: chaos.store, namespace: "app2" });
    await cache.set("k", 1);
    await neighbour.set("k", 2);
    await cache.clear();
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.stats().l1Items).toBe(0);
    expect(await neighbour.get("k")).toBe(2);
    await cache.set("k", 3);
    expect(await cache.get("k")).toBe(3);
  });

  it("keeps namespaces apart", async () => {
    const { chaos } = setup();
    const a = createCache({ store: chaos.store, namespace: "a" });
    const b = createCache({ store: chaos.store, namespace: "b" });
    await a.set("k", "from a");
    expect(await b.get("k")).toBeUndefined();
  });

  it("with local: false every read goes to L2", async () => {
    const { cache, chaos } = setup({ local: false });
    await cache.set("k", 1);
    const before = chaos.calls;
    await cache.get("k");
    await cache.get("k");
    expect(chaos.calls - before).toBe(2);
    expect(cache.peek("k")).toBeUndefined();
    expect(cache.stats()).toMatchObject({ l1Hits: 0, l2Hits: 2, l1Items: 0 });
  });

  it("uses the json serializer when asked, and refuses what JSON cannot carry", async () => {
    const { cache } = setup({ serializer: "json" });
    await cache.set("k", { a: [1, "x", null] });
    expect(await cache.get("k")).toEqual({ a: [1, "x", null] });
    await rejectsWith(cache.set("big", 1n), "EC_SERIALIZE");
  });

  it("accepts a custom serializer", async () => {
    const { cache, chaos } = setup({
      serializer: {
        name: "rev",
        serialize: (v) => JSON.stringify(v).split("").reverse().join(""),
        deserialize: (s) => JSON.parse(s.split("").reverse().join("")),
      },
    });
    await cache.set("k", { a: 1 });
    const fresh = createCache({
      store: chaos.store,
      namespace: "app",
      serializer: {
        name: "rev",
        serialize: (v) => JSON.stringify(v).split("").reverse().join(""),
        deserialize: (s) => JSON.parse(s.split("").reverse().join("")),
      },
    });
    expect(await fresh.get("k")).toEqual({ a: 1 });
  });
});

describe("TTL and L1 lifetime", () => {
  it("expires entries in both tiers after their TTL", async () => {
    const { cache, clock } = setup({ ttl: 10_000 });
    await cache.set("default", 1);
    await cache.set("short", 2, { ttl: 1_000 });
    clock.advance(999);
    expect(cache.peek("short")).toBe(2);
    clock.advance(1);
    expect(cache.peek("short")).toBeUndefined();
    expect(await cache.get("short")).toBeUndefined();
    expect(await cache.get("default")).toBe(1);
    clock.advance(9_000);
    expect(await cache.get("default")).toBeUndefined();
  });

  it("an entry read from L2 lives in L1 no longer than its remaining L2 TTL", async () => {
    const { chaos, clock } = setup();
    const writer = createCache({ store: chaos.store, namespace: "app", now: clock.now });
    const reader = createCache({ store: chaos.store, namespace: "app", now: clock.now });
    await writer.set("k", "v", { ttl: 5_000 });
    clock.advance(4_000);
    expect(await reader.get("k")).toBe("v");
    clock.advance(999);
    expect(reader.peek("k")).toBe("v");
    clock.advance(1);
    expect(reader.peek("k")).toBeUndefined();
  });

  it("local.ttl caps L1 lifetime below the L2 TTL", async () => {
    const { cache, clock, chaos } = setup({ local: { ttl: 100 } });
    await cache.set("k", "v", { ttl: 60_000 });
    clock.advance(100);
    expect(cache.peek("k")).toBeUndefined();
    const before = chaos.calls;
    expect(await cache.get("k")).toBe("v");
    expect(chaos.calls - before).toBe(1);
  });
});

describe("clockResolution", () => {
  it("reads the clock once per resolution and expires entries that much early", async () => {
    vi.useFakeTimers();
    try {
      const clock = fakeClock();
      let reads = 0;
      const now = () => {
        reads++;
        return clock.now();
      };
      const cache = createCache({
        store: memoryStore({ now }),
        namespace: "app",
        now,
        clockResolution: 10,
      });
      await cache.set("k", "v", { ttl: 1_000 });
      reads = 0;
      for (let i = 0; i < 100; i++) expect(cache.peek("k")).toBe("v");
      expect(reads).toBe(1);
      clock.advance(989);
      vi.advanceTimersByTime(10);
      expect(cache.peek("k")).toBe("v");
      clock.advance(1); // 990 ms: within `resolution` of expiry, so L1 gives up on it
      vi.advanceTimersByTime(10);
      expect(cache.peek("k")).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it("is refused when negative or not finite", () => {
    for (const clockResolution of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createCache({ store: memoryStore(), clockResolution })).toThrowError(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
  });
});

describe("L1 bounds and sharing", () => {
  it("stays within maxItems and maxBytes, counting evictions", async () => {
    const { cache } = setup({ local: { maxItems: 1_000, maxBytes: 2_000 } });
    for (let i = 0; i < 100; i++) await cache.set(`k${i}`, "x".repeat(100));
    const s = cache.stats();
    expect(s.l1Bytes).toBeLessThanOrEqual(2_000);
    expect(s.l1Items).toBeLessThan(100);
    expect(s.l1Evictions).toBeGreaterThan(0);
    expect(await cache.get("k0")).toBe("x".repeat(100)); // evicted from L1, still in L2
  });

  it("shares returned objects by default, copies them with copyOnRead", async () => {
    const shared = setup();
    await shared.cache.set("k", { n: 1 });
    (await shared.cache.get<{ n: number }>("k"))!.n = 2;
    expect(await shared.cache.get("k")).toEqual({ n: 2 });

    const copied = setup({ local: { copyOnRead: true } });
    const original = { n: 1 };
    await copied.cache.set("k", original);
    original.n = 5;
    (await copied.cache.get<{ n: number }>("k"))!.n = 2;
    copied.cache.peek<{ n: number }>("k")!.n = 3;
    const [a, b] = await copied.cache.getMany<{ n: number }>(["k", "k"]);
    expect(a).toEqual({ n: 1 });
    expect(a).not.toBe(b);
  });

  it("accepts a custom LocalCache", async () => {
    const map = new Map<string, Parameters<LocalCache["set"]>[1]>();
    const local: LocalCache = {
      get: (k) => map.get(k),
      set: (k, e) => void map.set(k, e),
      delete: (k) => void map.delete(k),
      clear: () => map.clear(),
      get size() {
        return map.size;
      },
      get bytes() {
        return [...map.values()].reduce((n, e) => n + e.size, 0);
      },
    };
    const { cache } = setup({ local: { cache: local } });
    await cache.set("k", "v");
    expect(map.get("k")?.value).toBe("v");
    expect(cache.stats().l1Items).toBe(1);
    // Passed bare, as before `local: { cache }` (no longer in the type), it still works.
    map.clear();
    const bare = setup({ local: local as CacheOptions["local"] });
    await bare.cache.set("k", "w");
    expect(map.get("k")?.value).toBe("w");
    await bare.cache.close();
  });
});

describe("bad input changes nothing", () => {
  const cases: Array<[string, (c: Cache) => Promise<unknown>, string]> = [
    ["empty key", (c) => c.set("", 1), "EC_INVALID_KEY"],
    ["non-string key", (c) => c.set(42 as unknown as string, 1), "EC_INVALID_KEY"],
    ["oversized key", (c) => c.set("k".repeat(1025), 1), "EC_INVALID_KEY"],
    ["oversized multibyte key", (c) => c.set("é".repeat(513), 1), "EC_INVALID_KEY"],
    ["NaN ttl", (c) => c.set("k", 1, { ttl: Number.NaN }), "EC_INVALID_OPTION"],
    ["negative ttl", (c) => c.set("k", 1, { ttl: -1 }), "EC_INVALID_OPTION"],
    ["zero ttl", (c) => c.set("k", 1, { ttl: 0 }), "EC_INVALID_OPTION"],
    ["infinite ttl", (c) => c.set("k", 1, { ttl: Number.POSITIVE_INFINITY }), "EC_INVALID_OPTION"],
    ["function value", (c) => c.set("k", () => 1), "EC_SERIALIZE"],
    ["symbol value", (c) => c.set("k", Symbol("s")), "EC_SERIALIZE"],
    ["nested function", (c) => c.set("k", { a: [1, { f() {} }] }), "EC_SERIALIZE"],
    ["undefined value", (c) => c.set("k", undefined), "EC_SERIALIZE"],
    ["value over maxValueBytes", (c) => c.set("k", "x".repeat(2_000)), "EC_VALUE_TOO_LARGE"],
    [
      "one bad entry in setMany",
      (c) =>
        c.setMany([
          ["k", 1],
          ["", 2],
        ]),
      "EC_INVALID_KEY",
    ],
    [
      "one bad value in setMany",
      (c) =>
        c.setMany([
          ["k", 1],
          ["j", () => 2],
        ]),
      "EC_SERIALIZE",
    ],
    ["bad key in getMany", (c) => c.getMany(["ok", ""]), "EC_INVALID_KEY"],
    ["bad key in deleteMany", (c) => c.deleteMany(["ok", "x".repeat(2_000)]), "EC_INVALID_KEY"],
    ["bad key in get", (c) => c.get(""), "EC_INVALID_KEY"],
  ];
  for (const [name, op, code] of cases) {
    it(`${name}: ${code}, nothing written to L1 or L2`, async () => {
      const { cache, chaos } = setup({ maxValueBytes: 1_000 });
      await cache.set("k", "original");
      const callsBefore = chaos.calls;
      const statsBefore = cache.stats();
      await rejectsWith(op(cache), code);
      expect(chaos.calls).toBe(callsBefore);
      expect(cache.stats()).toEqual(statsBefore);
      expect(cache.peek("k")).toBe("original");
    });
  }

  it("refuses invalid options at construction", () => {
    const store = memoryStore();
    const bad: Array<Partial<CacheOptions>> = [
      { namespace: "a{b}" },
      { namespace: "" },
      { namespace: "has space" },
      { ttl: -5 },
      { ttl: Number.NaN },
      { local: { maxItems: 0 } },
      { local: { maxBytes: 1.5 } },
      { serializer: "xml" as never },
      { serializer: { name: "bad name!", serialize: String, deserialize: String } },
      { maxValueBytes: 0 },
      { onError: "no" as never },
    ];
    for (const options of bad) {
      expect(() => createCache({ store, ...options })).toThrowError(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
    expect(() => createCache({} as CacheOptions)).toThrowError(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
  });
});

describe("faults", () => {
  it("reads fail open: an L2 error is a miss, counted and reported; L1 keeps serving", async () => {
    const { cache, chaos, errors } = setup();
    await cache.set("cached", 1);
    chaos.mode = "fail";
    expect(await cache.get("cached")).toBe(1);
    expect(await cache.get("uncached")).toBeUndefined();
    expect(await cache.getMany(["cached", "x", "y"])).toEqual([1, undefined, undefined]);
    expect(cache.stats()).toMatchObject({ errors: 2, l2Misses: 3 });
    expect(errors.map((e) => e.code)).toEqual(["EC_STORE_UNAVAILABLE", "EC_STORE_UNAVAILABLE"]);
  });

  it("a read of held and missing keys past its window asks a failing L2 once, not twice", async () => {
    const { cache, chaos, clock, errors } = setup({ breaker: false, sync: { maxStaleness: 1000 } });
    await cache.set("held", 1);
    clock.advance(1500); // L1's copy needs a sync to vouch for it now
    chaos.mode = "fail";
    const before = chaos.calls;
    // The read of the missing key carries the sync; when it fails (a whole store timeout
    // on a hung L2), no second request is made for the sync alone.
    expect(await cache.getMany(["held", "missing"])).toEqual([undefined, undefined]);
    expect(chaos.calls - before).toBe(1);
    expect(errors.map((e) => e.code)).toEqual(["EC_STORE_UNAVAILABLE"]);
    chaos.mode = "ok";
    expect(await cache.getMany(["held", "missing"])).toEqual([1, undefined]);
  });

  it("writes fail closed: a typed rejection, and L1 no longer serves the key", async () => {
    const { cache, chaos } = setup();
    await cache.set("k", "old");
    chaos.mode = "fail";
    await rejectsWith(cache.set("k", "new"), "EC_STORE_UNAVAILABLE");
    await rejectsWith(
      cache.setMany([
        ["k", "new"],
        ["j", 1],
      ]),
      "EC_STORE_UNAVAILABLE",
    );
    await rejectsWith(cache.delete("k"), "EC_STORE_UNAVAILABLE");
    await rejectsWith(cache.clear(), "EC_STORE_UNAVAILABLE");
    expect(cache.peek("k")).toBeUndefined();
    expect(cache.stats()).toMatchObject({ sets: 1, deletes: 0, clears: 0, errors: 4 });
    chaos.mode = "ok";
    expect(await cache.get("k")).toBe("old"); // L2 never took the write
  });

  it("corrupt L2 data is a counted miss, reported, never thrown and never put in L1", async () => {
    const { cache, chaos, errors } = setup();
    const writer = createCache({ store: chaos.store, namespace: "app" });
    await writer.set("k", { a: 1 });
    chaos.mode = "garble";
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.stats()).toMatchObject({ corrupt: 2, l2Misses: 2, l1Items: 0 });
    expect(errors.map((e) => e.code)).toEqual(["EC_CORRUPT_ENTRY", "EC_CORRUPT_ENTRY"]);
  });

  it("an entry written with another serializer reads as a corrupt miss, not misparsed", async () => {
    const { chaos, errors } = setup();
    const jsonCache = createCache({ store: chaos.store, namespace: "app", serializer: "json" });
    const sjCache = createCache({
      store: chaos.store,
      namespace: "app",
      onError: (e) => errors.push(e),
    });
    await jsonCache.set("k", { json: 1 });
    expect(await sjCache.get("k")).toBeUndefined();
    expect(sjCache.stats().corrupt).toBe(1);
  });

  // With coherence on, the change log also keeps such answers out; with it off, the floors
  // are the only guard, so both are tested.
  it.each([
    ["coherence on", {}],
    ["coherence off", { sync: false as const }],
  ])(
    "a late L2 answer never overwrites a newer local delete, set or clear in L1 (%s)",
    async (_, options) => {
      const { cache, chaos } = setup(options);
      const writer = createCache({ store: chaos.store, namespace: "app" });
      await writer.set("k", "old");

      let release = chaos.holdReads();
      const read = cache.get("k");
      await cache.delete("k");
      release();
      expect(await read).toBe("old"); // the read overlapped the delete: either answer is fine
      expect(cache.peek("k")).toBeUndefined(); // ...but L1 must not keep the deleted value

      await writer.set("k", "old2");
      release = chaos.holdReads();
      const read2 = cache.get("k");
      await cache.set("k", "new");
      release();
      await read2;
      expect(cache.peek("k")).toBe("new");

      await writer.set("j", "before-clear");
      release = chaos.holdReads();
      const read3 = cache.get("j"); // sees "before-clear"; its answer arrives after the clear
      await cache.clear();
      release();
      expect(await read3).toBe("before-clear");
      expect(cache.peek("j")).toBeUndefined();
    },
  );

  it("onError that throws is contained", async () => {
    const logged: string[] = [];
    const { cache, chaos } = setup({
      onError: () => {
        throw new Error("hook bug");
      },
      logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) },
    });
    chaos.mode = "fail";
    expect(await cache.get("k")).toBeUndefined();
    expect(logged).toEqual(["onError threw"]);
  });

  it("logs absorbed errors at warn by default, without values", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const chaos = chaosStore(memoryStore());
      const cache = createCache({ store: chaos.store, namespace: "app" });
      chaos.mode = "fail";
      await cache.get("secret-key");
      expect(warn).toHaveBeenCalledTimes(1);
      expect(JSON.stringify(warn.mock.calls)).not.toContain("secret-key");
    } finally {
      warn.mockRestore();
    }
  });

  it("after close every call rejects with EC_CLOSED", async () => {
    const { cache } = setup();
    await cache.set("k", 1);
    await cache.close();
    await rejectsWith(cache.get("k"), "EC_CLOSED");
    await rejectsWith(cache.set("k", 1), "EC_CLOSED");
    expect(() => cache.peek("k")).toThrowError(expect.objectContaining({ code: "EC_CLOSED" }));
    await cache.close();
  });
});

describe("error messages carry no values", () => {
  it("never quotes the value or its parts", async () => {
    const { cache } = setup({ maxValueBytes: 100, serializer: "json" });
    const secret = "hunter2-secret";
    const attempts = [
      cache.set("k", secret.repeat(20)),
      cache.set("k", { secret, f: () => secret }),
      cache.set("k", { secret, big: 12345678901234567890n }),
    ];
    for (const p of attempts) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(err).toBeInstanceOf(Error);
      expect(`${err?.message} ${String(err?.cause ?? "")}`).not.toContain(secret);
      expect(err?.message).not.toContain("12345678901234567890");
    }
  });
});
