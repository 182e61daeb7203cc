import { coarseClock } from "./clock.js";
import { resolveSerializer, type Serializer, type SerializerOption, utf8Length } from "./codec.js";
import {
  ClosedError,
  CorruptEntryError,
  EdgeCacheError,
  InvalidKeyError,
  InvalidOptionError,
  SerializationError,
  StoreError,
  ValueTooLargeError,
} from "./errors.js";
import { type LocalCache, type LocalEntry, type LocalOptions, resolveLocal } from "./local.js";
import { consoleLogger, type Logger, silentLogger } from "./logger.js";
import { NAMESPACE_PATTERN, type Store, type StoreEntry, type StoreWrite } from "./store.js";

/** Options of {@link createCache}. */
export interface CacheOptions {
  /** The shared L2: `upstashStore(...)`, `memoryStore()` or your own {@link Store}. */
  store: Store;
  /**
   * Prefix of every L2 key. Caches with different namespaces never see each other's
   * entries, and `clear()` affects one namespace only. Letters, digits and `_ . : / -`,
   * at most 128 characters.
   * @default "default"
   */
  namespace?: string;
  /**
   * Default time to live of entries, in ms; `set` can override it per call. Every entry
   * expires: there is no "forever".
   * @default 60_000
   */
  ttl?: number;
  /**
   * The in-process L1: options for the built-in `lru-cache` one, your own
   * {@link LocalCache}, or `false` for no L1 (every read goes to L2).
   * @default { maxItems: 10_000, maxBytes: 32 MiB }
   */
  local?: false | LocalOptions | LocalCache;
  /**
   * How values are encoded for L2: `"superjson"` (Dates, Maps, Sets, BigInts survive),
   * `"json"`, or your own {@link Serializer}.
   * @default "superjson"
   */
  serializer?: SerializerOption;
  /**
   * Longest key accepted, in UTF-8 bytes.
   * @default 1024
   */
  maxKeyBytes?: number;
  /**
   * Largest encoded value accepted by `set`, in bytes; larger values are refused with
   * `ValueTooLargeError` and nothing is written.
   * @default 1_048_576 (1 MiB)
   */
  maxValueBytes?: number;
  /**
   * Diagnostics sink; `false` silences it.
   * @default consoleLogger("warn")
   */
  logger?: Logger | false;
  /**
   * Called with every error the cache absorbs instead of throwing: failed L2 reads (served
   * as misses) and corrupt L2 entries. Thrown errors (failed writes, bad input) are not
   * passed here. When unset, absorbed errors go to `logger.warn`.
   */
  onError?: (error: EdgeCacheError) => void;
  /**
   * Clock in ms. Inject a fake one in tests to expire entries without sleeping.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Read the clock at most once per this many ms on the L1 hit path, instead of on every
   * hit (as lru-cache's `ttlResolution` does). Where reading the clock is slow this
   * roughly doubles L1-hit throughput. L1 treats entries as expired `clockResolution` ms
   * early to make up for the coarser reading; the reading is refreshed by a timer, so
   * while the event loop is blocked by synchronous work it stays where it was (time looks
   * frozen to L1 for the rest of that synchronous run, as it does in Workers). Use it in
   * long-lived Node, Deno and Bun processes only, never in Cloudflare Workers, where the
   * timers of a finished request may never run.
   * @default 0 (read the clock on every hit)
   */
  clockResolution?: number;
}

/** Options of one `set`. */
export interface SetOptions {
  /** Time to live in ms for this entry, instead of the cache's default `ttl`. */
  ttl?: number;
}

/** One entry of `setMany`: `[key, value]` or `[key, value, { ttl }]`. */
export type SetManyEntry<V = unknown> = readonly [key: string, value: V, options?: SetOptions];

/** Counters since the cache was created, plus the current L1 occupancy. */
export interface CacheStats {
  /** Reads answered from L1. */
  l1Hits: number;
  /** Reads that found nothing fresh in L1 (with no L1, every read). */
  l1Misses: number;
  /** L1 misses answered from L2. */
  l2Hits: number;
  /** L1 misses that L2 could not answer (absent, corrupt or L2 failing). */
  l2Misses: number;
  /** Entries written. */
  sets: number;
  /** Keys deleted. */
  deletes: number;
  /** Namespace clears. */
  clears: number;
  /** Errors absorbed or thrown by L2 operations. */
  errors: number;
  /** L2 entries that could not be decoded (served as misses). */
  corrupt: number;
  /** Entries in L1 now. */
  l1Items: number;
  /** Bytes budgeted in L1 now. */
  l1Bytes: number;
  /** Entries L1 dropped to stay within its bounds. */
  l1Evictions: number;
}

