/**
 * The invalidation hub (src/cloudflare) inside workerd: the router's refusals, fan-out to many
 * real WebSockets, batching, the hibernation handlers, sharding, and every way to publish
 * (RPC through the binding, HTTP, a socket). Sockets are opened through the example Worker
 * (`exports.default.fetch`), exactly as a client's upgrade would arrive.
 *
 * Nothing sleeps: tests await frames with a bounded timeout, and show that a socket got
 * nothing by sending a marker after the thing that must not arrive (one object's frames go
 * out in order, so a wrong frame would come first).
 */
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { ChangeRecord } from "edgecache/store";
import { afterEach, describe, expect, it } from "vitest";
import type { HubSocketAttachment } from "../../src/cloudflare/hub.js";
import { InvalidationHub, publishToHub } from "../../src/cloudflare/index.js";
import { frameInterval } from "../../src/cloudflare/pacing.js";
import { hubShards } from "../../src/cloudflare/router.js";
import {
  BATCH_RECORDS,
  type ChangesFrame,
  hubObjectName,
  MAX_FRAME_BYTES,
  parseFrame,
} from "../../src/hub/protocol.js";
import { shardOf } from "../../src/hub/shard.js";
import { mintHubToken } from "../../src/hub/token.js";

const SHARDS = Number(env.EDGECACHE_HUB_SHARDS);
const secret = env.EDGECACHE_HUB_SECRET;

const call = (path: string, init?: RequestInit) =>
  exports.default.fetch(new Request(`http://edgecache.test${path}`, init));

const freshNamespace = (label: string) => `hub-test.${label}.${crypto.randomUUID()}`;

const token = (namespace: string, role: "publish" | "subscribe" | "both", ttl?: number) =>
  mintHubToken({ secret, namespace, role, ...(ttl === undefined ? {} : { ttl }) });

const stub = (namespace: string, shard: number) =>
  env.EDGECACHE_HUB.getByName(hubObjectName(namespace, shard));

/** Rejects when `promise` takes longer than `ms`: the only waiting these tests do. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** A test-side WebSocket with an inbox, so that no message is missed between awaits. */
class Client {
  readonly #inbox: string[] = [];
  readonly #waiters: ((message: string) => void)[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (event) => {
      const data = typeof event.data === "string" ? event.data : "<binary>";
      const waiter = this.#waiters.shift();
      if (waiter) waiter(data);
      else this.#inbox.push(data);
    });
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason }));
    });
    ws.accept();
  }

  /** The next message, within `ms`. */
  next(ms = 3_000): Promise<string> {
    const queued = this.#inbox.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    let waiter: ((message: string) => void) | undefined;
    const message = new Promise<string>((resolve) => {
      waiter = resolve;
      this.#waiters.push(resolve);
    });
    return within(message, ms, "a WebSocket message").catch((error: unknown) => {
      this.#waiters.splice(this.#waiters.indexOf(waiter!), 1);
      throw error;
    });
  }

  /** The next message, which must be a well-formed ChangesFrame. */
  async frame(ms?: number): Promise<ChangesFrame> {
    const text = await this.next(ms);
    const frame = parseFrame(text, "changes");
    if (!frame) throw new Error(`not a changes frame: ${text.slice(0, 80)}`);
    return { t: "changes", shard: frame.shard!, records: frame.records };
  }

  /** Frames until `count` records arrived. */
  async records(count: number): Promise<ChangesFrame[]> {
    const frames: ChangesFrame[] = [];
    let seen = 0;
    while (seen < count) {
      const frame = await this.frame();
      frames.push(frame);
      seen += frame.records.length;
    }
    return frames;
  }

  /** Whether nothing is waiting unread. */
  get idle(): boolean {
    return this.#inbox.length === 0;
  }
}

const open: Client[] = [];

afterEach(() => {
  for (const client of open.splice(0)) {
    try {
      client.ws.close(1000, "test over");
    } catch {
      // Already closed by the test.
    }
  }
});

