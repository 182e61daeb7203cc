import { describe, expect, it, vi } from "vitest";
import { createCache, type EdgeCacheError, isEdgeCacheError } from "../../src/index.js";
import { rejection } from "../helpers.js";
import { flush, gatedLoader, realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

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

describe("getOrSet: the store timeout budget of a load", () => {
  it("a miss that joins a running load does not reset that load's budget for its write", async () => {
    const { chaos, clock } = setup();
    const store = { ...chaos.store, timeout: 300 };
    const cache = createCache({ store, namespace: "budget", now: clock.now, onError: () => {} });
    // The first miss's read takes 280 of its 300 ms (on the cache's clock).
    const releaseRead = chaos.holdNextRead();
    const gate = gatedLoader(() => "v");
    const first = cache.getOrSet("k", gate.loader);
    await flush();
    clock.advance(280);
    releaseRead();
    await vi.waitUntil(() => gate.calls === 1);
    // A second miss reads at once and joins the running load.
    const second = cache.getOrSet("k", async () => "never called");
    await flush();
    // The write lands but its answer never comes back in time: the first miss may wait for
    // it only for what is left of its budget (20 ms), not a whole timeout again.
    const releaseWrite = chaos.holdNextWrite();
    const loaded = Date.now();
    gate.release();
    expect(await first).toBe("v");
    expect(Date.now() - loaded).toBeLessThan(150);
    releaseWrite();
    expect(await second).toBe("v");
    expect(gate.calls).toBe(1);
    await cache.close();
  });
});
