import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createCache, type EdgeCacheError } from "../src/index.js";
import { startRedisServer, startRestBridge } from "../src/node/index.js";
import { storeSuite } from "../src/store/index.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { upstashStore } from "../src/stores/upstash.js";
import { countRequests, fakeClock, hangingServer, rejection, until } from "./helpers.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
// A second client for arranging state behind the cache's back (raw keys).
const raw = new Redis({ url, token, automaticDeserialization: false, enableTelemetry: false });

storeSuite({
  name: "upstash",
  test: { describe, it, expect },
  make: () => ({
    store: upstashStore({ url, token }),
    plantForeign: async (ns, key, value) => {
      await raw.set(`ec:{${ns}}:k:${key}`, value, { px: 60_000 });
    },
  }),
  capabilities: {
    leases: true,
    fakeTime: false,
    foreignData: true,
    orderedVersions: true,
    keys: true,
    batchLeases: true,
  },
});

describe("request counts against the real bridge", () => {
  const requests = countRequests(url);
  afterAll(() => requests.restore());

  function pair() {
    const namespace = freshNamespace("count");
    const writer = createCache({ store: upstashStore({ url, token }), namespace });
    const reader = createCache({ store: upstashStore({ url, token }), namespace });
    return { writer, reader };
  }

  it("cold get = 1, L1 hit = 0, set = 1, delete = 1, clear = 1", async () => {
    const { writer, reader } = pair();
    requests.reset();
    await writer.set("k", { v: 1 });
    expect(requests.count).toBe(1);

    requests.reset();
    expect(await reader.get("k")).toEqual({ v: 1 });
    expect(requests.count).toBe(1);

    requests.reset();
    expect(await reader.get("k")).toEqual({ v: 1 });
    expect(await reader.has("k")).toBe(true);
    expect(reader.peek("k")).toEqual({ v: 1 });
    expect(requests.count).toBe(0);

    requests.reset();
    await writer.delete("k");
    expect(requests.count).toBe(1);

    requests.reset();
    await writer.clear();
    expect(requests.count).toBe(1);

    requests.reset();
    expect(await writer.get("missing")).toBeUndefined();
    expect(requests.count).toBe(1);
  });

  it("getOrSet: miss = 2 (read, write), L2 hit = 1, L1 hit = 0; with lock: true a miss = 5", async () => {
    const { writer, reader } = pair();
    let loads = 0;
    const load = async () => ++loads;
    requests.reset();
    expect(await writer.getOrSet("k", load)).toBe(1);
    expect(requests.count).toBe(2);
    requests.reset();
    expect(await writer.getOrSet("k", load)).toBe(1);
    expect(requests.count).toBe(0);
    requests.reset();
    expect(await reader.getOrSet("k", load)).toBe(1);
    expect(requests.count).toBe(1);
    // Read, take the lease, look again (the previous holder may have just written), write,
    // let go of the lease.
    requests.reset();
    expect(await writer.getOrSet("locked", load, { lock: true })).toBe(2);
    expect(requests.count).toBe(5);
    expect(loads).toBe(2);
  });

  it("getOrSetMany of 100 keys with 60 misses = 1 read + 1 write and 1 loader call", async () => {
    const { writer, reader } = pair();
    const keys = Array.from({ length: 100 }, (_, i) => `product:${i}`);
    await writer.setMany(keys.filter((_, i) => i % 5 < 2).map((k) => [k, `stored ${k}`]));
    const calls: string[][] = [];
    const load = async (missing: readonly string[]) => {
      calls.push([...missing]);
      return new Map(missing.map((k) => [k, `loaded ${k}`]));
    };
    requests.reset();
    const values = await reader.getOrSetMany(keys, load, { ttl: 60_000 });
    expect(requests.count).toBe(2);
    expect(calls).toEqual([keys.filter((_, i) => i % 5 >= 2)]);
    expect(values).toEqual(keys.map((k, i) => (i % 5 < 2 ? `stored ${k}` : `loaded ${k}`)));
    // All 100 from L1 now; and the writer finds the loaded ones in L2.
    requests.reset();
    expect(await reader.getOrSetMany(keys, load)).toEqual(values);
    expect(requests.count).toBe(0);
    expect(await writer.getMany(keys)).toEqual(values);
    expect(calls).toHaveLength(1);
  });

  it("getOrSetMany with lock: true = 5 for any number of misses, as getOrSet's miss", async () => {
    const { writer } = pair();
    const keys = Array.from({ length: 50 }, (_, i) => `locked:${i}`);
    let calls = 0;
    requests.reset();
    const values = await writer.getOrSetMany(
      keys,
      async (missing) => {
        calls++;
        return missing.map((k) => k.toUpperCase());
      },
      { lock: true },
    );
    expect(values).toEqual(keys.map((k) => k.toUpperCase()));
    expect(calls).toBe(1);
    // Read; take the 50 leases; look again; write; let the 50 go (after the answer).
    await until(() => requests.count >= 5);
    await new Promise((r) => setTimeout(r, 50));
    expect(requests.count).toBe(5);
  });

  it("setMany(100) = 1, getMany(100) = 1, deleteMany(100) = 1", async () => {
    const { writer, reader } = pair();
    const keys = Array.from({ length: 100 }, (_, i) => `key:${i}`);
    requests.reset();
    await writer.setMany(keys.map((k, i) => [k, { i }, { ttl: 60_000 + i }] as const));
    expect(requests.count).toBe(1);

    requests.reset();
    const values = await reader.getMany(keys);
    expect(values).toEqual(keys.map((_, i) => ({ i })));
    expect(requests.count).toBe(1);

    requests.reset();
    await reader.getMany(keys);
    expect(requests.count).toBe(0);

    requests.reset();
    await writer.deleteMany(keys);
    expect(requests.count).toBe(1);
    expect(await writer.getMany(keys)).toEqual(keys.map(() => undefined));
  });

  it("sends scripts by hash after the first call, and recovers in one extra request after SCRIPT FLUSH", async () => {
    // SCRIPT FLUSH is server-wide: run it on a private server so that request counts in
    // other test files, which share the main one, stay exact.
    const redis = await startRedisServer();
    const options = { redisUrl: redis.url, token: "private", allowAdminCommands: true };
    const bridge = await startRestBridge(options); // SCRIPT FLUSH is administration
    const counted = countRequests(bridge.url);
    try {
      const store = () => upstashStore({ url: bridge.url, token: "private" });
      const writer = createCache({ store: store(), namespace: "flush" });
      await writer.set("warm", 1);
      counted.reset();
      await writer.set("k", 1);
      expect(counted.bodies.map((b) => (b as string[])[0])).toEqual(["EVALSHA"]);

      await new Redis({ url: bridge.url, token: "private", enableTelemetry: false }).scriptFlush();
      counted.reset();
      await writer.set("k", 2);
      expect(counted.bodies.map((b) => (b as string[])[0])).toEqual(["EVALSHA", "EVAL"]);
      counted.reset();
      await writer.set("k", 3);
      expect(counted.count).toBe(1);
      expect(await createCache({ store: store(), namespace: "flush" }).get("k")).toBe(3);
    } finally {
      counted.restore();
      await bridge.close();
      await redis.close();
    }
  });
});

