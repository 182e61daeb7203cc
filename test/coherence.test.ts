import { Redis } from "@upstash/redis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type CacheOptions, createCache, memoryStore, StoreError } from "../src/index.js";
import type { Store } from "../src/store/contract.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { upstashStore } from "../src/stores/upstash.js";
import { countRequests, fakeClock, cluster as sharedCluster } from "./helpers.js";

const M = 1_000;

/** Two or more instances on one shared store and one fake clock. */
const cluster = (options: Partial<CacheOptions> = {}) =>
  sharedCluster({ sync: { maxStaleness: M }, ...options });

/** Store calls made by `fn`. */
async function calls<T>(chaos: { calls: number }, fn: () => Promise<T>): Promise<[T, number]> {
  const before = chaos.calls;
  const result = await fn();
  return [result, chaos.calls - before];
}

describe("the staleness bound", () => {
  it("a propagated set reaches another instance's L1 once the window has passed, with one sync", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    const b = instance();
    await a.set("k", "v1");
    expect(await b.get("k")).toBe("v1");
    await a.set("k", "v2");
    clock.advance(M - 1);
    expect(await b.get("k")).toBe("v1"); // inside the window: allowed, and free
    clock.advance(1);
    const [value, n] = await calls(chaos, () => b.get("k"));
    expect(value).toBe("v2");
    expect(n).toBe(1); // the sync carried the value: no L2 read
    expect(b.stats()).toMatchObject({ changesApplied: 1, l1Hits: 2, flushes: 0 });
  });

  it("setWithInvalidate only drops the copy: the reader fetches the value from L2", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    const b = instance();
    await a.set("k", "v1");
    await b.get("k");
    await a.setWithInvalidate("k", "v2");
    clock.advance(M);
    const [value, n] = await calls(chaos, () => b.get("k"));
    expect(value).toBe("v2");
    expect(n).toBe(2); // sync, then the L2 read of the invalidated key
  });

  it("values over propagateMaxBytes fall back to invalidation", async () => {
    const { clock, chaos, instance } = cluster({
      sync: { maxStaleness: M, propagateMaxBytes: 16 },
    });
    const a = instance();
    const b = instance();
    await a.set("small", "x");
    await a.set("big", "y".repeat(100));
    await b.getMany(["small", "big"]);
    await a.setMany([
      ["small", "x2"],
      ["big", "z".repeat(100)],
    ]);
    clock.advance(M);
    const [values, n] = await calls(chaos, () => b.getMany(["small", "big"]));
    expect(values).toEqual(["x2", "z".repeat(100)]);
    expect(n).toBe(2);
  });

  it("delete and clear propagate", async () => {
    const { clock, instance } = cluster();
    const a = instance();
    const b = instance();
    await a.setMany([
      ["x", 1],
      ["y", 2],
    ]);
    await b.getMany(["x", "y"]);
    await a.delete("x");
    clock.advance(M);
    expect(await b.getMany(["x", "y"])).toEqual([undefined, 2]);
    await a.clear();
    clock.advance(M);
    expect(await b.get("y")).toBeUndefined();
    expect(b.stats().flushes).toBe(1);
  });

  it("maxStaleness 0 checks on every read and sees every resolved write", async () => {
    const { chaos, instance } = cluster({ sync: { maxStaleness: 0 } });
    const a = instance();
    const b = instance();
    await a.set("k", 1);
    await b.get("k");
    for (let i = 2; i < 6; i++) {
      await a.set("k", i);
      const [value, n] = await calls(chaos, () => b.get("k"));
      expect(value).toBe(i);
      expect(n).toBe(1);
    }
  });

  it("an instance that has only written still learns of newer writes by others", async () => {
    const { clock, instance } = cluster();
    const a = instance();
    const b = instance();
    await b.set("k", "b's"); // b's L1 holds it; b has never read
    await a.set("k", "a's, newer");
    clock.advance(M);
    expect(await b.get("k")).toBe("a's, newer");
  });

  it("peek answers only within the window", async () => {
    const { clock, instance } = cluster();
    const a = instance();
    await a.set("k", 1);
    expect(a.peek("k")).toBe(1);
    clock.advance(M);
    expect(a.peek("k")).toBeUndefined();
    expect(await a.get("k")).toBe(1);
    expect(a.peek("k")).toBe(1);
  });

  it("a failed sync serves a miss rather than a copy it cannot vouch for", async () => {
    const { clock, chaos, errors, instance } = cluster();
    const a = instance();
    await a.set("k", 1);
    clock.advance(M);
    chaos.mode = "fail";
    expect(await a.get("k")).toBeUndefined();
    expect(errors.at(-1)?.code).toBe("EC_STORE_UNAVAILABLE");
    chaos.mode = "ok";
    expect(await a.get("k")).toBe(1);
  });
});