function upgradePath(namespace: string, shard: number, tokenText?: string): string {
  const query = new URLSearchParams({ shard: String(shard) });
  if (tokenText !== undefined) query.set("token", tokenText);
  return `/hub/${encodeURIComponent(namespace)}?${query}`;
}

async function subscribe(
  namespace: string,
  shard = 0,
  role: "subscribe" | "both" = "subscribe",
  headers: Record<string, string> = {},
): Promise<Client> {
  const res = await call(upgradePath(namespace, shard, await token(namespace, role)), {
    headers: { upgrade: "websocket", ...headers },
  });
  expect(res.status).toBe(101);
  const client = new Client(res.webSocket!);
  open.push(client);
  return client;
}

let version = 0;

/** A well-formed record; versions increase across the file so that order is visible. */
function record(op: ChangeRecord["op"], keys: string[] = [], value?: string): ChangeRecord {
  const first = ++version;
  version += Math.max(0, keys.length - 1);
  return {
    op,
    first,
    last: version,
    origin: "test",
    keys: keys.map((key, i) =>
      value === undefined
        ? { key, version: first + i }
        : { key, version: first + i, value, ttl: 60_000 },
    ),
  };
}

/** A key that lands on `shard` of {@link SHARDS}. */
function keyOn(shard: number, label = "k"): string {
  for (let i = 0; ; i++) {
    const key = `${label}:${i}`;
    if (shardOf(key, SHARDS) === shard) return key;
  }
}

async function postPublish(
  namespace: string,
  body: string,
  tokenText?: string,
  init?: RequestInit,
) {
  return call(`/hub/${encodeURIComponent(namespace)}/publish`, {
    method: "POST",
    body,
    headers: tokenText === undefined ? {} : { authorization: `Bearer ${tokenText}` },
    ...init,
  });
}

const frameOf = (...records: ChangeRecord[]) => JSON.stringify({ t: "publish", records });