describe("values through Redis", () => {
  it("keeps superjson types, unicode and JSON-looking strings intact", async () => {
    const namespace = freshNamespace("values");
    const a = createCache({ store: upstashStore({ url, token }), namespace });
    const b = createCache({ store: upstashStore({ url, token }), namespace });
    const values: Array<[string, unknown]> = [
      ["date", new Date(1815, 11, 10)],
      ["map", new Map<unknown, unknown>([["k", new Set([1n, 2n])]])],
      ["str-number", "123"],
      ["str-b64", "aGVsbG8="],
      ["str-json", '{"json":null}'],
      ["unicode", "héllo 🌍 世界 \u0000 end"],
      ["number", 123],
      ["null", null],
      ["false", false],
      ["nested", { a: [1, { b: "c" }], d: new Date(0) }],
    ];
    await a.setMany(values);
    expect(await b.getMany(values.map(([k]) => k))).toEqual(values.map(([, v]) => v));
  });

  it("works with a caller's own Redis client, whatever its deserialization setting", async () => {
    const namespace = freshNamespace("client");
    const client = new Redis({ url, token }); // defaults: automaticDeserialization on, auto-pipelining on
    const a = createCache({ store: upstashStore(client, { timeout: 2_000 }), namespace });
    const b = createCache({ store: upstashStore({ url, token }), namespace });
    await a.set("n", "123");
    await a.set("o", { json: "x" });
    expect(await b.get("n")).toBe("123");
    expect(await createCache({ store: upstashStore(client), namespace }).get("o")).toEqual({
      json: "x",
    });
  });

  it("an entry's L1 copy expires no later than its Redis TTL", async () => {
    const namespace = freshNamespace("ttl");
    const a = createCache({ store: upstashStore({ url, token }), namespace });
    let t = Date.now();
    const b = createCache({ store: upstashStore({ url, token }), namespace, now: () => t });
    await a.set("k", 1, { ttl: 50_000 });
    await raw.pexpire(`ec:{${namespace}}:k:k`, 2_000);
    expect(await b.get("k")).toBe(1);
    t += 2_000;
    expect(b.peek("k")).toBeUndefined();
  });

  it("foreign data under our prefix is a counted miss, not an error", async () => {
    const namespace = freshNamespace("foreign");
    const errors: EdgeCacheError[] = [];
    const cache = createCache({
      store: upstashStore({ url, token }),
      namespace,
      onError: (e) => errors.push(e),
    });
    await raw.set(`ec:{${namespace}}:k:plain`, "just a string");
    await raw.set(`ec:{${namespace}}:k:wrong-codec`, "ec1:99999:json:{}");
    expect(await cache.getMany(["plain", "wrong-codec"])).toEqual([undefined, undefined]);
    expect(cache.stats()).toMatchObject({ corrupt: 2, l2Misses: 2, l1Items: 0 });
    expect(errors.every((e) => e.code === "EC_CORRUPT_ENTRY")).toBe(true);
  });

  it("a key of the wrong type under our prefix is a reported corrupt miss, without values", async () => {
    const namespace = freshNamespace("wrongtype");
    const errors: EdgeCacheError[] = [];
    const cache = createCache({
      store: upstashStore({ url, token }),
      namespace,
      onError: (e) => errors.push(e),
    });
    await raw.hset(`ec:{${namespace}}:k:hash`, { field: "secret-field-value" });
    expect(await cache.get("hash")).toBeUndefined();
    // One key's bad data is that key's problem: not a store error (test/hardening.test.ts).
    expect(errors[0]?.code).toBe("EC_CORRUPT_ENTRY");
    expect(errors[0]?.message).not.toContain("secret");
    expect(errors[0]?.message).not.toContain(namespace);
  });
});

