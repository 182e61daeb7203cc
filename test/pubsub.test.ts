/**
 * `sync.pubsub`: writes publish their change records from the write script, and caches hold
 * the Upstash REST protocol's SSE stream open, against the real redis-server behind the
 * bridge. Staleness windows are long here, so that only a push can explain a fresh read.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { afterAll, describe, expect, inject, it } from "vitest";
import { type Cache, createCache, memoryStore } from "../src/index.js";
import { startRestBridge } from "../src/node/index.js";
import { shardedStore } from "../src/stores/sharded.js";
import { upstashStore } from "../src/stores/upstash.js";
import { countRequests, until } from "./helpers.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const LONG = 60_000;
const requests = countRequests(url);
afterAll(() => requests.restore());
const open: Cache[] = [];
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
});

const ns = (label: string) => `pubsub-${label}-${randomUUID().slice(0, 8)}`;

function make(namespace: string, options: { base?: string; pubsub?: unknown } = {}): Cache {
  const cache = createCache({
    store: upstashStore({ url: options.base ?? url, token }),
    namespace,
    logger: false,
    sync: {
      maxStaleness: LONG,
      pubsub: (options.pubsub ?? true) as true,
    },
  });
  open.push(cache);
  return cache;
}

const healthy = (c: Cache) => c.stats().pubsub?.healthy === true;

describe("sync.pubsub through the bridge", () => {
  it("a write publishes its record from its own script: still one request", async () => {
    const namespace = ns("publish");
    const listener = new Redis({ url, token, enableTelemetry: false });
    const sub = listener.subscribe<unknown>([`ec:{${namespace}}:log`]);
    const got: unknown[] = [];
    let ready = false;
    sub.on("subscribe", () => {
      ready = true;
    });
    sub.on("message", (m) => got.push(m.message));
    await until(() => ready);
    const writer = make(namespace, { pubsub: { subscribe: false } });
    await writer.get("warm"); // the first sync, so the write below carries the cursor
    requests.reset();
    await writer.set("k", { v: 1 });
    expect(requests.count).toBe(1);
    await until(() => got.length === 1);
    const [id, fields, now] = got[0] as [string, string[], string];
    expect(id).toMatch(/^\d+-0$/);
    expect(fields.slice(0, 4)).toEqual(["o", "s", "i", expect.any(String)]);
    expect(fields).toContain(`ec:{${namespace}}:k:k`);
    expect(Number(now)).toBeGreaterThan(0);
    await sub.unsubscribe();
  });

  it("pushes a set, a delete and a clear to a subscriber within its long window", async () => {
    const namespace = ns("push");
    const a = make(namespace);
    const b = make(namespace);
    await until(() => healthy(a) && healthy(b));
    await a.set("k", "one");
    expect(await b.get("k")).toBe("one");
    await a.set("k", "two");
    await until(() => b.peek("k") === "two");
    // Pushes update what an instance holds; they do not fill its L1 with other keys.
    await a.set("other", 1);
    expect(b.peek("other")).toBeUndefined();
    expect(await b.get("other")).toBe(1);
    await a.set("other", 2);
    await until(() => b.peek("other") === 2);
    await a.delete("k");
    await until(() => b.peek("k") === undefined);
    expect(await b.get("k")).toBeUndefined();
    await a.clear();
    await until(() => b.peek("other") === undefined);
    expect(b.stats().pubsub?.received).toBeGreaterThanOrEqual(4);
  });

  it("a writer that only publishes (Workers) reaches subscribers too", async () => {
    const namespace = ns("publish-only");
    const writer = make(namespace, { pubsub: { subscribe: false } });
    const reader = make(namespace);
    expect(writer.stats().pubsub).toBeUndefined();
    await until(() => healthy(reader));
    await writer.set("k", "v1");
    expect(await reader.get("k")).toBe("v1");
    await writer.set("k", "v2");
    await until(() => reader.peek("k") === "v2");
  });

  it("after a cut stream and a bridge restart during writes, every subscriber agrees with L2", async () => {
    const namespace = ns("restart");
    // The subscribers reach Redis through a bridge of their own, which the test restarts.
    const first = await startRestBridge({ redisUrl: inject("redisUrl"), token });
    const port = Number(new URL(first.url).port);
    const readers = Array.from({ length: 3 }, () => make(namespace, { base: first.url }));
    const writer = make(namespace, { pubsub: { subscribe: false } });
    await until(() => readers.every(healthy));
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    await writer.setMany(keys.map((k) => [k, 0]));
    for (const r of readers) await r.getMany(keys);
    await first.close();
    await until(() => readers.every((r) => !healthy(r)));
    // Writes while the stream is down: only the catch-up on reconnect can bring them.
    for (let round = 1; round <= 3; round++) {
      await writer.setMany(keys.map((k) => [k, round]));
    }
    await writer.delete("k0");
    const second = await startRestBridge({ redisUrl: inject("redisUrl"), token, port });
    try {
      await until(() => readers.every(healthy));
      for (const r of readers) {
        expect(r.stats().pubsub?.reconnects).toBeGreaterThanOrEqual(1);
        for (const k of keys) expect(r.peek(k), k).toBe(k === "k0" ? undefined : 3);
      }
      // And pushes flow again.
      await writer.set("k1", "after");
      await until(() => readers.every((r) => r.peek("k1") === "after"));
    } finally {
      await Promise.all(readers.map((r) => r.close()));
      await second.close();
    }
  });

  it("works over a shardedStore: one stream per shard", async () => {
    const namespace = ns("sharded");
    const store = () =>
      shardedStore([
        { id: "a", store: upstashStore({ url, token }, { prefix: "sa" }) },
        { id: "b", store: upstashStore({ url, token }, { prefix: "sb" }) },
      ]);
    const a = createCache({
      store: store(),
      namespace,
      logger: false,
      sync: { maxStaleness: LONG, pubsub: true },
    });
    const b = createCache({
      store: store(),
      namespace,
      logger: false,
      sync: { maxStaleness: LONG, pubsub: true },
    });
    open.push(a, b);
    await until(() => healthy(a) && healthy(b));
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    await a.setMany(keys.map((k) => [k, "one"]));
    expect(await b.getMany(keys)).toEqual(keys.map(() => "one"));
    await a.setMany(keys.map((k) => [k, "two"]));
    await until(() => keys.every((k) => b.peek(k) === "two"));
  });

  it("refuses what cannot work, with a typed error", () => {
    expect(() =>
      createCache({ store: memoryStore(), namespace: "x", sync: { pubsub: true } }),
    ).toThrow(expect.objectContaining({ code: "EC_INVALID_OPTION" }));
    expect(() =>
      createCache({
        store: upstashStore({ url, token }),
        namespace: "x",
        sync: {
          pubsub: true,
          hub: { url: "https://hub.example", token: "t", WebSocket: class {} as never },
        },
      }),
    ).toThrow(/choose one/);
    for (const bad of [{ subscribe: "yes" }, { minBackoff: -1 }, { relaxedStaleness: "1" }, 5]) {
      expect(() =>
        createCache({
          store: upstashStore({ url, token }),
          namespace: "x",
          sync: { pubsub: bad as never },
        }),
      ).toThrow(expect.objectContaining({ code: "EC_INVALID_OPTION" }));
    }
  });
});
