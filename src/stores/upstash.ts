import type { Redis } from "@upstash/redis";
import { InvalidOptionError, StoreError } from "../errors.js";
import {
  type ChangeBatch,
  type ChangedKey,
  type ChangeRecord,
  checkKeysPage,
  leaseTtl,
  MAX_TTL,
  NAMESPACE_PATTERN,
  type Store,
  type StoreEntry,
  type StoreWrite,
  type SyncRequest,
  type WriteMeta,
} from "../store.js";
import { duration, MAX_TIMER } from "../util/check.js";
import {
  ACQUIRE_SCRIPT,
  CLEAR_SCRIPT,
  DELETE_SCRIPT,
  ENTRY_MAGIC,
  KEYS_SCRIPT,
  READ_SCRIPT,
  RELEASE_SCRIPT,
  SYNC_SCRIPT,
  WRITE_SCRIPT,
} from "./scripts.js";
import { script, shapeError, Transport } from "./upstash-transport.js";

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

const PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

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
 */
export function upstashStore(
  connection: UpstashConnection | Redis,
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
      const raw = await transport.write(scripts.write, keys, args, (r) => r[2], values);
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
      );
      return written(raw, b, meta);
    },
    async clear(ns, meta) {
      const b = base(ns);
      const raw = await transport.write(scripts.clear, stateKeys(b), metaArgs(meta), (r) => r[2]);
      return written(raw, b, meta);
    },
    async acquireLease(ns, key, token, ttl) {
      const raw = await transport.write(
        scripts.acquire,
        [`${base(ns)}l:${key}`],
        [token, leaseTtl(ttl)],
        (r) => r[1],
      );
      if (raw.length !== 3 || (raw[0] !== 0 && raw[0] !== 1)) throw shapeError();
      if (raw[0] === 0) return false;
      return raw[2] === 1 ? "repaired" : true;
    },
    async releaseLease(ns, key, token) {
      await transport.run(scripts.release, [`${base(ns)}l:${key}`], [token]);
    },
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

const OPS: Record<string, ChangeRecord["op"]> = { s: "set", d: "delete", c: "clear" };

/**
 * Decodes `{ head, now, records[, repaired] }` from the scripts. A record that does not parse stands in
 * as a clear (the cache then drops its whole L1), so foreign data in the log can cost hit
 * ratio but never coherence.
 */
function parseChanges(raw: unknown, keyPrefix: string): ChangeBatch {
  if (!Array.isArray(raw) || raw.length < 3 || raw.length > 4 || !Array.isArray(raw[2])) {
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
