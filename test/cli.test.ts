import { randomUUID } from "node:crypto";
import { Redis } from "@upstash/redis";
import { describe, expect, inject, it, onTestFinished } from "vitest";
import { type CliIo, CliUsageError, main, parseCliArgs } from "../src/node/cli.js";

/** One command through a bridge, the way a client sends it. */
async function call(base: string, token: string, command: unknown[]) {
  const response = await fetch(base, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: JSON.stringify(command),
  });
  return { status: response.status, body: (await response.json()) as unknown };
}

/**
 * Runs main() in-process. `announced` resolves the URL it prints, `printedToken` the token
 * it prints when it made one; `stop()` ends it.
 */
function runCli(argv: string[], env: Record<string, string | undefined> = {}) {
  const controller = new AbortController();
  const out: string[] = [];
  const err: string[] = [];
  let announce: (url: string) => void = () => {};
  let tell: (token: string) => void = () => {};
  const announced = new Promise<string>((resolve) => {
    announce = resolve;
  });
  const printedToken = new Promise<string>((resolve) => {
    tell = resolve;
  });
  const io: CliIo = {
    stdout: (line) => {
      out.push(line);
      const url = /^UPSTASH_REDIS_REST_URL=(\S+)$/.exec(line)?.[1];
      if (url) announce(url);
      const token = /^UPSTASH_REDIS_REST_TOKEN=(\S+)$/.exec(line)?.[1];
      if (token) tell(token);
    },
    stderr: (line) => err.push(line),
    env,
    signal: controller.signal,
  };
  const exit = main(argv, io);
  /** The URL, or the exit code as text when it stopped first (a failure). */
  const started = Promise.race([announced, exit.then(String)]);
  return { started, printedToken, exit, out, err, stop: () => controller.abort() };
}

describe("parseCliArgs", () => {
  it("parses bridge and dev command lines", () => {
    expect(parseCliArgs(["bridge", "--token", "t", "--port", "0"])).toEqual({
      kind: "bridge",
      redisUrl: "redis://127.0.0.1:6379",
      port: 0,
      host: "127.0.0.1",
      token: "t",
      allowAdminCommands: false,
    });
    expect(
      parseCliArgs(["bridge", "--redis", "redis://r:1"], { EDGECACHE_BRIDGE_TOKEN: "e" }),
    ).toMatchObject({ redisUrl: "redis://r:1", token: "e", port: 8079 });
    expect(parseCliArgs(["dev", "--allow-admin-commands"])).toEqual({
      kind: "dev",
      port: 8079,
      host: "127.0.0.1",
      token: undefined,
      allowAdminCommands: true,
      redisServerPath: undefined,
    });
    expect(parseCliArgs(["--help"])).toEqual({ kind: "help" });
    expect(() => parseCliArgs(["bridge", "--token", "t", "--port", "x"])).toThrow(/--port/);
    expect(() => parseCliArgs(["bridge", "--nope"])).toThrow(CliUsageError);
    expect(() => parseCliArgs([])).toThrow(/Missing command/);
  });

  it("leaves the token out when none is given, for main() to make one", () => {
    expect(parseCliArgs(["bridge"])).toMatchObject({ kind: "bridge", token: undefined });
    expect(parseCliArgs(["dev"])).toMatchObject({ kind: "dev", token: undefined });
  });

  it("refuses a token under 16 characters on a host that is not loopback", () => {
    for (const argv of [
      ["bridge", "--token", "a", "--host", "0.0.0.0"],
      ["dev", "--token", "tooshort", "--host", "::"],
      ["bridge", "--host", "10.1.2.3", "--token", "fifteen-chars!!"],
    ]) {
      const attempt = () => parseCliArgs(argv);
      expect(attempt).toThrow(CliUsageError);
      expect(attempt).toThrow(/at least 16 characters when --host is not loopback/);
    }
    const fromEnv = () =>
      parseCliArgs(["bridge", "--host", "0.0.0.0"], { EDGECACHE_BRIDGE_TOKEN: "x" });
    expect(fromEnv).toThrow(/at least 16 characters/);
    // Loopback takes any token; elsewhere 16 characters do, and so does none (a random one).
    expect(parseCliArgs(["dev", "--token", "dev"])).toMatchObject({ token: "dev" });
    expect(parseCliArgs(["bridge", "--token", "a", "--host", "::1"])).toMatchObject({ token: "a" });
    const sixteen = "0123456789abcdef";
    const wide = parseCliArgs(["bridge", "--token", sixteen, "--host", "0.0.0.0"]);
    expect(wide).toMatchObject({ token: sixteen, host: "0.0.0.0" });
    expect(parseCliArgs(["bridge", "--host", "0.0.0.0"])).toMatchObject({ token: undefined });
  });
});

