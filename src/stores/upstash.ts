import { InvalidOptionError } from "../errors.js";
import {
  type ChangeBatch,
  checkKeysPage,
  leaseTtl,
  MAX_TTL,
  NAMESPACE_PATTERN,
  type Store,
  type StoreEntry,
  type StoreWrite,
  type SyncRequest,
  type WriteMeta,
} from "../store/contract.js";
import { duration, MAX_TIMER } from "../util/check.js";
import {
  ACQUIRE_SCRIPT,
  CLEAR_SCRIPT,
  DELETE_SCRIPT,
  KEYS_SCRIPT,
  READ_SCRIPT,
  RELEASE_SCRIPT,
  SYNC_SCRIPT,
  WRITE_SCRIPT,
} from "./scripts.js";
import { openPush, PROBE } from "./upstash-push.js";
import { parseChanges, parseEntry, parsePushed } from "./upstash-records.js";
import { script, shapeError, Transport, type UpstashRedisClient } from "./upstash-transport.js";

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
  /**
   * For `sync.pubsub`: ms a pub/sub stream may stay silent before it publishes a probe to
   * itself; silent three times as long, it is dropped and opened again (the cache polls
   * the change log meanwhile).
   * @default 15_000
   */
  heartbeat?: number;
}

const PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

/**
 * An L2 {@link Store} on Redis over the Upstash REST protocol (`@upstash/redis`): works
 * wherever `fetch` does, including Cloudflare Workers. Each cache operation is one Redis
 * script call, so one HTTP request.
 *
 * Pass connection settings to let edgecache build a client configured for caching (no
 * automatic deserialization, one quick retry, a request timeout), or pass your own
 * `Redis` client (any `@upstash/redis` from 1.34, see {@link UpstashRedisClient}): edgecache
 * then uses its transport (URL, token, retries) but sends raw commands, so the client's
 * `automaticDeserialization` setting does not matter.
 *
 * A write that fails is settled: it either took effect before the call rejected or never
 * will (it carries a deadline on Redis' clock, see `upstash-transport.ts`). A process's
 * first write, when nothing it sent before told it Redis' time, costs one extra request
 * (`TIME`).
 *
 * Redis must not evict keys without an expiry (use `noeviction` or a `volatile-*`
 * policy): the per-namespace version counter and clear marker live in such keys.
 *
 * @example
 * ```ts
 * const store = upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN });
 * const store2 = upstashStore(new Redis({ url, token }), { prefix: "myapp", timeout: 500 });
 * ```
 * @see docs/stores.md (the Redis layout included; shipped in the package).
 */