describe("the router refuses before the upgrade", () => {
  const namespace = freshNamespace("auth");
  const upgrade = { headers: { upgrade: "websocket" } };

  async function expectRefused(path: string, status: number, init: RequestInit = upgrade) {
    const res = await call(path, init);
    expect(res.status).toBe(status);
    expect(res.webSocket).toBeNull();
    const body = await res.text();
    // No token, valid or not, ever comes back.
    expect(body).not.toMatch(/v1\.[A-Za-z0-9_-]{10,}/);
    return res;
  }

  it("a token signed with another secret", async () => {
    const forged = await mintHubToken({ secret: "x".repeat(40), namespace, role: "both" });
    const res = await expectRefused(upgradePath(namespace, 0, forged), 401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
  });

  it("a token whose claims were edited after signing", async () => {
    const real = await token(namespace, "subscribe");
    const [prefix, , signature] = real.split(".");
    const claims = btoa(JSON.stringify({ ns: namespace, r: "both", exp: Date.now() + 60_000 }))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
    await expectRefused(upgradePath(namespace, 0, `${prefix}.${claims}.${signature}`), 401);
  });

  it("an expired token", async () => {
    const expired = await mintHubToken({
      secret,
      namespace,
      role: "both",
      ttl: 1_000,
      now: () => Date.now() - 60_000,
    });
    await expectRefused(upgradePath(namespace, 0, expired), 401);
  });

  it("a token for another namespace", async () => {
    await expectRefused(upgradePath(namespace, 0, await token(`${namespace}.other`, "both")), 401);
  });

  it("a publish-only token", async () => {
    await expectRefused(upgradePath(namespace, 0, await token(namespace, "publish")), 401);
  });

  it("no token, or garbage", async () => {
    await expectRefused(upgradePath(namespace, 0), 401);
    await expectRefused(upgradePath(namespace, 0, "not-a-token"), 401);
  });

  it("a shard outside 0..shards-1 or not an integer", async () => {
    const good = await token(namespace, "subscribe");
    for (const shard of [String(SHARDS), "-1", "1.5", "x", "", "1e1"]) {
      const path = `/hub/${encodeURIComponent(namespace)}?shard=${shard}&token=${good}`;
      await expectRefused(path, 400);
    }
  });

  it("a bad namespace", async () => {
    const good = await token(namespace, "subscribe");
    await expectRefused(`/hub/bad%20namespace!?shard=0&token=${good}`, 400);
    await expectRefused(`/hub/${"n".repeat(129)}?shard=0&token=${good}`, 400);
    await expectRefused(`/hub/%E0%A4%A?shard=0&token=${good}`, 400);
  });

  it("a subscription that is not a WebSocket upgrade (426), or not a GET (405)", async () => {
    const good = await token(namespace, "subscribe");
    const res = await expectRefused(upgradePath(namespace, 0, good), 426, {});
    expect(res.headers.get("upgrade")).toBe("websocket");
    await expectRefused(upgradePath(namespace, 0, good), 405, { method: "PUT", body: "x" });
  });

  it("and none of those refused upgrades reached an object", async () => {
    for (let shard = 0; shard < SHARDS; shard++) {
      expect((await stub(namespace, shard).stats()).sockets).toBe(0);
    }
  });

  it("accepts a good token from the query or from an Authorization header", async () => {
    const good = await token(namespace, "subscribe");
    const viaHeader = await call(upgradePath(namespace, 1), {
      headers: { upgrade: "websocket", authorization: `Bearer ${good}` },
    });
    expect(viaHeader.status).toBe(101);
    open.push(new Client(viaHeader.webSocket!));
    await subscribe(namespace, 1);
    expect((await stub(namespace, 1).stats()).sockets).toBe(2);
  });
});

describe("fan-out and batching", () => {
  it("delivers one publish to 50 subscribers", async () => {
    const namespace = freshNamespace("fanout");
    const clients = await Promise.all(Array.from({ length: 50 }, () => subscribe(namespace, 2)));
    const published = record("set", [keyOn(2)], '"v"');
    const res = await postPublish(namespace, frameOf(published), await token(namespace, "publish"));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 1 });

    const frames = await Promise.all(clients.map((client) => client.frame()));
    for (const frame of frames)
      expect(frame).toEqual({ t: "changes", shard: 2, records: [published] });
    expect(await stub(namespace, 2).stats()).toEqual({
      sockets: 50,
      published: 1,
      framesSent: 50,
      dropped: 0,
    });
  });

  it("batches many publishes into frames of at most 100 records, in order", async () => {
    const namespace = freshNamespace("batch");
    const client = await subscribe(namespace, 0);
    const batches = Array.from({ length: 25 }, () =>
      Array.from({ length: 10 }, () => record("delete", [keyOn(0)])),
    );
    // 25 publishes back to back inside the object: no I/O between them, so the pacing timer
    // cannot fire and the split is exactly what the size rule makes.
    await runInDurableObject(stub(namespace, 0), async (hub: InvalidationHub) => {
      for (const batch of batches) expect(await hub.publish(batch, 0)).toEqual({ accepted: 10 });
    });
    const frames = await client.records(250);
    // The first publish goes out at once (no frame went out before); the rest wait for the
    // pacing interval, in frames of at most 100.
    expect(frames.map((frame) => frame.records.length)).toEqual([10, 100, 100, 40]);
    expect(frames.flatMap((frame) => frame.records)).toEqual(batches.flat());
    expect(BATCH_RECORDS).toBe(100);
  });

  it("paces a burst of publishes to its frame budget, delivering every record in order", async () => {
    const namespace = freshNamespace("burst");
    // 100 sockets: after each frame the hub waits 100 / 20,000 s, 5 ms.
    const clients = await Promise.all(Array.from({ length: 100 }, () => subscribe(namespace, 0)));
    expect(frameInterval(clients.length)).toBe(5);
    const hub = stub(namespace, 0);
    const records = Array.from({ length: 200 }, () => record("set", [keyOn(0)], '"v"'));
    const startedAt = Date.now();
    // One record per publish, about one per ms inside the object (so in order, and with the
    // clock and the hub's timer moving between them): five times the frame budget.
    await runInDurableObject(hub, async (instance: InvalidationHub) => {
      for (const r of records) {
        expect(await instance.publish([r], 0)).toEqual({ accepted: 1 });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    });
    const received = await Promise.all(clients.map((client) => client.records(records.length)));
    const elapsed = Date.now() - startedAt;
    const sizes = received[0]!.map((frame) => frame.records.length);
    for (const frames of received) {
      expect(frames.flatMap((frame) => frame.records)).toEqual(records);
      expect(frames.map((frame) => frame.records.length)).toEqual(sizes);
    }
    // Coalesced, and no faster than one frame per interval (the first goes at once).
    expect(sizes.length).toBeLessThan(records.length);
    expect(sizes.length).toBeLessThanOrEqual(1 + Math.floor(elapsed / frameInterval(100)));
    expect(await hub.stats()).toEqual({
      sockets: 100,
      published: records.length,
      framesSent: sizes.length * 100,
      dropped: 0,
    });
  });

  it("sends a lone record at once when no frame went out within the interval", async () => {
    const namespace = freshNamespace("lone");
    const client = await subscribe(namespace, 3);
    const lone = record("clear");
    expect(await stub(namespace, 3).publish([lone], 3)).toEqual({ accepted: 1 });
    expect(await client.frame()).toEqual({ t: "changes", shard: 3, records: [lone] });
  });

  it("splits a record too large for one frame by its keys, keeping every key", async () => {
    const namespace = freshNamespace("large");
    const client = await subscribe(namespace, 0);
    const value = JSON.stringify("x".repeat(1_000));
    const keys = Array.from({ length: 2_500 }, (_, i) => `big:${i}`);
    const big = record("set", keys, value);
    expect(JSON.stringify(big).length).toBeGreaterThan(2 * MAX_FRAME_BYTES);
    expect(await stub(namespace, 0).publish([big], 0)).toEqual({ accepted: 1 });

    const received: string[] = [];
    while (received.length < keys.length) {
      const text = await client.next();
      expect(text.length).toBeLessThanOrEqual(MAX_FRAME_BYTES);
      const frame = parseFrame(text, "changes");
      for (const part of frame!.records) {
        expect({ op: part.op, first: part.first, last: part.last }).toEqual({
          op: "set",
          first: big.first,
          last: big.last,
        });
        received.push(...part.keys.map((k) => k.key));
      }
    }
    expect(received).toEqual(keys);
  });
});

