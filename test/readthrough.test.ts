import { afterEach, describe, expect, it, vi } from "vitest";
import { Breaker } from "../src/breaker.js";
import {
  type CacheOptions,
  createCache,
  type EdgeCacheError,
  InvalidKeyError,
  isEdgeCacheError,
  type LoaderContext,
  type LocalCache,
  type LocalEntry,
  memoryStore,
  StoreError,
} from "../src/index.js";
import { shardedStore } from "../src/stores/sharded.js";
import { chaosStore, cluster, fakeClock, rejection } from "./helpers.js";

function setup(options: Partial<CacheOptions> = {}) {
  const { instance, ...rest } = cluster(options);
  return { ...rest, cache: instance(), make: instance };
}

/** A loader that counts its calls and answers what `answer` says, when `release` is called. */
function gatedLoader<V>(answer: (n: number) => V | Error) {
  let calls = 0;
  const pending: Array<() => void> = [];
  const contexts: LoaderContext[] = [];
  const loader = (_key: string, ctx: LoaderContext): Promise<V> => {
    const n = ++calls;
    contexts.push(ctx);
    return new Promise<V>((resolve, reject) => {
      pending.push(() => {
        const a = answer(n);
        if (a instanceof Error) reject(a);
        else resolve(a);
      });
    });
  };
  return {
    loader,
    contexts,
    get calls() {
      return calls;
    },
    /** Let every load started so far finish. */
    release() {
      for (const p of pending.splice(0)) p();
    },
  };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe("getOrSet: loading and coalescing", () => {
  it("loads on a miss, caches in L1 and L2, and does not load again", async () => {
    const { cache, make } = setup();
    let calls = 0;
    const load = async (key: string) => {
      calls++;
      return { key, at: new Date(0) };
    };
    expect(await cache.getOrSet("user:1", load)).toEqual({ key: "user:1", at: new Date(0) });
    expect(await cache.getOrSet("user:1", load)).toEqual({ key: "user:1", at: new Date(0) });
    expect(calls).toBe(1);
    // Another instance finds it in L2.
    const other = make();
    expect(await other.get("user:1")).toEqual({ key: "user:1", at: new Date(0) });
    expect(await other.getOrSet("user:1", load)).toEqual({ key: "user:1", at: new Date(0) });
    expect(calls).toBe(1);
    expect(cache.stats()).toMatchObject({ loads: 1, coalesced: 0 });
  });

  it("calls the loader once for any number of concurrent misses of a key", async () => {
    const { cache } = setup();
    const gate = gatedLoader(() => "v");
    const all = Promise.all(Array.from({ length: 100 }, () => cache.getOrSet("k", gate.loader)));
    await flush();
    gate.release();
    expect(await all).toEqual(Array(100).fill("v"));
    expect(gate.calls).toBe(1);
    expect(cache.stats()).toMatchObject({ loads: 1, coalesced: 99 });
    // Different keys load separately.
    const other = cache.getOrSet("k2", gate.loader);
    await flush();
    gate.release();
    expect(await other).toBe("v");
    expect(gate.calls).toBe(2);
  });

  it("a read that overtook a load's write does not start a second load", async () => {
    const { cache, chaos } = setup();
    const gate = gatedLoader((n) => `v${n}`);
    const first = cache.getOrSet("k", gate.loader);
    await vi.waitUntil(() => gate.calls === 1);
    // The next read reaches the store now (a miss: the load has not written yet), but its
    // answer arrives only after the load has finished and written.
    const releaseRead = chaos.holdNextRead();
    const second = cache.getOrSet("k", gate.loader);
    await flush();
    gate.release();
    expect(await first).toBe("v1");
    releaseRead();
    expect(await second).toBe("v1");
    expect(gate.calls).toBe(1);
  });

  it("hands every caller the loader's error, and does not cache it", async () => {
    const { cache } = setup();
    const boom = new Error("origin down");
    const gate = gatedLoader((n) => (n === 1 ? boom : "ok"));
    const both = Promise.allSettled([
      cache.getOrSet("k", gate.loader),
      cache.getOrSet("k", gate.loader),
    ]);
    await flush();
    gate.release();
    const [a, b] = await both;
    expect(a).toEqual({ status: "rejected", reason: boom });
    expect(b).toEqual({ status: "rejected", reason: boom });
    const again = cache.getOrSet("k", gate.loader);
    await flush();
    gate.release();
    expect(await again).toBe("ok");
    expect(gate.calls).toBe(2);
    expect(cache.stats().loadErrors).toBe(1);
  });

  it("a garbled L2 entry is a miss: it is reported, loaded again and replaced", async () => {
    const { cache, make, chaos, errors } = setup();
    await make().set("k", "original");
    chaos.mode = "garble";
    expect(await cache.getOrSet("k", async () => "reloaded")).toBe("reloaded");
    expect(errors.map((e) => e.code)).toContain("EC_CORRUPT_ENTRY");
    chaos.mode = "ok";
    expect(await make().get("k")).toBe("reloaded");
  });

  it("does not cache undefined unless negativeTtl asks", async () => {
    const { cache, clock, make } = setup();
    let calls = 0;
    const nothing = async () => {
      calls++;
      return undefined;
    };
    expect(await cache.getOrSet("gone", nothing)).toBeUndefined();
    expect(await cache.getOrSet("gone", nothing)).toBeUndefined();
    expect(calls).toBe(2);
    expect(await cache.getOrSet("gone", nothing, { negativeTtl: 1000 })).toBeUndefined();
    expect(await cache.getOrSet("gone", nothing, { negativeTtl: 1000 })).toBeUndefined();
    expect(calls).toBe(3);
    // Remembered in L2 too: another instance does not load either, and a plain get misses.
    const other = make();
    expect(await other.getOrSet("gone", nothing)).toBeUndefined();
    expect(await other.get("gone")).toBeUndefined();
    expect(await other.has("gone")).toBe(false);
    expect(calls).toBe(3);
    clock.advance(1001);
    expect(await cache.getOrSet("gone", nothing)).toBeUndefined();
    expect(calls).toBe(4);
  });

  it("remembers a failure for negativeTtl with a typed error, on every instance", async () => {
    const { cache, clock, make } = setup();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error("db down: secret-detail");
    };
    await expect(cache.getOrSet("k", failing, { negativeTtl: 500 })).rejects.toThrow("db down");
    const err = (await rejection(cache.getOrSet("k", failing))) as EdgeCacheError;
    expect(isEdgeCacheError(err, "EC_LOADER_FAILED")).toBe(true);
    expect(err.message).not.toContain("secret");
    const other = make();
    expect(
      isEdgeCacheError(await rejection(other.getOrSet("k", failing)), "EC_LOADER_FAILED"),
    ).toBe(true);
    expect(calls).toBe(1);
    clock.advance(501);
    await expect(cache.getOrSet("k", async () => "back")).resolves.toBe("back");
  });

  it("a write from elsewhere replaces a remembered failure", async () => {
    const { cache, make } = setup({ sync: { maxStaleness: 0 } });
    await expect(
      cache.getOrSet(
        "k",
        async () => {
          throw new Error("x");
        },
        { negativeTtl: 60_000 },
      ),
    ).rejects.toThrow("x");
    await make().set("k", "fixed");
    expect(await cache.getOrSet("k", async () => "loaded")).toBe("fixed");
  });

  it("validates its input and changes nothing on bad input", async () => {
    const { cache } = setup();
    const load = async () => 1;
    for (const [key, loader, options] of [
      ["", load, undefined],
      ["k", "not a function", undefined],
      ["k", load, { ttl: -1 }],
      ["k", load, { staleWhileRevalidate: Number.NaN }],
      ["k", load, { jitter: 1 }],
      ["k", load, { lock: "yes" }],
      ["k", load, { hardTimeout: 0 }],
      ["k", load, { waitUntil: 3 }],
    ] as const) {
      const err = await rejection(
        // biome-ignore lint/suspicious/noExplicitAny: bad input on purpose
        cache.getOrSet(key as string, loader as any, options as any),
      );
      expect(isEdgeCacheError(err)).toBe(true);
      expect(["EC_INVALID_KEY", "EC_INVALID_OPTION"]).toContain((err as EdgeCacheError).code);
    }
    expect(cache.stats()).toMatchObject({ loads: 0, sets: 0, l1Items: 0 });
  });

  it("jitter shortens TTLs by up to the fraction, never lengthens them", async () => {
    const clock = fakeClock();
    const store = memoryStore({ now: clock.now });
    const cache = createCache({ store, namespace: "j", now: clock.now, sync: false });
    const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
    for (const key of keys) await cache.getOrSet(key, async () => 1, { ttl: 10_000, jitter: 0.5 });
    const { entries } = await store.get("j", keys);
    const ttls = entries.map((e) => e!.ttl);
    for (const ttl of ttls) {
      expect(ttl).toBeGreaterThanOrEqual(5000);
      expect(ttl).toBeLessThanOrEqual(10_000);
    }
    expect(new Set(ttls).size).toBeGreaterThan(1);
    // set takes it too, and the cache-wide default.
    const jittery = createCache({ store, namespace: "j2", now: clock.now, jitter: 0.9 });
    await jittery.setMany(keys.map((k) => [k, 1] as const));
    const after = await store.get("j2", keys);
    expect(new Set(after.entries.map((e) => e!.ttl)).size).toBeGreaterThan(1);
  });
});