export function upstashStore(
  connection: UpstashConnection | UpstashRedisClient,
  options: UpstashStoreOptions = {},
): Store {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidOptionError("upstashStore options must be an object");
  }
  const prefix = options.prefix ?? "ec";
  if (typeof prefix !== "string" || !PREFIX.test(prefix)) {
    throw new InvalidOptionError("upstashStore prefix must be 1-32 of letters, digits, _ - .");
  }
  const timeout = duration("upstashStore timeout", options.timeout ?? 1500, { max: MAX_TIMER });
  const heartbeat = duration("upstashStore heartbeat", options.heartbeat ?? 15_000, {
    zero: false,
    max: MAX_TIMER,
  });
  const transport = new Transport(connection, timeout);
  const scripts = {
    read: script(READ_SCRIPT),
    sync: script(SYNC_SCRIPT),
    write: script(WRITE_SCRIPT),
    delete: script(DELETE_SCRIPT),
    clear: script(CLEAR_SCRIPT),
    acquire: script(ACQUIRE_SCRIPT),
    release: script(RELEASE_SCRIPT),
    keys: script(KEYS_SCRIPT),
  };

  const base = (ns: string): string => {
    // The cache validates namespaces too; a store used directly must not be tricked into
    // another namespace's keys.
    if (typeof ns !== "string" || !NAMESPACE_PATTERN.test(ns)) {
      throw new InvalidOptionError("invalid namespace");
    }
    return `${prefix}:{${ns}}:`;
  };

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

  const stateKeys = (b: string) => [b + "v", b + "c", b + "log"];

  /** Takes the leases of `keys` that nobody holds, in one request. */
  const acquire = async (
    ns: string,
    keys: readonly string[],
    token: string,
    ttl: number,
  ): Promise<Array<boolean | "repaired">> => {
    const b = base(ns);
    const ms = leaseTtl(ttl);
    if (keys.length === 0) return [];
    const raw = await transport.write(
      scripts.acquire,
      keys.map((key) => `${b}l:${key}`),
      [token, ms],
      (r) => r[1],
    );
    if (raw[0] !== 1 || raw.length !== keys.length + 2) throw shapeError();
    return raw.slice(2).map((status) => {
      if (status === 0) return false;
      if (status === 1) return true;
      if (status === 2) return "repaired";
      throw shapeError();
    });
  };

  /** Ends the leases of `keys` that `token` holds, in one request. */
  const release = async (ns: string, keys: readonly string[], token: string): Promise<void> => {
    const b = base(ns);
    if (keys.length === 0) return;
    await transport.run(
      scripts.release,
      keys.map((key) => `${b}l:${key}`),
      [token],
    );
  };

  return {
    name: "upstash",
    timeout: timeout > 0 ? timeout : undefined,
    async get(ns, keys, sync) {
      if (keys.length === 0 && !sync) return { entries: [], corrupt: 0 };
      const b = base(ns);
      // { marker, pairs, changes, now, repaired, head }
      const raw = await transport.read(
        scripts.read,
        [b + "c", b + "v", b + "log", ...keys.map((k) => `${b}k:${k}`)],
        sync ? syncArgs(sync) : [],
        (r) => r[3],
      );
      if (raw.length !== 6) throw shapeError();
      const [rawMarker, pairs, rawChanges, , repaired, rawHead] = raw;
      if (!Array.isArray(pairs) || pairs.length !== 2 * keys.length) throw shapeError();
      const marker = rawMarker === null ? 0 : version(rawMarker);
      const head = version(rawHead);
      let corrupt = repaired === 1 ? 1 : 0;
      const entries = keys.map((_, i): StoreEntry | undefined => {
        const value = pairs[2 * i];
        if (value === null || value === undefined) return undefined;
        const entry = parseEntry(value, pairs[2 * i + 1]);
        if (entry === undefined) {
          corrupt++;
          return undefined;
        }
        // Above the head: not written by this counter (it was reset after being corrupted).
        return entry.version > marker && entry.version <= head && entry.ttl > 0 ? entry : undefined;
      });
      if (!sync) return { entries, corrupt };
      return { entries, corrupt, changes: parseChanges(rawChanges, `${b}k:`) };
    },
    async sync(ns, sync) {
      const b = base(ns);
      const raw = await transport.read(scripts.sync, stateKeys(b), syncArgs(sync), (r) => r[1]);
      return parseChanges(raw, `${b}k:`);
    },
    async set(ns, writes: readonly StoreWrite[], meta) {
      if (writes.length === 0 && !meta.sync) return { version: [] };
      const b = base(ns);
      const keys = stateKeys(b);
      const args = metaArgs(meta);
      const values: Array<string | number> = [];
      for (const w of writes) {
        // Checked before anything is sent: the script would refuse it too, changing nothing.
        if (!Number.isSafeInteger(w.ttl) || w.ttl < 1 || w.ttl > MAX_TTL) {
          throw new InvalidOptionError(`a ttl must be a whole number of ms from 1 to 2^52`, {
            key: w.key,
          });
        }
        if (typeof w.value !== "string") throw new InvalidOptionError("values must be strings");
        keys.push(`${b}k:${w.key}`);
        values.push(w.value, w.ttl, w.propagate ? "1" : "0");
      }
      const raw = await transport.write(scripts.write, keys, args, (r) => r[2], [
        publishArg(meta),
        ...values,
      ]);
      const { version: last, changes, corrupt } = written(raw, b, meta);
      const versions = writes.map((_, i) => last - writes.length + 1 + i);
      return { version: versions, changes, corrupt };
    },
    async delete(ns, keys, meta) {
      const b = base(ns);
      const raw = await transport.write(
        scripts.delete,
        [...stateKeys(b), ...keys.map((k) => `${b}k:${k}`)],
        metaArgs(meta),
        (r) => r[2],
        [publishArg(meta)],
      );
      return written(raw, b, meta);
    },
    async clear(ns, meta) {
      const b = base(ns);
      const raw = await transport.write(scripts.clear, stateKeys(b), metaArgs(meta), (r) => r[2], [
        publishArg(meta),
      ]);
      return written(raw, b, meta);
    },
    async acquireLease(ns, key, token, ttl) {
      return (await acquire(ns, [key], token, ttl))[0]!;
    },
    acquireLeases: acquire,
    async releaseLease(ns, key, token) {
      await release(ns, [key], token);
    },
    releaseLeases: release,
    // Streams need the REST URL and token themselves: a store made from a client has none.
    ...(isConnection(connection)
      ? {
          subscribe(ns: string, handlers: Parameters<NonNullable<Store["subscribe"]>>[1]) {
            const b = base(ns);
            // The channel is named like the log: the write scripts publish each record there.
            const channel = `${b}log`;
            return openPush(
              {
                url: connection.url.replace(/\/+$/, ""),
                token: connection.token,
                channel,
                heartbeat,
                parse: (payload) => parsePushed(payload, `${b}k:`),
                probe: () => transport.send(["PUBLISH", channel, PROBE]),
              },
              handlers,
            );
          },
        }
      : {}),
    async keys(ns, page) {
      checkKeysPage(page);
      // A Redis SCAN cursor: digits, "" to start ("0" to Redis).
      if (!/^(|[0-9]{1,20})$/.test(page.cursor)) {
        throw new InvalidOptionError("keys: not a cursor of this store");
      }
      const entries = `${base(ns)}k:`;
      const match = `${globEscape(entries + page.prefix)}*`;
      const raw = await transport.run(
        scripts.keys,
        [`${base(ns)}c`, `${base(ns)}v`],
        [page.cursor === "" ? "0" : page.cursor, match, page.limit, page.limit],
      );
      if (!Array.isArray(raw) || raw.length !== 2 || !Array.isArray(raw[1])) throw shapeError();
      const [next, found] = raw as [unknown, unknown[]];
      if (typeof next !== "string" || !/^[0-9]{1,20}$/.test(next)) throw shapeError();
      const keys = found.map((key) => {
        if (typeof key !== "string" || !key.startsWith(entries)) throw shapeError();
        return key.slice(entries.length);
      });
      return { keys, cursor: next === "0" ? "" : next };
    },
  };

  function publishArg(meta: WriteMeta): string {
    return meta.publish === true ? "1" : "0";
  }

  function metaArgs(meta: WriteMeta): Array<string | number> {
    const [cursor, limit] = meta.sync ? syncArgs(meta.sync) : ["", ""];
    return [meta.origin, meta.logLength, cursor as number | string, limit as number | string];
  }

  /** A write's answer: { version, changes or false, now, repaired }. */
  function written(
    raw: unknown[],
    b: string,
    meta: WriteMeta,
  ): { version: number; changes?: ChangeBatch; corrupt?: number } {
    if (raw.length !== 4) throw shapeError();
    const v = version(raw[0]);
    const corrupt = raw[3] === 1 ? { corrupt: 1 } : {};
    return meta.sync
      ? { version: v, changes: parseChanges(raw[1], `${b}k:`), ...corrupt }
      : { version: v, ...corrupt };
  }
}

/** `text` matched literally in a Redis glob pattern (`*`, `?`, `[`, `]`, `\\` escaped). */
const globEscape = (text: string): string => text.replace(/[*?[\]\\]/g, "\\$&");

function isConnection(c: unknown): c is UpstashConnection {
  const o = c as Partial<UpstashConnection> | null;
  return typeof o?.url === "string" && typeof o.token === "string";
}
