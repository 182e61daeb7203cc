import { Redis } from "@upstash/redis";
import { InvalidOptionError, StoreError } from "../errors.js";
import {
  type ChangeBatch,
  type ChangedKey,
  type ChangeRecord,
  leaseTtl,
  NAMESPACE_PATTERN,
  type Store,
  type StoreEntry,
  type StoreWrite,
  type SyncRequest,
  type WriteMeta,
} from "../store.js";
import {
  CLEAR_SCRIPT,
  DELETE_SCRIPT,
  ENTRY_MAGIC,
  READ_SCRIPT,
  RELEASE_SCRIPT,
  SYNC_SCRIPT,
  WRITE_SCRIPT,
} from "./scripts.js";

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
    sync: script(SYNC_SCRIPT),
    write: script(WRITE_SCRIPT),
    delete: script(DELETE_SCRIPT),
    clear: script(CLEAR_SCRIPT),
    release: script(RELEASE_SCRIPT),
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

  const syncArgs = (sync: SyncRequest): number[] => {
    if (!Number.isSafeInteger(sync.cursor) || sync.cursor < -1) throw shapeError();
    if (!Number.isSafeInteger(sync.limit) || sync.limit < 1) throw shapeError();
    return [sync.cursor, sync.limit];
  };

  return {
    name: "upstash",
    async get(ns, keys, sync) {
      if (keys.length === 0 && !sync) return { entries: [], corrupt: 0 };
      const b = base(ns);
      const raw = await run(
        scripts.read,
        [b + "c", b + "v", b + "log", ...keys.map((k) => `${b}k:${k}`)],
        sync ? syncArgs(sync) : [],
      );
      if (!Array.isArray(raw) || raw.length !== 3) throw shapeError();
      const [rawMarker, pairs, rawChanges] = raw as [unknown, unknown, unknown];
      if (!Array.isArray(pairs) || pairs.length !== 2 * keys.length) throw shapeError();
      const marker = rawMarker === null ? 0 : version(rawMarker);
      let corrupt = 0;
      const entries = keys.map((_, i): StoreEntry | undefined => {
        const value = pairs[2 * i];
        if (value === null || value === undefined) return undefined;
        const entry = parseEntry(value, pairs[2 * i + 1]);
        if (entry === undefined) {
          corrupt++;
          return undefined;
        }
        return entry.version > marker && entry.ttl > 0 ? entry : undefined;
      });
      if (!sync) return { entries, corrupt };
      return { entries, corrupt, changes: parseChanges(rawChanges, `${b}k:`) };
    },
    async sync(ns, sync) {
      const b = base(ns);
      const raw = await run(scripts.sync, [b + "v", b + "log"], syncArgs(sync));
      return parseChanges(raw, `${b}k:`);
    },
    async set(ns, writes: readonly StoreWrite[], meta) {
      if (writes.length === 0 && !meta.sync) return { version: [] };
      const b = base(ns);
      const keys = [b + "v", b + "c", b + "log"];
      const args = metaArgs(meta);
      for (const w of writes) {
        keys.push(`${b}k:${w.key}`);
        args.push(w.value, w.ttl, w.propagate ? "1" : "0");
      }
      const { version: last, changes } = written(await run(scripts.write, keys, args), b, meta);
      return { version: writes.map((_, i) => last - writes.length + 1 + i), changes };
    },
    async delete(ns, keys, meta) {
      const b = base(ns);
      const raw = await run(
        scripts.delete,
        [b + "v", b + "log", ...keys.map((k) => `${b}k:${k}`)],
        metaArgs(meta),
      );
      return written(raw, b, meta);
    },
    async clear(ns, meta) {
      const b = base(ns);
      const raw = await run(scripts.clear, [b + "v", b + "c", b + "log"], metaArgs(meta));
      return written(raw, b, meta);
    },
    async acquireLease(ns, key, token, ttl) {
      const raw = await send(["SET", `${base(ns)}l:${key}`, token, "NX", "PX", leaseTtl(ttl)]);
      if (raw !== "OK" && raw !== null) throw shapeError();
      return raw === "OK";
    },
    async releaseLease(ns, key, token) {
      await run(scripts.release, [`${base(ns)}l:${key}`], [token]);
    },
  };

  function metaArgs(meta: WriteMeta): Array<string | number> {
    const [cursor, limit] = meta.sync ? syncArgs(meta.sync) : ["", ""];
    return [meta.origin, meta.logLength, cursor as number | string, limit as number | string];
  }

  function written(
    raw: unknown,
    b: string,
    meta: WriteMeta,
  ): { version: number; changes?: ChangeBatch } {
    if (!Array.isArray(raw) || raw.length !== 2) throw shapeError();
    const v = version(raw[0]);
    return meta.sync ? { version: v, changes: parseChanges(raw[1], `${b}k:`) } : { version: v };
  }
}

const OPS: Record<string, ChangeRecord["op"]> = { s: "set", d: "delete", c: "clear" };

/**
 * Decodes `{ head, now, records }` from the scripts. A record that does not parse stands in
 * as a clear (the cache then drops its whole L1), so foreign data in the log can cost hit
 * ratio but never coherence.
 */
function parseChanges(raw: unknown, keyPrefix: string): ChangeBatch {
  if (!Array.isArray(raw) || raw.length !== 3 || !Array.isArray(raw[2])) {
    throw new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");
  }
  const head = Number(raw[0]);
  const now = Number(raw[1]);
  if (!Number.isSafeInteger(head) || !Number.isFinite(now)) {
    throw new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");
  }
  const records: ChangeRecord[] = [];
  for (const item of raw[2] as unknown[]) {
    const id = Array.isArray(item) && typeof item[0] === "string" ? item[0] : "";
    const last = Number(id.slice(0, id.indexOf("-")));
    if (!Number.isSafeInteger(last) || last < 1) {
      throw new StoreError("EC_STORE_ERROR", "unexpected change log id");
    }
    records.push(parseRecord((item as unknown[])[1], last, keyPrefix, now));
  }
  return { head, records };
}

function parseRecord(fields: unknown, last: number, keyPrefix: string, now: number): ChangeRecord {
  const opaque: ChangeRecord = { op: "clear", first: last, last, origin: "", keys: [] };
  if (!Array.isArray(fields) || fields.length < 6 || (fields.length - 6) % 6 !== 0) return opaque;
  const [o, op, i, origin, f, firstText] = fields as unknown[];
  const kind = typeof op === "string" ? OPS[op] : undefined;
  const first = Number(firstText);
  if (o !== "o" || i !== "i" || f !== "f" || kind === undefined || typeof origin !== "string") {
    return opaque;
  }
  if (!Number.isSafeInteger(first) || first < 1 || first > last) return opaque;
  const keys: ChangedKey[] = [];
  for (let j = 6; j < fields.length; j += 6) {
    const [k, key, v, value, x, expiry] = fields.slice(j, j + 6) as unknown[];
    if (k !== "k" || v !== "v" || x !== "x") return opaque;
    if (typeof key !== "string" || !key.startsWith(keyPrefix) || typeof value !== "string") {
      return opaque;
    }
    // A set record's keys hold consecutive versions; a delete's all share the record's.
    const version = kind === "set" ? first + keys.length : last;
    const userKey = key.slice(keyPrefix.length);
    if (value === "") keys.push({ key: userKey, version });
    else keys.push({ key: userKey, version, value, ttl: Number(expiry) - now });
  }
  if (kind === "set" && first + keys.length - 1 !== last) return opaque;
  return { op: kind, first, last, origin, keys };
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
