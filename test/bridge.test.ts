import { Buffer } from "node:buffer";
import { randomBytes, randomUUID } from "node:crypto";
import { errors, Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { isLoopbackHost } from "../src/node/bridge.js";
import {
  type RedisServer,
  RedisServerError,
  type RestBridge,
  startRedisServer,
  startRestBridge,
} from "../src/node/index.js";
import { RespConnection } from "../src/node/resp.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const key = (name: string) => `test:bridge:${randomUUID()}:${name}`;

/** The client as edgecache uses it: no JSON guessing, no telemetry. */
const raw = new Redis({ url, token, automaticDeserialization: false, enableTelemetry: false });
/** The client with its defaults (auto-pipelining, JSON deserialization, telemetry headers). */
const defaults = new Redis({ url, token });

interface CallOptions {
  base64?: boolean;
  auth?: string | null;
  method?: string;
  body?: string | Uint8Array<ArrayBuffer>;
  base?: string;
}

/** A raw HTTP call, to check the wire format the client hides. */
async function call(path: string, json?: unknown, options: CallOptions = {}) {
  const headers: Record<string, string> = {};
  const auth = options.auth === undefined ? `Bearer ${token}` : options.auth;
  if (auth !== null) headers.authorization = auth;
  if (options.base64) headers["upstash-encoding"] = "base64";
  const response = await fetch(`${options.base ?? url}${path}`, {
    method: options.method ?? "POST",
    headers,
    body: options.body ?? (json === undefined ? undefined : JSON.stringify(json)),
  });
  const text = await response.text();
  return { status: response.status, body: JSON.parse(text) as unknown, text };
}

const b64 = (text: string | Buffer) => Buffer.from(text).toString("base64");

let direct: RespConnection;
beforeAll(() => {
  direct = new RespConnection(inject("redisUrl"));
});
afterAll(async () => {
  await direct.close();
});

describe("values through @upstash/redis", () => {
  it.each(["aGVsbG8=", "test", "abcd", "OK", "T0s=", "", "null", "123", '{"a":1}'])(
    "round-trips %j unchanged",
    async (value) => {
      const k = key("s");
      expect(await raw.set(k, value)).toBe("OK");
      expect(await raw.get(k)).toBe(value);
    },
  );

  it("round-trips UTF-8 text", async () => {
    const k = key("utf8");
    const value = "héllo 👋🏽 世界 한국어 \u0000 e\u0301";
    await raw.set(k, value);
    expect(await raw.get(k)).toBe(value);
    expect(await raw.strlen(k)).toBe(Buffer.byteLength(value));
  });

  it("sends the exact bytes of binary values as base64", async () => {
    const k = key("bin");
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x0d, 0x0a, 0x4f, 0x4b]);
    await direct.command(["SET", k, bytes]);
    const { status, body } = await call("/", ["GET", k], { base64: true });
    expect(status).toBe(200);
    const result = (body as { result: string }).result;
    expect(Buffer.from(result, "base64").equals(bytes)).toBe(true);
  });

  it("maps integers, nil and nested arrays", async () => {
    const k = key("n");
    expect(await raw.incr(k)).toBe(1);
    expect(await raw.incrby(k, 41)).toBe(42);
    expect(await raw.get(key("missing"))).toBeNull();
    const h = key("h");
    await raw.hset(h, { field: "aGVsbG8=", other: "✓" });
    expect(await defaults.hgetall(h)).toEqual({ field: "aGVsbG8=", other: "✓" });
    expect(await raw.hgetall(h)).toEqual(["field", "aGVsbG8=", "other", "✓"]);
    const s = key("stream");
    await raw.xadd(s, "1-1", { f: "v" });
    expect(await defaults.xrange(s, "-", "+")).toEqual({ "1-1": { f: "v" } });
    expect(await raw.xrange(s, "-", "+")).toEqual([["1-1", ["f", "v"]]]);
    const wire = await call("/", ["XRANGE", s, "-", "+"], { base64: true });
    expect(wire.body).toEqual({ result: [[b64("1-1"), [b64("f"), b64("v")]]] });
  });

  it("decodes a status reply nested in an array correctly", async () => {
    const script = "return {redis.status_reply('OK'), 'OK', redis.status_reply('PONG')}";
    expect(await raw.eval(script, [], [])).toEqual(["OK", "OK", "PONG"]);
    const wire = await call("/", ["EVAL", script, 0], { base64: true });
    expect(wire.body).toEqual({ result: [b64("OK"), b64("OK"), b64("PONG")] });
  });

  it("works with the client's default configuration", async () => {
    const k = key("defaults");
    await defaults.set(k, { a: 1, list: ["x"] });
    expect(await defaults.get(k)).toEqual({ a: 1, list: ["x"] });
    const [, counter] = await Promise.all([defaults.set(key("x"), "1"), defaults.incr(k + ":n")]);
    expect(counter).toBe(1);
  });
});