describe("hibernation handlers", () => {
  it("answers ping with pong without waking the object", async () => {
    const namespace = freshNamespace("ping");
    const client = await subscribe(namespace, 0);
    client.ws.send("ping");
    expect(await client.next()).toBe("pong");
    // Had "ping" reached webSocketMessage, it would have been dropped as a bad frame.
    expect((await stub(namespace, 0).stats()).dropped).toBe(0);
    const answered = await runInDurableObject(stub(namespace, 0), (_hub, state) => {
      const [ws] = state.getWebSockets();
      return state.getWebSocketAutoResponseTimestamp(ws!);
    });
    expect(answered).toBeInstanceOf(Date);
  });

  it("keeps role, namespace and shard in a hibernation-safe attachment, tagged by namespace", async () => {
    const namespace = freshNamespace("attach");
    await subscribe(namespace, 1, "both");
    const seen = await runInDurableObject(stub(namespace, 1), (_hub, state) => {
      const [ws] = state.getWebSockets(namespace);
      return {
        attachment: ws!.deserializeAttachment() as HubSocketAttachment,
        tags: state.getTags(ws!),
      };
    });
    expect(seen.tags).toEqual([namespace]);
    expect(seen.attachment).toEqual({
      role: "both",
      namespace,
      shard: 1,
      connectedAt: expect.any(Number),
    });
  });

  it("completes the close handshake and forgets the socket", async () => {
    const namespace = freshNamespace("close");
    const leaving = await subscribe(namespace, 0);
    await subscribe(namespace, 0);
    leaving.ws.close(4001, "bye");
    // The close event fires when the hub's own close frame comes back.
    expect(await within(leaving.closed, 3_000, "the close handshake")).toEqual({
      code: 4001,
      reason: "bye",
    });
    expect((await stub(namespace, 0).stats()).sockets).toBe(1);
  });

  it("closes a socket that errored with 1011, leaving the others", async () => {
    const namespace = freshNamespace("error");
    const broken = await subscribe(namespace, 0, "both");
    const healthy = await subscribe(namespace, 0);
    await runInDurableObject(stub(namespace, 0), async (hub: InvalidationHub, state) => {
      const ws = state
        .getWebSockets()
        .find((s) => (s.deserializeAttachment() as HubSocketAttachment).role === "both")!;
      await hub.webSocketError(ws, new Error("simulated"));
    });
    expect((await within(broken.closed, 3_000, "the close")).code).toBe(1011);
    const marker = record("clear");
    await stub(namespace, 0).publish([marker], 0);
    expect(await healthy.frame()).toEqual({ t: "changes", shard: 0, records: [marker] });
  });

  it("a fresh instance over the same sockets (what hibernation leaves) still fans out", async () => {
    const namespace = freshNamespace("rehydrate");
    const publisher = await subscribe(namespace, 2, "both");
    const listener = await subscribe(namespace, 2);
    const published = record("delete", [keyOn(2)]);
    const counters = await runInDurableObject(stub(namespace, 2), async (_hub, state) => {
      // A new object on the same state: empty memory, sockets and attachments kept.
      const woken = new InvalidationHub(state, env);
      const [ws] = state
        .getWebSockets(namespace)
        .filter(
          (socket) => (socket.deserializeAttachment() as HubSocketAttachment).role === "both",
        );
      await woken.webSocketMessage(ws!, frameOf(published));
      await woken.webSocketMessage(ws!, new TextEncoder().encode("binary").buffer as ArrayBuffer);
      return woken.stats();
    });
    // Nothing went out in the last window, so the frame left at once, to both sockets.
    expect(counters).toEqual({ sockets: 2, published: 1, framesSent: 2, dropped: 1 });
    for (const client of [publisher, listener]) {
      expect(await client.frame()).toEqual({ t: "changes", shard: 2, records: [published] });
    }
  });
});