/** Runs main() until `use` is done with the URL it printed, then expects a clean exit. */
async function serving(argv: string[], use: (url: string, cli: Cli) => Promise<void>) {
  const cli = runCli(argv);
  // Even when the test fails or times out, so that no redis-server outlives it.
  onTestFinished(async () => {
    cli.stop();
    await cli.exit;
  });
  await use(await cli.started, cli);
  cli.stop();
  expect(await cli.exit).toBe(0);
  return cli;
}
type Cli = ReturnType<typeof runCli>;

describe("main", () => {
  it("serves a bridge until stopped, never printing a given token", async () => {
    const secret = `tok-${randomUUID()}`;
    const argv = ["bridge", "--redis", inject("redisUrl"), "--port", "0", "--token", secret];
    let bridgeUrl = "";
    const cli = await serving(argv, async (url) => {
      bridgeUrl = url;
      expect((await call(url, secret, ["PING"])).body).toEqual({ result: "PONG" });
    });
    expect(cli.out.join("\n")).not.toContain(secret);
    expect(cli.out.join("\n")).not.toMatch(/UPSTASH_REDIS_REST_TOKEN/);
    expect(cli.err).toEqual([]);
    await expect(fetch(bridgeUrl, { method: "POST" })).rejects.toThrow();
  });

  it("makes a random token when none is given, prints it once, and it works", async () => {
    const argv = ["bridge", "--redis", inject("redisUrl"), "--port", "0"];
    const cli = await serving(argv, async (url, cli) => {
      const token = await cli.printedToken;
      expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/); // 24 random bytes, base64url
      expect(cli.out.filter((line) => line.includes(token))).toHaveLength(1);
      expect((await call(url, token, ["PING"])).body).toEqual({ result: "PONG" });
      expect((await call(url, "dev", ["PING"])).status).toBe(401);
    });
    expect(cli.err).toEqual([]);
  });

  it("dev: a random token, and no server administration, from scripts either", async () => {
    await serving(["dev", "--port", "0"], async (url, cli) => {
      const token = await cli.printedToken;
      const client = new Redis({ url, token, automaticDeserialization: false });
      expect(await client.set("k", "aGVsbG8=")).toBe("OK");
      expect(await client.get("k")).toBe("aGVsbG8=");
      const flush = await call(url, token, ["FLUSHALL"]);
      expect(flush).toMatchObject({ status: 400 });
      expect(JSON.stringify(flush.body)).toMatch(/not allowed through the bridge: FLUSHALL/);
      // Redis lets a script run FLUSHALL; dev's ACL does not.
      const scripted = await call(url, token, ["EVAL", "return redis.call('FLUSHALL')", 0]);
      expect(scripted.status).toBe(400);
      expect(JSON.stringify(scripted.body)).toMatch(/can't run this command/);
      expect(await client.get("k")).toBe("aGVsbG8=");
    });
  });

  it("dev --allow-admin-commands runs them, and says so", async () => {
    const argv = ["dev", "--port", "0", "--token", "dev", "--allow-admin-commands"];
    const cli = await serving(argv, async (url) => {
      await call(url, "dev", ["SET", "k", "v"]);
      expect((await call(url, "dev", ["FLUSHALL"])).body).toEqual({ result: "OK" });
      const scripted = await call(url, "dev", ["EVAL", "return redis.call('FLUSHDB')", 0]);
      expect(scripted.body).toEqual({ result: "OK" });
      expect((await call(url, "dev", ["DBSIZE"])).body).toEqual({ result: 0 });
    });
    expect(cli.err.join("\n")).toMatch(/warning: --allow-admin-commands/);
  });

  it("prints help and usage errors without echoing the token", async () => {
    const help = runCli(["--help"]);
    expect(await help.exit).toBe(0);
    expect(help.out.join("\n")).toMatch(/edgecache bridge/);
    expect(help.out.join("\n")).toMatch(/--allow-admin-commands/);
    const usage = runCli(["bridge", "--token", "s3cret", "--port", "99999"]);
    expect(await usage.exit).toBe(2);
    expect(usage.err.join("\n")).toMatch(/--port/);
    expect(usage.err.join("\n")).not.toContain("s3cret");
    const weak = runCli(["dev", "--host", "0.0.0.0"], { EDGECACHE_BRIDGE_TOKEN: "s3cret" });
    expect(await weak.exit).toBe(2);
    expect(weak.err.join("\n")).toMatch(/at least 16 characters/);
    expect(weak.err.join("\n")).not.toContain("s3cret");
  });
});
