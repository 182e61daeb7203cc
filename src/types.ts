/**
 * The {@link Cache} interface and what it reports. The option types are in `cache-options.ts`,
 * re-exported here for the modules that take them from this one.
 *
 * @module
 */

import type { BreakerStats } from "./breaker.js";
import type { CacheEventMap } from "./cache/events.js";
import type {
  BatchLoader,
  GetOrSetOptions,
  Loader,
  NamespaceOptions,
  SetManyEntry,
  SetOptions,
} from "./cache-options.js";
import type { HubStats } from "./hub/client.js";
import type { PubSubStats } from "./sync/pubsub.js";

export type {
  BatchLoader,
  BatchLoaderContext,
  CacheOptions,
  GetOrSetOptions,
  Loader,
  LoaderContext,
  NamespaceOptions,
  SetManyEntry,
  SetOptions,
} from "./cache-options.js";

/** What {@link Cache.inspect} reports about one key. */
export interface InspectResult {
  readonly key: string;
  /** Where the answer came from: this instance's L1, or L2. */
  readonly tier: "l1" | "l2";
  /** The value (`undefined` for a negative entry). */
  readonly value: unknown;
  /** The L2 version the value was written with. */
  readonly version: number;
  /** Ms of freshness left; 0 or less when the entry is stale (kept for SWR or grace). */
  readonly ttl: number;
  /** Ms until the entry is gone from this tier altogether. */
  readonly expiresIn: number;
  readonly stale: boolean;
  readonly tags: readonly string[];
  /** A remembered loader outcome instead of a value (`negativeTtl`). */
  readonly negative: "error" | "absent" | undefined;
}
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
  /** Change-log reads applied (alone or riding along with L2 reads). */
  syncs: number;
  /** Key changes from other instances applied to L1. */
  changesApplied: number;
  /** Times L1 was dropped whole: a clear, a gap in the log, a backlog over `sync.batch`. */
  flushes: number;
  /** How many versions behind the head this instance was at its last sync. */
  syncLag: number;
  /** The last change-log version this instance applied (-1 before the first). */
  cursor: number;
  /**
   * The invalidation hub's state, when `sync.hub` is set. `subscribed` says what this
   * instance uses it for: a subscriber is `healthy` while every shard socket is connected
   * and caught up; a publisher that does not subscribe (a Worker with `binding` only) is
   * `healthy` while its last publish went through.
   */
  hub: ({ healthy: boolean } & HubStats) | undefined;
  /** The Redis pub/sub stream's state, when `sync.pubsub` subscribes. */
  pubsub: PubSubStats | undefined;
  /** Loader calls made by this instance. */
  loads: number;
  /** Loader calls that threw or timed out. */
  loadErrors: number;
  /** `getOrSet` calls that joined a load already running on this instance. */
  coalesced: number;
  /** Loads that waited for another instance's lease instead of calling the loader. */
  lockWaits: number;
  /** Stale values served at once (stale-while-revalidate, or a soft timeout). */
  staleHits: number;
  /** Stale values served because the loader or L2 failed (grace). */
  graceHits: number;
  /** The L2 circuit breaker, when on. */
  breaker: BreakerStats | undefined;
}

