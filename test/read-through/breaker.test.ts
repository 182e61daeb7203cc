import { describe, expect, it } from "vitest";
import { Breaker } from "../../src/breaker.js";
import { InvalidKeyError, StoreError } from "../../src/index.js";
import { fakeClock } from "../helpers.js";
import { realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

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
