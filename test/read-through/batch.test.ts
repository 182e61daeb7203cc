import { describe, expect, it, vi } from "vitest";
import type { BatchLoader, BatchLoaderContext } from "../../src/index.js";
import { rejection } from "../helpers.js";
import { flush, gatedLoader, realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

/** A batch loader that records each call's keys and answers `key -> value(key)`, gated. */
function gatedBatch(value: (key: string) => unknown = (key) => `v:${key}`) {
  const calls: string[][] = [];
  const contexts: BatchLoaderContext[] = [];
  const pending: Array<() => void> = [];
  let failWith: Error | undefined;
  let open = false;
  const loader: BatchLoader = (keys, ctx) => {
    calls.push([...keys]);
    contexts.push(ctx);
    return new Promise((resolve, reject) => {
      const answer = () => {
        if (failWith) reject(failWith);
        else resolve(new Map(keys.map((k) => [k, value(k)])));
      };
      if (open) answer();
      else pending.push(answer);
    });
  };
  return {
    loader,
    calls,
    contexts,
    /** Answer every call made so far. */
    release() {
      for (const p of pending.splice(0)) p();
    },
    /** Answer every call at once from now on. */
    openGate() {
      open = true;
      this.release();
    },
    fail(error: Error | undefined) {
      failWith = error;
    },
  };
}

const keysOf = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `p:${from + i}`);

