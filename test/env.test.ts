/**
 * fromEnv (src/env.ts): caches configured by environment variables, from a Worker-like env
 * (typed values, a Durable Object binding) and a process.env-like one (strings only),
 * against the real REST bridge.
 */

import { describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { fromEnv, optionsFromEnv } from "../src/env.js";
import { InvalidOptionError } from "../src/errors.js";
import type { HubBinding, HubOptions, WebSocketConstructor } from "../src/hub/options.js";
import { memoryStore } from "../src/index.js";
import type { ChangeRecord } from "../src/store/contract.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

/** A stand-in for the InvalidationHub binding that records what the cache publishes. */
function recordingBinding() {
  const published: Array<{ name: string; shard: number | undefined; records: ChangeRecord[] }> = [];
  const binding: HubBinding = {
    getByName: (name) => ({
      publish: async (records, shard) => {
        published.push({ name, shard, records });
        return { accepted: records.length };
      },
    }),
  };
  return { binding, published };
}

describe("fromEnv with a process.env-like record", () => {
  const namespace = `env.node.${crypto.randomUUID()}`;
  const env: Record<string, string | undefined> = {
    ...process.env,
    UPSTASH_REDIS_REST_URL: url,
    UPSTASH_REDIS_REST_TOKEN: token,
    EDGECACHE_NAMESPACE: namespace,
    EDGECACHE_TTL: "30s",
    EDGECACHE_MAX_STALENESS: "250ms",
    EDGECACHE_L1_MAX_ITEMS: "2",
    EDGECACHE_L1_MAX_BYTES: "1MiB",
    EDGECACHE_JITTER: "0.1",
    EDGECACHE_BREAKER_THRESHOLD: "3",
    EDGECACHE_BREAKER_COOLDOWN: "2.5s",
    EDGECACHE_INSTANCE_ID: "node-1",
    EDGECACHE_L2_TIMEOUT: "800ms",
    EDGECACHE_L2_PREFIX: "ec",
    EDGECACHE_HUB_SHARDS: "", // empty counts as unset
  };

  it("maps every variable to its option", () => {
    const { store, ...options } = optionsFromEnv(env);
    expect(typeof store.get).toBe("function");
    expect(options).toEqual({
      namespace,
      instanceId: "node-1",
      ttl: 30_000,
      jitter: 0.1,
      local: { maxItems: 2, maxBytes: 1 << 20 },
      breaker: { threshold: 3, cooldown: 2500 },
      sync: { maxStaleness: 250 },
    });
  });

  it("builds a working cache over the bridge, with the L1 bounds and TTL it was given", async () => {
    const cache = fromEnv(env, { logger: false });
    expect(cache.name).toBe(namespace);
    await cache.setMany([
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ]);
    const stats = cache.stats();
    expect(stats.l1Items).toBeLessThanOrEqual(2);
    expect(stats.l1Evictions).toBeGreaterThanOrEqual(1);
    expect(stats.breaker?.state).toBe("closed");
    // Another instance configured the same way reads what this one wrote.
    const twin = fromEnv({ ...env, EDGECACHE_INSTANCE_ID: "node-2" });
    expect(await twin.getMany(["a", "b", "c"])).toEqual([1, 2, 3]);
    const seen = await twin.inspect("a");
    // 30 s minus up to 10 % jitter.
    expect(seen!.ttl).toBeGreaterThan(26_000);
    expect(seen!.ttl).toBeLessThanOrEqual(30_000);
    await cache.close();
    await twin.close();
  });

  it("turns coherence, L1 and the breaker off with EDGECACHE_SYNC/L1/BREAKER=off", async () => {
    const off = {
      ...env,
      EDGECACHE_SYNC: "off",
      EDGECACHE_L1: "false",
      EDGECACHE_BREAKER: "0",
      EDGECACHE_HUB_URL: "https://hub.example", // ignored while sync is off
      EDGECACHE_HUB_TOKEN: "t",
    };
    const { store: _, ...options } = optionsFromEnv(off);
    expect(options).toMatchObject({ sync: false, local: false, breaker: false });
    const cache = fromEnv(off);
    await cache.set("k", "v");
    expect(await cache.get("k")).toBe("v");
    const stats = cache.stats();
    expect(stats.breaker).toBeUndefined();
    expect(stats.cursor).toBe(-1);
    expect(stats.syncs).toBe(0);
    expect(stats.l1Hits).toBe(0);
    await cache.close();
  });

  it("configures a hub subscriber from EDGECACHE_HUB_URL and _TOKEN; overrides add the WebSocket", () => {
    const hubEnv = {
      ...env,
      EDGECACHE_HUB_URL: "https://hub.example.workers.dev",
      EDGECACHE_HUB_TOKEN: "hub-token",
      EDGECACHE_HUB_SHARDS: "2",
    };
    const ws = WebSocket as unknown as WebSocketConstructor;
    const options = optionsFromEnv(hubEnv, { sync: { hub: { WebSocket: ws, heartbeat: 5_000 } } });
    expect(options.sync).toEqual({
      maxStaleness: 250,
      hub: {
        url: "https://hub.example.workers.dev",
        token: "hub-token",
        shards: 2,
        WebSocket: ws,
        heartbeat: 5_000,
      },
    });
    // Without a hub in the environment, hub settings alone do not make one.
    const plain = optionsFromEnv(env, { sync: { hub: { WebSocket: ws } } });
    expect(plain.sync).toEqual({ maxStaleness: 250 });
  });

  it("merges overrides last: option objects key by key, anything else replacing", () => {
    const waitUntil = (_: Promise<unknown>) => {};
    const store = memoryStore();
    const options = optionsFromEnv(
      {},
      { store, sync: { waitUntil }, local: { copyOnRead: true }, ttl: 5, breaker: undefined },
    );
    // With a store given, the Upstash variables are not needed.
    expect(options).toEqual({ store, sync: { waitUntil }, local: { copyOnRead: true }, ttl: 5 });
    const merged = optionsFromEnv(env, {
      sync: { waitUntil },
      local: { maxItems: 10 },
      breaker: false,
      namespace: "override",
    });
    expect(merged).toMatchObject({
      namespace: "override",
      sync: { maxStaleness: 250, waitUntil },
      local: { maxItems: 10, maxBytes: 1 << 20 },
      breaker: false,
    });
    // An options object does not turn back on what the environment turned off.
    const off = optionsFromEnv({ ...env, EDGECACHE_SYNC: "off" }, { sync: { waitUntil } });
    expect(off.sync).toBe(false);
    expect(optionsFromEnv({ ...env, EDGECACHE_SYNC: "off" }, { sync: undefined }).sync).toBe(false);
  });
});

describe("fromEnv with a Worker-like env", () => {
  it("uses the EDGECACHE_HUB binding with EDGECACHE_HUB_SHARDS, and typed [vars]", async () => {
    const namespace = `env.worker.${crypto.randomUUID()}`;
    const { binding, published } = recordingBinding();
    const env = {
      UPSTASH_REDIS_REST_URL: url,
      UPSTASH_REDIS_REST_TOKEN: token,
      EDGECACHE_NAMESPACE: namespace,
      EDGECACHE_HUB: binding,
      EDGECACHE_HUB_SHARDS: 4,
      EDGECACHE_HUB_SECRET: "not read by fromEnv",
      EDGECACHE_TTL: 20_000,
      EDGECACHE_L1_MAX_ITEMS: 1000,
    };
    const options = optionsFromEnv(env);
    expect((options.sync as { hub: HubOptions }).hub).toEqual({ binding, shards: 4 });
    expect(options.ttl).toBe(20_000);

    const cache = fromEnv(env, { logger: false });
    await cache.setMany(Array.from({ length: 20 }, (_, i) => [`k${i}`, i] as const));
    expect(await cache.get("k3")).toBe(3);
    expect(cache.stats().hub).toMatchObject({ published: expect.any(Number) });
    expect(published.length).toBeGreaterThan(0);
    const shards = new Set(published.map((p) => p.shard));
    for (const shard of shards) expect(shard).toBeGreaterThanOrEqual(0);
    for (const shard of shards) expect(shard).toBeLessThan(4);
    const keys = published.flatMap((p) => p.records.flatMap((r) => r.keys.map((k) => k.key)));
    expect(new Set(keys)).toEqual(new Set(Array.from({ length: 20 }, (_, i) => `k${i}`)));
    await cache.close();
  });
});

describe("fromEnv errors", () => {
  const SECRET = "s3cr3t-VALUE";
  const base = { UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: token };

  /** The error fromEnv throws: typed, naming the variable, never quoting the value. */
  function refusal(env: Record<string, unknown>, variable: string): InvalidOptionError {
    let error: unknown;
    try {
      fromEnv(env);
    } catch (e) {
      error = e;
    }
    expect(error, variable).toBeInstanceOf(InvalidOptionError);
    const message = (error as Error).message;
    expect(message).toContain(variable);
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(token);
    return error as InvalidOptionError;
  }

  it("needs the Upstash URL and token", () => {
    refusal({ UPSTASH_REDIS_REST_TOKEN: SECRET }, "UPSTASH_REDIS_REST_URL");
    refusal(
      { UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: "" },
      "UPSTASH_REDIS_REST_TOKEN",
    );
    refusal(
      { UPSTASH_REDIS_REST_URL: `ftp://${SECRET}`, UPSTASH_REDIS_REST_TOKEN: token },
      "UPSTASH_REDIS_REST_URL",
    );
    refusal({}, "UPSTASH_REDIS_REST_URL");
  });

  it("refuses malformed values, naming the variable", () => {
    const cases: Array<[string, unknown]> = [
      ["EDGECACHE_TTL", `${SECRET}`],
      ["EDGECACHE_TTL", "0"],
      ["EDGECACHE_TTL", "-5s"],
      ["EDGECACHE_TTL", "10 parsecs"],
      ["EDGECACHE_MAX_STALENESS", `1${SECRET}`],
      ["EDGECACHE_L1_MAX_ITEMS", "1.5"],
      ["EDGECACHE_L1_MAX_ITEMS", "0"],
      ["EDGECACHE_L1_MAX_BYTES", "32 furlongs"],
      ["EDGECACHE_L1_MAX_BYTES", "0.3KiB"],
      ["EDGECACHE_JITTER", "1"],
      ["EDGECACHE_JITTER", "abc"],
      ["EDGECACHE_BREAKER_THRESHOLD", "0"],
      ["EDGECACHE_BREAKER_COOLDOWN", "0"],
      ["EDGECACHE_HUB_SHARDS", "300"],
      ["EDGECACHE_SYNC", `maybe-${SECRET}`],
      ["EDGECACHE_L1", "sometimes"],
      ["EDGECACHE_BREAKER", "2"],
      ["EDGECACHE_NAMESPACE", `bad name ${SECRET}`],
      ["EDGECACHE_INSTANCE_ID", `bad id ${SECRET}`],
      ["EDGECACHE_L2_TIMEOUT", "soon"],
      ["EDGECACHE_L2_PREFIX", `bad prefix ${SECRET}`],
      ["EDGECACHE_HUB", `https://${SECRET}`],
      ["EDGECACHE_HUB_URL", `not a url ${SECRET}`],
      ["EDGECACHE_NAMESPACE", { object: SECRET }],
    ];
    for (const [variable, value] of cases) {
      const env: Record<string, unknown> = { ...base, [variable]: value };
      if (variable === "EDGECACHE_HUB_SHARDS") env.EDGECACHE_HUB_URL = "https://hub.example";
      if (variable.startsWith("EDGECACHE_HUB")) env.EDGECACHE_HUB_TOKEN = "t";
      refusal(env, variable);
    }
  });

  it("wants the hub URL and token together", () => {
    refusal({ ...base, EDGECACHE_HUB_URL: "https://hub.example" }, "EDGECACHE_HUB_TOKEN");
    refusal({ ...base, EDGECACHE_HUB_TOKEN: SECRET }, "EDGECACHE_HUB_URL");
  });

  it("takes any record, and nothing else", () => {
    expect(() => fromEnv(null as never)).toThrow(InvalidOptionError);
    expect(() => fromEnv(base, 5 as never)).toThrow(InvalidOptionError);
  });
});
