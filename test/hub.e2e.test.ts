/**
 * The invalidation hub end to end: the example Worker with the InvalidationHub Durable
 * Object runs in workerd (Miniflare, bundled by wrangler) on a real port, a real
 * redis-server sits behind the bridge, and subscribers run in Node (ws), Deno and Bun.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { type Cache, createCache, mintHubToken } from "../src/index.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { upstashStore } from "../src/stores/upstash.js";
import { until } from "./helpers.js";
// @ts-expect-error: plain JS harness shared with the checker and the benchmark
import { startHubWorker } from "./hub/harness.mjs";
import { churn, expectAgreement } from "./runtimes/agreement.js";
import { spawnRuntimes } from "./runtimes/spawn.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const secret = randomBytes(32).toString("hex");
/** The Worker's EDGECACHE_ADMIN_TOKEN: its raw key-value routes need it. */
const adminToken = randomBytes(24).toString("hex");
const SHARDS = 2;

type Hub = {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
};
let hub: Hub;
const caches: Cache[] = [];
const sockets: WebSocket[] = [];

/** WebSocket from ws, remembering every socket so a test can cut one. */
class TrackedWebSocket extends WebSocket {
  constructor(address: string) {
    super(address);
    sockets.push(this);
  }
}

async function subscriber(namespace: string, hubToken: string): Promise<Cache> {
  const cache = createCache({
    store: upstashStore({ url, token }),
    namespace,
    // A long window: anything that arrives quickly came through the hub.
    sync: {
      maxStaleness: 60_000,
      hub: {
        url: hub.url,
        token: hubToken,
        WebSocket: TrackedWebSocket as never,
        shards: SHARDS,
        minBackoff: 20,
        maxBackoff: 200,
      },
    },
    logger: false,
  });
  caches.push(cache);
  await until(() => cache.stats().hub?.healthy === true);
  return cache;
}

beforeAll(async () => {
  hub = await startHubWorker({
    redisUrl: url,
    redisToken: token,
    secret,
    shards: SHARDS,
    adminToken,
  });
}, 60_000);

afterAll(async () => {
  for (const c of caches) await c.close();
  await hub?.close();
});