describe("request counts with coherence on", () => {
  it("warm reads inside the window cost nothing; 100 keys after it cost one sync", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    const b = instance();
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    await a.setMany(keys.map((k) => [k, k]));
    expect((await calls(chaos, () => b.getMany(keys)))[1]).toBe(1); // cold: one read, sync included
    expect((await calls(chaos, () => b.getMany(keys)))[1]).toBe(0);
    for (const k of keys) expect((await calls(chaos, () => b.get(k)))[1]).toBe(0);
    clock.advance(M);
    expect((await calls(chaos, () => b.getMany(keys)))[1]).toBe(1);
    clock.advance(M);
    let total = 0;
    for (const k of keys) total += (await calls(chaos, () => b.get(k)))[1];
    expect(total).toBe(1);
  });

  it("a writer stays synced through its own writes", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    await a.set("k", 1);
    expect((await calls(chaos, () => a.get("k")))[1]).toBe(0);
    clock.advance(M);
    await a.set("j", 2); // the write's answer carried the log
    expect((await calls(chaos, () => a.getMany(["k", "j"])))[1]).toBe(0);
  });

  it("concurrent reads after the window share one sync", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    await a.setMany([
      ["x", 1],
      ["y", 2],
    ]);
    clock.advance(M);
    const [values, n] = await calls(chaos, () =>
      Promise.all([a.get("x"), a.get("y"), a.getMany(["x", "y"])]),
    );
    expect(values).toEqual([1, 2, [1, 2]]);
    expect(n).toBe(1);
  });

  it("with sync: false, no change log is written or read", async () => {
    const { clock, chaos, instance } = cluster({ sync: false });
    const a = instance();
    await a.set("k", 1);
    clock.advance(10 * M);
    expect((await calls(chaos, () => a.get("k")))[1]).toBe(0);
    expect(a.stats()).toMatchObject({ syncs: 0, cursor: -1 });
  });
});

describe("lost history and convergence", () => {
  it("a trimmed log (gap) drops the whole L1 and reads come back right", async () => {
    const { clock, instance } = cluster({ sync: { maxStaleness: M, logLength: 5 } });
    const a = instance();
    const b = instance();
    await a.setMany([
      ["keep", "k"],
      ["hot", 0],
    ]);
    expect(await b.getMany(["keep", "hot"])).toEqual(["k", 0]);
    for (let i = 1; i <= 20; i++) await a.set("hot", i);
    clock.advance(M);
    expect(await b.getMany(["keep", "hot"])).toEqual(["k", 20]);
    expect(b.stats()).toMatchObject({ flushes: 1 });
  });

  it("a backlog longer than sync.batch drops L1 instead of paging", async () => {
    const { clock, instance } = cluster({ sync: { maxStaleness: M, batch: 3 } });
    const a = instance();
    const b = instance();
    await a.set("k", 0);
    await b.get("k");
    for (let i = 1; i <= 5; i++) await a.set(`other${i}`, i);
    await a.set("k", 1);
    clock.advance(M);
    expect(await b.get("k")).toBe(1);
    expect(b.stats().flushes).toBe(1);
  });

  it("instances skip their own changes and apply everyone else's", async () => {
    const { clock, instance } = cluster();
    const a = instance({ instanceId: "a" });
    const b = instance({ instanceId: "b" });
    await a.set("k", 1);
    await b.get("k");
    await b.set("k", 2);
    await a.set("j", 1);
    clock.advance(M);
    expect(await a.get("k")).toBe(2);
    expect(await b.get("k")).toBe(2);
    expect(b.stats().changesApplied).toBe(1); // a's "j"; its own "k" was skipped
  });

  it("concurrent writers converge on the higher version everywhere", async () => {
    const { clock, instance } = cluster();
    const instances = [instance(), instance(), instance()];
    await Promise.all(instances.map((c) => c.get("k")));
    await Promise.all(instances.map((c, i) => c.set("k", `from ${i}`)));
    clock.advance(M);
    const seen = await Promise.all(instances.map((c) => c.get("k")));
    const inL2 = await instance().get("k"); // an empty L1: straight from L2
    expect(seen).toEqual([inL2, inL2, inL2]);
  });

  it("reads of one key on one instance never go backwards, even with late answers", async () => {
    const { chaos, instance } = cluster({ sync: { maxStaleness: 0 } });
    const a = instance();
    const b = instance();
    await a.set("k", 1);
    await b.get("k");
    const release = chaos.holdReads();
    const early = b.get("k"); // its sync answer will arrive late
    await a.set("k", 2);
    release();
    const first = await early;
    const second = await b.get("k");
    expect(second).toBe(2);
    expect([1, 2]).toContain(first);
    expect(b.peek("k")).toBeUndefined(); // maxStaleness 0: L1 never answers without a sync
  });

  it("refreshAhead syncs in the background before the window runs out", async () => {
    const { clock, chaos, instance } = cluster({ sync: { maxStaleness: M, refreshAhead: 0.5 } });
    const a = instance();
    const b = instance();
    await a.set("k", 1);
    await b.get("k");
    await a.set("k", 2);
    clock.advance(M / 2);
    const [value, n] = await calls(chaos, () => b.get("k"));
    expect(value).toBe(1); // served from L1 at once...
    expect(n).toBe(1); // ...while a sync started in the background
    await b.close(); // waits for it
    expect(b.stats().changesApplied).toBe(1);
  });
});

