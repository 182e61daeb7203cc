import type { SerializerOption } from "./codec.js";
import type { EdgeCacheError } from "./errors.js";
import type { HubStats } from "./hub/client.js";
import type { LocalCache, LocalOptions } from "./local.js";
import type { Logger } from "./logger.js";
import type { Store } from "./store.js";
import type { SyncOptions } from "./sync/stamps.js";

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
  /**
   * Coherence across instances: version stamps and a per-namespace change log in L2,
   * polled lazily on reads, so that no instance serves a value more than `maxStaleness` ms
   * after another instance replaced it. `false` turns it off (a single instance, or data
   * that may be stale until its TTL): then no change log is written or read. Every
   * instance of a namespace must use the same setting.
   * @default { maxStaleness: 1000 }
   */
  sync?: SyncOptions | false;
  /**
   * This instance's id in the change log, so it skips its own changes. Must be unique per
   * cache instance (letters, digits, `_ . : -`, up to 64).
   * @default a random UUID, made on the first write
   */
  instanceId?: string;
}

/** Options of one `set`. */
export interface SetOptions {
  /** Time to live in ms for this entry, instead of the cache's default `ttl`. */
  ttl?: number;
  /**
   * What other instances get through the change log: `"value"` sends the new value itself
   * (up to `sync.propagateMaxBytes`, beyond which it falls back to invalidation), so they
   * can keep serving from L1; `"invalidate"` only makes them drop their copy.
   * @default "value"
   */
  propagate?: "value" | "invalidate";
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
  /** The invalidation hub's state, when `sync.hub` is set. */
  hub: ({ healthy: boolean } & HubStats) | undefined;
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
  /** Counters and L1 occupancy. */
  stats(): CacheStats;
  /**
   * Waits for background syncs, drops L1 and refuses further calls with `ClosedError`.
   * Does not close the store, which may be shared.
   */
  close(): Promise<void>;
}