describe("hub end to end (workerd hub, real Redis)", () => {
  it("a write on one instance reaches the others' L1 within milliseconds", async () => {
    const namespace = freshNamespace("hub");
    const t = await mintHubToken({ secret, namespace, role: "both" });
    const [a, b, c] = [
      await subscriber(namespace, t),
      await subscriber(namespace, t),
      await subscriber(namespace, t),
    ];
    const keys = ["k0", "k1", "k2", "k3"]; // spread over both shards
    await a.setMany(keys.map((k) => [k, "v1"]));
    await b.getMany(keys);
    await c.getMany(keys);
    await a.setMany(keys.map((k) => [k, "v2"]));
    const started = Date.now();
    await until(() => keys.every((k) => b.peek(k) === "v2" && c.peek(k) === "v2"), 2_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    await a.setWithInvalidate("k0", "v3");
    await until(() => b.peek("k0") === undefined && c.peek("k0") === undefined, 2_000);
    expect(await b.get("k0")).toBe("v3");
    await a.delete("k1");
    await until(() => b.peek("k1") === undefined, 2_000);
    await a.clear();
    await until(() => b.stats().l1Items === 0 && c.stats().l1Items === 0, 2_000);
    expect(b.stats().hub).toMatchObject({ healthy: true, framesDropped: 0 });
  });

  it("a write made in a Worker is published by RPC through the binding and reaches subscribers", async () => {
    // The example Worker's cache publishes through env.EDGECACHE_HUB; its namespace is set by
    // the harness.
    const namespace = "hub-e2e";
    const t = await mintHubToken({ secret, namespace, role: "both" });
    const node = await subscriber(namespace, t);
    const put = (value: unknown) =>
      fetch(`${hub.url}/cache/greeting`, {
        method: "PUT",
        headers: { authorization: `Bearer ${adminToken}` },
        body: JSON.stringify(value),
      });
    expect((await put("hello")).status).toBe(204);
    expect(await node.get("greeting")).toBe("hello");
    expect((await put("hello again")).status).toBe(204);
    await until(() => node.peek("greeting") === "hello again", 2_000);
    expect(node.stats().hub!.framesReceived).toBeGreaterThan(0);
  });

  it("close() closes the sockets and leaves nothing behind: the process exits on its own", async () => {
    const namespace = freshNamespace("hubclose");
    const t = await mintHubToken({ secret, namespace, role: "both" });
    // No process.exit: if a socket, timer or pending promise were left, it would hang.
    const program = `
      import { createCache } from "edgecache";
      import { upstashStore } from "edgecache/upstash";
      import WebSocket from "ws";
      const cache = createCache({
        store: upstashStore({ url: process.env.U, token: process.env.T }),
        namespace: process.env.NS,
        sync: { maxStaleness: 60000, hub: { url: process.env.H, token: process.env.HT, WebSocket, shards: ${SHARDS} } },
      });
      const deadline = Date.now() + 10000;
      while (cache.stats().hub?.healthy !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      await cache.set("k", 1);
      const healthy = cache.stats().hub.healthy;
      await cache.close();
      console.log(JSON.stringify({ healthy, closedAt: Date.now() }));
    `;
    const started = Date.now();
    const output = await new Promise<string>((resolvePromise, reject) => {
      const child = spawn(process.execPath, ["--input-type=module", "-e", program], {
        cwd: root,
        env: { ...process.env, U: url, T: token, NS: namespace, H: hub.url, HT: t },
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
      });
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error("the process did not exit after close()"));
      }, 15_000);
      child.on("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolvePromise(out);
        else reject(new Error(`exit code ${code}`));
      });
    });
    const { healthy, closedAt } = JSON.parse(output.trim());
    expect(healthy).toBe(true);
    expect(closedAt).toBeGreaterThanOrEqual(started);
    // The exit came promptly after close(): nothing kept the event loop alive.
    expect(Date.now() - closedAt).toBeLessThan(3_000);
  });

  it("Node, Deno and Bun subscribers all receive a write", async () => {
    const namespace = freshNamespace("hubrt");
    const t = await mintHubToken({ secret, namespace, role: "both" });
    const writer = await subscriber(namespace, t);
    await writer.set("k", "before");
    const runtimes = spawnSubscribers(namespace, t);
    try {
      await Promise.all(runtimes.map((r) => r.next()));
      await writer.set("k", "after");
      for (const r of runtimes) r.send({ expect: "after" });
      const seen = await Promise.all(runtimes.map((r) => r.next()));
      expect(
        seen.map((s, i) => [runtimes[i]!.runtime, (s as { seen?: string }).seen ?? s]),
      ).toEqual(runtimes.map((r) => [r.runtime, "after"]));
    } finally {
      for (const r of runtimes) r.stop();
    }
  }, 60_000);

  it("after a cut socket and a Worker restart during writes, every subscriber agrees with L2", async () => {
    const namespace = freshNamespace("hubfail");
    const t = await mintHubToken({ secret, namespace, role: "both" });
    const writer = await subscriber(namespace, t);
    const readers = [await subscriber(namespace, t), await subscriber(namespace, t)];
    const keys = Array.from({ length: 12 }, (_, i) => `k${i}`);
    await writer.setMany(keys.map((k) => [k, 0]));
    for (const r of readers) await r.getMany(keys);
    const runtimes = spawnSubscribers(namespace, t);
    try {
      await Promise.all(runtimes.map((r) => r.next()));
      // Some publishes fail while the Worker restarts; the writes must still succeed.
      const writes = churn(writer, keys);
      await until(() => writes.round > 30);
      // Cut one subscriber's sockets mid-stream, from the client side.
      for (const s of sockets.slice(-SHARDS * 2)) s.terminate();
      await until(() => writes.round > 60);
      // A deploy: every socket drops. The writes made while the hub is down reach no
      // subscriber through it: only catching up from the change log can bring them.
      await hub.stop();
      const down = writes.round;
      await until(() => writes.round > down + 20);
      await writes.stop();
      await hub.start();
      // Everyone reconnects, catches up from the change log, and then agrees with L2.
      await until(() => caches.every((c) => c.stats().hub?.healthy === true), 20_000);
      await expectAgreement({ url, token, namespace }, keys, [writer, ...readers], runtimes);
      expect(readers[0]!.stats().hub!.reconnects).toBeGreaterThan(0);
    } finally {
      for (const r of runtimes) r.stop();
    }
  }, 120_000);
});

/** Node, Deno and Bun subscribers to the hub (test/runtimes/subscriber.mjs). */
function spawnSubscribers(namespace: string, hubToken: string) {
  return spawnRuntimes(
    {
      EDGECACHE_URL: url,
      EDGECACHE_TOKEN: token,
      TRANSPORT: "hub",
      HUB_URL: hub.url,
      HUB_TOKEN: hubToken,
      HUB_SHARDS: String(SHARDS),
      NAMESPACE: namespace,
    },
    [new URL(url).host, new URL(hub.url).host],
  );
}