describe("transport faults", () => {
  let hanging: Awaited<ReturnType<typeof hangingServer>>;
  let hangingUrl: string;
  beforeAll(async () => {
    hanging = await hangingServer();
    hangingUrl = hanging.url;
  });
  afterAll(() => hanging.close());

  it("a wrong token is EC_STORE_AUTH; the token never appears in messages", async () => {
    const errors: EdgeCacheError[] = [];
    const secretToken = "not-the-token-s3cr3t";
    const cache = createCache({
      store: upstashStore({ url, token: secretToken }),
      namespace: freshNamespace("auth"),
      onError: (e) => errors.push(e),
    });
    const err = await rejection(cache.set("k", "value-s3cr3t"));
    expect(err.code).toBe("EC_STORE_AUTH");
    expect(await cache.get("k")).toBeUndefined();
    expect(errors[0]?.code).toBe("EC_STORE_AUTH");
    const text = JSON.stringify([err.message, String(err.cause), errors[0]?.message]);
    expect(text).not.toContain(secretToken);
    expect(text).not.toContain("value-s3cr3t");
  });

  it("an unreachable store is EC_STORE_UNAVAILABLE", async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const cache = createCache({
      store: upstashStore({ url: `http://127.0.0.1:${port}`, token, retries: 0 }),
      namespace: freshNamespace("down"),
      logger: false,
    });
    expect((await rejection(cache.set("k", 1))).code).toBe("EC_STORE_UNAVAILABLE");
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.stats().errors).toBe(2);
  });

  it("a stalled store times out with EC_STORE_TIMEOUT after the configured timeout", async () => {
    const cache = createCache({
      store: upstashStore({ url: hangingUrl, token, retries: 0 }, { timeout: 100 }),
      namespace: freshNamespace("slow"),
      logger: false,
    });
    const err = await rejection(cache.set("k", 1));
    expect(err.code).toBe("EC_STORE_TIMEOUT");
    expect(await cache.get("k")).toBeUndefined();
    expect(cache.stats().errors).toBe(2);
  });

  it("refuses bad connection options with EC_INVALID_OPTION", () => {
    const bad = [
      () => upstashStore({ url: "ftp://x", token }),
      () => upstashStore({ url, token: "" }),
      () => upstashStore({ url, token, retries: -1 }),
      () => upstashStore({ url, token }, { prefix: "a:b" }),
      () => upstashStore({ url, token }, { timeout: -1 }),
      () => upstashStore({} as never),
    ];
    for (const make of bad) {
      expect(make).toThrowError(expect.objectContaining({ code: "EC_INVALID_OPTION" }));
    }
  });
});

