import { Buffer } from "node:buffer";
import { isIP, connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/** One argument of a command: strings are sent as UTF-8, numbers in decimal, Buffers as-is. */
export type RespArg = string | Buffer | number;

/** A decoded RESP2 reply. Bulk strings stay `Buffer` so callers see the exact bytes. */
export type RespValue = Buffer | SimpleString | number | null | RedisReplyError | RespValue[];

/** A RESP simple-string reply (`+OK`), kept apart from bulk strings that happen to read the same. */
export class SimpleString {
  constructor(readonly value: string) {}
}

/**
 * An error reply from Redis. `message` is Redis's own text (`WRONGTYPE ...`, `NOSCRIPT ...`).
 * Thrown by {@link RespConnection.command}; returned as a value inside arrays and batches.
 */
export class RedisReplyError extends Error {
  override name = "RedisReplyError";
}

/** The connection to Redis failed or was lost; commands in flight may or may not have run. */
export class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
}

/** Options of a {@link RespConnection}. */
export interface RespConnectionOptions {
  /**
   * Milliseconds to wait for the TCP/TLS connection and the AUTH/SELECT handshake.
   * @default 10_000
   */
  connectTimeoutMs?: number;
}

export interface Target {
  connect: () => Socket;
  /** `secureConnect` for TLS, so AUTH is not written before the TLS handshake is done. */
  readyEvent: "connect" | "secureConnect";
  handshake: RespArg[][];
}

interface Pending {
  resolve: (value: RespValue) => void;
  reject: (error: Error) => void;
}

/** One socket and the replies it still owes; a reconnect gets a fresh one. */
interface Link {
  socket: Socket;
  pending: Pending[];
  chunks: Buffer[];
  buffered: number;
  need: number;
}

const CRLF = Buffer.from("\r\n");
const SIMPLE = "+".charCodeAt(0);
const ERROR = "-".charCodeAt(0);
const INTEGER = ":".charCodeAt(0);
const BULK = "$".charCodeAt(0);
const ARRAY = "*".charCodeAt(0);

const BAD_URL =
  "Invalid Redis URL: expected redis://[:password@]host:port[/db], rediss://... or unix:///path.sock[?db=N&password=...]";

/** Parses a Redis URL; errors never echo it, since it may hold a password. */
export function parseTarget(url: string): Target {
  let parsed: URL;
  let user: string;
  let password: string | null;
  try {
    parsed = new URL(url);
    user = decodeURIComponent(parsed.username);
    password = decodeURIComponent(parsed.password) || parsed.searchParams.get("password");
  } catch {
    throw new TypeError(BAD_URL);
  }
  const unix = parsed.protocol === "unix:";
  const db = (unix ? parsed.searchParams.get("db") : parsed.pathname.slice(1)) || "0";
  if (!/^\d+$/.test(db)) throw new TypeError(BAD_URL);
  const handshake: RespArg[][] = [];
  if (password) handshake.push(user ? ["AUTH", user, password] : ["AUTH", password]);
  if (db !== "0") handshake.push(["SELECT", db]);
  const host = parsed.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const port = Number(parsed.port || 6379);
  switch (parsed.protocol) {
    case "redis:":
      return { connect: () => netConnect({ host, port }), readyEvent: "connect", handshake };
    case "rediss:": {
      // SNI may only carry a host name, never an IP address (RFC 6066).
      const servername = isIP(host) ? undefined : host;
      const connect = () => tlsConnect({ host, port, servername });
      return { connect, readyEvent: "secureConnect", handshake };
    }
    case "unix:": {
      const path = decodeURIComponent(parsed.pathname);
      return { connect: () => netConnect({ path }), readyEvent: "connect", handshake };
    }
    default:
      throw new TypeError(BAD_URL);
  }
}

/** Serializes commands as RESP arrays of bulk strings, ready for one socket write. */
export function encodeCommands(commands: readonly (readonly RespArg[])[]): Buffer {
  const parts: Buffer[] = [];
  for (const command of commands) {
    parts.push(Buffer.from(`*${command.length}\r\n`));
    for (const arg of command) {
      if (typeof arg === "number" && !Number.isFinite(arg)) {
        throw new TypeError("Command arguments must be finite numbers");
      }
      const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, CRLF);
    }
  }
  return Buffer.concat(parts);
}

export type Parsed = { value: RespValue; end: number } | { need: number };

/**
 * Parses one reply starting at `start`. When the buffer is short it reports how many bytes it
 * needs at least, so a large bulk string arriving in many chunks is parsed once, not per chunk.
 */
export function parseReply(buf: Buffer, start: number): Parsed {
  const lineEnd = buf.indexOf(CRLF, start + 1);
  if (lineEnd === -1) return { need: buf.length + 1 };
  const line = buf.toString("utf8", start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (buf[start]) {
    case SIMPLE:
      return { value: new SimpleString(line), end: next };
    case ERROR:
      return { value: new RedisReplyError(line), end: next };
    case INTEGER:
      return { value: Number(line), end: next };
    case BULK: {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buf.length < next + length + 2) return { need: next + length + 2 };
      return { value: buf.subarray(next, next + length), end: next + length + 2 };
    }
    case ARRAY: {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items: RespValue[] = [];
      let offset = next;
      for (let i = 0; i < count; i++) {
        if (offset >= buf.length) return { need: offset + 1 };
        const item = parseReply(buf, offset);
        if ("need" in item) return item;
        items.push(item.value);
        offset = item.end;
      }
      return { value: items, end: offset };
    }
    default:
      throw new RedisConnectionError("Protocol error: unexpected reply type from Redis");
  }
}

