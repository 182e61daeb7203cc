/**
 * `sync.pubsub` end to end, as the hub is tested: subscribers in Node, Deno and Bun (the
 * built package) hold SSE streams through a bridge of their own that the test cuts and
 * restarts while writes go on through another; afterwards every subscriber agrees with L2.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { type Cache, createCache } from "../src/index.js";
import { type RestBridge, startRestBridge } from "../src/node/index.js";
import { RespConnection } from "../src/node/resp.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { upstashStore } from "../src/stores/upstash.js";
import { until } from "./helpers.js";
import { churn, expectAgreement } from "./runtimes/agreement.js";
import { spawnRuntimes } from "./runtimes/spawn.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const redisUrl = inject("redisUrl");
let bridge: RestBridge;
let port: number;
const caches: Cache[] = [];

beforeAll(async () => {
  bridge = await startRestBridge({ redisUrl, token });
  port = Number(new URL(bridge.url).port);
});
afterAll(async () => {
  for (const c of caches) await c.close();
  await bridge.close();
});

/** A cache whose writes publish and (unless `writer`) whose stream goes through `bridge`. */
function instance(namespace: string, writer = false): Cache {
  const cache = createCache({
    store: upstashStore({ url: writer ? url : bridge.url, token }),
    namespace,
    logger: false,
    sync: {
      maxStaleness: 60_000,
      pubsub: writer ? { subscribe: false } : { minBackoff: 20, maxBackoff: 200 },
    },
  });
  caches.push(cache);
  return cache;
}

const runtimes = (namespace: string) =>
  spawnRuntimes(
    {
      EDGECACHE_URL: bridge.url,
      EDGECACHE_TOKEN: token,
      TRANSPORT: "pubsub",
      NAMESPACE: namespace,
    },
    [new URL(bridge.url).host],
  );

describe("pub/sub end to end (real Redis behind the bridge)", () => {
  it("Node, Deno and Bun subscribers all receive a write", async () => {
    const namespace = freshNamespace("psrt");
    const writer = instance(namespace, true);
    await writer.set("k", "before");
    const subs = runtimes(namespace);
    try {
      const ready = await Promise.all(subs.map((r) => r.next()));
      expect(ready.map((r) => (r as { ready?: boolean }).ready)).toEqual([true, true, true]);
      await writer.set("k", "after");
      for (const r of subs) r.send({ expect: "after" });
      const seen = await Promise.all(subs.map((r) => r.next()));
      expect(seen.map((s, i) => [subs[i]!.runtime, (s as { seen?: string }).seen ?? s])).toEqual(
        subs.map((r) => [r.runtime, "after"]),
      );
    } finally {
      for (const r of subs) r.stop();
    }
  }, 60_000);

  it("after cut streams and a bridge restart during writes, every subscriber agrees with L2", async () => {
    const namespace = freshNamespace("psfail");
    const writer = instance(namespace, true);
    const readers = [instance(namespace), instance(namespace)];
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    await writer.setMany(keys.map((k) => [k, 0]));
    await until(() => readers.every((r) => r.stats().pubsub?.healthy === true));
    for (const r of readers) await r.getMany(keys);
    const subs = runtimes(namespace);
    const redis = new RespConnection(redisUrl);
    try {
      await Promise.all(subs.map((r) => r.next()));
      const writes = churn(writer, keys);
      await until(() => writes.round > 30);
      // Redis drops every subscribed connection: each stream ends mid-flight.
      await redis.command(["CLIENT", "KILL", "TYPE", "pubsub"]);
      await until(() => writes.round > 60);
      // The subscribers' bridge goes away and comes back on the same port.
      await bridge.close();
      const down = writes.round;
      await until(() => writes.round > down + 20);
      bridge = await startRestBridge({ redisUrl, token, port });
      await until(() => writes.round > down + 40);
      await writes.stop();
      await until(() => readers.every((r) => r.stats().pubsub?.healthy === true), 20_000);
      await expectAgreement({ url, token, namespace }, keys, readers, subs);
      for (const r of readers) expect(r.stats().pubsub!.reconnects).toBeGreaterThan(0);
    } finally {
      for (const r of subs) r.stop();
      await redis.close();
    }
  }, 120_000);
});
