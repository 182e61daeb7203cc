import { Redis } from "@upstash/redis";
import { InvalidOptionError, StoreError } from "../errors.js";
import { NAMESPACE_PATTERN, type Store, type StoreEntry, type StoreWrite } from "../store.js";
import { CLEAR_SCRIPT, DELETE_SCRIPT, ENTRY_MAGIC, READ_SCRIPT, WRITE_SCRIPT } from "./scripts.js";

/** Connection settings for {@link upstashStore} when it builds its own client. */
export interface UpstashConnection {
  /** REST URL of the database, e.g. `https://eu1-xyz.upstash.io` or a local bridge. */
  url: string;
  /** REST token. Never logged and never put in an error message. */
  token: string;
  /**
   * Retries after a network failure (not after a Redis error reply). A cache read that
   * waits seconds for a retry is worse than a miss, so the default is one quick retry.
   * @default 1
   */
  retries?: number;
  /**
   * Keep HTTP connections alive between requests.
   * @default true
   */
  keepAlive?: boolean;
}

/** Options of {@link upstashStore} that apply to any client. */
export interface UpstashStoreOptions {
  /**
   * First segment of every Redis key; change it to share a database between unrelated apps.
   * Letters, digits, `_`, `-` and `.` only.
   * @default "ec"
   */
  prefix?: string;
  /**
   * Per-request timeout in milliseconds, covering retries. A request that exceeds it fails
   * with code `EC_STORE_TIMEOUT` (a read then counts as a miss, a write rejects). `0`
   * disables it and leaves the client's own behaviour.
   * @default 1500
   */
  timeout?: number;
}

/** What an `@upstash/redis` client uses underneath to send requests. */
interface Requester {
  request(req: { body: unknown; signal?: unknown }): Promise<{ result?: unknown; error?: string }>;
}

interface Script {
  readonly text: string;
  sha?: Promise<string>;
  loaded: boolean;
}

const script = (text: string): Script => ({ text, loaded: false });

const PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Redis quotes user input in its error texts ("unknown command 'x', with args beginning
// with: 'value'"); strip quoted runs so no value reaches an error message.
function redact(text: string): string {
  return text
    .replace(/'[^']*'/g, "'…'")
    .replace(/"[^"]*"/g, '"…"')
    .slice(0, 200);
}

/**
 * The Redis error text of an `@upstash/redis` failure, without the command the client
 * appends to its messages (which would include keys and values).
 */
function replyText(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== "UpstashError") return undefined;
  const at = err.message.indexOf(", command was:");
  return at === -1 ? err.message : err.message.slice(0, at);
}

/**
 * An L2 {@link Store} on Redis over the Upstash REST protocol (`@upstash/redis`): works
 * wherever `fetch` does, including Cloudflare Workers. Each cache operation is one Redis
 * script call, so one HTTP request.
 *
 * Pass connection settings to let edgecache build a client configured for caching (no
 * automatic deserialization, one quick retry, a request timeout), or pass your own
 * `Redis` client: edgecache then uses its transport (URL, token, retries) but sends raw
 * commands, so the client's `automaticDeserialization` setting does not matter.
 *
 * Redis must not evict keys without an expiry (use `noeviction` or a `volatile-*`
 * policy): the per-namespace version counter and clear marker live in such keys.
 *
 * @example
 * ```ts
 * const store = upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN });
 * const store2 = upstashStore(new Redis({ url, token }), { prefix: "myapp", timeout: 500 });
 * ```
 */