/**
 * A pipelined RESP2 connection: every caller shares one socket, replies are matched to
 * commands in FIFO order. Connects lazily and reconnects on the next command after a loss.
 *
 * @example
 * const redis = new RespConnection("redis://127.0.0.1:6379");
 * await redis.command(["SET", "k", Buffer.from([0xff, 0x00])]);
 * await redis.close();
 */
export class RespConnection {
  readonly #target: Target;
  readonly #connectTimeoutMs: number;
  #link: Link | undefined;
  #opening: Promise<Link> | undefined;
  #closed = false;

  /**
   * @param url `redis://[user:password@]host:port[/db]`, `rediss://...` or `unix:///path.sock?db=N`
   */
  constructor(url: string, options: RespConnectionOptions = {}) {
    this.#target = parseTarget(url);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  }

  /** Sends one command; resolves with its reply, rejects with {@link RedisReplyError} on `-ERR`. */
  async command(args: readonly RespArg[]): Promise<RespValue> {
    const [reply] = await this.batch([args]);
    if (reply instanceof RedisReplyError) throw reply;
    return reply ?? null;
  }

  /**
   * Sends commands in one socket write, so no other caller's command lands between them
   * (what MULTI ... EXEC needs). Error replies come back in position, not thrown; a lost
   * connection rejects with {@link RedisConnectionError}.
   */
  async batch(commands: readonly (readonly RespArg[])[]): Promise<RespValue[]> {
    const payload = encodeCommands(commands);
    const link = await this.#connect();
    return send(link, payload, commands.length);
  }

  /** Closes the socket; commands still pending fail with {@link RedisConnectionError}. */
  async close(): Promise<void> {
    this.#closed = true;
    const link = this.#link ?? (await this.#opening?.catch(() => undefined));
    const socket = link?.socket;
    if (!socket || socket.destroyed) return;
    // destroy, not end: a graceful FIN can wait forever on a dead peer.
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.destroy();
    });
  }

  #connect(): Promise<Link> {
    if (this.#closed) return Promise.reject(new RedisConnectionError("Connection is closed"));
    if (this.#link && !this.#link.socket.destroyed) return Promise.resolve(this.#link);
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #open(): Promise<Link> {
    const socket = this.#target.connect();
    const link: Link = { socket, pending: [], chunks: [], buffered: 0, need: 1 };
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    socket.on("data", (chunk: Buffer) => onData(link, chunk));
    socket.on("error", () => {}); // "close" follows and fails whatever is pending
    socket.on("close", () => {
      if (this.#link === link) this.#link = undefined;
      fail(link, new RedisConnectionError("Connection to Redis lost"));
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new RedisConnectionError("Timed out connecting to Redis"));
        }, this.#connectTimeoutMs);
        socket.once(this.#target.readyEvent, () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once("error", (error) => {
          clearTimeout(timer);
          reject(new RedisConnectionError(`Cannot connect to Redis: ${error.message}`));
        });
      });
      const { handshake } = this.#target;
      if (handshake.length > 0) {
        const replies = await send(link, encodeCommands(handshake), handshake.length);
        const failed = replies.find((reply) => reply instanceof RedisReplyError);
        if (failed) throw new RedisConnectionError(`Redis handshake failed: ${failed.message}`);
      }
      if (this.#closed) throw new RedisConnectionError("Connection is closed");
      this.#link = link;
      return link;
    } catch (error) {
      socket.destroy();
      throw error;
    }
  }
}

function send(link: Link, payload: Buffer, count: number): Promise<RespValue[]> {
  if (link.socket.destroyed) {
    return Promise.reject(new RedisConnectionError("Connection to Redis lost"));
  }
  const replies = Array.from(
    { length: count },
    () => new Promise<RespValue>((resolve, reject) => link.pending.push({ resolve, reject })),
  );
  link.socket.write(payload);
  return Promise.all(replies);
}

function onData(link: Link, chunk: Buffer): void {
  link.chunks.push(chunk);
  link.buffered += chunk.length;
  if (link.buffered < link.need) return;
  const buf = link.chunks.length === 1 ? chunk : Buffer.concat(link.chunks);
  let offset = 0;
  try {
    while (offset < buf.length) {
      const parsed = parseReply(buf, offset);
      if ("need" in parsed) {
        link.need = parsed.need - offset;
        break;
      }
      offset = parsed.end;
      link.need = 1;
      const pending = link.pending.shift();
      if (!pending) throw new RedisConnectionError("Protocol error: reply without a command");
      pending.resolve(parsed.value);
    }
  } catch (error) {
    fail(link, error instanceof Error ? error : new RedisConnectionError(String(error)));
    link.socket.destroy();
    return;
  }
  const rest = buf.subarray(offset);
  link.chunks = rest.length > 0 ? [rest] : [];
  link.buffered = rest.length;
}

function fail(link: Link, error: Error): void {
  const pending = link.pending;
  link.pending = [];
  for (const entry of pending) entry.reject(error);
}