describe("getOrSet: stale-while-revalidate", () => {
  it("tells the loader whether anyone waits for it (ctx.background)", async () => {
    const { cache, clock } = setup();
    const seen: boolean[] = [];
    const load = async (_k: string, ctx: LoaderContext) => {
      seen.push(ctx.background);
      return seen.length;
    };
    const options = { ttl: 1000, staleWhileRevalidate: 5000, grace: 60_000, waitUntil: () => {} };
    await cache.getOrSet("k", load, options); // a miss: the caller waits
    clock.advance(1500);
    await cache.getOrSet("k", load, options); // stale: answered at once, refreshed behind
    await flush();
    clock.advance(10_000);
    await cache.getOrSet("k", load, options); // past the SWR window, within grace: waited for
    expect(seen).toEqual([false, true, false]);
  });

  it("without waitUntil, refreshes in-process, once, and close() waits for the refresh", async () => {
    const { cache, clock, make } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 10_000 };
    await cache.getOrSet("k", async () => "v1", options);
    clock.advance(1500);
    const gate = gatedLoader(() => "v2");
    expect(await cache.getOrSet("k", gate.loader, options)).toBe("v1");
    expect(await cache.getOrSet("k", gate.loader, options)).toBe("v1");
    expect(gate.calls).toBe(1);
    let closed = false;
    const closing = cache.close().then(() => {
      closed = true;
    });
    await flush();
    expect(closed).toBe(false);
    gate.release();
    await closing;
    expect(await make().get("k")).toBe("v2");
  });

  it("answers stale at once and refreshes in the background exactly once", async () => {
    const { cache, clock } = setup();
    const handed: Promise<unknown>[] = [];
    const options = {
      ttl: 1000,
      staleWhileRevalidate: 5000,
      waitUntil: (p: Promise<unknown>) => handed.push(p),
    };
    const gate = gatedLoader((n) => `v${n}`);
    const first = cache.getOrSet("k", gate.loader, options);
    await flush();
    gate.release();
    expect(await first).toBe("v1");
    clock.advance(1500);
    // Stale: every caller gets v1 now, one refresh runs.
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => cache.getOrSet("k", gate.loader, options)),
    );
    expect(answers).toEqual(Array(20).fill("v1"));
    expect(gate.calls).toBe(2);
    expect(gate.contexts[1]!.stale).toBe("v1");
    expect(handed.length).toBe(1);
    expect(cache.stats().staleHits).toBe(20);
    // A plain get does not serve the stale value.
    expect(await cache.get("k")).toBeUndefined();
    gate.release();
    await Promise.all(handed);
    expect(await cache.getOrSet("k", gate.loader, options)).toBe("v2");
    expect(gate.calls).toBe(2);
  });

  it("reports a failed refresh and keeps the stale value", async () => {
    const { cache, clock, errors } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 5000 };
    await cache.getOrSet("k", async () => "v1", options);
    clock.advance(1500);
    const handed: Promise<unknown>[] = [];
    const failing = async () => {
      throw new Error("nope");
    };
    expect(
      await cache.getOrSet("k", failing, { ...options, waitUntil: (p) => handed.push(p) }),
    ).toBe("v1");
    await Promise.all(handed);
    expect(errors.map((e) => e.code)).toContain("EC_LOADER_FAILED");
    expect(await cache.getOrSet("k", async () => "v2", options)).toBe("v1"); // still stale window
  });

  it("loads in the foreground once the stale window is over", async () => {
    const { cache, clock } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 2000 };
    await cache.getOrSet("k", async () => "v1", options);
    clock.advance(3500);
    expect(await cache.getOrSet("k", async () => "v2", options)).toBe("v2");
  });

  it("another instance finds the stale entry in L2 and serves it while refreshing", async () => {
    const { cache, clock, make } = setup();
    const options = { ttl: 1000, staleWhileRevalidate: 5000 };
    await cache.getOrSet("k", async () => "v1", options);
    clock.advance(2000);
    const other = make();
    const handed: Promise<unknown>[] = [];
    expect(
      await other.getOrSet("k", async () => "v2", { ...options, waitUntil: (p) => handed.push(p) }),
    ).toBe("v1");
    await Promise.all(handed);
    expect(await other.getOrSet("k", async () => "v3", options)).toBe("v2");
  });
});