describe("publishing over a socket", () => {
  it("fans out a PublishFrame from a socket whose token allows publishing", async () => {
    const namespace = freshNamespace("socket-publish");
    const publisher = await subscribe(namespace, 0, "both");
    const listener = await subscribe(namespace, 0);
    const published = record("set", [keyOn(0)], "1");
    publisher.ws.send(frameOf(published));
    expect(await listener.frame()).toEqual({ t: "changes", shard: 0, records: [published] });
    // The publisher hears its own record too; clients skip their own by origin.
    expect(await publisher.frame()).toEqual({ t: "changes", shard: 0, records: [published] });
    expect((await stub(namespace, 0).stats()).published).toBe(1);
  });

  it("drops a PublishFrame from a subscribe-only socket, even one that claims a role by header", async () => {
    const namespace = freshNamespace("socket-refused");
    const listener = await subscribe(namespace, 0);
    const sneaky = await subscribe(namespace, 0, "subscribe", { "x-edgecache-role": "both" });
    const publisher = await subscribe(namespace, 0, "both");
    sneaky.ws.send(frameOf(record("clear")));
    listener.ws.send(frameOf(record("clear")));
    const marker = record("delete", [keyOn(0, "marker")]);
    publisher.ws.send(frameOf(marker));
    // One object's frames go out in order: a wrongly accepted clear would come first.
    expect(await listener.frame()).toEqual({ t: "changes", shard: 0, records: [marker] });
    expect(await stub(namespace, 0).stats()).toMatchObject({ published: 1, dropped: 2 });
  });

  it("drops malformed frames, counts them, and keeps serving every socket", async () => {
    const namespace = freshNamespace("malformed");
    const publisher = await subscribe(namespace, 1, "both");
    const listener = await subscribe(namespace, 1);
    const badRecord = { ...record("set", ["k"]), first: 0 };
    const junk: (string | Uint8Array)[] = [
      new Uint8Array([1, 2, 3]),
      "{not json",
      "null",
      JSON.stringify({ t: "changes", shard: 1, records: [] }),
      JSON.stringify({ t: "publish", records: "nope" }),
      JSON.stringify({ t: "publish", records: [badRecord] }),
      JSON.stringify({
        t: "publish",
        records: Array.from({ length: 1_001 }, () => record("clear")),
      }),
    ];
    for (const message of junk) publisher.ws.send(message);
    const marker = record("clear");
    publisher.ws.send(frameOf(marker));
    expect(await listener.frame()).toEqual({ t: "changes", shard: 1, records: [marker] });
    expect(await publisher.frame()).toEqual({ t: "changes", shard: 1, records: [marker] });
    expect(await stub(namespace, 1).stats()).toEqual({
      sockets: 2,
      published: 1,
      framesSent: 2,
      dropped: junk.length,
    });
  });

  it("drops a frame over MAX_FRAME_BYTES, counting UTF-8 bytes, not characters", async () => {
    const namespace = freshNamespace("oversized");
    const listener = await subscribe(namespace, 0);
    const publisher = await subscribe(namespace, 0, "both");
    // Valid in every other respect, and under the limit in UTF-16 units: only its size in
    // bytes (two per "é") refuses it.
    const records = [record("clear")];
    const padded = JSON.stringify({ t: "publish", records, pad: "é".repeat(MAX_FRAME_BYTES / 2) });
    expect(padded.length).toBeLessThan(MAX_FRAME_BYTES);
    publisher.ws.send(padded);
    const marker = record("clear");
    publisher.ws.send(frameOf(marker));
    expect(await listener.frame()).toEqual({ t: "changes", shard: 0, records: [marker] });
    expect(await stub(namespace, 0).stats()).toMatchObject({ published: 1, dropped: 1 });
  });
});