describe("wire format", () => {
  it("sends a top-level OK as plain text and other strings as base64", async () => {
    const k = key("ok");
    expect((await call("/", ["SET", k, "OK"], { base64: true })).body).toEqual({ result: "OK" });
    expect((await call("/", ["GET", k], { base64: true })).body).toEqual({ result: b64("OK") });
    expect((await call("/", ["PING"], { base64: true })).body).toEqual({ result: b64("PONG") });
  });

  it("sends plain UTF-8 text without the base64 header", async () => {
    const k = key("plain");
    await call("/", ["SET", k, "aGVsbG8= 世界"]);
    expect((await call("/", ["GET", k])).body).toEqual({ result: "aGVsbG8= 世界" });
    expect((await call("/", ["HGETALL", key("none")])).body).toEqual({ result: [] });
  });

  it("accepts numbers as arguments", async () => {
    const k = key("num");
    expect((await call("/", ["SET", k, 12.5, "PX", 60_000])).body).toEqual({ result: "OK" });
    expect((await call("/", ["INCRBYFLOAT", k, 1])).body).toEqual({ result: "13.5" });
  });

  it("passes Redis error text through with status 400", async () => {
    const k = key("str");
    await raw.set(k, "x");
    const wire = await call("/", ["LPUSH", k, "a"]);
    expect(wire.status).toBe(400);
    expect((wire.body as { error: string }).error).toMatch(/^WRONGTYPE /);
    await expect(raw.lpush(k, "a")).rejects.toThrow(/WRONGTYPE/);
  });

  it("serves path-form commands, GET and POST", async () => {
    const k = key("path/with space");
    const path = `/set/${encodeURIComponent(k)}/${encodeURIComponent("a/b c%")}`;
    expect((await call(path, undefined, { method: "GET" })).body).toEqual({ result: "OK" });
    const got = await call(`/get/${encodeURIComponent(k)}`, undefined, { method: "GET" });
    expect(got.body).toEqual({ result: "a/b c%" });
    const bytes = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a]);
    const posted = await call(`/set/${encodeURIComponent(k)}`, undefined, { body: bytes });
    expect(posted.body).toEqual({ result: "OK" });
    expect(await direct.command(["GET", k])).toEqual(bytes);
    const ex = await call(`/set/${encodeURIComponent(k)}/v/EX/100`, undefined, { method: "GET" });
    expect(ex.body).toEqual({ result: "OK" });
    expect(await raw.ttl(k)).toBeGreaterThan(90);
  });

  it("rejects malformed requests with 400, 404, 405 and 413", async () => {
    const bad = await call("/", undefined, { body: "[not json" });
    expect(bad).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^ERR /) } });
    for (const body of [{ cmd: "GET" }, [], [["GET", "k"]], ["SET", "k", null]]) {
      expect((await call("/", body)).status).toBe(400);
    }
    for (const body of [["GET", "k"], [], [[]]]) {
      expect((await call("/pipeline", body)).status).toBe(400);
      expect((await call("/multi-exec", body)).status).toBe(400);
    }
    expect((await call("/", undefined, { method: "GET" })).status).toBe(404);
    expect((await call("/pipeline", undefined, { method: "GET" })).status).toBe(405);
    expect((await call("/get/k", undefined, { method: "DELETE" })).status).toBe(405);
    const huge = await call("/", undefined, { body: Buffer.alloc(11 * 1024 * 1024, 0x20) });
    expect(huge).toMatchObject({ status: 413, body: { error: expect.stringMatching(/^ERR /) } });
  });
});

