import { Buffer } from "node:buffer";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startRedisServer } from "../src/node/index.js";
import {
  RedisConnectionError,
  RedisReplyError,
  RespConnection,
  SimpleString,
} from "../src/node/resp.js";

const key = (name: string) => `test:resp:${randomUUID()}:${name}`;
const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

/** A fake Redis that answers each command with a canned reply, split into tiny writes. */
async function fakeRedis(
  reply: Buffer,
  chunkSize: number,
): Promise<{ url: string; server: Server }> {
  const server = createServer((socket: Socket) => {
    socket.on("data", () => {
      for (let i = 0; i < reply.length; i += chunkSize) {
        socket.write(reply.subarray(i, i + chunkSize));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { url: `redis://127.0.0.1:${port}`, server };
}

describe("RespConnection against redis-server", () => {
  let redis: RespConnection;
  beforeAll(() => {
    redis = new RespConnection(inject("redisUrl"));
  });
  afterAll(async () => {
    await redis.close();
  });

  it("round-trips every byte value exactly", async () => {
    const k = key("bytes");
    expect(await redis.command(["SET", k, allBytes])).toEqual(new SimpleString("OK"));
    const value = await redis.command(["GET", k]);
    expect(Buffer.isBuffer(value) && value.equals(allBytes)).toBe(true);
  });

  it("maps integers, nil and nested arrays", async () => {
    const k = key("stream");
    expect(await redis.command(["INCRBY", key("n"), 41])).toBe(41);
    expect(await redis.command(["GET", key("missing")])).toBeNull();
    await redis.command(["XADD", k, "1-1", "f", "v"]);
    const range = await redis.command(["XRANGE", k, "-", "+"]);
    expect(range).toEqual([[Buffer.from("1-1"), [Buffer.from("f"), Buffer.from("v")]]]);
  });

  it("throws a top-level error reply but returns nested ones as values", async () => {
    const k = key("tx");
    await redis.command(["SET", k, "text"]);
    await expect(redis.command(["INCR", k])).rejects.toBeInstanceOf(RedisReplyError);
    const replies = await redis.batch([["MULTI"], ["INCR", k], ["GET", k], ["EXEC"]]);
    const exec = replies[3];
    expect(Array.isArray(exec)).toBe(true);
    const [incr, get] = exec as unknown[];
    expect(incr).toBeInstanceOf(RedisReplyError);
    expect((incr as RedisReplyError).message).toMatch(/^ERR value is not an integer/);
    expect(get).toEqual(Buffer.from("text"));
  });

  it("matches many concurrent callers to their own replies", async () => {
    const keys = Array.from({ length: 300 }, (_, i) => key(`c${i}`));
    await Promise.all(keys.map((k, i) => redis.command(["SET", k, `v${i}`])));
    const values = await Promise.all(keys.map((k) => redis.command(["GET", k])));
    expect(values.map(String)).toEqual(keys.map((_, i) => `v${i}`));
  });

  it("fails pending commands when the connection drops and reconnects on the next one", async () => {
    const victim = new RespConnection(inject("redisUrl"));
    const id = await victim.command(["CLIENT", "ID"]);
    // Settled into a value at once: the rejection may land while CLIENT KILL is awaited.
    const blocked = victim.command(["BLPOP", key("never"), 0]).then(
      () => "resolved",
      (error: unknown) => error,
    );
    await redis.command(["CLIENT", "KILL", "ID", String(id)]);
    expect(await blocked).toBeInstanceOf(RedisConnectionError);
    expect(await victim.command(["PING"])).toEqual(new SimpleString("PONG"));
    await victim.close();
  });
});

describe("RespConnection parsing and connecting", () => {
  it("parses replies that arrive one byte at a time", async () => {
    const reply = Buffer.concat([
      Buffer.from("*5\r\n+OK\r\n:-7\r\n$-1\r\n*2\r\n$3\r\na\r\n\r\n-ERR nested\r\n$256\r\n"),
      allBytes,
      Buffer.from("\r\n"),
    ]);
    const { url, server } = await fakeRedis(reply, 1);
    const redis = new RespConnection(url);
    const value = (await redis.command(["ANYTHING"])) as unknown[];
    expect(value.slice(0, 3)).toEqual([new SimpleString("OK"), -7, null]);
    expect(value[3]).toEqual([Buffer.from("a\r\n"), new RedisReplyError("ERR nested")]);
    expect((value[4] as Buffer).equals(allBytes)).toBe(true);
    await redis.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it("parses a large bulk string split across many chunks", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const reply = Buffer.concat([Buffer.from(`$${big.length}\r\n`), big, Buffer.from("\r\n")]);
    const { url, server } = await fakeRedis(reply, 16 * 1024);
    const redis = new RespConnection(url);
    const value = await redis.command(["GET", "big"]);
    expect(Buffer.isBuffer(value) && value.equals(big)).toBe(true);
    await redis.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it("rejects with a connection error when nothing listens", async () => {
    const { url, server } = await fakeRedis(Buffer.alloc(0), 1);
    await new Promise((resolve) => server.close(resolve));
    const redis = new RespConnection(url);
    await expect(redis.command(["PING"])).rejects.toBeInstanceOf(RedisConnectionError);
    await redis.close();
  });

  it("rejects URLs it cannot serve without echoing them", () => {
    expect(() => new RespConnection("http://user:secret@host")).toThrow(TypeError);
    expect(() => new RespConnection("http://user:secret@host")).not.toThrow(/secret/);
  });

  it("sends AUTH and SELECT on connect, also over a unix socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "edgecache-resp-"));
    const socketPath = join(dir, "redis.sock");
    const server = await startRedisServer({
      password: "p@ss word",
      args: ["--unixsocket", socketPath, "--unixsocketperm", "700"],
    });
    try {
      const tcp = new RespConnection(`${server.url}/3`);
      await tcp.command(["SET", "where", "db3"]);
      expect(String(await tcp.command(["GET", "where"]))).toBe("db3");
      const db0 = new RespConnection(server.url);
      expect(await db0.command(["GET", "where"])).toBeNull();
      const unix = new RespConnection(`unix://${socketPath}?db=3&password=p%40ss%20word`);
      expect(String(await unix.command(["GET", "where"]))).toBe("db3");
      const wrong = new RespConnection(server.url.replace("p%40ss%20word", "nope"));
      await expect(wrong.command(["PING"])).rejects.toThrow(/handshake failed: WRONGPASS/);
      await Promise.all([tcp.close(), db0.close(), unix.close(), wrong.close()]);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
