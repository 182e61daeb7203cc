import { Buffer } from "node:buffer";
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type AddressInfo, BlockList, isIP } from "node:net";
import { MIN_TOKEN_LENGTH } from "../hono/secret.js";
import { type SubscriptionHost, serveSubscription } from "./bridge-sse.js";
import { isBlocking, refusal } from "./command-policy.js";
import {
  RedisConnectionError,
  RedisReplyError,
  type RespArg,
  RespConnection,
  type RespValue,
  SimpleString,
} from "./resp.js";

/** Options of {@link startRestBridge}. */
export interface RestBridgeOptions {
  /** Redis to serve: `redis://[:password@]host:port[/db]`, `rediss://...` or `unix:///path.sock`. */
  redisUrl: string;
  /**
   * Bearer token clients must send (`Authorization: Bearer <token>`). Must not be empty, and
   * must be at least 16 characters when {@link RestBridgeOptions.host} is not a loopback
   * address: `randomBytes(24).toString("base64url")` makes a good one.
   */
  token: string;
  /**
   * TCP port to listen on; `0` picks a free one (read it back from {@link RestBridge.url}).
   * @default 0
   */
  port?: number;
  /**
   * Interface to listen on. Anything but a loopback address (`127.0.0.0/8`, `::1`,
   * `localhost`) requires a token of at least 16 characters.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * Let clients run server-administration commands (FLUSHALL, FLUSHDB, CONFIG, SHUTDOWN, ACL,
   * CLIENT KILL, DEBUG, SCRIPT FLUSH, ...). Off, they answer 400 `ERR command not allowed
   * through the bridge`. Turn it on only for test suites that reset the server between tests.
   * Commands that would break the bridge's shared connection (SELECT, AUTH, HELLO, MULTI,
   * SUBSCRIBE, MONITOR, CLIENT REPLY, ...) stay refused either way.
   * @default false
   */
  allowAdminCommands?: boolean;
  /**
   * Largest request body accepted, in bytes; bigger bodies get `413`.
   * @default 10_485_760 (10 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Ms between the comments that a pub/sub stream (`/subscribe`, `/psubscribe`) sends while
   * no message comes, so that proxies keep it open.
   * @default 15_000
   */
  heartbeatMs?: number;
  /**
   * Called with unexpected internal errors (bugs, not Redis or client errors). The error never
   * carries request bodies or the token.
   * @default undefined (ignored)
   */
  onError?: (error: unknown) => void;
}

/** A running bridge, resolved by {@link startRestBridge}. */
export interface RestBridge {
  /** Base URL for clients, e.g. `http://127.0.0.1:8079`. */
  url: string;
  /** The token clients must send; the same one that was passed in. */
  token: string;
  /** Stops accepting requests, drops keep-alive sockets and closes the Redis connections. */
  close(): Promise<void>;
}

type Json = string | number | null | Json[];
type Outcome = { result: Json } | { error: string };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `host` only listens on this machine: `127.0.0.0/8`, `::1` or `localhost`. */
export function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const family = isIP(host);
  if (family === 0) return false; // another hostname, or "" (which listens everywhere)
  const loopback = new BlockList(); // it also knows `::ffff:127.0.0.1` and `0:0:0:0:0:0:0:1`
  loopback.addSubnet("127.0.0.0", 8, "ipv4");
  loopback.addAddress("::1", "ipv6");
  return loopback.check(host, family === 6 ? "ipv6" : "ipv4");
}

function toCommand(value: unknown, what: string): RespArg[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, `ERR ${what} must be a non-empty JSON array`);
  }
  return value.map((arg) => {
    if (typeof arg === "string") return arg;
    if ((typeof arg === "number" && Number.isFinite(arg)) || typeof arg === "boolean") {
      return String(arg);
    }
    throw new HttpError(400, `ERR ${what} arguments must be strings or numbers`);
  });
}

function toCommands(body: Buffer): RespArg[][] {
  const value = parseJson(body);
  if (!Array.isArray(value) || value.length === 0) {
    throw new HttpError(400, "ERR request body must be a non-empty JSON array of commands");
  }
  return value.map((command) => toCommand(command, "each command"));
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new HttpError(400, "ERR request body is not valid JSON");
  }
}

/** Decodes `%XX` escapes to raw bytes, so path-form arguments can carry any binary value. */
function decodeSegment(segment: string): Buffer {
  const parts: Buffer[] = [];
  let last = 0;
  for (const match of segment.matchAll(/%([0-9a-fA-F]{2})/g)) {
    parts.push(Buffer.from(segment.slice(last, match.index)), Buffer.from(match[1] ?? "", "hex"));
    last = match.index + 3;
  }
  parts.push(Buffer.from(segment.slice(last)));
  return Buffer.concat(parts);
}