describe("authorization", () => {
  it.each([
    ["a wrong token", "Bearer wrong"],
    ["a token of another length", `Bearer ${token}x`],
    ["another scheme", `Basic ${token}`],
    ["no header", null],
  ])("answers 401 for %s", async (_, auth) => {
    const wire = await call("/", ["GET", "k"], { auth });
    expect(wire).toEqual({ status: 401, body: { error: "Unauthorized" }, text: wire.text });
  });

  it("makes the client throw for a wrong token", async () => {
    const client = new Redis({ url, token: "wrong", enableTelemetry: false });
    await expect(client.get("k")).rejects.toBeInstanceOf(errors.UpstashError);
    await expect(client.get("k")).rejects.toThrow(/Unauthorized/);
  });
});

describe("pipeline", () => {
  it("reports an error in position and runs the other commands", async () => {
    const [s, n] = [key("s"), key("n")];
    await raw.set(s, "text");
    const results = await raw.pipeline().incr(n).lpush(s, "x").incr(n).get(s).exec({
      keepErrors: true,
    });
    expect(results.map((r) => r.result)).toEqual([1, undefined, 2, "text"]);
    expect(results[1]?.error).toMatch(/^WRONGTYPE /);
    await expect(raw.pipeline().incr(n).lpush(s, "x").exec()).rejects.toThrow(
      /Command 2 \[ lpush \] failed: WRONGTYPE/,
    );
    const wire = await call(
      "/pipeline",
      [
        ["GET", s],
        ["LPUSH", s, "x"],
        ["SET", s, "OK"],
      ],
      {
        base64: true,
      },
    );
    expect(wire.body).toEqual([
      { result: b64("text") },
      { error: expect.stringMatching(/^WRONGTYPE /) },
      { result: "OK" },
    ]);
  });

  it("refuses connection-state commands in position", async () => {
    const wire = await call("/pipeline", [["PING"], ["SELECT", "1"], ["PING"]]);
    expect(wire.body).toEqual([
      { result: "PONG" },
      { error: expect.stringMatching(/^ERR SELECT is not supported/) },
      { result: "PONG" },
    ]);
  });
});

describe("multi-exec", () => {
  it("applies all commands and reports runtime errors in position", async () => {
    const k = key("tx");
    const results = await raw.multi().set(k, "v").incr(k).get(k).exec({ keepErrors: true });
    expect(results.map((r) => r.result)).toEqual(["OK", undefined, "v"]);
    expect(results[1]?.error).toMatch(/^ERR value is not an integer/);
  });

  it("never interleaves concurrent transactions with other traffic", async () => {
    const k = key("counter");
    const transactions = Array.from({ length: 100 }, () =>
      raw.multi().incr(k).incr(k).get(k).exec(),
    );
    const noise = Array.from({ length: 100 }, () => call("/", ["INCR", k]));
    const results = await Promise.all(transactions);
    await Promise.all(noise);
    for (const [first, second, read] of results) {
      expect(second).toBe(Number(first) + 1);
      expect(read).toBe(String(second));
    }
    expect(await raw.get(k)).toBe("300");
  });

  it("discards the whole transaction on a queue-time error", async () => {
    const [a, h] = [key("a"), key("h")];
    const tx = raw.multi().set(a, "1").hset(h, {}).incr(a);
    const failure = await tx.exec().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(errors.UpstashError);
    expect(String(failure)).toMatch(/EXECABORT/);
    expect(await raw.exists(a, h)).toBe(0);
    const wire = await call("/multi-exec", [["SET", a, "1"], ["NOSUCHCOMMAND"]]);
    expect(wire.status).toBe(400);
    expect(wire.body).toEqual({ error: expect.stringMatching(/^EXECABORT .*command 2: ERR /) });
    expect(await raw.exists(a)).toBe(0);
  });

  it("refuses nested transaction commands without applying anything", async () => {
    const a = key("a");
    const wire = await call("/multi-exec", [["SET", a, "1"], ["EXEC"]]);
    expect(wire).toMatchObject({
      status: 400,
      body: { error: expect.stringMatching(/^ERR EXEC/) },
    });
    expect(await raw.exists(a)).toBe(0);
  });
});