describe("getOrSetMany", () => {
  it("100 keys with 60 misses: one L2 read, one loader call with exactly the misses, one write", async () => {
    const { cache, chaos, make } = setup();
    const keys = keysOf(100);
    // 40 of them are in L2 already (written by another instance: this one's L1 is empty).
    await make().setMany(keys.filter((_, i) => i % 5 < 2).map((k) => [k, `stored:${k}`]));
    const batch = gatedBatch();
    batch.openGate();
    const before = chaos.calls;
    const values = await cache.getOrSetMany(keys, batch.loader, { ttl: 60_000 });
    expect(chaos.calls - before).toBe(2);
    expect(batch.calls).toEqual([keys.filter((_, i) => i % 5 >= 2)]);
    expect(values).toEqual(keys.map((k, i) => (i % 5 < 2 ? `stored:${k}` : `v:${k}`)));
    expect(cache.stats()).toMatchObject({ loads: 1, l2Hits: 40, sets: 60 });
    // Everything is in L1 now, and in L2 for the other instances.
    const again = chaos.calls;
    expect(await cache.getOrSetMany(keys, batch.loader)).toEqual(values);
    expect(chaos.calls).toBe(again);
    expect(await make().getMany(keys)).toEqual(values);
    expect(batch.calls).toHaveLength(1);
  });

  it("takes a Map, an object by key or an array in key order; what is missing is a miss", async () => {
    const { cache } = setup();
    expect(
      await cache.getOrSetMany(
        ["a", "b", "c"],
        async () =>
          new Map([
            ["a", 1],
            ["c", 3],
          ]),
      ),
    ).toEqual([1, undefined, 3]);
    expect(await cache.getOrSetMany(["d", "e"], async () => ({ e: "E" }))).toEqual([
      undefined,
      "E",
    ]);
    expect(await cache.getOrSetMany(["f", "g"], async (keys) => keys.map((k) => k + k))).toEqual([
      "ff",
      "gg",
    ]);
    // Not cached: the next call asks for b and d again.
    const asked: string[][] = [];
    await cache.getOrSetMany(["a", "b", "d"], async (keys) => {
      asked.push([...keys]);
      return {};
    });
    expect(asked).toEqual([["b", "d"]]);
  });

  it("with negativeTtl, remembers what the loader did not return", async () => {
    const { cache, chaos } = setup();
    let calls = 0;
    const load: BatchLoader<number> = async (keys) => {
      calls++;
      return new Map(keys.filter((k) => k !== "none").map((k) => [k, k.length]));
    };
    expect(await cache.getOrSetMany(["none", "four"], load, { negativeTtl: 5000 })).toEqual([
      undefined,
      4,
    ]);
    const before = chaos.calls;
    expect(await cache.getOrSetMany(["none", "four"], load, { negativeTtl: 5000 })).toEqual([
      undefined,
      4,
    ]);
    expect(calls).toBe(1);
    expect(chaos.calls).toBe(before);
  });

  it("duplicate keys are loaded once and, with copyOnRead, each slot gets its own copy", async () => {
    const { cache } = setup({ local: { copyOnRead: true } });
    const batch = gatedBatch((k) => ({ k }));
    batch.openGate();
    const [a, b, c] = await cache.getOrSetMany(["x", "y", "x"], batch.loader);
    expect(batch.calls).toEqual([["x", "y"]]);
    expect(a).toEqual({ k: "x" });
    expect(c).toEqual({ k: "x" });
    expect(a).not.toBe(c);
    expect(b).toEqual({ k: "y" });
  });

  it("joins a getOrSet already loading a key, and getOrSet joins a getOrSetMany", async () => {
    const { cache } = setup();
    const single = gatedLoader(() => "from getOrSet");
    const one = cache.getOrSet("p:5", single.loader);
    await vi.waitUntil(() => single.calls === 1);
    const batch = gatedBatch();
    const many = cache.getOrSetMany(keysOf(10), batch.loader);
    await vi.waitUntil(() => batch.calls.length === 1);
    // The batch loads every key but the one getOrSet is loading.
    expect(batch.calls[0]).toEqual(keysOf(10).filter((k) => k !== "p:5"));
    // A getOrSet of a key the batch is loading joins it: its own loader is not called.
    const joiner = gatedLoader(() => "joiner's own");
    const joined = cache.getOrSet("p:7", joiner.loader);
    // A second getOrSetMany overlapping both loads only what nobody loads yet.
    const more = cache.getOrSetMany(keysOf(4, 8), batch.loader);
    await vi.waitUntil(() => batch.calls.length === 2);
    expect(batch.calls[1]).toEqual(["p:10", "p:11"]);
    single.release();
    batch.release();
    await vi.waitUntil(() => batch.calls.length === 2);
    batch.release();
    const values = await many;
    expect(values[5]).toBe("from getOrSet");
    expect(values.filter((_v, i) => i !== 5)).toEqual(
      keysOf(10)
        .filter((k) => k !== "p:5")
        .map((k) => `v:${k}`),
    );
    expect(await one).toBe("from getOrSet");
    expect(await joined).toBe("v:p:7");
    expect(joiner.calls).toBe(0);
    expect(await more).toEqual(["v:p:8", "v:p:9", "v:p:10", "v:p:11"]);
    expect(cache.stats().loads).toBe(3);
  });

  it("serves stale keys at once and refreshes them in one background call", async () => {
    const { cache, clock } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 10_000 };
    let round = 1;
    const asked: string[][] = [];
    const load: BatchLoader<string> = async (keys) => {
      asked.push([...keys]);
      return keys.map((k) => `${k}@${round}`);
    };
    await cache.getOrSetMany(["a", "b"], load, options);
    clock.advance(500);
    await cache.getOrSetMany(["c"], load, options);
    clock.advance(600); // a and b are stale, c is fresh
    round = 2;
    const handed: Promise<unknown>[] = [];
    const values = await cache.getOrSetMany(["a", "b", "c", "d"], load, {
      ...options,
      waitUntil: (p) => handed.push(p),
    });
    // d had nothing to serve: loaded in the foreground, alone; a and b refresh together.
    expect(values).toEqual(["a@1", "b@1", "c@1", "d@2"]);
    await Promise.all(handed);
    expect(asked.slice(2).sort()).toEqual([["a", "b"], ["d"]]);
    expect(await cache.getOrSetMany(["a", "b"], load, options)).toEqual(["a@2", "b@2"]);
    expect(cache.stats().staleHits).toBe(2);
  });

  it("within grace serves stale keys when the loader fails; a key with nothing to serve rejects", async () => {
    const { cache, clock, errors } = setup();
    const options = { ttl: 1000, grace: 60_000 };
    const batch = gatedBatch();
    batch.openGate();
    await cache.getOrSetMany(["a", "b"], batch.loader, options);
    clock.advance(2000);
    batch.fail(new Error("db down"));
    expect(await cache.getOrSetMany(["a", "b"], batch.loader, options)).toEqual(["v:a", "v:b"]);
    expect(cache.stats().graceHits).toBe(2);
    expect(errors.some((e) => e.code === "EC_LOADER_FAILED")).toBe(true);
    // Backed off: served without another loader call.
    const calls = batch.calls.length;
    expect(await cache.getOrSetMany(["a", "b"], batch.loader, options)).toEqual(["v:a", "v:b"]);
    expect(batch.calls.length).toBe(calls);
    // A key without a stale value fails the call with the loader's own error, as getOrSet.
    await expect(cache.getOrSetMany(["a", "new"], batch.loader, options)).rejects.toThrow(
      "db down",
    );
  });

  it("timeout serves stale keys while the slow load goes on and caches its result", async () => {
    const { cache, clock } = setup();
    const options = { ttl: 1000, grace: 60_000, timeout: 20 };
    const batch = gatedBatch();
    batch.openGate();
    await cache.getOrSetMany(["a", "b"], batch.loader, options);
    clock.advance(2000);
    const slow = gatedBatch((k) => `new:${k}`);
    const handed: Promise<unknown>[] = [];
    // Both have a stale value: answered at the soft timeout, the load goes on.
    const first = cache.getOrSetMany(["a", "b"], slow.loader, {
      ...options,
      waitUntil: (p) => handed.push(p),
    });
    expect(await first).toEqual(["v:a", "v:b"]);
    expect(cache.stats().staleHits).toBe(2);
    expect(slow.calls).toEqual([["a", "b"]]);
    slow.release();
    await Promise.all(handed);
    expect(await cache.getOrSetMany(["a", "b"], slow.loader, options)).toEqual(["new:a", "new:b"]);
    expect(slow.calls).toHaveLength(1);
  });

  it("hardTimeout rejects and aborts the loader's signal", async () => {
    const { cache } = setup();
    const batch = gatedBatch();
    const err = await rejection(cache.getOrSetMany(["a", "b"], batch.loader, { hardTimeout: 20 }));
    expect(err.code).toBe("EC_LOADER_TIMEOUT");
    expect(batch.contexts[0]!.signal.aborted).toBe(true);
    batch.release();
  });

  it("the context takes tags, TTLs and noStore per key", async () => {
    const { cache, clock } = setup();
    const batch: BatchLoader<string> = async (keys, ctx) => {
      ctx.tag("a", "team:1");
      ctx.setTtl("b", 100);
      ctx.noStore("c");
      expect(() => ctx.tag("zzz", "t")).toThrow(/not asked for/);
      return keys.map((k) => k.toUpperCase());
    };
    expect(await cache.getOrSetMany(["a", "b", "c"], batch, { ttl: 60_000 })).toEqual([
      "A",
      "B",
      "C",
    ]);
    expect(await cache.get("a")).toBe("A");
    expect(await cache.get("c")).toBeUndefined();
    clock.advance(200);
    expect(await cache.get("b")).toBeUndefined();
    await cache.invalidateTag("team:1");
    expect(await cache.get("a")).toBeUndefined();
  });

  it("with lock, keys another instance is loading are waited for, not loaded", async () => {
    const { make } = setup();
    const first = make();
    const second = make();
    const batch = gatedBatch();
    const options = { lock: { ttl: 60_000 } };
    const a = first.getOrSetMany(["k1", "k2"], batch.loader, options);
    await vi.waitUntil(() => batch.calls.length === 1);
    const b = second.getOrSetMany(["k1", "k2", "k3"], batch.loader, options);
    await vi.waitUntil(() => batch.calls.length === 2);
    // The second instance loads only the key nobody holds a lease on.
    expect(batch.calls[1]).toEqual(["k3"]);
    batch.release();
    expect(await a).toEqual(["v:k1", "v:k2"]);
    expect(await b).toEqual(["v:k1", "v:k2", "v:k3"]);
    expect(batch.calls).toHaveLength(2);
    expect(second.stats().lockWaits).toBe(2);
  });

  it("keys another instance holds are waited for together: two store calls a round, not two per key", async () => {
    const { make, chaos } = setup();
    const holder = make();
    const waiter = make();
    const held = keysOf(20);
    const batch = gatedBatch();
    const options = { lock: { ttl: 60_000, wait: 60_000 } };
    const first = holder.getOrSetMany(held, batch.loader, options);
    await vi.waitUntil(() => batch.calls.length === 1);
    const second = waiter.getOrSetMany([...held, "p:99"], batch.loader, options);
    await vi.waitUntil(() => batch.calls.length === 2);
    expect(batch.calls[1]).toEqual(["p:99"]);
    // Several rounds of waiting (naps of about 10, 20, 40, 80 ms): each reads the 20 keys
    // once and asks for their leases once.
    const before = chaos.calls;
    await new Promise((r) => setTimeout(r, 200));
    const during = chaos.calls - before;
    expect(during).toBeGreaterThanOrEqual(2);
    expect(during).toBeLessThanOrEqual(12);
    batch.release();
    expect(await first).toEqual(held.map((k) => `v:${k}`));
    expect(await second).toEqual([...held, "p:99"].map((k) => `v:${k}`));
    expect(batch.calls).toHaveLength(2);
    expect(waiter.stats().lockWaits).toBe(20);
  });

  it("refuses bad input before anything is read or loaded", async () => {
    const { cache, chaos } = setup();
    const batch = gatedBatch();
    const before = chaos.calls;
    expect((await rejection(cache.getOrSetMany("a" as never, batch.loader))).code).toBe(
      "EC_INVALID_KEY",
    );
    expect((await rejection(cache.getOrSetMany(["ok", ""], batch.loader))).code).toBe(
      "EC_INVALID_KEY",
    );
    expect((await rejection(cache.getOrSetMany(["ok"], "no" as never))).code).toBe(
      "EC_INVALID_OPTION",
    );
    expect((await rejection(cache.getOrSetMany(["ok"], batch.loader, { ttl: -1 }))).code).toBe(
      "EC_INVALID_OPTION",
    );
    expect(chaos.calls).toBe(before);
    expect(batch.calls).toEqual([]);
    expect(await cache.getOrSetMany([], batch.loader)).toEqual([]);
  });

  it("a loader answer of the wrong shape fails the call as the loader's failure", async () => {
    const { cache } = setup();
    const wrongLength = await rejection(cache.getOrSetMany(["a", "b"], async () => ["only one"]));
    expect(wrongLength.code).toBe("EC_LOADER_FAILED");
    const notAContainer = await rejection(cache.getOrSetMany(["a"], async () => 42 as never));
    expect(notAContainer.code).toBe("EC_LOADER_FAILED");
    expect(await cache.get("a")).toBeUndefined();
  });

  it("events for a miss, a load and a set come in that order", async () => {
    const { cache } = setup();
    const seen: string[] = [];
    cache.on("miss", ({ key }) => seen.push(`miss ${key}`));
    cache.on("load", ({ key, outcome }) => seen.push(`load ${key} ${outcome}`));
    cache.on("set", ({ keys }) => seen.push(`set ${keys.join(",")}`));
    cache.on("hit", ({ key, tier }) => seen.push(`hit ${key} ${tier}`));
    await cache.getOrSetMany(["a", "b"], async (keys) => keys);
    expect(seen).toEqual(["miss a", "miss b", "load a ok", "load b ok", "set a,b"]);
    seen.length = 0;
    await cache.getOrSet("c", async () => "c");
    await cache.getOrSetMany(["a", "c"], async (keys) => keys);
    expect(seen).toEqual(["miss c", "load c ok", "set c", "hit a l1", "hit c l1"]);
  });
});