/**
 * Turns a reply into JSON the way Upstash does. With base64 on, every string is base64 of its
 * bytes except a top-level `+OK`: the client's decoder keeps a bare "OK" at the top but would
 * base64-decode it inside an array, so nested strings are always encoded.
 */
function toJson(value: RespValue, base64: boolean, top: boolean): Json {
  if (value === null || typeof value === "number") return value;
  if (Array.isArray(value)) return value.map((item) => toJson(item, base64, false));
  if (Buffer.isBuffer(value)) return value.toString(base64 ? "base64" : "utf8");
  const text = value instanceof SimpleString ? value.value : value.message;
  if (!base64 || (top && text === "OK" && value instanceof SimpleString)) return text;
  return Buffer.from(text).toString("base64");
}

function outcome(reply: RespValue, base64: boolean): Outcome {
  return reply instanceof RedisReplyError
    ? { error: reply.message }
    : { result: toJson(reply, base64, true) };
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limit) {
    return Promise.reject(new HttpError(413, "ERR request body too large"));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return chunks.push(chunk);
      // Stop buffering; node:http drains the rest once the 413 is sent.
      req.off("data", onData);
      reject(new HttpError(413, "ERR request body too large"));
    };
    req.on("data", onData);
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/**
 * Serves the Upstash Redis REST protocol in front of a plain Redis, so `@upstash/redis` (and
 * edgecache's Upstash store) can run against a local or self-hosted Redis.
 *
 * Routes: `POST /` (JSON command), `GET|POST /cmd/arg/...` (path form), `POST /pipeline`,
 * `POST /multi-exec`. Honors `Upstash-Encoding: base64`. Ordinary commands share one
 * pipelined Redis connection; blocking commands get a short-lived one of their own.
 * Server-administration commands are refused unless
 * {@link RestBridgeOptions.allowAdminCommands}: in a pipeline the refused entry answers
 * `{error}` and the others run; a transaction holding one is refused whole, before anything
 * runs. Lua scripts are not inspected, and Redis 7 still lets them run FLUSHALL, FLUSHDB,
 * SWAPDB and MIGRATE: where that matters, connect as a Redis user whose ACL denies those.
 *
 * @throws {TypeError} for an empty token, a token under 16 characters on a non-loopback
 * `host`, a bad port or Redis URL.
 * @example
 * const token = randomBytes(24).toString("base64url");
 * const bridge = await startRestBridge({ redisUrl: "redis://127.0.0.1:6379", token });
 * const redis = new Redis({ url: bridge.url, token: bridge.token });
 * await bridge.close();
 * @see docs/bridge.md (shipped in the package).
 */