describe("scripts", () => {
  it("runs EVAL and EVALSHA and passes NOSCRIPT through", async () => {
    const k = key("script");
    const script = "return redis.call('SET', KEYS[1], ARGV[1])";
    expect(await raw.eval(script, [k], ["aGVsbG8="])).toBe("OK");
    const sha = await raw.scriptLoad(script);
    expect(await raw.evalsha(sha, [k], ["abcd"])).toBe("OK");
    expect(await raw.get(k)).toBe("abcd");
    const unknown = await call("/", ["EVALSHA", "0".repeat(40), 0]);
    expect(unknown.status).toBe(400);
    expect((unknown.body as { error: string }).error).toMatch(/^NOSCRIPT /);
  });

  it("lets createScript fall back to EVAL after SCRIPT FLUSH", async () => {
    // A private server: SCRIPT FLUSH is server-wide and other test files share the main one.
    const server = await startRedisServer();
    const options = { redisUrl: server.url, token: "t", allowAdminCommands: true };
    const bridge = await startRestBridge(options); // SCRIPT FLUSH is administration
    try {
      const client = new Redis({ url: bridge.url, token: "t", automaticDeserialization: false });
      const script = client.createScript<string>("return ARGV[1] .. redis.call('GET', KEYS[1])");
      await client.set("k", "=");
      expect(await script.exec(["k"], ["a"])).toBe("a=");
      expect(await client.scriptExists(script.sha1)).toEqual([1]);
      await client.scriptFlush();
      await expect(client.evalsha(script.sha1, ["k"], ["b"])).rejects.toThrow(/NOSCRIPT/);
      expect(await script.exec(["k"], ["b"])).toBe("b=");
    } finally {
      await bridge.close();
      await server.close();
    }
  });
});

describe("command policy", () => {
  it.each(
    [
      ["MULTI"],
      ["exec"],
      ["WATCH", "k"],
      ["SELECT", "1"],
      ["AUTH", "x"],
      ["HELLO", "3"],
      ["QUIT"],
      ["RESET"],
      ["SUBSCRIBE", "c"],
      ["psubscribe", "c*"],
      ["MONITOR"],
      ["CLIENT", "REPLY", "OFF"],
    ].map((command) => [command.join(" "), command] as const),
  )("refuses %s", async (_, command) => {
    const wire = await call("/", command);
    expect(wire.status).toBe(400);
    expect((wire.body as { error: string }).error).toMatch(/^ERR .*not supported/);
    // The shared connection still works afterwards.
    expect((await call("/", ["PING"])).body).toEqual({ result: "PONG" });
  });

  it("runs blocking commands without stalling other requests", async () => {
    const [list, stream] = [key("list"), key("stream")];
    const popped = call("/", ["BLPOP", list, 0]);
    const read = call("/", ["XREAD", "BLOCK", 0, "STREAMS", stream, "0-0"]);
    const others = await Promise.all(Array.from({ length: 20 }, () => call("/", ["PING"])));
    expect(others.map((pong) => pong.body)).toEqual(others.map(() => ({ result: "PONG" })));
    await raw.rpush(list, "item");
    expect((await popped).body).toEqual({ result: [list, "item"] });
    await raw.xadd(stream, "1-1", { f: "v" });
    expect((await read).body).toEqual({ result: [[stream, [["1-1", ["f", "v"]]]]] });
  });

  it("drops the blocking connection when the HTTP client goes away", async () => {
    // A private server, so that other test files' clients don't count as blocked.
    const server = await startRedisServer();
    const bridge = await startRestBridge({ redisUrl: server.url, token: "t" });
    const monitor = new RespConnection(server.url);
    const blockedClients = async () => {
      const info = String(await monitor.command(["INFO", "clients"]));
      return Number(/blocked_clients:(\d+)/.exec(info)?.[1]);
    };
    try {
      const controller = new AbortController();
      const pending = fetch(bridge.url, {
        method: "POST",
        headers: { authorization: "Bearer t" },
        body: JSON.stringify(["BLPOP", "never", 0]),
        signal: controller.signal,
      });
      // Polling the real server is the only way to see the BLPOP arrive and leave.
      await expect.poll(blockedClients).toBe(1);
      controller.abort();
      await expect(pending).rejects.toThrow();
      await expect.poll(blockedClients).toBe(0);
    } finally {
      await monitor.close();
      await bridge.close();
      await server.close();
    }
  });

  it("runs a pipeline with a blocking command in order on its own connection", async () => {
    const list = key("list");
    const wire = await call("/pipeline", [["RPUSH", list, "a"], ["BLPOP", list, 1], ["PING"]]);
    expect(wire.body).toEqual([{ result: 1 }, { result: [list, "a"] }, { result: "PONG" }]);
  });
});