export function upstashStore(
  connection: UpstashConnection | Redis,
  options: UpstashStoreOptions = {},
): Store {
  const prefix = options.prefix ?? "ec";
  if (!PREFIX.test(prefix)) {
    throw new InvalidOptionError("upstashStore prefix must be 1-32 of letters, digits, _ - .");
  }
  const timeout = options.timeout ?? 1500;
  if (!Number.isFinite(timeout) || timeout < 0) {
    throw new InvalidOptionError("upstashStore timeout must be a finite number >= 0 (ms)");
  }
  const client = requesterOf(connection);
  const scripts = {
    read: script(READ_SCRIPT),
    write: script(WRITE_SCRIPT),
    delete: script(DELETE_SCRIPT),
    clear: script(CLEAR_SCRIPT),
  };

  const base = (ns: string): string => {
    // The cache validates namespaces too; a store used directly must not be tricked into
    // another namespace's keys.
    if (!NAMESPACE_PATTERN.test(ns)) throw new InvalidOptionError("invalid namespace");
    return `${prefix}:{${ns}}:`;
  };

  async function send(body: Array<string | number>): Promise<unknown> {
    let signal: AbortSignal | undefined;
    // A signal *function* makes the client throw on abort; a plain AbortSignal would make
    // it resolve with the string "Aborted" as if Redis had answered.
    const makeSignal =
      timeout > 0
        ? () => {
            signal = AbortSignal.timeout(timeout);
            return signal;
          }
        : undefined;
    let res: { result?: unknown; error?: string };
    try {
      res = await client.request({ body, signal: makeSignal });
    } catch (err) {
      if (signal?.aborted) {
        throw new StoreError("EC_STORE_TIMEOUT", `upstash request timed out after ${timeout} ms`);
      }
      const text = replyText(err);
      if (text !== undefined) {
        if (/^unauthori[sz]ed/i.test(text) || text.startsWith("WRONGPASS")) {
          throw new StoreError("EC_STORE_AUTH", "upstash refused the token");
        }
        throw new StoreError("EC_STORE_ERROR", `redis error: ${redact(text)}`, {
          cause: new Error(redact(text)),
        });
      }
      if (err instanceof Error && err.name === "UpstashJSONParseError") {
        throw new StoreError("EC_STORE_ERROR", "upstash answered with a body that is not JSON");
      }
      throw new StoreError("EC_STORE_UNAVAILABLE", "upstash is unreachable", { cause: err });
    }
    if (res.error !== undefined) {
      throw new StoreError("EC_STORE_ERROR", `redis error: ${redact(String(res.error))}`);
    }
    return res.result;
  }

  async function run(s: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (s.loaded && s.sha) {
      try {
        return await send(["EVALSHA", await s.sha, keys.length, ...keys, ...args]);
      } catch (err) {
        // Scripts vanish on SCRIPT FLUSH, restarts and failovers; fall back to EVAL once.
        if (!(err instanceof StoreError && err.message.startsWith("redis error: NOSCRIPT"))) {
          throw err;
        }
        s.loaded = false;
      }
    }
    s.sha ??= sha1(s.text);
    const result = await send(["EVAL", s.text, keys.length, ...keys, ...args]);
    s.loaded = true;
    return result;
  }

  const shapeError = () =>
    new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");

  const version = (value: unknown): number => {
    const n = typeof value === "string" ? Number(value) : value;
    if (typeof n !== "number" || !Number.isSafeInteger(n)) throw shapeError();
    return n;
  };

  return {
    name: "upstash",
    async get(ns, keys) {
      if (keys.length === 0) return { entries: [], corrupt: 0 };
      const b = base(ns);
      const raw = await run(scripts.read, [b + "c", ...keys.map((k) => `${b}k:${k}`)], []);
      if (!Array.isArray(raw) || raw.length !== 1 + 2 * keys.length) throw shapeError();
      const marker = raw[0] === null ? 0 : version(raw[0]);
      let corrupt = 0;
      const entries = keys.map((_, i): StoreEntry | undefined => {
        const value = raw[1 + 2 * i];
        const pttl = raw[2 + 2 * i];
        if (value === null || value === undefined) return undefined;
        const entry = parseEntry(value, pttl);
        if (entry === undefined) {
          corrupt++;
          return undefined;
        }
        return entry.version > marker && entry.ttl > 0 ? entry : undefined;
      });
      return { entries, corrupt };
    },
    async set(ns, writes: readonly StoreWrite[]) {
      if (writes.length === 0) return [];
      const b = base(ns);
      const keys = [b + "v", b + "c"];
      const args: Array<string | number> = [];
      for (const w of writes) {
        keys.push(`${b}k:${w.key}`);
        args.push(w.value, w.ttl);
      }
      const last = version(await run(scripts.write, keys, args));
      return writes.map((_, i) => last - writes.length + 1 + i);
    },
    async delete(ns, keys) {
      const b = base(ns);
      return version(await run(scripts.delete, [b + "v", ...keys.map((k) => `${b}k:${k}`)], []));
    },
    async clear(ns) {
      const b = base(ns);
      return version(await run(scripts.clear, [b + "v", b + "c"], []));
    },
  };
}

function parseEntry(raw: unknown, pttl: unknown): StoreEntry | undefined {
  if (typeof raw !== "string" || !raw.startsWith(ENTRY_MAGIC)) return undefined;
  const sep = raw.indexOf(":", ENTRY_MAGIC.length);
  if (sep === -1) return undefined;
  const digits = raw.slice(ENTRY_MAGIC.length, sep);
  if (!/^[1-9][0-9]{0,15}$/.test(digits)) return undefined;
  const version = Number(digits);
  if (!Number.isSafeInteger(version)) return undefined;
  if (typeof pttl !== "number") return undefined;
  // -1: no expiry (someone PERSISTed it); the cache then bounds L1 by its own limits.
  const ttl = pttl === -1 ? Number.POSITIVE_INFINITY : pttl;
  return { value: raw.slice(sep + 1), version, ttl };
}

function requesterOf(connection: UpstashConnection | Redis): Requester {
  if (connection instanceof Redis || (connection && !("url" in connection))) {
    // `client` is the transport the Redis class is built on (its constructor argument).
    const requester = (connection as unknown as { client?: Requester }).client;
    if (!requester || typeof requester.request !== "function") {
      throw new InvalidOptionError("upstashStore needs { url, token } or an @upstash/redis client");
    }
    return requester;
  }
  const { url, token } = connection;
  if (typeof url !== "string" || !/^https?:\/\/[^\s/]+/.test(url)) {
    throw new InvalidOptionError("upstashStore url must be an http(s) URL");
  }
  if (typeof token !== "string" || token.length === 0) {
    throw new InvalidOptionError("upstashStore token must be a non-empty string");
  }
  const retries = connection.retries ?? 1;
  if (!Number.isInteger(retries) || retries < 0 || retries > 10) {
    throw new InvalidOptionError("upstashStore retries must be an integer from 0 to 10");
  }
  const redis = new Redis({
    url,
    token,
    automaticDeserialization: false,
    enableAutoPipelining: false,
    enableTelemetry: false,
    keepAlive: connection.keepAlive ?? true,
    retry: { retries, backoff: (attempt) => Math.min(25 * 2 ** attempt, 200) },
  });
  return (redis as unknown as { client: Requester }).client;
}