describe("namespaces: getMany reads through", () => {
  it("loadMany: one call for a getMany's misses, and get goes through it with one key", async () => {
    const { cache, chaos } = setup();
    const asked: string[][] = [];
    const products = cache.namespace<string>("products", {
      loadMany: async (keys) => {
        asked.push([...keys]);
        return keys.map((k) => `product ${k}`);
      },
    });
    expect(await products.get("1")).toBe("product 1");
    const before = chaos.calls;
    expect(await products.getMany(["1", "2", "3"])).toEqual([
      "product 1",
      "product 2",
      "product 3",
    ]);
    expect(asked).toEqual([["1"], ["2", "3"]]);
    expect(chaos.calls - before).toBe(2);
  });

  it("a loader only: each miss loads alone, at most loadConcurrency at a time", async () => {
    const { cache } = setup();
    let active = 0;
    let peak = 0;
    const gate = gatedLoader(() => "v");
    const users = cache.namespace("users", {
      loadConcurrency: 3,
      loader: async (key, ctx) => {
        active++;
        peak = Math.max(peak, active);
        try {
          return `${await gate.loader(key, ctx)}:${key}`;
        } finally {
          active--;
        }
      },
    });
    const all = users.getMany(keysOf(10));
    for (let released = 0; released < 10; ) {
      await flush();
      released += active;
      gate.release();
    }
    expect(await all).toEqual(keysOf(10).map((k) => `v:${k}`));
    expect(peak).toBe(3);
    expect(gate.calls).toBe(10);
  });

  it("refuses a loadMany that is not a function and a bad loadConcurrency", () => {
    const { cache } = setup();
    expect(() => cache.namespace("x", { loadMany: 1 as never })).toThrow(/loadMany/);
    expect(() => cache.namespace("y", { loader: async () => 1, loadConcurrency: 0 })).toThrow(
      /loadConcurrency/,
    );
  });
});
