/**
 * The bridge's pub/sub over SSE and its read-your-writes token, driven through the official
 * `@upstash/redis` client (`subscribe`, `psubscribe`, `readYourWritesSyncToken`) and on the
 * wire, against the real redis-server.
 */
import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startRedisServer, startRestBridge } from "../src/node/index.js";
import { RespConnection } from "../src/node/resp.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const channel = (name: string) => `test:pubsub:${randomUUID()}:${name}`;
const redis = new Redis({ url, token, enableTelemetry: false });

let direct: RespConnection;
beforeAll(() => {
  direct = new RespConnection(inject("redisUrl"));
});
afterAll(async () => {
  await direct.close();
});

/** Resolves when `check` holds, polling every 10 ms; fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** How many connections Redis has subscribed to `name` (PUBSUB NUMSUB). */
async function subscribers(name: string): Promise<number> {
  const reply = (await direct.command(["PUBSUB", "NUMSUB", name])) as [unknown, number];
  return reply[1];
}

/** A raw SSE stream: its response, and every line read so far. */
async function stream(path: string, base = url, auth = token) {
  const controller = new AbortController();
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${auth}`, accept: "text/event-stream" },
    body: "[]",
    signal: controller.signal,
  });
  const lines: string[] = [];
  let ended = false;
  const reading = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        const parts = buffer.split("\n");
        buffer = parts.pop() ?? "";
        lines.push(...parts);
      }
    } catch {
      // Aborted by the test.
    }
    ended = true;
  })();
  return {
    response,
    lines,
    ended: () => ended,
    close: async () => {
      controller.abort();
      await reading;
    },
  };
}

describe("subscribe through @upstash/redis", () => {
  it("receives a published message, after the subscribe event with count 1", async () => {
    const ch = channel("single");
    const sub = redis.subscribe<{ hello: string }>([ch]);
    const counts: number[] = [];
    const messages: unknown[] = [];
    sub.on("subscribe", (count) => counts.push(count));
    sub.on("message", (data) => messages.push(data));
    await until(() => counts.length === 1);
    expect(counts).toEqual([1]);
    expect(await redis.publish(ch, { hello: "world" })).toBe(1);
    await until(() => messages.length === 1);
    expect(messages).toEqual([{ channel: ch, message: { hello: "world" } }]);
    await sub.unsubscribe();
  });

  it("delivers messages in order, to channel listeners and to every subscriber", async () => {
    const ch = channel("order");
    const a = redis.subscribe<number>([ch]);
    const b = redis.subscribe<number>([ch]);
    const got: { a: number[]; b: number[] } = { a: [], b: [] };
    const counts: number[] = [];
    a.on(`message:${ch}`, (data) => got.a.push(data.message));
    b.on("message", (data) => got.b.push(data.message));
    a.on("subscribe", (n) => counts.push(n));
    b.on("subscribe", (n) => counts.push(n));
    await until(() => counts.length === 2);
    // The count is per connection: each stream is a subscription of its own.
    expect(counts).toEqual([1, 1]);
    for (let i = 0; i < 20; i++) await redis.publish(ch, i);
    await until(() => got.a.length === 20 && got.b.length === 20);
    const expected = Array.from({ length: 20 }, (_, i) => i);
    expect(got.a).toEqual(expected);
    expect(got.b).toEqual(expected);
    await Promise.all([a.unsubscribe(), b.unsubscribe()]);
  });

  it("unsubscribes a channel by closing its stream: Redis forgets it, the others go on", async () => {
    const [one, two] = [channel("one"), channel("two")];
    const sub = redis.subscribe<string>([one, two]);
    const got: string[] = [];
    let subscribed = 0;
    sub.on("subscribe", () => subscribed++);
    sub.on("message", (data) => got.push(`${data.channel === one ? 1 : 2}:${data.message}`));
    await until(() => subscribed === 2);
    expect(await subscribers(one)).toBe(1);
    await sub.unsubscribe([one]);
    expect(sub.getSubscribedChannels()).toEqual([two]);
    await until(async () => (await subscribers(one)) === 0);
    await redis.publish(one, "after");
    await redis.publish(two, "after");
    await until(() => got.length === 1);
    expect(got).toEqual(["2:after"]);
    await sub.unsubscribe();
    await until(async () => (await subscribers(two)) === 0);
  });

  it("psubscribe delivers pmessage events with the pattern and the channel", async () => {
    const prefix = channel("p");
    const sub = redis.psubscribe<{ n: number }>([`${prefix}:*`]);
    const counts: number[] = [];
    const got: unknown[] = [];
    sub.on("psubscribe", (n) => counts.push(n));
    sub.on("pmessage", (data) => got.push(data));
    await until(() => counts.length === 1);
    await redis.publish(`${prefix}:a`, { n: 1 });
    await redis.publish(`${channel("elsewhere")}`, { n: 2 });
    await redis.publish(`${prefix}:b`, { n: 3 });
    await until(() => got.length === 2);
    expect(got).toEqual([
      { pattern: `${prefix}:*`, channel: `${prefix}:a`, message: { n: 1 } },
      { pattern: `${prefix}:*`, channel: `${prefix}:b`, message: { n: 3 } },
    ]);
    await sub.unsubscribe();
  });

  it("takes messages a Lua script publishes", async () => {
    const ch = channel("lua");
    const sub = redis.subscribe<string>([ch]);
    const got: string[] = [];
    let ready = false;
    sub.on("subscribe", () => {
      ready = true;
    });
    sub.on("message", (data) => got.push(data.message));
    await until(() => ready);
    await redis.eval("return redis.call('PUBLISH', KEYS[1], ARGV[1])", [ch], ["from-lua"]);
    await until(() => got.length === 1);
    expect(got).toEqual(["from-lua"]);
    await sub.unsubscribe();
  });
});

describe("subscribe on the wire", () => {
  it("answers an SSE stream of data lines; the body [] is not an argument", async () => {
    const ch = channel("wire");
    const s = await stream(`/subscribe/${encodeURIComponent(ch)}`);
    expect(s.response.status).toBe(200);
    expect(s.response.headers.get("content-type")).toBe("text/event-stream");
    expect(s.response.headers.get("cache-control")).toBe("no-cache");
    expect(s.response.headers.get("upstash-sync-token")).toMatch(/^[0-9a-f]+-\d+$/);
    await until(() => s.lines.includes(`data: subscribe,${ch},1`));
    await direct.command(["PUBLISH", ch, "plain text, with commas"]);
    await until(() => s.lines.some((l) => l.startsWith("data: message")));
    expect(s.lines.filter((l) => l.startsWith("data: "))).toEqual([
      `data: subscribe,${ch},1`,
      `data: message,${ch},plain text, with commas`,
    ]);
    await s.close();
  });

  it("subscribes to every channel of the path, counting per connection", async () => {
    const [a, b] = [channel("a"), channel("b")];
    const s = await stream(`/subscribe/${a}/${b}`);
    await until(() => s.lines.filter((l) => l.startsWith("data: subscribe")).length === 2);
    expect(s.lines.filter((l) => l.startsWith("data: "))).toEqual([
      `data: subscribe,${a},1`,
      `data: subscribe,${b},2`,
    ]);
    await s.close();
  });

  it("writes a payload with line breaks as one event of several data lines", async () => {
    const ch = channel("lines");
    const s = await stream(`/subscribe/${ch}`);
    await until(() => s.lines.length >= 1);
    await direct.command(["PUBLISH", ch, "one\ntwo"]);
    await until(() => s.lines.includes("data: two"));
    const at = s.lines.indexOf(`data: message,${ch},one`);
    expect(at).toBeGreaterThan(-1);
    expect(s.lines.slice(at, at + 3)).toEqual([`data: message,${ch},one`, "data: two", ""]);
    await s.close();
  });

  it("ends the stream of a client that stops reading, rather than buffering without bound", async () => {
    const ch = channel("slow");
    const controller = new AbortController();
    // The body is never read: once the socket's buffers fill, the bridge holds what it sends.
    const res = await fetch(`${url}/subscribe/${ch}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: "[]",
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    await until(async () => (await subscribers(ch)) === 1);
    const payload = "x".repeat(64 << 10);
    for (let i = 0; i < 400 && (await subscribers(ch)) === 1; i++) {
      await direct.command(["PUBLISH", ch, payload]);
    }
    // 25 MiB published, 8 MiB allowed in flight: the bridge let the subscription go.
    await until(async () => (await subscribers(ch)) === 0);
    controller.abort();
  });

  it("refuses a wrong token and an empty channel name", async () => {
    const wrong = await fetch(`${url}/subscribe/x`, {
      method: "POST",
      headers: { authorization: "Bearer wrong" },
      body: "[]",
    });
    expect(wrong.status).toBe(401);
    const empty = await fetch(`${url}/subscribe/a//b`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: "[]",
    });
    expect(empty.status).toBe(400);
  });

  it("sends heartbeats while idle, and ends the stream when Redis goes away", async () => {
    const server = await startRedisServer();
    const bridge = await startRestBridge({ redisUrl: server.url, token: "t", heartbeatMs: 30 });
    try {
      const s = await stream("/subscribe/idle", bridge.url, "t");
      await until(() => s.lines.filter((l) => l.startsWith(":")).length >= 2);
      expect(s.ended()).toBe(false);
      await server.close();
      await until(() => s.ended());
    } finally {
      await bridge.close();
    }
  });

  it("ends every stream and drops its Redis connection when the bridge closes", async () => {
    const bridge = await startRestBridge({ redisUrl: inject("redisUrl"), token: "t" });
    const ch = channel("closing");
    const s = await stream(`/subscribe/${ch}`, bridge.url, "t");
    await until(async () => (await subscribers(ch)) === 1);
    await bridge.close();
    await until(() => s.ended());
    await until(async () => (await subscribers(ch)) === 0);
  });
});

