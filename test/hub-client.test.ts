/**
 * The hub's shared pieces (tokens, shard choice) and the subscriber's defences, against a
 * real WebSocket server that plays a misbehaving hub.
 */
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { recordsByShard, shardOf } from "../src/hub/shard.js";
import { verifyHubToken } from "../src/hub/token.js";
import { createCache, memoryStore, mintHubToken } from "../src/index.js";
import { chaosStore, fakeClock, until } from "./helpers.js";

const secret = "a-test-secret-that-is-long-enough-000";

describe("hub tokens", () => {
  it("verify only for the right namespace, role and time, with an intact signature", async () => {
    const now = () => 1_000_000;
    const t = await mintHubToken({ secret, namespace: "app", role: "subscribe", ttl: 60_000, now });
    const ok = { namespace: "app", role: "subscribe" } as const;
    expect(await verifyHubToken(t, secret, ok, now)).toMatchObject({
      namespace: "app",
      role: "subscribe",
    });
    expect(
      await verifyHubToken(t, secret, { namespace: "other", role: "subscribe" }, now),
    ).toBeUndefined();
    expect(
      await verifyHubToken(t, secret, { namespace: "app", role: "publish" }, now),
    ).toBeUndefined();
    expect(await verifyHubToken(t, secret, ok, () => 1_060_000)).toBeUndefined(); // expired
    expect(await verifyHubToken(t, `${secret}x`, ok, now)).toBeUndefined(); // other secret
    const [v, payload, sig] = t.split(".");
    const forged = `${v}.${payload!.slice(0, -2)}AA.${sig}`;
    expect(await verifyHubToken(forged, secret, ok, now)).toBeUndefined();
    expect(await verifyHubToken("garbage", secret, ok, now)).toBeUndefined();
    const both = await mintHubToken({ secret, namespace: "app", role: "both", now });
    expect(
      await verifyHubToken(both, secret, { namespace: "app", role: "publish" }, now),
    ).toBeDefined();
  });

  it("refuses weak secrets and bad claims when minting", async () => {
    await expect(
      mintHubToken({ secret: "short", namespace: "app", role: "both" }),
    ).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
    await expect(mintHubToken({ secret, namespace: "a{b}", role: "both" })).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
    await expect(
      mintHubToken({ secret, namespace: "app", role: "admin" as never }),
    ).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
  });
});

describe("shard choice", () => {
  it("spreads keys evenly and moves about 1/(n+1) of them when a shard is added", () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => `user:${i}`);
    for (const n of [2, 4, 8, 16]) {
      const counts = new Array(n).fill(0);
      for (const k of keys) counts[shardOf(k, n)]++;
      expect(Math.max(...counts) / (keys.length / n)).toBeLessThan(1.1);
      const moved = keys.filter((k) => shardOf(k, n) !== shardOf(k, n + 1)).length / keys.length;
      expect(Math.abs(moved - 1 / (n + 1))).toBeLessThan(0.01);
    }
  });

  it("splits records by shard, keeping versions, and sends clears everywhere", () => {
    const parts = recordsByShard(
      [
        {
          op: "set",
          first: 1,
          last: 3,
          origin: "x",
          keys: [0, 1, 2].map((i) => ({ key: `k${i}`, version: i + 1 })),
        },
        { op: "clear", first: 4, last: 4, origin: "x", keys: [] },
      ],
      4,
    );
    const keys = [...parts.values()].flatMap((rs) => rs.flatMap((r) => r.keys.map((k) => k.key)));
    expect(keys.sort()).toEqual(["k0", "k1", "k2"]);
    expect([...parts.values()].filter((rs) => rs.some((r) => r.op === "clear"))).toHaveLength(4);
  });
});

