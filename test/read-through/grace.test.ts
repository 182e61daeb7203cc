import { describe, expect, it, vi } from "vitest";
import { createCache, type LoaderContext, memoryStore, StoreError } from "../../src/index.js";
import { shardedStore } from "../../src/stores/sharded.js";
import { chaosStore } from "../helpers.js";
import { flush, gatedLoader, realTimersAfterEach, setup } from "./helpers.js";

realTimersAfterEach();

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

describe("set: staleFor", () => {
  it("keeps a set value in L2 past its TTL, for getOrSet's stale windows only", async () => {
    const { cache, clock, make } = setup();
    await cache.set("k", "written", { ttl: 1000, staleFor: 60_000 });
    await cache.set("plain", "written", { ttl: 1000 });
    clock.advance(2000);
    // Past its TTL: a plain read misses, on this instance and on one with a cold L1.
    const other = make();
    expect(await cache.get("k")).toBeUndefined();
    expect(await other.get("k")).toBeUndefined();
    // Within grace the kept value answers a failed load; a plain set left nothing to serve.
    const failing = async () => {
      throw new Error("origin 503");
    };
    expect(await other.getOrSet("k", failing, { ttl: 1000, grace: 60_000 })).toBe("written");
    await expect(other.getOrSet("plain", failing, { ttl: 1000, grace: 60_000 })).rejects.toThrow(
      "origin 503",
    );
    // Past the kept window it is gone for good.
    clock.advance(60_000);
    await expect(cache.getOrSet("k", failing, { ttl: 1000, grace: 60_000 })).rejects.toThrow(
      "origin 503",
    );
  });

  it("refuses a bad staleFor with a typed error and writes nothing", async () => {
    const { cache } = setup();
    for (const staleFor of [-1, Number.NaN, "5", 2 ** 41]) {
      await expect(cache.set("k", "v", { staleFor: staleFor as number })).rejects.toMatchObject({
        code: "EC_INVALID_OPTION",
      });
    }
    await expect(cache.set("k", "v", { ttl: 2 ** 52, staleFor: 1 })).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
    expect(await cache.get("k")).toBeUndefined();
  });
});