describe("RPC publish through the binding", () => {
  it("fans out valid records, counts malformed ones", async () => {
    const namespace = freshNamespace("rpc");
    const client = await subscribe(namespace, 1);
    const good = record("set", [keyOn(1)], '"x"');
    const malformed = [{ op: "nope" }, null, { ...record("delete", ["a"]), keys: "a" }];
    const result = await stub(namespace, 1).publish(
      [good, ...(malformed as unknown as ChangeRecord[])],
      1,
    );
    expect(result).toEqual({ accepted: 1 });
    expect(await client.frame()).toEqual({ t: "changes", shard: 1, records: [good] });
    expect(await stub(namespace, 1).stats()).toMatchObject({ published: 1, dropped: 3 });
  });

  it("publishToHub splits by shard for Worker-side callers", async () => {
    const namespace = freshNamespace("helper");
    const clients = await Promise.all(
      Array.from({ length: SHARDS }, (_, shard) => subscribe(namespace, shard)),
    );
    const keys = Array.from({ length: SHARDS }, (_, shard) => keyOn(shard));
    const write = record("delete", keys);
    expect(await publishToHub(env, namespace, [write])).toEqual({ accepted: 1 });
    for (const [shard, client] of clients.entries()) {
      const frame = await client.frame();
      expect(frame.shard).toBe(shard);
      expect(frame.records).toEqual([{ ...write, keys: [write.keys[shard]] }]);
    }
    await expect(publishToHub(env, "bad namespace", [write])).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
  });
});