/** A two-level cache bound to one namespace. Create one with {@link createCache}. */
export interface Cache {
  /** The namespace this cache reads and writes. */
  readonly namespace: string;
  /**
   * The value under `key`, or `undefined` on a miss. An L1 hit costs no I/O; otherwise one
   * L2 request. L2 failures are served as misses and reported to `onError`.
   */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /**
   * The L1 value under `key`, synchronously, or `undefined` if L1 has nothing fresh. Never
   * does I/O: for hot paths that prefer a miss to a wait.
   */
  peek<T = unknown>(key: string): T | undefined;
  /** Whether `key` has a value (same cost as `get`). */
  has(key: string): Promise<boolean>;
  /**
   * Stores `value` in L2 and L1. Resolves only once L2 has it; rejects with a typed error
   * otherwise (bad input changes nothing; an L2 failure drops the key from L1).
   */
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;
  /** Deletes `key` from L2 and L1. */
  delete(key: string): Promise<void>;
  /** Values for `keys` in order, `undefined` for misses; at most one L2 request. */
  getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>>;
  /** Writes all entries in one L2 request; all are validated before anything is written. */
  setMany(entries: ReadonlyArray<SetManyEntry>): Promise<void>;
  /** Deletes all keys in one L2 request. */
  deleteMany(keys: readonly string[]): Promise<void>;
  /** Makes every entry of this namespace a miss, in one L2 request. Other namespaces are untouched. */
  clear(): Promise<void>;
  /** Counters and L1 occupancy. */
  stats(): CacheStats;
  /** Drops L1 and refuses further calls with `ClosedError`. Does not close the store. */
  close(): Promise<void>;
}

const MISS: unique symbol = Symbol("miss");

interface Prepared {
  key: string;
  value: unknown;
  write: StoreWrite;
  size: number;
}