describe("getOrSet: grace (fail-safe)", () => {
  it("serves the last value within grace when the loader fails, and backs off", async () => {
    const { cache, clock, errors } = setup();
    const options = { ttl: 1000, grace: 60_000, graceBackoff: 5000 };
    await cache.getOrSet("k", async () => "good", options);
    clock.advance(2000);
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error("origin 503");
    };
    expect(await cache.getOrSet("k", failing, options)).toBe("good");
    expect(errors.at(-1)?.code).toBe("EC_LOADER_FAILED");
    expect(cache.stats().graceHits).toBe(1);
    // Within the backoff the loader is left alone.
    clock.advance(4000);
    expect(await cache.getOrSet("k", failing, options)).toBe("good");
    expect(calls).toBe(1);
    clock.advance(2000);
    expect(await cache.getOrSet("k", failing, options)).toBe("good");
    expect(calls).toBe(2);
    // Past grace, the failure is the caller's.
    clock.advance(60_000);
    await expect(cache.getOrSet("k", failing, options)).rejects.toThrow("origin 503");
  });

  it("while L2 is down, serves the last value at once and refreshes it once in the background", async () => {
    const { cache, clock, chaos, errors } = setup({ breaker: false });
    const options = { ttl: 1000, grace: 60_000 };
    await cache.getOrSet("k", async () => "good", options);
    clock.advance(2000);
    chaos.mode = "fail";
    const gate = gatedLoader(() => "fresh");
    const handed: Promise<unknown>[] = [];
    const opts = { ...options, waitUntil: (p: Promise<unknown>) => handed.push(p) };
    // No lease can coordinate instances now: nobody waits on the origin in the foreground.
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => cache.getOrSet("k", gate.loader, opts)),
    );
    expect(answers).toEqual(Array(10).fill("good"));
    expect(gate.calls).toBe(1);
    expect(handed).toHaveLength(1);
    expect(cache.stats().graceHits).toBe(10);
    expect(errors.map((e) => e.code)).toContain("EC_STORE_UNAVAILABLE");
    gate.release();
    await Promise.all(handed);
    // L2 refused the refreshed value; L1 keeps it, and serves it for its TTL without loading.
    expect(await cache.getOrSet("k", gate.loader, opts)).toBe("fresh");
    clock.advance(900);
    expect(await cache.getOrSet("k", gate.loader, opts)).toBe("fresh");
    expect(gate.calls).toBe(1);
    // Past that TTL it is the last value again: served, and refreshed once more.
    clock.advance(200);
    expect(await cache.getOrSet("k", gate.loader, opts)).toBe("fresh");
    expect(gate.calls).toBe(2);
    gate.release();
    await Promise.all(handed);
    // L2 is back: the next read goes to L2 (and the loader), not to what L1 kept.
    chaos.mode = "ok";
    clock.advance(2000);
    expect(await cache.getOrSet("k", async () => "after", options)).toBe("after");
  });

  it("while L2 is down and the loader fails too, serves the last value and backs off", async () => {
    const { cache, clock, chaos, errors } = setup({ breaker: false });
    const options = { ttl: 1000, grace: 60_000, graceBackoff: 5000 };
    await cache.getOrSet("k", async () => "good", options);
    clock.advance(2000);
    chaos.mode = "fail";
    let calls = 0;
    const handed: Promise<unknown>[] = [];
    const opts = { ...options, waitUntil: (p: Promise<unknown>) => handed.push(p) };
    const failing = async () => {
      calls++;
      throw new Error("also down");
    };
    expect(await cache.getOrSet("k", failing, opts)).toBe("good");
    await Promise.all(handed);
    expect(calls).toBe(1);
    expect(errors.map((e) => e.code)).toEqual(
      expect.arrayContaining(["EC_STORE_UNAVAILABLE", "EC_LOADER_FAILED"]),
    );
    // Within the backoff the loader is left alone.
    clock.advance(4000);
    expect(await cache.getOrSet("k", failing, opts)).toBe("good");
    expect(calls).toBe(1);
    clock.advance(2000);
    expect(await cache.getOrSet("k", failing, opts)).toBe("good");
    await Promise.all(handed);
    expect(calls).toBe(2);
    // Past grace, the failure is the caller's.
    clock.advance(60_000);
    await expect(cache.getOrSet("k", failing, opts)).rejects.toThrow("also down");
  });

  for (const change of ["set", "delete", "clear", "elsewhere"] as const) {
    it(`a failing refresh never brings the old value back over a ${change} made meanwhile`, async () => {
      const { cache, clock, make } = setup({ sync: { maxStaleness: 0 } });
      const options = {
        ttl: 1000,
        staleWhileRevalidate: 10_000,
        grace: 60_000,
        graceBackoff: 5000,
      };
      await cache.getOrSet("k", async () => "A", options);
      clock.advance(2000);
      const gate = gatedLoader(() => new Error("origin down"));
      const handed: Promise<unknown>[] = [];
      const opts = { ...options, waitUntil: (p: Promise<unknown>) => handed.push(p) };
      expect(await cache.getOrSet("k", gate.loader, opts)).toBe("A");
      expect(gate.calls).toBe(1);
      if (change === "set") await cache.set("k", "B");
      else if (change === "delete") await cache.delete("k");
      else if (change === "clear") await cache.clear();
      else {
        await make().set("k", "B");
        await cache.get("unrelated"); // the sync riding along brings the change here
      }
      gate.release();
      await Promise.all(handed);
      const now = change === "set" || change === "elsewhere" ? "B" : undefined;
      expect(await cache.get("k")).toBe(now);
      expect(await cache.get("k")).toBe(now);
    });
  }

  it("a failing foreground load within grace does not hold the old value off over a set made meanwhile", async () => {
    const { cache, clock } = setup({ sync: { maxStaleness: 0 } });
    const options = { ttl: 1000, grace: 60_000, graceBackoff: 5000 };
    await cache.getOrSet("k", async () => "A", options);
    clock.advance(2000);
    const gate = gatedLoader(() => new Error("origin down"));
    const answer = cache.getOrSet("k", gate.loader, options);
    await vi.waitUntil(() => gate.calls === 1);
    await cache.set("k", "B");
    gate.release();
    expect(await answer).toBe("A"); // it overlapped the set: either answer is right
    expect(await cache.get("k")).toBe("B");
  });

  it("a delete made while the read was timing out is not undone by holding the old value off", async () => {
    const { cache, clock, chaos } = setup({ breaker: false });
    const options = { ttl: 1000, grace: 60_000, graceBackoff: 5000 };
    await cache.getOrSet("k", async () => "A", options);
    clock.advance(2000);
    const timeOut = chaos.failNextReadLater();
    const handed: Promise<unknown>[] = [];
    const opts = { ...options, waitUntil: (p: Promise<unknown>) => handed.push(p) };
    const answer = cache.getOrSet(
      "k",
      async () => {
        throw new Error("origin down too");
      },
      opts,
    );
    await cache.delete("k"); // succeeds while the read hangs
    timeOut();
    // What L1 holds is looked at after the failed read: the delete is seen, there is no
    // last value to fall back on, and the loader's failure is the caller's.
    await expect(answer).rejects.toThrow("origin down too");
    await Promise.all(handed);
    expect(await cache.get("k")).toBeUndefined();
    expect(
      await cache.getOrSet("k", async () => "fresh", { ...options, waitUntil: () => {} }),
    ).toBe("fresh");
  });

  it("a load does not keep its value over a delete that reached L2 but failed for its caller", async () => {
    const { cache, chaos } = setup({ sync: false, breaker: false });
    const gate = gatedLoader(() => "loaded before the delete");
    const load = cache.getOrSet("k", gate.loader);
    await vi.waitUntil(() => gate.calls === 1);
    chaos.loseNextWriteAnswer();
    await expect(cache.delete("k")).rejects.toMatchObject({ code: "EC_STORE_TIMEOUT" });
    chaos.mode = "fail"; // and L2 refuses the load's write
    gate.release();
    expect(await load).toBe("loaded before the delete");
    chaos.mode = "ok";
    // The delete may have come after the loader read its source: the value is not kept.
    expect(await cache.get("k")).toBeUndefined();
  });

  it("a value kept while L2 refused it gives way to what L2 holds within the staleness bound once L2 is back", async () => {
    const { chaos, clock, make } = setup({ sync: { maxStaleness: 1000 }, breaker: false });
    const other = make();
    const cache = make();
    await other.set("k", "in L2");
    await cache.get("unrelated"); // synced past that write: what it keeps later is anchored
    chaos.mode = "fail";
    let calls = 0;
    const load = async () => `loaded ${++calls}`;
    const options = { ttl: 60_000 };
    expect(await cache.getOrSet("k", load, options)).toBe("loaded 1");
    clock.advance(1500);
    // Still down: the kept value is served for its TTL, without another load.
    expect(await cache.getOrSet("k", load, options)).toBe("loaded 1");
    expect(calls).toBe(1);
    chaos.mode = "ok";
    // Nothing in the log says the key changed, yet L2 holds something else: within the
    // bound every instance reads what L2 holds.
    clock.advance(1000);
    expect(await cache.get("k")).toBe("in L2");
    expect(await cache.getOrSet("k", load, options)).toBe("in L2");
    expect(calls).toBe(1);
  });

  it("an instance that never synced keeps what L2 refused only until its first sync", async () => {
    const { chaos, make } = setup({ sync: { maxStaleness: 0 }, breaker: false });
    const other = make();
    await other.set("k", "before");
    chaos.mode = "fail";
    const cold = make();
    let calls = 0;
    const load = async () => `loaded ${++calls}`;
    expect(await cold.getOrSet("k", load)).toBe("loaded 1");
    expect(await cold.getOrSet("k", load)).toBe("loaded 1"); // kept: no second load
    expect(calls).toBe(1);
    chaos.mode = "ok";
    await other.set("k", "after"); // a change the first sync will not carry
    // The first sync starts at the head: what was kept before it is dropped, not trusted.
    expect(await cold.get("k")).toBe("after");
    expect(await cold.getOrSet("k", load)).toBe("after");
  });

  it("on a sharded store, a value kept without L2 still gives way to a later write of its key", async () => {
    const sharded = shardedStore([0, 1].map(() => memoryStore()));
    const chaos = chaosStore(sharded);
    const reader = createCache({
      store: chaos.store,
      namespace: "app",
      sync: { maxStaleness: 0 },
      breaker: false,
      logger: false,
    });
    const writer = createCache({ store: sharded, namespace: "app", sync: { maxStaleness: 0 } });
    const target = "target";
    // Writes on the other shard push the merged log far ahead of the target's own versions.
    const elsewhere = Array.from({ length: 400 }, (_, i) => `o${i}`)
      .filter((k) => sharded.shardFor(k) !== sharded.shardFor(target))
      .slice(0, 40);
    for (const k of elsewhere) await writer.set(k, 1);
    expect(await reader.get("o-none")).toBeUndefined(); // the reader syncs past them
    chaos.mode = "fail";
    expect(await reader.getOrSet(target, async () => "kept by the reader")).toBe(
      "kept by the reader",
    );
    chaos.mode = "ok";
    await writer.set(target, "written later");
    expect(await reader.get(target)).toBe("written later");
  });

  it("a value kept without L2 is not served after a sync that got through dropped it", async () => {
    const { chaos, make } = setup({ sync: { maxStaleness: 0 }, breaker: false });
    const other = make();
    await other.set("k", "before");
    chaos.mode = "fail";
    const cold = make();
    expect(await cold.getOrSet("k", async () => "kept")).toBe("kept");
    chaos.mode = "ok";
    await other.set("k", "after");
    // Syncs get through (the first drops what was kept before it); reads still fail.
    const get = chaos.store.get;
    chaos.store.get = () => Promise.reject(new StoreError("EC_STORE_UNAVAILABLE", "reads down"));
    let calls = 0;
    expect(await cold.getOrSet("k", async () => `loaded ${++calls}`)).toBe("loaded 1");
    chaos.store.get = get;
    // Writes worked all along: the loaded value is in L2 now, for everyone.
    expect(await other.get("k")).toBe("loaded 1");
  });

  it("a failed refresh never shortens a value's own TTL (L2 down, value still fresh)", async () => {
    const { cache, clock, chaos } = setup({ breaker: false });
    await cache.set("k", "v", { ttl: 3_600_000 });
    clock.advance(2000); // past the sync window: L2 must vouch, and cannot
    chaos.mode = "fail";
    const failing = async () => {
      throw new Error("origin down");
    };
    const opts = { waitUntil: () => {} };
    expect(await cache.getOrSet("k", failing, opts)).toBe("v");
    await flush();
    clock.advance(6000); // past graceBackoff
    expect(await cache.getOrSet("k", failing, opts)).toBe("v");
  });

  it("a value held off after a failed load is still stale to plain reads, and not past grace", async () => {
    const { cache, clock } = setup();
    const options = { ttl: 1000, grace: 10_000, graceBackoff: 5000 };
    await cache.getOrSet("k", async () => "old", options);
    clock.advance(2000);
    expect(await cache.get("k")).toBeUndefined();
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error("origin down");
    };
    expect(await cache.getOrSet("k", failing, options)).toBe("old");
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.peek("k")).toBeUndefined();
    expect(await cache.getOrSet("k", failing, options)).toBe("old");
    expect(calls).toBe(1);
    // A failure just before grace ends holds the value only until grace ends.
    clock.advance(8_900 - 2000 + 1000); // 9.9 s past the TTL
    expect(await cache.getOrSet("k", failing, options)).toBe("old");
    clock.advance(4_000); // 13.9 s past the TTL: past grace
    await expect(cache.getOrSet("k", failing, options)).rejects.toThrow("origin down");
  });

  it("while L2 is down, a remembered failure (negativeTtl) spares the loader", async () => {
    const { cache, clock, chaos } = setup({ breaker: false });
    await cache.get("x"); // synced once
    chaos.mode = "fail";
    let calls = 0;
    const failing = async () => {
      calls++;
      throw new Error("origin down");
    };
    await expect(cache.getOrSet("k", failing, { negativeTtl: 60_000 })).rejects.toThrow(
      "origin down",
    );
    clock.advance(1500);
    for (let i = 0; i < 2; i++) {
      await expect(cache.getOrSet("k", failing, { negativeTtl: 60_000 })).rejects.toMatchObject({
        code: "EC_LOADER_FAILED",
      });
    }
    expect(calls).toBe(1);
  });

  it("with copyOnRead, a loader that changes ctx.stale changes nothing in L1", async () => {
    const { cache, clock } = setup({ local: { copyOnRead: true } });
    const options = { ttl: 1000, grace: 60_000 };
    await cache.getOrSet("k", async () => ({ n: 1 }), options);
    clock.advance(2000);
    const meddling = async (_k: string, ctx: LoaderContext) => {
      (ctx.stale as { n: number }).n = 999;
      throw new Error("origin down");
    };
    expect(await cache.getOrSet("k", meddling, options)).toEqual({ n: 1 });
    expect(await cache.getOrSet("k", meddling, options)).toEqual({ n: 1 });
  });

  it("close() stops a load waiting on another instance's lease at once", async () => {
    const { make } = setup();
    const holder = make();
    const waiter = make();
    const gate = gatedLoader(() => "v");
    const held = holder.getOrSet("k", gate.loader, { lock: { ttl: 60_000 } });
    await vi.waitUntil(() => gate.calls === 1);
    const waiting = waiter.getOrSet("k", async () => "own", { lock: { ttl: 60_000 } });
    await vi.waitUntil(() => waiter.stats().lockWaits === 1);
    const closed = waiter.close().then(() => "closed");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise((r) => {
      timer = setTimeout(() => r("still waiting"), 1000);
    });
    expect(await Promise.race([closed, slow])).toBe("closed");
    clearTimeout(timer);
    await expect(waiting).rejects.toMatchObject({ code: "EC_CLOSED" });
    gate.release();
    await held;
  });

  it("close() during a lease wait is no loader failure, even with a stale value at hand", async () => {
    const { make, clock, errors } = setup();
    const holder = make();
    const waiter = make();
    const options = { ttl: 1000, grace: 60_000, lock: { ttl: 60_000 } };
    await waiter.getOrSet("k", async () => "old", options);
    clock.advance(2000);
    const gate = gatedLoader(() => "new");
    const held = holder.getOrSet("k", gate.loader, options);
    await vi.waitUntil(() => gate.calls === 1);
    let own = 0;
    const waiting = waiter.getOrSet("k", async () => `own ${++own}`, options);
    await vi.waitUntil(() => waiter.stats().lockWaits === 1);
    await waiter.close();
    await expect(waiting).rejects.toMatchObject({ code: "EC_CLOSED" });
    expect(own).toBe(0);
    expect(errors.map((e) => e.code)).not.toContain("EC_LOADER_FAILED");
    expect(waiter.stats().graceHits).toBe(0);
    gate.release();
    await held;
  });

  it("while L2 is down, a loaded value is kept in L1 even with other L2 calls in flight", async () => {
    const { cache, chaos } = setup({ sync: false, breaker: false });
    const release = chaos.holdReads();
    const unrelated = cache.get("other");
    chaos.mode = "fail";
    let calls = 0;
    const load = async () => ++calls;
    for (let i = 0; i < 3; i++) expect(await cache.getOrSet("k", load)).toBe(1);
    expect(calls).toBe(1);
    release();
    await unrelated;
  });

  it("while L2 is down, a loaded value with a tag invalidated long before is kept in L1", async () => {
    const { cache, chaos } = setup({ breaker: false });
    await cache.invalidateTag("t");
    await cache.set("x", 1); // later changes too: the loaded value is newer than all of them
    chaos.mode = "fail";
    let calls = 0;
    const load = async () => ++calls;
    for (let i = 0; i < 3; i++) expect(await cache.getOrSet("k", load, { tags: ["t"] })).toBe(1);
    expect(calls).toBe(1);
  });

  it("with L2 down and the loader up, returns fresh loads and keeps them in L1", async () => {
    const { cache, chaos } = setup({ sync: false, breaker: false });
    chaos.mode = "fail";
    let calls = 0;
    const load = async () => ++calls;
    expect(await cache.getOrSet("k", load)).toBe(1);
    expect(await cache.getOrSet("k", load)).toBe(1);
    expect(calls).toBe(1);
  });

  it("never serves a value deleted in L2 from grace", async () => {
    const { cache, clock, make } = setup({ sync: { maxStaleness: 0 } });
    const options = { ttl: 1000, grace: 60_000 };
    await cache.getOrSet("k", async () => "old", options);
    await make().delete("k");
    clock.advance(2000);
    await expect(
      cache.getOrSet(
        "k",
        async () => {
          throw new Error("down");
        },
        options,
      ),
    ).rejects.toThrow("down");
  });
});