export async function startRestBridge(options: RestBridgeOptions): Promise<RestBridge> {
  const { redisUrl, token, port = 0, host = "127.0.0.1", onError } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 10 * 1024 * 1024;
  const allowAdmin = options.allowAdminCommands === true;
  if (typeof token !== "string" || token.length === 0) {
    throw new TypeError("startRestBridge: `token` must be a non-empty string");
  }
  if (token.length < MIN_TOKEN_LENGTH && !isLoopbackHost(host)) {
    throw new TypeError(
      `startRestBridge: \`token\` must be at least ${MIN_TOKEN_LENGTH} characters ` +
        `when \`host\` is not a loopback address (got host ${JSON.stringify(host)})`,
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError("startRestBridge: `port` must be an integer from 0 to 65535");
  }
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  if (!Number.isFinite(heartbeatMs) || heartbeatMs < 1 || heartbeatMs > 2 ** 31 - 1) {
    throw new TypeError("startRestBridge: `heartbeatMs` must be a number of ms from 1 to 2^31-1");
  }
  const shared = new RespConnection(redisUrl); // also validates the URL
  const dedicated = new Set<RespConnection>();
  // Read-your-writes: one Redis has nothing to catch up with, but clients expect a token
  // that moves on with every answer (`upstash-sync-token`); what they send back is accepted.
  const epoch = randomBytes(6).toString("hex");
  let answered = 0;
  const sse: SubscriptionHost = {
    redisUrl,
    heartbeatMs,
    open: new Set(),
  };
  const expected = sha256(token);

  const authorized = (header: string | undefined): boolean => {
    const match = /^Bearer +(.+)$/i.exec(header ?? "");
    return match?.[1] !== undefined && timingSafeEqual(sha256(match[1]), expected);
  };

  /** Runs on a connection of its own that is dropped when the client goes away. */
  const isolated = async <T>(
    res: ServerResponse,
    run: (redis: RespConnection) => Promise<T>,
  ): Promise<T> => {
    const redis = new RespConnection(redisUrl);
    dedicated.add(redis);
    const abandon = () => void redis.close();
    res.once("close", abandon);
    try {
      return await run(redis);
    } finally {
      res.off("close", abandon);
      dedicated.delete(redis);
      await redis.close();
    }
  };

  const refuse = (command: readonly RespArg[]) => refusal(command, allowAdmin);

  const single = async (res: ServerResponse, command: RespArg[], base64: boolean) => {
    const refused = refuse(command);
    if (refused) throw new HttpError(400, refused);
    const run = (redis: RespConnection) => redis.batch([command]);
    const [reply = null] = isBlocking(command) ? await isolated(res, run) : await run(shared);
    const result = outcome(reply, base64);
    send(res, "error" in result ? 400 : 200, result);
  };

  const pipeline = async (res: ServerResponse, commands: RespArg[][], base64: boolean) => {
    const refused = commands.map(refuse);
    const runnable = commands.filter((_, i) => refused[i] === undefined);
    // Keep the pipeline's order: if one command may block, the whole batch moves off `shared`.
    const run = (redis: RespConnection) =>
      runnable.length > 0 ? redis.batch(runnable) : Promise.resolve([]);
    const replies = runnable.some(isBlocking) ? await isolated(res, run) : await run(shared);
    let next = 0;
    send(
      res,
      200,
      refused.map((error) => (error ? { error } : outcome(replies[next++] ?? null, base64))),
    );
  };

  const multiExec = async (res: ServerResponse, commands: RespArg[][], base64: boolean) => {
    commands.forEach((command, i) => {
      const refused = refuse(command);
      if (refused) throw new HttpError(400, `${refused} (command ${i + 1})`);
    });
    // One write keeps MULTI ... EXEC contiguous on the shared connection, hence atomic.
    const replies = await shared.batch([["MULTI"], ...commands, ["EXEC"]]);
    const exec = replies.at(-1);
    if (Array.isArray(exec)) {
      send(
        res,
        200,
        exec.map((reply) => outcome(reply, base64)),
      );
      return;
    }
    const queued = replies.slice(1, -1).findIndex((reply) => reply instanceof RedisReplyError);
    const cause = replies[queued + 1];
    const detail =
      cause instanceof RedisReplyError ? ` (command ${queued + 1}: ${cause.message})` : "";
    const base = exec instanceof RedisReplyError ? exec.message : "EXECABORT Transaction aborted";
    send(res, 400, { error: base + detail });
  };

  const route = async (req: IncomingMessage, res: ServerResponse) => {
    if (!authorized(req.headers.authorization)) {
      return send(res, 401, { error: "Unauthorized" });
    }
    const method = req.method ?? "GET";
    res.setHeader("upstash-sync-token", `${epoch}-${++answered}`);
    if (method !== "GET" && method !== "POST") {
      res.setHeader("allow", "GET, POST");
      throw new HttpError(405, "ERR method not allowed");
    }
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    const stream = /^\/(p?subscribe)\/(.+)$/i.exec(path);
    if (stream !== null) {
      const names = (stream[2] ?? "").split("/").map(decodeSegment);
      if (names.some((name) => name.length === 0)) {
        throw new HttpError(400, "ERR empty channel or pattern name");
      }
      const command = stream[1]?.toLowerCase() === "psubscribe" ? "PSUBSCRIBE" : "SUBSCRIBE";
      return serveSubscription(sse, req, res, command, names);
    }
    if (path === "/pipeline" || path === "/multi-exec") {
      if (method !== "POST") throw new HttpError(405, "ERR use POST");
      const commands = toCommands(await readBody(req, maxBodyBytes));
      return path === "/pipeline"
        ? pipeline(res, commands, base64)
        : multiExec(res, commands, base64);
    }
    if (path === "/" || path === "") {
      if (method !== "POST") throw new HttpError(404, "ERR not found");
      const body = await readBody(req, maxBodyBytes);
      return single(res, toCommand(parseJson(body), "request body"), base64);
    }
    const command: RespArg[] = path.slice(1).split("/").map(decodeSegment);
    if (method === "POST") {
      const body = await readBody(req, maxBodyBytes);
      if (body.length > 0) command.push(body);
    }
    return single(res, command, base64);
  };

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (error instanceof HttpError) return send(res, error.status, { error: error.message });
      if (error instanceof RedisConnectionError) {
        return send(res, 500, { error: `ERR Redis is unavailable: ${error.message}` });
      }
      onError?.(error);
      send(res, 500, { error: "ERR internal bridge error" });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const urlHost = address.family === "IPv6" ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${address.port}`,
    token,
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        for (const sub of sse.open) sub.close();
        await Promise.all([stopped, shared.close(), ...[...dedicated].map((r) => r.close())]);
      })();
      return closing;
    },
  };
}