describe("a subscriber facing a misbehaving hub", () => {
  let server: WebSocketServer | undefined;
  /** A real WebSocket server standing in for the hub; resolves its first connection. */
  async function fakeHub() {
    server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await new Promise((r) => server!.once("listening", r));
    const port = (server.address() as AddressInfo).port;
    const connected = new Promise<import("ws").WebSocket>((r) => server!.once("connection", r));
    return { port, connected };
  }
  /** A hub frame: one propagated set of `key` to a string `value` at `version`. */
  const setFrame = (key: string, value: string, version: number) =>
    JSON.stringify({
      t: "changes",
      shard: 0,
      records: [
        {
          op: "set",
          first: version,
          last: version,
          origin: "elsewhere",
          keys: [{ key, version, value: `sj:{"json":"${value}"}`, ttl: 60_000 }],
        },
      ],
    });

  /** A plain writer and a hub subscriber on one memory store, the subscriber connected. */
  async function subscribed() {
    const { port, connected } = await fakeHub();
    const store = memoryStore();
    const writer = createCache({ store, namespace: "app", sync: false });
    const cache = createCache({
      store,
      namespace: "app",
      sync: {
        maxStaleness: 60_000,
        hub: { url: `http://127.0.0.1:${port}`, token: "t", WebSocket: WebSocket as never },
      },
    });
    const socket = await connected;
    await until(() => cache.stats().hub?.healthy === true);
    return { writer, cache, socket };
  }
  afterEach(async () => {
    for (const c of server?.clients ?? []) c.terminate();
    await new Promise((r) => server?.close(r));
  });

  it("drops malformed, binary, oversized and wrong-shard frames, counts them, and keeps working", async () => {
    const { writer, cache, socket } = await subscribed();
    await writer.set("k", "v1");
    expect(await cache.get("k")).toBe("v1");
    const good = (value: string, version: number) => setFrame("k", value, version);
    for (const junk of [
      "not json",
      JSON.stringify({ t: "changes", shard: 0, records: [{ op: "explode" }] }),
      JSON.stringify({ t: "changes", shard: 3, records: [] }),
      JSON.stringify({ t: "publish", records: [] }),
      JSON.stringify({
        t: "changes",
        shard: 0,
        records: [{ op: "set", first: 5, last: 4, origin: "w", keys: [] }],
      }),
      "x".repeat((1 << 20) + 1),
    ]) {
      socket.send(junk);
    }
    socket.send(Buffer.from([1, 2, 3]));
    socket.send(good("v2", 1_000_000));
    await until(() => cache.peek("k") === "v2");
    expect(cache.stats().hub).toMatchObject({ framesDropped: 7, framesReceived: 1, healthy: true });
    await cache.close();
  });
  it("a read joining a sync sent before the cursor existed gets a verified answer, not a false miss", async () => {
    // Found by the coherence checker: at startup the hub's catch-up sync leaves with cursor
    // -1; an answer sent earlier sets the cursor; a read that joins the catch-up sync got an
    // unverifiable answer and returned a miss for a key L2 had.
    const { port, connected } = await fakeHub();
    const clock = fakeClock();
    const chaos = chaosStore(memoryStore({ now: clock.now }));
    const writer = createCache({ store: chaos.store, namespace: "app", now: clock.now });
    const cache = createCache({
      store: chaos.store,
      namespace: "app",
      now: clock.now,
      sync: {
        maxStaleness: 100,
        hub: { url: `http://127.0.0.1:${port}`, token: "t", WebSocket: WebSocket as never },
      },
    });
    // A write leaves first (cursor -1); its answer is held. Another instance then writes.
    const releaseWrite = chaos.holdNextWrite();
    const written = cache.set("k", "v0");
    await writer.set("k", "v1");
    clock.advance(50);
    // The socket opens: the catch-up sync leaves, still with cursor -1; its answer is held.
    const releaseReads = chaos.holdReads();
    await connected;
    await until(() => chaos.calls >= 3);
    // The held write's answer sets the cursor (and dates the window from when it was sent):
    // the catch-up sync, once answered, cannot vouch for anything after that cursor.
    releaseWrite();
    await written;
    clock.advance(70); // the window is over; the catch-up sync, sent at 50, still covers
    const read = cache.get("k");
    await new Promise((r) => setTimeout(r, 10));
    releaseReads();
    expect(await read).toBe("v1");
    await cache.close();
    await writer.close();
  });

  it("a getOrSet waiting on another instance's lease wakes on the hub's push, not on its next poll", async () => {
    const { writer: holder, cache: waiter, socket } = await subscribed();
    let release = (): void => {};
    const held = holder.getOrSet(
      "k",
      () => new Promise<string>((r) => (release = () => r("from holder"))),
      { lock: true, ttl: 60_000 },
    );
    await until(() => holder.stats().loads === 1);
    // From here on no timer fires: the waiter's poll between lease attempts never ends, so
    // only a pushed change can wake it.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      let waiterLoads = 0;
      let answer: unknown;
      const waited = waiter
        .getOrSet(
          "k",
          async () => {
            waiterLoads++;
            return "from waiter";
          },
          { lock: true, ttl: 60_000 },
        )
        .then((v) => {
          answer = v;
        });
      const spin = async (done: () => boolean) => {
        for (let i = 0; i < 20_000 && !done(); i++) await new Promise((r) => setImmediate(r));
        return done();
      };
      expect(await spin(() => waiter.stats().lockWaits === 1)).toBe(true);
      release();
      await held;
      // Still asleep: the write is in L2, but nothing told the waiter.
      expect(await spin(() => answer !== undefined)).toBe(false);
      const { version } = (await holder.inspect("k"))!;
      socket.send(setFrame("k", "from holder", version));
      expect(await spin(() => answer !== undefined)).toBe(true);
      await waited;
      expect(answer).toBe("from holder");
      expect(waiterLoads).toBe(0);
    } finally {
      vi.useRealTimers();
    }
    await waiter.close();
    await holder.close();
  });

  it("relaxes the window while connected and caught up, and restores maxStaleness the moment the socket drops", async () => {
    const { port, connected } = await fakeHub();
    const clock = fakeClock();
    const chaos = chaosStore(memoryStore({ now: clock.now }));
    const cache = createCache({
      store: chaos.store,
      namespace: "app",
      now: clock.now,
      sync: {
        maxStaleness: 100,
        hub: {
          url: `http://127.0.0.1:${port}`,
          token: "t",
          WebSocket: WebSocket as never,
          relaxedStaleness: 10_000,
          minBackoff: 60_000, // stay disconnected once cut
        },
      },
    });
    const socket = await connected;
    await until(() => cache.stats().hub?.healthy === true);
    await cache.set("k", 1);
    clock.advance(5_000); // far past maxStaleness, inside relaxedStaleness
    let before = chaos.calls;
    expect(await cache.get("k")).toBe(1);
    expect(chaos.calls - before).toBe(0);
    expect(cache.stats().hub?.connected).toBe(1);
    socket.terminate();
    await until(() => cache.stats().hub?.healthy === false);
    // A gauge of sockets open now, not a count of opens.
    expect(cache.stats().hub).toMatchObject({ connected: 0, reconnects: 1 });
    before = chaos.calls;
    expect(await cache.get("k")).toBe(1);
    expect(chaos.calls - before).toBe(1); // the bound of maxStaleness applies again: a sync
    await cache.close();
  });
});