describe("server administration", () => {
  // A private server: were a command not refused, it would wipe, reconfigure or stop the one
  // every other test file shares.
  let server: RedisServer;
  let bridge: RestBridge;
  let admin: RespConnection;
  const sentinel = "sentinel";
  const at = (path: string, json?: unknown, options: CallOptions = {}) =>
    call(path, json, { auth: "Bearer t", base: bridge.url, ...options });
  /** The sentinel key is still there and the server still answers through the bridge. */
  const untouched = async () => {
    expect(await admin.command(["GET", sentinel])).toEqual(Buffer.from("kept"));
    expect((await at("/", ["PING"])).body).toEqual({ result: "PONG" });
  };

  beforeAll(async () => {
    server = await startRedisServer();
    bridge = await startRestBridge({ redisUrl: server.url, token: "t" });
    admin = new RespConnection(server.url);
    await admin.command(["SET", sentinel, "kept"]);
  });
  afterAll(async () => {
    await admin.close();
    await bridge.close();
    await server.close();
  });

  it.each([
    ["FLUSHALL", ["FLUSHALL"]],
    ["FLUSHDB", ["flushdb", "ASYNC"]],
    ["SWAPDB", ["SWAPDB", "0", "1"]],
    ["CONFIG", ["CONFIG", "SET", "maxmemory", "1mb"]],
    ["CONFIG", ["config", "get", "requirepass"]],
    ["SHUTDOWN", ["SHUTDOWN", "NOSAVE"]],
    ["ACL", ["ACL", "SETUSER", "intruder", "on", ">pw", "+@all"]],
    ["CLIENT KILL", ["CLIENT", "KILL", "TYPE", "normal"]],
    ["CLIENT PAUSE", ["client", "pause", "2000"]],
    ["CLIENT LIST", ["Client", "List"]],
    ["CLIENT", ["CLIENT", "some-value"]],
    ["DEBUG", ["DEBUG", "SLEEP", "2"]],
    ["SCRIPT FLUSH", ["SCRIPT", "FLUSH"]],
    ["SCRIPT KILL", ["script", "kill"]],
    ["FUNCTION FLUSH", ["FUNCTION", "FLUSH"]],
    ["FUNCTION LOAD", ["FUNCTION", "LOAD", "#!lua name=lib\nredis.register_function('f', f)"]],
    ["SAVE", ["SAVE"]],
    ["BGSAVE", ["BGSAVE"]],
    ["REPLICAOF", ["REPLICAOF", "127.0.0.1", "1"]],
    ["MIGRATE", ["MIGRATE", "127.0.0.1", "1", sentinel, "0", "1000"]],
    ["SLOWLOG", ["SLOWLOG", "GET"]],
    ["MODULE", ["MODULE", "LOAD", "/tmp/evil.so"]],
    ["LATENCY", ["LATENCY", "RESET"]],
    // Redis matches command names only up to a NUL byte.
    ["FLUSHALL", ["FlushAll\u0000x"]],
  ])("refuses %s by default, naming no argument", async (label, command) => {
    const wire = await at("/", command);
    expect(wire.status).toBe(400);
    const error = (wire.body as { error: string }).error;
    expect(error).toBe(
      `ERR command not allowed through the bridge: ${label} ` +
        "(start it with allowAdminCommands / --allow-admin-commands)",
    );
    await untouched();
  });

  it("refuses them in path form too", async () => {
    for (const path of ["/flushall", "/CONFIG/SET/maxmemory/1mb", "/flush%41ll", "/client/kill"]) {
      for (const method of ["GET", "POST"]) {
        const wire = await at(path, undefined, { method });
        expect(wire.status, `${method} ${path}`).toBe(400);
        expect(wire.text).toMatch(/not allowed through the bridge/);
      }
    }
    await untouched();
  });

  it("answers a refused pipeline entry with an error and runs the others", async () => {
    const k = key("pipeline");
    const wire = await at("/pipeline", [
      ["SET", k, "v"],
      ["FLUSHALL"],
      ["config", "set", "maxmemory", "1mb"],
      ["GET", k],
    ]);
    expect(wire.body).toEqual([
      { result: "OK" },
      { error: expect.stringMatching(/^ERR command not allowed through the bridge: FLUSHALL /) },
      { error: expect.stringMatching(/^ERR command not allowed through the bridge: CONFIG /) },
      { result: "v" },
    ]);
    await untouched();
    expect(await admin.command(["CONFIG", "GET", "maxmemory"])).toEqual([
      Buffer.from("maxmemory"),
      Buffer.from("0"),
    ]);
  });

  it("refuses a whole transaction that holds one, before anything runs", async () => {
    const k = key("tx");
    const wire = await at("/multi-exec", [["SET", k, "v"], ["flushdb"]]);
    expect(wire.status).toBe(400);
    expect((wire.body as { error: string }).error).toMatch(
      /^ERR command not allowed through the bridge: FLUSHDB .*\(command 2\)$/,
    );
    expect(await admin.command(["EXISTS", k])).toBe(0);
    await untouched();
  });

  it("keeps ordinary and read-only commands, scripts included", async () => {
    const k = key("ordinary");
    const script = "return redis.call('SET', KEYS[1], ARGV[1])";
    const sha = (await at("/", ["SCRIPT", "LOAD", script])).body as { result: string };
    const wires = await Promise.all([
      at("/", ["SET", k, "v"]),
      at("/", ["EVAL", script, 1, k, "w"]),
      at("/", ["EVALSHA", sha.result, 1, k, "x"]),
      at("/", ["script", "exists", sha.result]),
      at("/", ["CLIENT", "ID"]),
      at("/", ["FUNCTION", "LIST"]),
      at("/", ["INFO", "server"]),
      at("/", ["MEMORY", "USAGE", sentinel]),
      at("/", ["LASTSAVE"]),
      at("/", ["MOVE", key("absent"), "1"]),
    ]);
    expect(wires.map((w) => w.status)).toEqual(wires.map(() => 200));
    expect((await at("/", ["GET", k])).body).toEqual({ result: "x" });
  });

  it("still refuses connection-state subcommands", async () => {
    for (const command of [
      ["CLIENT", "SETNAME", "x"],
      ["CLIENT", "TRACKING", "on"],
      ["SCRIPT", "DEBUG", "yes"],
    ]) {
      const wire = await at("/", command);
      expect(wire.status).toBe(400);
      expect(wire.text).toMatch(/is not supported by the REST bridge/);
    }
  });

  it("runs them all with allowAdminCommands", async () => {
    const open = await startRestBridge({
      redisUrl: server.url,
      token: "t",
      allowAdminCommands: true,
    });
    const via = (path: string, json: unknown) =>
      call(path, json, { auth: "Bearer t", base: open.url });
    try {
      expect((await via("/", ["CONFIG", "GET", "maxmemory"])).body).toEqual({
        result: ["maxmemory", "0"],
      });
      expect((await via("/", ["CLIENT", "LIST"])).status).toBe(200);
      expect((await via("/", ["script", "flush"])).body).toEqual({ result: "OK" });
      const k = key("open");
      expect((await via("/pipeline", [["SET", k, "v"], ["FLUSHDB"], ["EXISTS", k]])).body).toEqual([
        { result: "OK" },
        { result: "OK" },
        { result: 0 },
      ]);
      expect((await via("/multi-exec", [["SET", k, "v"], ["FLUSHALL"]])).body).toEqual([
        { result: "OK" },
        { result: "OK" },
      ]);
      expect(await admin.command(["DBSIZE"])).toBe(0);
      // Connection state stays refused: it would leak into every other request.
      expect((await via("/", ["SELECT", "1"])).status).toBe(400);
    } finally {
      await open.close();
    }
  });
});