/** A two-level cache bound to one namespace. Create one with {@link createCache}. */
export interface Cache {
  /** The namespace this cache reads and writes (for a namespace: `parent/name`). */
  readonly name: string;
  /**
   * The value under `key`, or `undefined` on a miss. An L1 hit costs no I/O; otherwise one
   * L2 request. L2 failures are served as misses and reported to `onError`.
   */
  get<T = unknown>(key: string): Promise<T | undefined>;
  /**
   * The L1 value under `key`, synchronously, or `undefined` if L1 has nothing fresh. Never
   * does I/O: for hot paths that prefer a miss to a wait. With coherence on, it answers
   * only within the staleness window of the last sync (a `get` or `getMany` syncs).
   */
  peek<T = unknown>(key: string): T | undefined;
  /** Whether `key` has a value (same cost as `get`). */
  has(key: string): Promise<boolean>;
  /**
   * Stores `value` in L2 and L1. Resolves only once L2 has it; rejects with a typed error
   * otherwise (bad input changes nothing; an L2 failure drops the key from L1).
   */
  set(key: string, value: unknown, options?: SetOptions): Promise<void>;
  /** `set` with `propagate: "invalidate"`: other instances only drop their copy. */
  setWithInvalidate(
    key: string,
    value: unknown,
    options?: Omit<SetOptions, "propagate">,
  ): Promise<void>;
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
  /**
   * The value under `key`; on a miss, calls `loader` once (however many callers ask at once),
   * caches what it returns and returns it. See {@link GetOrSetOptions} for coalescing across
   * instances, stale-while-revalidate, grace, timeouts and negative caching.
   * @see docs/read-through.md (shipped in the package)
   */
  getOrSet<T>(key: string, loader: Loader<T>, options?: GetOrSetOptions): Promise<T>;
  /**
   * `getOrSet` for several keys, with one loader call for every miss: the values of `keys`
   * in order (`undefined` where the loader returned none). L1 answers what it can; the rest
   * costs one L2 read, one call of `loader` with exactly the keys that need loading, and one
   * L2 write of what it returned. Keys already loading on this instance (a concurrent
   * `getOrSet` or `getOrSetMany`) are joined, not loaded again; with `lock`, keys another
   * instance is loading are waited for. Stale-while-revalidate, grace, timeouts, tags and
   * negative caching work per key as in `getOrSet`. Rejects with the first key's failure
   * that nothing (no stale value within grace) can stand in for.
   * @example
   * ```ts
   * const products = await cache.getOrSetMany(
   *   ids.map((id) => `product:${id}`),
   *   async (missing) => new Map((await db.products(missing)).map((p) => [`product:${p.id}`, p])),
   *   { ttl: 60_000, staleWhileRevalidate: 300_000, lock: true },
   * );
   * ```
   * @see docs/batch-read-through.md (shipped in the package)
   */
  getOrSetMany<T>(
    keys: readonly string[],
    loader: BatchLoader<T>,
    options?: GetOrSetOptions,
  ): Promise<Array<T | undefined>>;
  /**
   * A cache scoped to the namespace `<this namespace>/<name>`: its own keys, change log,
   * TTL, L1 budget and, optionally, a loader that `get` reads through. Shares this cache's
   * store, breaker, serializer and settings. Asking again for a name returns the same one.
   */
  namespace<V = unknown>(name: string, options?: NamespaceOptions<V>): Group<V>;
  /**
   * Makes every entry tagged `tag` (with `set`'s or `getOrSet`'s `tags`) a miss: here at
   * once, on other instances within the staleness bound (through the change log, and the
   * hub when on). One L2 request. Entries written after it are not affected.
   * @throws InvalidOptionError on a store without tags (a sharded one).
   */
  invalidateTag(tag: string): Promise<void>;
  /** {@link Cache.invalidateTag} for several tags in one L2 request. */
  invalidateTags(tags: readonly string[]): Promise<void>;
  /**
   * What the cache holds for `key`, for diagnostics: value, version, TTL left, tags and
   * which tier answered; `undefined` when neither tier has it (or its tag was invalidated).
   * Reads L2 when L1 has nothing (one request); loads nothing.
   */
  inspect(key: string): Promise<InspectResult | undefined>;
  /**
   * One page of the keys this namespace holds in L2, for diagnostics (the admin API's key
   * listing): keys starting with `prefix`, about `limit` of them (at most 1000), and the
   * `cursor` to pass for the next page (`""` once done). Keys live from the first page to
   * the last are listed at least once; an entry hidden by a tag invalidation may still be
   * listed. One store request per page; L1 is not consulted.
   * @throws InvalidOptionError on bad options, or when the store cannot list keys (it has
   *   no `keys` method).
   * @example
   * ```ts
   * let cursor = "";
   * do {
   *   const page = await cache.keys({ prefix: "user:", cursor, limit: 500 });
   *   console.log(page.keys);
   *   cursor = page.cursor;
   * } while (cursor !== "");
   * ```
   */
  keys(options?: {
    /** Only keys starting with this. @default "" */
    prefix?: string;
    /** Where to go on: the `cursor` of the previous page. @default "" (the start) */
    cursor?: string;
    /** About how many keys the page holds, from 1 to 1000. @default 100 */
    limit?: number;
  }): Promise<{ keys: string[]; cursor: string }>;
  /**
   * Calls `listener` on every `event` of this cache (for a namespace, of that namespace):
   * `hit` (with its tier), `miss`, `set`, `delete`, `clear`, `sync` (records applied, or a
   * flush), `load` (key, duration, outcome), `stale` (served by stale-while-revalidate or
   * grace), `breaker` (state changes) and `error` (what `onError` gets). Listeners run
   * where the event happens; what they throw or reject is logged and ignored, never the
   * caller's. With no listener, events cost nothing. Payloads carry keys, never values.
   * @throws InvalidOptionError for an unknown event or a listener that is not a function.
   * @example
   * ```ts
   * cache.on("load", ({ key, ms, outcome }) => console.log(`loaded ${key} in ${ms} ms: ${outcome}`));
   * ```
   * @see docs/events.md (shipped in the package)
   */
  on<E extends keyof CacheEventMap>(
    event: E,
    listener: (payload: CacheEventMap[E]) => unknown,
  ): void;
  /** Stops calling `listener` on `event`; nothing happens when it was not listening. */
  off<E extends keyof CacheEventMap>(
    event: E,
    listener: (payload: CacheEventMap[E]) => unknown,
  ): void;
  /** Counters and L1 occupancy. */
  stats(): CacheStats;
  /**
   * Waits for background syncs, drops L1 and refuses further calls with `ClosedError`.
   * Does not close the store, which may be shared.
   */
  close(): Promise<void>;
}

/**
 * A namespace of a cache. With a `loader` or `loadMany`, `get` and `getMany` are
 * read-through: a miss loads, caches and returns the value, as `getOrSet(key, loader)` and
 * `getOrSetMany(keys, loadMany)` with the namespace's options would. `peek` and `has` do
 * not load.
 */
export interface Group<V = unknown> extends Cache {
  get<T = V>(key: string): Promise<T | undefined>;
  /** The namespace's loader and defaults, as given. */
  readonly options: Readonly<NamespaceOptions<V>>;
}