describe("HTTP publish", () => {
  it("answers 202 with the count and fans out", async () => {
    const namespace = freshNamespace("http");
    const client = await subscribe(namespace, 0);
    const records = [record("set", [keyOn(0, "a")], "1"), record("delete", [keyOn(0, "b")])];
    const res = await postPublish(namespace, frameOf(...records), await token(namespace, "both"));
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ accepted: 2 });
    expect(await client.frame()).toEqual({ t: "changes", shard: 0, records });
  });

  it("refuses bad tokens (401), bad frames (400), large bodies (413), wrong methods (405)", async () => {
    const namespace = freshNamespace("http-refused");
    const client = await subscribe(namespace, 0);
    const body = frameOf(record("clear"));
    const statuses = [
      (await postPublish(namespace, body)).status,
      (await postPublish(namespace, body, await token(namespace, "subscribe"))).status,
      (await postPublish(namespace, body, await token(`${namespace}x`, "publish"))).status,
      (await postPublish(namespace, body, "v1.forged.sig")).status,
    ];
    expect(statuses).toEqual([401, 401, 401, 401]);

    const publish = await token(namespace, "publish");
    expect((await postPublish(namespace, "{nope", publish)).status).toBe(400);
    expect(
      (await postPublish(namespace, JSON.stringify({ t: "publish", records: [{}] }), publish))
        .status,
    ).toBe(400);
    expect(
      (await postPublish(namespace, JSON.stringify({ t: "changes", records: [] }), publish)).status,
    ).toBe(400);
    const huge = JSON.stringify({ t: "publish", records: [], pad: "x".repeat(MAX_FRAME_BYTES) });
    expect((await postPublish(namespace, huge, publish)).status).toBe(413);
    // No Content-Length: the router still stops reading at the limit.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
        for (let i = 0; i < 20; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    expect((await postPublish(namespace, "", publish, { body: stream })).status).toBe(413);
    const get = await call(`/hub/${encodeURIComponent(namespace)}/publish`, {
      headers: { authorization: `Bearer ${publish}` },
    });
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");

    const marker = record("delete", [keyOn(0, "marker")]);
    expect((await postPublish(namespace, frameOf(marker), publish)).status).toBe(202);
    expect(await client.frame()).toEqual({ t: "changes", shard: 0, records: [marker] });
  });
});

describe("sharding", () => {
  it("sends each key's records only to its shard's subscribers, and clears to all", async () => {
    const namespace = freshNamespace("shards");
    const clients = await Promise.all(
      Array.from({ length: SHARDS }, (_, shard) => subscribe(namespace, shard)),
    );
    const on0 = [keyOn(0, "x"), keyOn(0, "y")];
    const on2 = keyOn(2, "x");
    const write = record("set", [on0[0]!, on2, on0[1]!], '"v"');
    const clear = record("clear");
    const res = await postPublish(
      namespace,
      frameOf(write, clear),
      await token(namespace, "publish"),
    );
    expect(await res.json()).toEqual({ accepted: 2 });

    const byKey = new Map(write.keys.map((k) => [k.key, k]));
    const expected: ChangeRecord[][] = [
      [{ ...write, keys: on0.map((k) => byKey.get(k)!) }, clear],
      [clear],
      [{ ...write, keys: [byKey.get(on2)!] }, clear],
      [clear],
    ];
    for (const [shard, client] of clients.entries()) {
      expect(await client.frame()).toEqual({ t: "changes", shard, records: expected[shard] });
    }
    expect(clients.every((client) => client.idle)).toBe(true);
  });

  it("keeps namespaces apart", async () => {
    const mine = freshNamespace("mine");
    const theirs = freshNamespace("theirs");
    const listener = await subscribe(mine, 0);
    await stub(theirs, 0).publish([record("clear")], 0);
    const marker = record("clear");
    await stub(mine, 0).publish([marker], 0);
    expect(await listener.frame()).toEqual({ t: "changes", shard: 0, records: [marker] });
  });
});

describe("the built package", () => {
  it("exports the hub as edgecache/cloudflare", async () => {
    const built = await import("edgecache/cloudflare");
    expect(typeof built.InvalidationHub).toBe("function");
    expect(typeof built.handleHubRequest).toBe("function");
    expect(typeof built.publishToHub).toBe("function");
  });

  it("reads the shard count from EDGECACHE_HUB_SHARDS", () => {
    expect(hubShards({ EDGECACHE_HUB_SHARDS: "3" })).toBe(3);
    expect(() => hubShards({ EDGECACHE_HUB_SHARDS: "0" })).toThrow(/EDGECACHE_HUB_SHARDS/);
  });
});