describe("late answers and lost counters (found in review)", () => {
  it("a first read answered late never installs a value older than the cursor", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance();
    const b = instance(); // cold: cursor -1
    await a.set("k", "v1");
    const release = chaos.holdNextRead();
    const early = b.get("k"); // snapshot k = v1, answer held
    await a.set("k", "v2");
    expect(await b.get("other")).toBeUndefined(); // a newer snapshot moves b's cursor past v2
    release();
    expect(await early).toBe("v1"); // concurrent with the write: fine
    clock.advance(5 * M);
    expect(await b.get("k")).toBe("v2");
  });

  it("a set answered after a remote clear was applied is not installed over the clear", async () => {
    const { clock, chaos, instance } = cluster();
    const a = instance({ instanceId: "a" });
    const b = instance({ instanceId: "b" });
    await b.get("warm");
    const release = chaos.holdNextWrite();
    const write = b.set("k", "v"); // lands first, answer held
    await a.clear();
    clock.advance(M);
    expect(await b.get("other")).toBeUndefined(); // b applies the clear
    release();
    await write;
    clock.advance(5 * M);
    expect(await b.get("k")).toBeUndefined();
  });

  it("a set answered after the writer's own clear is not installed either", async () => {
    const { clock, chaos, instance } = cluster();
    const b = instance();
    await b.get("warm");
    const release = chaos.holdNextWrite();
    const write = b.set("k", "v");
    await b.clear();
    release();
    await write;
    clock.advance(5 * M);
    expect(await b.get("k")).toBeUndefined();
  });

  it("an instance's own write that timed out but landed later still reaches its L1", async () => {
    const clock = fakeClock();
    const inner = memoryStore({ now: clock.now });
    let landLater: (() => Promise<unknown>) | undefined;
    let delayNext = false;
    const store: Store = {
      ...inner,
      set: (ns, w, meta) => {
        if (!delayNext) return inner.set(ns, w, meta);
        delayNext = false;
        landLater = () => inner.set(ns, w, meta);
        return Promise.reject(new StoreError("EC_STORE_TIMEOUT", "timed out"));
      },
    };
    const make = (id: string) =>
      createCache({ store, namespace: "app", now: clock.now, instanceId: id, onError: () => {} });
    const a = make("a");
    const b = make("b");
    await a.set("k", "v1");
    expect(await b.get("k")).toBe("v1");
    delayNext = true;
    await expect(b.set("k", "v2")).rejects.toThrow();
    clock.advance(M);
    expect(await b.get("k")).toBe("v1"); // not landed yet
    await landLater!(); // lands now, recorded with b as its origin
    clock.advance(5 * M);
    expect(await a.get("k")).toBe("v2");
    expect(await b.get("k")).toBe("v2");
  });
});

