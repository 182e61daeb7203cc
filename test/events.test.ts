/**
 * `cache.on(event, listener)`: what each operation emits, in order, and that listeners can
 * never break a cache call.
 */
import { describe, expect, it } from "vitest";
import type { Cache, CacheEventMap } from "../src/index.js";
import { cluster, rejection } from "./helpers.js";

type Seen = Array<[keyof CacheEventMap, unknown]>;

const ALL: Array<keyof CacheEventMap> = [
  "hit",
  "miss",
  "set",
  "delete",
  "clear",
  "sync",
  "load",
  "stale",
  "breaker",
  "error",
];

/** Records every event of `cache`, in order, with `ms` of loads rounded away. */
function record(cache: Cache): Seen {
  const seen: Seen = [];
  for (const event of ALL) {
    cache.on(event, (payload) => {
      const p = payload as Record<string, unknown>;
      seen.push([event, event === "load" ? { ...p, ms: typeof p.ms } : p]);
    });
  }
  return seen;
}

describe("cache events", () => {
  it("a miss, its load and its write, then a hit: in that order", async () => {
    const { instance } = cluster();
    const cache = instance();
    await cache.get("warm"); // the first sync, out of the way
    const seen = record(cache);
    expect(await cache.getOrSet("k", async () => "v", { ttl: 60_000 })).toBe("v");
    expect(await cache.get("k")).toBe("v");
    expect(seen.filter(([e]) => e !== "sync")).toEqual([
      ["miss", { key: "k" }],
      ["load", { key: "k", ms: "number", outcome: "ok" }],
      ["set", { keys: ["k"] }],
      ["hit", { key: "k", tier: "l1" }],
    ]);
  });

  it("reads from L2 are hits of tier l2; deletes, clears and another instance's writes are seen", async () => {
    const { instance } = cluster();
    const a = instance();
    const b = instance();
    await a.setMany([
      ["x", 1],
      ["y", 2],
    ]);
    const seen = record(b);
    expect(await b.getMany(["x", "y", "z"])).toEqual([1, 2, undefined]);
    expect(b.peek("x")).toBe(1);
    expect(b.peek("nope")).toBeUndefined();
    await b.delete("x");
    await b.clear();
    expect(seen.filter(([e]) => e !== "sync")).toEqual([
      ["hit", { key: "x", tier: "l2" }],
      ["hit", { key: "y", tier: "l2" }],
      ["miss", { key: "z" }],
      ["hit", { key: "x", tier: "l1" }],
      ["miss", { key: "nope" }],
      ["delete", { keys: ["x"] }],
      ["clear", {}],
    ]);
    // The syncs that rode along: the other instance's write applied, then the clear.
    const syncs = seen.filter(([e]) => e === "sync").map(([, p]) => p);
    expect(syncs).toContainEqual({ applied: 1, flushed: false });
    expect(syncs.at(-1)).toEqual({ applied: 1, flushed: true });
  });

  it("stale values served by stale-while-revalidate and grace, failed loads and absorbed errors", async () => {
    const { clock, instance } = cluster();
    const cache = instance({ onError: () => {} });
    await cache.getOrSet("k", async () => "v1", { ttl: 1000, staleWhileRevalidate: 60_000 });
    clock.advance(2000);
    const seen = record(cache);
    expect(
      await cache.getOrSet("k", async () => "v2", { ttl: 1000, staleWhileRevalidate: 60_000 }),
    ).toBe("v1");
    expect(seen).toContainEqual(["stale", { key: "k", reason: "swr" }]);
    await new Promise((r) => setTimeout(r, 10));
    clock.advance(5000);
    seen.length = 0;
    const failing = async () => {
      throw new Error("origin down");
    };
    expect(await cache.getOrSet("k", failing, { ttl: 1000, grace: 60_000 })).toBe("v2");
    expect(seen).toContainEqual(["load", { key: "k", ms: "number", outcome: "error" }]);
    expect(seen).toContainEqual(["stale", { key: "k", reason: "grace" }]);
    const errors = seen.filter(([e]) => e === "error");
    expect(errors).toHaveLength(1);
    expect((errors[0]![1] as CacheEventMap["error"]).error.code).toBe("EC_LOADER_FAILED");
  });

  it("the breaker's state changes", async () => {
    const { chaos, clock, instance } = cluster();
    const cache = instance({ breaker: { threshold: 2, cooldown: 1000 } });
    const states: string[] = [];
    cache.on("breaker", ({ state }) => states.push(state));
    chaos.mode = "fail";
    await cache.get("a");
    await cache.get("b");
    expect(cache.stats().breaker?.state).toBe("open");
    clock.advance(1500);
    chaos.mode = "ok";
    await cache.get("c");
    expect(states).toEqual(["open", "half-open", "closed"]);
  });

  it("listeners that throw or reject never break a call, and off stops them", async () => {
    const { instance } = cluster();
    const warnings: string[] = [];
    const cache = instance({
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    });
    const throwing = () => {
      throw new Error("listener bug");
    };
    const rejecting = async () => {
      throw new Error("async listener bug");
    };
    let calls = 0;
    const counting = () => {
      calls++;
    };
    cache.on("set", throwing);
    cache.on("set", rejecting);
    cache.on("set", counting);
    await cache.set("k", 1);
    expect(await cache.get("k")).toBe(1);
    await new Promise((r) => setTimeout(r, 0));
    expect(calls).toBe(1);
    // Logged (at most once a minute per kind of message), never thrown, never unhandled.
    expect(warnings.filter((w) => w.includes('"set" listener')).length).toBeGreaterThanOrEqual(1);
    cache.off("set", throwing);
    cache.off("set", rejecting);
    cache.off("set", counting);
    await cache.set("k", 2);
    expect(calls).toBe(1);
    cache.off("set", counting); // not listening: nothing happens
  });

  it("refuses an unknown event or a listener that is not a function", async () => {
    const { instance } = cluster();
    const cache = instance();
    expect(() => cache.on("nope" as "hit", () => {})).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
    expect(() => cache.on("hit", 5 as never)).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
    await cache.close();
    expect(() => cache.on("hit", () => {})).toThrow(expect.objectContaining({ code: "EC_CLOSED" }));
    expect((await rejection(cache.get("k"))).code).toBe("EC_CLOSED");
  });
});