describe("getOrSet: timeouts", () => {
  it("soft timeout: answers stale after `timeout`, and the load still lands", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { cache, clock } = setup();
    const options = { ttl: 1000, grace: 60_000, timeout: 50 };
    await cache.getOrSet("k", async () => "old", options);
    clock.advance(2000);
    const gate = gatedLoader(() => "new");
    const answer = cache.getOrSet("k", gate.loader, options);
    await vi.advanceTimersByTimeAsync(50);
    expect(await answer).toBe("old");
    expect(cache.stats().staleHits).toBe(1);
    gate.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(await cache.get("k")).toBe("new");
  });

  it("soft timeout without a stale value waits for the load", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { cache } = setup();
    const gate = gatedLoader(() => "v");
    const answer = cache.getOrSet("k", gate.loader, { timeout: 50 });
    await vi.advanceTimersByTimeAsync(500);
    gate.release();
    expect(await answer).toBe("v");
  });

  it("hard timeout: rejects with EC_LOADER_TIMEOUT and aborts the loader's signal", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { cache } = setup();
    const gate = gatedLoader(() => "late");
    const answer = rejection(cache.getOrSet("k", gate.loader, { hardTimeout: 200 }));
    await vi.advanceTimersByTimeAsync(199);
    expect(gate.contexts[0]!.signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    const err = (await answer) as EdgeCacheError;
    expect(isEdgeCacheError(err, "EC_LOADER_TIMEOUT")).toBe(true);
    expect(gate.contexts[0]!.signal.aborted).toBe(true);
    // A late result is still cached.
    gate.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(await cache.get("k")).toBe("late");
  });

  it("hard timeout within grace serves the stale value and reports", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { cache, clock, errors } = setup();
    const options = { ttl: 1000, grace: 60_000, hardTimeout: 100 };
    await cache.getOrSet("k", async () => "old", options);
    clock.advance(2000);
    const gate = gatedLoader(() => "new");
    const answer = cache.getOrSet("k", gate.loader, options);
    await vi.advanceTimersByTimeAsync(100);
    expect(await answer).toBe("old");
    expect(errors.at(-1)?.code).toBe("EC_LOADER_TIMEOUT");
    gate.release();
  });
});