describe("concurrency and resilience", () => {
  it("answers hundreds of parallel requests correctly", async () => {
    const keys = Array.from({ length: 400 }, (_, i) => key(`p${i}`));
    await Promise.all(keys.map((k, i) => call("/", ["SET", k, `value-${i}`])));
    const wire = await Promise.all(keys.map((k) => call("/", ["GET", k], { base64: true })));
    expect(wire.map((w) => w.body)).toEqual(keys.map((_, i) => ({ result: b64(`value-${i}`) })));
    const viaClient = await Promise.all(keys.map((k) => defaults.get(k)));
    expect(viaClient).toEqual(keys.map((_, i) => `value-${i}`));
  });

  it("reconnects after the Redis connection is killed", async () => {
    const k = key("reconnect");
    await raw.set(k, "before");
    await direct.command(["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    // A request racing the kill may fail with 500; the ones after it must reconnect.
    const racing = await call("/", ["PING"]);
    expect([200, 500]).toContain(racing.status);
    expect(await raw.get(k)).toBe("before");
  });

  it("answers 500 without leaking the token when Redis is unreachable", async () => {
    const server = await startRedisServer();
    const secret = `secret-${randomUUID()}`;
    const bridge = await startRestBridge({ redisUrl: server.url, token: secret });
    await server.close();
    try {
      const wire = await call("/", ["GET", "k"], { auth: `Bearer ${secret}`, base: bridge.url });
      expect(wire.status).toBe(500);
      expect((wire.body as { error: string }).error).toMatch(/^ERR Redis is unavailable/);
      expect(wire.text).not.toContain(secret);
      const client = new Redis({ url: bridge.url, token: secret, retry: false });
      await expect(client.get("k")).rejects.toBeInstanceOf(errors.UpstashError);
    } finally {
      await bridge.close();
    }
  });

  it("closes with keep-alive sockets open", async () => {
    const bridge = await startRestBridge({ redisUrl: inject("redisUrl"), token: "t" });
    const wire = await call("/", ["PING"], { auth: "Bearer t", base: bridge.url });
    expect(wire.body).toEqual({ result: "PONG" });
    await bridge.close();
    await expect(fetch(bridge.url, { method: "POST" })).rejects.toThrow();
  });

  it("validates its options at startup", async () => {
    const redisUrl = inject("redisUrl");
    await expect(startRestBridge({ redisUrl, token: "" })).rejects.toThrow(TypeError);
    await expect(startRestBridge({ redisUrl: "nope", token: "t" })).rejects.toThrow(TypeError);
    await expect(startRestBridge({ redisUrl, token: "t", port: -1 })).rejects.toThrow(TypeError);
  });

  it("refuses a token under 16 characters unless it listens on loopback only", async () => {
    const redisUrl = inject("redisUrl");
    const short = "short-secret";
    for (const host of ["0.0.0.0", "::", "", "bridge.example"]) {
      const failure = await startRestBridge({ redisUrl, token: short, host }).catch(
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(TypeError);
      expect(String(failure)).toMatch(/at least 16 characters when `host` is not a loopback/);
      expect(String(failure)).not.toContain(short);
    }
    for (const host of ["127.0.0.1", "localhost", "::1"]) {
      const bridge = await startRestBridge({ redisUrl, token: short, host });
      const wire = await call("/", ["PING"], { auth: `Bearer ${short}`, base: bridge.url });
      expect(wire.body).toEqual({ result: "PONG" });
      await bridge.close();
    }
    const strong = randomBytes(24).toString("base64url");
    await (await startRestBridge({ redisUrl, token: strong, host: "0.0.0.0" })).close();
  });

  it("knows which hosts are loopback", () => {
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    expect(isLoopbackHost("LocalHost")).toBe(true);
    for (const host of ["0.0.0.0", "::", "", "10.0.0.1", "::ffff:10.0.0.1", "localhost.evil"]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });
});

describe("startRedisServer", () => {
  it("fails with a typed error when the binary is missing", async () => {
    const failure = await startRedisServer({ path: "/nonexistent/redis-server" }).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(RedisServerError);
    expect(failure).toMatchObject({ code: "REDIS_SERVER_NOT_FOUND" });
    expect(String(failure)).toContain("apt-get install -y redis-server");
  });
});