describe("background syncs", () => {
  it("hands refresh-ahead syncs to waitUntil, and close() waits for them", async () => {
    const handed: Array<Promise<unknown>> = [];
    const { clock, instance } = cluster({
      sync: { maxStaleness: M, refreshAhead: 0.5, waitUntil: (p) => handed.push(p) },
    });
    const a = instance();
    const b = instance();
    await a.set("k", 1);
    await b.get("k");
    await a.set("k", 2);
    clock.advance(M / 2);
    expect(await b.get("k")).toBe(1);
    expect(handed).toHaveLength(1);
    expect(await handed[0]).toBe(true);
    expect(await b.get("k")).toBe(2);
  });

  it("a read past the window does not join a background sync; it makes its own", async () => {
    const { clock, chaos, instance } = cluster({ sync: { maxStaleness: M, refreshAhead: 0.5 } });
    const a = instance();
    await a.set("k", 1);
    clock.advance(M / 2);
    const release = chaos.holdNextRead(); // the background sync's answer is held
    expect(await a.get("k")).toBe(1); // served from L1; starts the background sync
    clock.advance(M / 2);
    // Past the window: it must sync on its own rather than wait for the held one.
    const hung = new Promise((r) => setTimeout(() => r("hung"), 2_000));
    expect(await Promise.race([a.get("k"), hung])).toBe(1);
    release();
    await a.close();
  });
});

describe("against Redis through the bridge", () => {
  const url = inject("bridgeUrl");
  const token = inject("bridgeToken");
  const requests = countRequests(url);
  afterAll(() => requests.restore());
  // For changing Redis behind the caches' back.
  const raw = new Redis({ url, token, enableTelemetry: false });

  /** Two instances on Redis sharing a namespace and a clock the test moves by hand. */
  function redisPair(label: string) {
    const namespace = freshNamespace(label);
    const clock = { t: Date.now() };
    const make = () =>
      createCache({
        store: upstashStore({ url, token }),
        namespace,
        now: () => clock.t,
        sync: { maxStaleness: M },
      });
    return { namespace, clock, a: make(), b: make() };
  }

  it("cold get = 1 request with the sync included; warm = 0; 100 keys after the window = 1", async () => {
    const { clock, a, b } = redisPair("coh");
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    await a.setMany(keys.map((k) => [k, { k }]));
    requests.reset();
    expect(await b.get("k0")).toEqual({ k: "k0" });
    expect(requests.count).toBe(1);
    requests.reset();
    await b.getMany(keys);
    expect(requests.count).toBe(1);
    requests.reset();
    await b.getMany(keys);
    for (const k of keys) await b.get(k);
    expect(requests.count).toBe(0);
    await a.set("k5", "changed");
    clock.t += M;
    requests.reset();
    const values = await b.getMany(keys);
    expect(requests.count).toBe(1);
    expect(values[5]).toBe("changed");
    expect(values[6]).toEqual({ k: "k6" });
  });

  it("notices a lost counter even after a clear, or once it has grown past the cursor again", async () => {
    for (const withClear of [true, false]) {
      const { namespace, clock, a, b } = redisPair("lost");
      if (withClear) await a.clear();
      await a.set("k", "v1");
      await a.set("j", "j1");
      expect(await b.get("k")).toBe("v1");
      await raw.del(`ec:{${namespace}}:v`, `ec:{${namespace}}:log`);
      await a.set("k", "v2");
      await a.set("x", 1);
      await a.set("x", 2);
      clock.t += 5 * M;
      expect(await b.get("k")).toBe("v2");
    }
  });

  it("recovers when Redis loses the namespace's counter and log (a reset)", async () => {
    const { namespace, clock, a, b } = redisPair("reset");
    for (let i = 0; i < 5; i++) await a.set(`k${i}`, i);
    await b.getMany(["k0", "k1"]);
    await raw.del(`ec:{${namespace}}:v`, `ec:{${namespace}}:log`);
    await a.set("k0", "after reset");
    clock.t += M;
    expect(await b.get("k0")).toBe("after reset");
    expect(b.stats().flushes).toBe(1);
  });
});