describe("read-your-writes token", () => {
  // Without auto-pipelining: each call is a request of its own.
  const client = () =>
    new Redis({ url, token, enableTelemetry: false, enableAutoPipelining: false });

  it("moves on with every answer: a command, a pipeline, a transaction, a script", async () => {
    const r = client();
    const seen = [r.readYourWritesSyncToken];
    await r.set(channel("k"), "v");
    seen.push(r.readYourWritesSyncToken);
    const p = r.pipeline();
    p.set(channel("k1"), "1");
    p.set(channel("k2"), "2");
    await p.exec();
    seen.push(r.readYourWritesSyncToken);
    const m = r.multi();
    m.set(channel("k3"), "3");
    await m.exec();
    seen.push(r.readYourWritesSyncToken);
    await r.createScript("return redis.call('SET', KEYS[1], 'x')").exec([channel("k4")], []);
    seen.push(r.readYourWritesSyncToken);
    expect(seen.slice(1).every((t) => typeof t === "string" && t.length > 0)).toBe(true);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("changes after each of concurrent writes, and is accepted when sent back", async () => {
    const r = client();
    r.readYourWritesSyncToken = "some-earlier-token";
    let current: string | undefined = r.readYourWritesSyncToken;
    await Promise.all(
      Array.from({ length: 3 }, (_, i) =>
        r.set(channel(`c${i}`), i).then(() => {
          expect(r.readYourWritesSyncToken).not.toEqual(current);
          current = r.readYourWritesSyncToken;
        }),
      ),
    );
  });

  it("leaves a client that opted out alone", async () => {
    const r = new Redis({ url, token, enableTelemetry: false, readYourWrites: false });
    const before = r.readYourWritesSyncToken;
    await r.set(channel("k"), "v");
    expect(r.readYourWritesSyncToken).toEqual(before);
  });
});