describe("getOrSet: cross-instance lock", () => {
  it("one instance loads; the others wait for its value instead of loading", async () => {
    const { make } = setup({ sync: { maxStaleness: 0 } });
    const caches = Array.from({ length: 5 }, () => make());
    const gate = gatedLoader(() => "v");
    const all = Promise.all(
      caches.flatMap((c) =>
        Array.from({ length: 20 }, () => c.getOrSet("hot", gate.loader, { lock: true })),
      ),
    );
    await vi.waitUntil(() => gate.calls === 1);
    await vi.waitUntil(() => caches.slice(1).every((c) => c.stats().lockWaits === 1));
    gate.release();
    expect(await all).toEqual(Array(100).fill("v"));
    expect(gate.calls).toBe(1);
  });

  it("a waiter polls with backoff (10 ms doubling to 250 ms), not at a fixed rate", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
    const { chaos, make } = setup({ sync: { maxStaleness: 0 } });
    const attempts: number[] = [];
    const acquire = chaos.store.acquireLease!.bind(chaos.store);
    chaos.store.acquireLease = (ns, key, token, ttl) => {
      attempts.push(Date.now());
      return acquire(ns, key, token, ttl);
    };
    const holder = make();
    const waiter = make();
    const gate = gatedLoader(() => "v");
    const held = holder.getOrSet("k", gate.loader, { lock: { ttl: 60_000 } });
    await vi.advanceTimersByTimeAsync(0);
    expect(gate.calls).toBe(1);
    const start = Date.now();
    const waited = waiter.getOrSet("k", async () => "own", { lock: { ttl: 60_000 } });
    await vi.advanceTimersByTimeAsync(3000);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    // The waiter's attempts: each gap is the previous nap of [d/2, d], d = 10, 20, ... 250.
    const waits = attempts.filter((t) => t >= start).length;
    expect(waits).toBeGreaterThanOrEqual(3000 / 250);
    expect(waits).toBeLessThanOrEqual(6 + 3000 / 125);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(250);
    expect(gaps.slice(-5).every((g) => g >= 125)).toBe(true);
    gate.release();
    await vi.advanceTimersByTimeAsync(300);
    expect(await held).toBe("v");
    expect(await waited).toBe("v");
  });

  it("without the lock each instance loads once", async () => {
    const { make } = setup();
    const caches = Array.from({ length: 5 }, () => make());
    const gate = gatedLoader(() => "v");
    const all = Promise.all(
      caches.flatMap((c) => Array.from({ length: 20 }, () => c.getOrSet("hot", gate.loader))),
    );
    await vi.waitUntil(() => gate.calls === 5);
    gate.release();
    expect(await all).toEqual(Array(100).fill("v"));
    expect(gate.calls).toBe(5);
  });

  it("a lease whose holder died ends on its own and a waiter loads", async () => {
    const { cache, chaos, clock } = setup();
    // Someone took the lease and vanished.
    expect(await chaos.store.acquireLease!("app", "k", "dead-holder", 1000)).toBe(true);
    let calls = 0;
    const answer = cache.getOrSet(
      "k",
      async () => {
        calls++;
        return "mine";
      },
      { lock: { ttl: 1000, wait: 10_000 } },
    );
    await vi.waitUntil(() => cache.stats().lockWaits === 1);
    expect(calls).toBe(0);
    clock.advance(1001);
    expect(await answer).toBe("mine");
    expect(calls).toBe(1);
  });

  it("waiters give up after lock.wait and load themselves", async () => {
    const { cache, chaos, clock } = setup();
    await chaos.store.acquireLease!("app", "k", "slow-holder", 60_000);
    const answer = cache.getOrSet("k", async () => "mine", { lock: { ttl: 60_000, wait: 500 } });
    await vi.waitUntil(() => cache.stats().lockWaits === 1);
    clock.advance(501);
    expect(await answer).toBe("mine");
  });

  it("a background refresh leaves the key to the instance holding the lease", async () => {
    const { make, clock, chaos } = setup();
    const a = make();
    const options = { ttl: 1000, staleWhileRevalidate: 5000, lock: true };
    await a.getOrSet("k", async () => "v1", options);
    clock.advance(1500);
    await chaos.store.acquireLease!("app", "k", "another-instance", 10_000);
    const handed: Promise<unknown>[] = [];
    let calls = 0;
    expect(
      await a.getOrSet(
        "k",
        async () => {
          calls++;
          return "v2";
        },
        { ...options, waitUntil: (p) => handed.push(p) },
      ),
    ).toBe("v1");
    await Promise.all(handed);
    expect(calls).toBe(0);
  });

  it("releases the lease after loading, so the next load does not wait", async () => {
    const { cache, chaos } = setup();
    await cache.getOrSet("k", async () => 1, { lock: true, ttl: 1 });
    expect(await chaos.store.acquireLease!("app", "k", "probe", 1000)).toBe(true);
  });
});