describe("fail-safe against redis-server through a bridge that goes down", () => {
  it("serves grace while L2 is unreachable, opens the breaker, and recovers when it is back", async () => {
    const redisUrl = inject("redisUrl");
    let bridge = await startRestBridge({ redisUrl, token });
    const port = Number(new URL(bridge.url).port);
    const clock = fakeClock();
    const errors: EdgeCacheError[] = [];
    const cache = createCache({
      store: upstashStore({ url: bridge.url, token, retries: 0 }),
      namespace: freshNamespace("failsafe"),
      now: clock.now,
      onError: (e) => errors.push(e),
      breaker: { threshold: 2, cooldown: 5_000 },
    });
    const handed: Promise<unknown>[] = [];
    const options = {
      ttl: 1_000,
      grace: 60_000,
      waitUntil: (p: Promise<unknown>) => handed.push(p),
    };
    let loads = 0;
    const load = async () => `v${++loads}`;
    expect(await cache.getOrSet("k", load, options)).toBe("v1");
    await bridge.close();
    clock.advance(2_000);
    // L2 is really gone (connections refused): the last value at once, a refresh behind it.
    expect(await cache.getOrSet("k", load, options)).toBe("v1");
    await Promise.all(handed);
    expect(loads).toBe(2);
    expect(cache.stats().graceHits).toBe(1);
    expect(errors.map((e) => e.code)).toContain("EC_STORE_UNAVAILABLE");
    // The read and the refresh's write failed: the circuit is open, and the refreshed value
    // (which L2 could not take) is served from L1 without another load.
    expect(cache.stats().breaker?.state).toBe("open");
    expect(await cache.getOrSet("k", load, options)).toBe("v2");
    expect(loads).toBe(2);
    await expect(cache.set("other", 1)).rejects.toMatchObject({ code: "EC_CIRCUIT_OPEN" });
    // The bridge comes back on the same port; after the cooldown one trial closes the circuit.
    bridge = await startRestBridge({ redisUrl, token, port });
    clock.advance(5_000);
    await cache.set("other", 1);
    expect(cache.stats().breaker?.state).toBe("closed");
    expect(await cache.get("other")).toBe(1);
    await cache.close();
    await bridge.close();
  });
});