describe("a publisher that does not subscribe", () => {
  it("is healthy while its publishes go through, unhealthy after one fails, and says it only publishes", async () => {
    let fail = false;
    const published: unknown[] = [];
    // The shape of a Durable Object namespace binding, as a Worker has it.
    const binding = {
      getByName: () => ({
        publish: async (records: unknown[]) => {
          if (fail) throw new Error("the hub is away");
          published.push(...records);
        },
      }),
    };
    const cache = createCache({
      store: memoryStore(),
      namespace: "publisher",
      logger: false,
      sync: { hub: { binding } },
    });
    expect(cache.stats().hub).toMatchObject({ subscribed: false, healthy: true, connected: 0 });
    await cache.set("a", 1);
    await until(() => cache.stats().hub!.published === 1);
    expect(cache.stats().hub).toMatchObject({ subscribed: false, healthy: true });
    fail = true;
    await cache.set("b", 2);
    await until(() => cache.stats().hub!.publishErrors === 1);
    expect(cache.stats().hub!.healthy).toBe(false);
    fail = false;
    await cache.set("c", 3);
    await until(() => cache.stats().hub!.published === 2);
    expect(cache.stats().hub!.healthy).toBe(true);
    expect(published).toHaveLength(2);
    await cache.close();
  });
});
