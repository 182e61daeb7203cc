import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RespConnection } from "./resp.js";

/** What went wrong in {@link startRedisServer}. */
export type RedisServerErrorCode =
  | "REDIS_SERVER_NOT_FOUND"
  | "REDIS_SERVER_START_FAILED"
  | "REDIS_SERVER_TIMEOUT";

/** Thrown by {@link startRedisServer}; `code` says why, `cause` keeps the underlying error. */
export class RedisServerError extends Error {
  /** Always `"RedisServerError"`. */
  override name = "RedisServerError";
  constructor(
    /** Why the server could not be started or reached. */
    readonly code: RedisServerErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /**
   * The `redis-server` executable.
   * @default "redis-server" (looked up on PATH)
   */
  path?: string;
  /**
   * Require this password (`requirepass`); it is then part of the returned `url`.
   * @default undefined (no auth)
   */
  password?: string;
  /**
   * Extra command-line arguments, appended last, e.g. `["--maxmemory", "64mb"]`.
   * @default []
   */
  args?: string[];
  /**
   * Milliseconds to wait for the server to answer before giving up.
   * @default 10_000
   */
  startTimeoutMs?: number;
}

/** A running `redis-server`, resolved by {@link startRedisServer}. */
export interface RedisServer {
  /** `redis://127.0.0.1:PORT` (with `:password@` when a password was set). */
  url: string;
  /** The loopback port it listens on. */
  port: number;
  /** Stops the server and deletes its temporary directory. */
  close(): Promise<void>;
}

const ATTEMPTS = 5;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/**
 * Polls until the server on `port` is our child: checking its pid guards against another
 * process that already held the port. Resolves `false` when the child exited first.
 */
async function waitReady(
  child: ChildProcess,
  url: string,
  deadline: number,
  exited: Promise<void>,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  while (!gone) {
    if (Date.now() > deadline) {
      throw new RedisServerError("REDIS_SERVER_TIMEOUT", "redis-server did not become ready");
    }
    const redis = new RespConnection(url, { connectTimeoutMs: 1_000 });
    try {
      const info = await redis.command(["INFO", "server"]);
      const pid = /process_id:(\d+)/.exec(info?.toString() ?? "")?.[1];
      if (Number(pid) === child.pid) return true;
    } catch {
      // Not listening yet (or a stranger answered); poll again.
    } finally {
      await redis.close();
    }
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20))]);
  }
  return false;
}

async function attempt(options: RedisServerOptions, dir: string): Promise<RedisServer | null> {
  const port = await freePort();
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : "";
  const url = `redis://${auth}127.0.0.1:${port}`;
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--daemonize",
    "no",
    ...(options.password ? ["--requirepass", options.password] : []),
    ...(options.args ?? []),
  ];
  const child = spawn(options.path ?? "redis-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  // "close", not "exit": by then stdout is fully read, so the port-collision check sees it.
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  try {
    await spawned;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
    throw new RedisServerError(
      missing ? "REDIS_SERVER_NOT_FOUND" : "REDIS_SERVER_START_FAILED",
      missing
        ? `redis-server not found (${options.path ? "at the given path" : "on PATH"}). ` +
            "Install it with `apt-get install -y redis-server` (or `brew install redis`), " +
            "or pass the `path` option."
        : "redis-server could not be started",
      { cause: error },
    );
  }
  child.on("error", () => {}); // a failed kill() later must not crash the host process
  // Don't leave an orphan redis-server behind if the parent exits without calling close().
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);
  const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
  let ready = false;
  try {
    ready = await waitReady(child, url, deadline, exited);
  } finally {
    if (!ready) {
      process.off("exit", killOnExit);
      await stop(child);
    }
  }
  if (!ready) {
    if (/address already in use/i.test(output)) return null;
    const tail = output.trim().split("\n").slice(-3).join(" | ");
    const safe = options.password ? tail.replaceAll(options.password, "***") : tail;
    throw new RedisServerError(
      "REDIS_SERVER_START_FAILED",
      `redis-server exited during startup: ${safe}`,
    );
  }
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closing ??= stop(child).then(() => {
        process.off("exit", killOnExit);
      });
      return closing;
    },
  };
}

/**
 * Starts a throwaway `redis-server` on a free loopback port, without persistence, for tests,
 * examples and local development. Retries with another port if the chosen one is taken.
 *
 * @throws {RedisServerError} `REDIS_SERVER_NOT_FOUND` when the binary is missing.
 * @example
 * const redis = await startRedisServer();
 * const bridge = await startRestBridge({ redisUrl: redis.url, token: "dev" });
 * // ...
 * await bridge.close();
 * await redis.close();
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "edgecache-redis-"));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    for (let i = 0; i < ATTEMPTS; i++) {
      const server = await attempt(options, dir);
      if (server) {
        return {
          ...server,
          close: () => server.close().then(cleanup),
        };
      }
    }
  } catch (error) {
    await cleanup();
    throw error;
  }
  await cleanup();
  throw new RedisServerError(
    "REDIS_SERVER_START_FAILED",
    `redis-server could not find a free port after ${ATTEMPTS} attempts`,
  );
}