describe("circuit breaker", () => {
  it("opens after repeated failures, refuses L2 calls, half-opens after the cooldown", async () => {
    const { cache, chaos, clock } = setup({ breaker: { threshold: 3, cooldown: 1000 } });
    await cache.set("k", "v");
    chaos.mode = "fail";
    for (let i = 0; i < 3; i++) expect(await cache.get(`miss${i}`)).toBeUndefined();
    expect(cache.stats().breaker).toMatchObject({ state: "open", opens: 1, failures: 3 });
    const calls = chaos.calls;
    expect(await cache.get("other")).toBeUndefined();
    await expect(cache.set("x", 1)).rejects.toMatchObject({ code: "EC_CIRCUIT_OPEN" });
    expect(chaos.calls).toBe(calls); // refused without touching L2
    expect(cache.stats().breaker?.rejected).toBe(2);
    // Reads keep working from L1 and loaders.
    expect(await cache.getOrSet("fresh", async () => "loaded")).toBe("loaded");
    // Cooldown over: one trial; it fails, so the circuit opens again.
    clock.advance(1000);
    expect(cache.stats().breaker?.state).toBe("half-open");
    expect(await cache.get("again")).toBeUndefined();
    expect(chaos.calls).toBe(calls + 1);
    expect(cache.stats().breaker).toMatchObject({ state: "open", opens: 2 });
    // L2 is back: the next trial closes it.
    chaos.mode = "ok";
    clock.advance(1000);
    expect(await cache.get("k")).toBe("v");
    expect(cache.stats().breaker).toMatchObject({ state: "closed", failures: 0 });
    await cache.set("y", 2);
    expect(await cache.get("y")).toBe(2);
  });

  it("while open, reads are served from L1 and the loader without touching L2", async () => {
    const { cache, chaos, clock } = setup({ breaker: { threshold: 1, cooldown: 60_000 } });
    const options = { ttl: 10_000, grace: 60_000 };
    await cache.set("a", 1);
    await cache.getOrSet("k", async () => "v1", options);
    chaos.mode = "fail";
    expect(await cache.get("missing")).toBeUndefined();
    expect(cache.stats().breaker?.state).toBe("open");
    const calls = chaos.calls;
    // Within the staleness window, L1 answers as usual.
    expect(await cache.get("a")).toBe(1);
    // Past it, nothing vouches for L1: a plain read misses, getOrSet serves what L1 holds
    // and refreshes it once through the loader; the loaded value is then served from L1.
    clock.advance(2000);
    expect(await cache.get("a")).toBeUndefined();
    const handed: Promise<unknown>[] = [];
    let loads = 0;
    const opts = { ...options, waitUntil: (p: Promise<unknown>) => handed.push(p) };
    const load = async () => `v${++loads + 1}`;
    expect(await cache.getOrSet("k", load, opts)).toBe("v1");
    await Promise.all(handed);
    expect(await cache.getOrSet("k", load, opts)).toBe("v2");
    expect(await cache.getOrSet("k", load, opts)).toBe("v2");
    expect(loads).toBe(1);
    expect(chaos.calls).toBe(calls);
    expect(cache.stats().breaker?.rejected).toBeGreaterThan(0);
  });

  it("lets only one trial through while half-open", async () => {
    const { cache, chaos, clock } = setup({ breaker: { threshold: 1, cooldown: 100 } });
    chaos.mode = "fail";
    await cache.get("a");
    expect(cache.stats().breaker?.state).toBe("open");
    chaos.mode = "ok";
    clock.advance(100);
    const release = chaos.holdReads();
    const calls = chaos.calls;
    const trial = cache.get("a");
    const second = cache.get("b");
    expect(await second).toBeUndefined();
    expect(chaos.calls).toBe(calls + 1);
    release();
    await trial;
    expect(cache.stats().breaker?.state).toBe("closed");
  });

  it("bad input does not count as a backend failure, nor decide a half-open trial", async () => {
    // The cache validates input before L2 is called, so this takes a store's own typed
    // input error straight through the breaker.
    const clock = fakeClock();
    const breaker = new Breaker({ threshold: 2, cooldown: 100 }, clock.now, "app");
    const bad = () => Promise.reject(new InvalidKeyError("a store's own key check"));
    const down = () => Promise.reject(new StoreError("EC_STORE_UNAVAILABLE", "down"));
    await expect(breaker.run(down)).rejects.toBeInstanceOf(StoreError);
    for (let i = 0; i < 3; i++)
      await expect(breaker.run(bad)).rejects.toBeInstanceOf(InvalidKeyError);
    expect(breaker.stats).toMatchObject({ state: "closed", failures: 1 });
    await expect(breaker.run(down)).rejects.toBeInstanceOf(StoreError);
    expect(breaker.stats).toMatchObject({ state: "open", opens: 1 });
    clock.advance(100);
    // The trial hit bad input: nothing was learned about the backend; still half-open.
    await expect(breaker.run(bad)).rejects.toBeInstanceOf(InvalidKeyError);
    expect(breaker.stats.state).toBe("half-open");
    expect(await breaker.run(async () => "ok")).toBe("ok");
    expect(breaker.stats).toMatchObject({ state: "closed", failures: 0 });
    // Closed with the count reset: one failure is not enough to open it again.
    await expect(breaker.run(down)).rejects.toBeInstanceOf(StoreError);
    expect(breaker.stats.state).toBe("closed");
  });

  it("the cache rejects bad input before L2, and it leaves the breaker alone", async () => {
    const { cache, chaos } = setup({ breaker: { threshold: 1, cooldown: 100 } });
    const calls = chaos.calls;
    await expect(cache.set("", 1)).rejects.toMatchObject({ code: "EC_INVALID_KEY" });
    expect(chaos.calls).toBe(calls);
    expect(cache.stats().breaker?.state).toBe("closed");
  });

  it("can be turned off", async () => {
    const { cache, chaos } = setup({ breaker: false });
    chaos.mode = "fail";
    for (let i = 0; i < 10; i++) await cache.get("k");
    expect(cache.stats().breaker).toBeUndefined();
    await expect(cache.set("k", 1)).rejects.toMatchObject({ code: "EC_STORE_UNAVAILABLE" });
  });
});

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
    // has, getMany and peek do not load.
    expect(await scores.has("Tom")).toBe(false);
    expect(await scores.getMany(["Tom"])).toEqual([undefined]);
    expect(scores.peek("Tom")).toBeUndefined();
    expect(calls).toEqual([]);
    expect(await scores.get("Tom")).toBe(30);
    expect(await scores.has("Tom")).toBe(true);
    expect(await scores.get("Tom")).toBe(30);
    expect(calls).toEqual(["Tom"]);
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
    for (const option of [local, { cache: local, maxItems: 100 }] as const) {
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
