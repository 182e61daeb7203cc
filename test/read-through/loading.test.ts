import { describe, expect, it, vi } from "vitest";
import {
  createCache,
  type EdgeCacheError,
  isEdgeCacheError,
  type LoaderContext,
  memoryStore,
} from "../../src/index.js";
import { fakeClock, rejection } from "../helpers.js";
import { flush, gatedLoader, realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

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