class EdgeCache implements Cache {
  readonly namespace: string;
  readonly #store: Store;
  readonly #ttl: number;
  readonly #local: LocalCache | undefined;
  readonly #localTtl: number;
  readonly #copy: ((value: unknown) => unknown) | undefined;
  readonly #serializer: Serializer;
  readonly #tag: string;
  readonly #maxKeyBytes: number;
  readonly #maxValueBytes: number;
  readonly #logger: Logger;
  readonly #onError: ((error: EdgeCacheError) => void) | undefined;
  readonly #now: () => number;
  // The clock of the L1 hit path, and how early it must call entries expired.
  readonly #hitClock: () => number;
  readonly #hitSlack: number;
  #closed = false;
  readonly #stats = {
    l1Hits: 0,
    l1Misses: 0,
    l2Hits: 0,
    l2Misses: 0,
    sets: 0,
    deletes: 0,
    clears: 0,
    errors: 0,
    corrupt: 0,
  };
  // Guards L1 against late answers: an L2 answer may only be installed if its version is
  // above every mutation of that key (or clear) this instance saw complete meanwhile.
  #inflight = 0;
  readonly #floors = new Map<string, number>();
  #clearFloor = 0;
  #clearFailed = false;

  constructor(options: CacheOptions) {
    if (typeof options !== "object" || options === null) {
      throw new InvalidOptionError("createCache needs an options object with a store");
    }
    const { store } = options;
    if (
      typeof store !== "object" ||
      store === null ||
      typeof store.get !== "function" ||
      typeof store.set !== "function" ||
      typeof store.delete !== "function" ||
      typeof store.clear !== "function"
    ) {
      throw new InvalidOptionError(
        "store must implement the Store interface (get, set, delete, clear)",
      );
    }
    this.#store = store;
    const ns = options.namespace ?? "default";
    if (typeof ns !== "string" || !NAMESPACE_PATTERN.test(ns)) {
      throw new InvalidOptionError(
        "namespace must be 1-128 characters of letters, digits and _ . : / -",
      );
    }
    this.namespace = ns;
    this.#ttl = checkTtl(options.ttl ?? 60_000, "ttl", InvalidOptionError);
    const local = resolveLocal(options.local);
    this.#local = local?.cache;
    this.#localTtl = local?.ttl ?? Number.POSITIVE_INFINITY;
    this.#copy = local?.copy;
    this.#serializer = resolveSerializer(options.serializer);
    this.#tag = this.#serializer.name + ":";
    this.#maxKeyBytes = checkLimit(options.maxKeyBytes, 1024, "maxKeyBytes");
    this.#maxValueBytes = checkLimit(options.maxValueBytes, 1 << 20, "maxValueBytes");
    this.#logger =
      options.logger === false ? silentLogger : (options.logger ?? consoleLogger("warn"));
    if (options.onError !== undefined && typeof options.onError !== "function") {
      throw new InvalidOptionError("onError must be a function");
    }
    this.#onError = options.onError;
    if (options.now !== undefined && typeof options.now !== "function") {
      throw new InvalidOptionError("now must be a function returning ms");
    }
    this.#now = options.now ?? Date.now;
    const resolution = options.clockResolution ?? 0;
    if (typeof resolution !== "number" || !Number.isFinite(resolution) || resolution < 0) {
      throw new InvalidOptionError("clockResolution must be a finite number of ms >= 0");
    }
    this.#hitClock = resolution > 0 ? coarseClock(this.#now, resolution) : this.#now;
    this.#hitSlack = resolution;
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.#open();
    this.#checkKey(key);
    const hit = this.#fromL1(key);
    if (hit !== MISS) return hit as T;
    const [value] = await this.#fromL2([key]);
    return (value !== undefined && this.#copy ? this.#copy(value) : value) as T | undefined;
  }

  peek<T = unknown>(key: string): T | undefined {
    this.#open();
    this.#checkKey(key);
    const hit = this.#fromL1(key);
    return hit === MISS ? undefined : (hit as T);
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    this.#open();
    if (!Array.isArray(keys)) throw new InvalidKeyError("getMany expects an array of keys");
    for (const key of keys) this.#checkKey(key);
    const out: unknown[] = new Array(keys.length);
    // Index of each distinct missed key in the L2 request, and the slots waiting for it.
    const missing = new Map<string, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const hit = this.#fromL1(key);
      if (hit !== MISS) out[i] = hit;
      else {
        const slots = missing.get(key);
        if (slots) slots.push(i);
        else missing.set(key, [i]);
      }
    }
    if (missing.size > 0) {
      const values = await this.#fromL2([...missing.keys()]);
      let j = 0;
      for (const slots of missing.values()) {
        const v = values[j++];
        // Each slot gets its own copy when copies are on; duplicates must not share one.
        for (const i of slots) out[i] = v !== undefined && this.#copy ? this.#copy(v) : v;
      }
    }
    return out as Array<T | undefined>;
  }

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    await this.setMany([[key, value, options]]);
  }

  async setMany(entries: ReadonlyArray<SetManyEntry>): Promise<void> {
    this.#open();
    if (!Array.isArray(entries))
      throw new InvalidOptionError("setMany expects an array of entries");
    // Validate and encode everything before the first byte goes out: bad input changes nothing.
    const prepared = entries.map((entry) => {
      if (!Array.isArray(entry))
        throw new InvalidOptionError("setMany entries are [key, value, options?]");
      return this.#prepare(entry[0], entry[1], entry[2]);
    });
    if (prepared.length === 0) return;
    const keys = prepared.map((p) => p.key);
    const started = this.#now();
    let versions: number[];
    this.#inflight++;
    try {
      versions = await this.#store.set(
        this.namespace,
        prepared.map((p) => p.write),
      );
      if (!Array.isArray(versions) || versions.length !== prepared.length) {
        throw new StoreError("EC_STORE_ERROR", "store.set returned the wrong number of versions");
      }
    } catch (err) {
      this.#forget(keys);
      this.#settle();
      throw this.#failed(err, "set", keys);
    }
    this.#stats.sets += prepared.length;
    prepared.forEach((p, i) => {
      const version = versions[i]!;
      this.#raiseFloor(p.key, version);
      // Measured from before the request: the L2 expiry started later, so L1 never outlives it.
      const expiresAt = started + Math.min(p.write.ttl, this.#localTtl);
      this.#install(p.key, this.#copy ? this.#copy(p.value) : p.value, version, expiresAt, p.size);
    });
    this.#settle();
  }

  async delete(key: string): Promise<void> {
    await this.deleteMany([key]);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.#open();
    if (!Array.isArray(keys)) throw new InvalidKeyError("deleteMany expects an array of keys");
    for (const key of keys) this.#checkKey(key);
    if (keys.length === 0) return;
    const unique = [...new Set(keys)];
    this.#inflight++;
    let version: number;
    try {
      version = await this.#store.delete(this.namespace, unique);
    } catch (err) {
      this.#forget(unique);
      this.#settle();
      throw this.#failed(err, "delete", unique);
    }
    this.#stats.deletes += unique.length;
    for (const key of unique) {
      this.#raiseFloor(key, version);
      this.#local?.delete(key);
    }
    this.#settle();
  }

  async clear(): Promise<void> {
    this.#open();
    this.#inflight++;
    let version: number;
    try {
      version = await this.#store.clear(this.namespace);
    } catch (err) {
      // Whether or not L2 applied it, an empty L1 is never wrong.
      this.#local?.clear();
      this.#clearFailed = true;
      this.#settle();
      throw this.#failed(err, "clear", []);
    }
    this.#stats.clears++;
    this.#clearFloor = Math.max(this.#clearFloor, version);
    this.#local?.clear();
    this.#settle();
  }

  stats(): CacheStats {
    return {
      ...this.#stats,
      l1Items: this.#local?.size ?? 0,
      l1Bytes: this.#local?.bytes ?? 0,
      l1Evictions: this.#local?.evictions ?? 0,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#local?.clear();
  }

  #open(): void {
    if (this.#closed) throw new ClosedError();
  }

  #checkKey(key: unknown): asserts key is string {
    if (typeof key !== "string") throw new InvalidKeyError("keys must be strings");
    if (key.length === 0) throw new InvalidKeyError("keys must not be empty");
    // UTF-8 needs at most 3 bytes per UTF-16 unit; only long keys need counting.
    if (key.length * 3 > this.#maxKeyBytes && utf8Length(key) > this.#maxKeyBytes) {
      throw new InvalidKeyError(`keys must be at most ${this.#maxKeyBytes} UTF-8 bytes`);
    }
  }

  #prepare(key: unknown, value: unknown, options: SetOptions | undefined): Prepared {
    this.#checkKey(key);
    let ttl = this.#ttl;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null) {
        throw new InvalidOptionError("set options must be an object", { key });
      }
      if (options.ttl !== undefined) ttl = checkTtl(options.ttl, "ttl", InvalidOptionError, key);
    }
    if (value === undefined) {
      throw new SerializationError("undefined cannot be cached (a miss reads as undefined)", {
        key,
      });
    }
    let text: string;
    try {
      text = this.#serializer.serialize(value);
    } catch (err) {
      if (err instanceof SerializationError) {
        throw new SerializationError(err.message, { key });
      }
      throw new SerializationError(
        `serializer "${this.#serializer.name}" could not encode the value`,
        { key },
      );
    }
    if (typeof text !== "string") {
      throw new SerializationError(
        `serializer "${this.#serializer.name}" did not return a string`,
        {
          key,
        },
      );
    }
    const payload = this.#tag + text;
    const bytes = utf8Length(payload);
    if (bytes > this.#maxValueBytes)
      throw new ValueTooLargeError(bytes, this.#maxValueBytes, { key });
    return { key, value, write: { key, value: payload, ttl }, size: bytes + key.length };
  }

  // The hot path: kept flat, with no allocation and one clock read at most.
  #fromL1(key: string): unknown {
    const local = this.#local;
    if (local !== undefined) {
      const entry = local.get(key);
      if (entry !== undefined) {
        if (entry.expiresAt > this.#hitClock() + this.#hitSlack) {
          this.#stats.l1Hits++;
          return this.#copy === undefined ? entry.value : this.#copy(entry.value);
        }
        local.delete(key);
      }
    }
    this.#stats.l1Misses++;
    return MISS;
  }

  async #fromL2(keys: string[]): Promise<unknown[]> {
    const started = this.#now();
    this.#inflight++;
    try {
      let entries: ReadonlyArray<StoreEntry | undefined>;
      let corrupt: number;
      try {
        const result = await this.#store.get(this.namespace, keys);
        entries = result.entries;
        corrupt = result.corrupt;
        if (!Array.isArray(entries) || entries.length !== keys.length) {
          throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
        }
      } catch (err) {
        this.#stats.l2Misses += keys.length;
        this.#absorb(this.#failed(err, "get", keys));
        return keys.map(() => undefined);
      }
      if (corrupt > 0) this.#corrupt(corrupt, undefined);
      return keys.map((key, i) => {
        const entry = entries[i];
        if (entry === undefined) {
          this.#stats.l2Misses++;
          return undefined;
        }
        const value = this.#decode(entry.value);
        if (value === MISS) {
          this.#stats.l2Misses++;
          this.#corrupt(1, key);
          return undefined;
        }
        this.#stats.l2Hits++;
        const expiresAt = started + Math.min(entry.ttl, this.#localTtl);
        this.#install(key, value, entry.version, expiresAt, utf8Length(entry.value) + key.length);
        return value;
      });
    } finally {
      this.#settle();
    }
  }

  #decode(payload: string): unknown {
    if (typeof payload !== "string" || !payload.startsWith(this.#tag)) return MISS;
    try {
      const value = this.#serializer.deserialize(payload.slice(this.#tag.length));
      return value === undefined ? MISS : value;
    } catch {
      return MISS;
    }
  }

  #install(key: string, value: unknown, version: number, expiresAt: number, size: number): void {
    const local = this.#local;
    if (local === undefined || !(expiresAt > this.#now())) return;
    if (this.#clearFailed || version <= this.#clearFloor) return;
    if (version < (this.#floors.get(key) ?? 0)) return;
    const current = local.get(key);
    if (current !== undefined && current.version > version) return;
    const entry: LocalEntry = { value, version, expiresAt, size };
    local.set(key, entry);
  }

  // Remember the newest completed mutation of a key while answers that started earlier may
  // still arrive; once nothing is in flight the floors are no longer needed.
  #raiseFloor(key: string, version: number): void {
    if (this.#inflight > 1 && version > (this.#floors.get(key) ?? 0)) {
      this.#floors.set(key, version);
    }
  }

  // A failed write may or may not have reached L2: drop the keys from L1 and refuse any
  // answer for them until the operations in flight have settled.
  #forget(keys: string[]): void {
    for (const key of keys) {
      this.#local?.delete(key);
      if (this.#inflight > 1) this.#floors.set(key, Number.POSITIVE_INFINITY);
    }
  }

  #settle(): void {
    this.#inflight--;
    if (this.#inflight === 0) {
      this.#floors.clear();
      this.#clearFailed = false;
    }
  }

  #corrupt(count: number, key: string | undefined): void {
    this.#stats.corrupt += count;
    this.#absorb(
      new CorruptEntryError(
        count === 1
          ? "an L2 entry could not be decoded; served as a miss"
          : `${count} L2 entries could not be decoded; served as misses`,
        key === undefined ? {} : { key },
      ),
    );
  }

  #failed(err: unknown, op: string, keys: string[]): EdgeCacheError {
    this.#stats.errors++;
    if (err instanceof EdgeCacheError) return err;
    // A custom store threw something untyped; do not forward its message (it may hold data).
    return new StoreError("EC_STORE_ERROR", `store.${op} failed`, {
      cause: err,
      ...(keys.length === 1 ? { key: keys[0] } : {}),
    });
  }

  #absorb(error: EdgeCacheError): void {
    if (this.#onError) {
      try {
        this.#onError(error);
      } catch (hookError) {
        this.#logger.error("onError threw", { name: (hookError as Error)?.name });
      }
      return;
    }
    this.#logger.warn(error.message, { code: error.code, namespace: this.namespace });
  }
}

function checkTtl(
  ttl: unknown,
  name: string,
  ErrorClass: typeof InvalidOptionError,
  key?: string,
): number {
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new ErrorClass(
      `${name} must be a finite number of ms greater than 0`,
      key ? { key } : {},
    );
  }
  // Redis PX takes whole milliseconds; round up so a tiny TTL never becomes 0.
  return Math.ceil(ttl);
}

function checkLimit(value: unknown, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidOptionError(`${name} must be a positive integer`);
  }
  return v;
}

/**
 * Creates a two-level cache: an in-process L1 in front of a shared L2 store.
 *
 * @example
 * ```ts
 * import { createCache } from "edgecache";
 * import { upstashStore } from "edgecache/upstash";
 *
 * const cache = createCache({
 *   store: upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
 *   namespace: "app",
 *   ttl: 60_000,
 * });
 * await cache.set("user:1", { name: "Ada" });
 * const user = await cache.get<{ name: string }>("user:1");
 * ```
 */
export function createCache(options: CacheOptions): Cache {
  return new EdgeCache(options);
}
