import { LRUCache } from "lru-cache";
import { InvalidOptionError } from "./errors.js";
import { tinyLfuLocal } from "./tinylfu.js";
import { duration, isRecord, positiveInt } from "./util/check.js";

/** One L1 entry. The cache checks `expiresAt` itself, so a {@link LocalCache} needs no timers. */
export interface LocalEntry {
  /** The decoded value (shared with callers unless `copyOnRead` is set). */
  readonly value: unknown;
  /** The L2 version this value came from. */
  readonly version: number;
  /** Expiry on the cache's clock, in ms; never later than the L2 entry's. */
  readonly expiresAt: number;
  /** Budgeted size in bytes: the encoded value plus the key. */
  readonly size: number;
  /**
   * Past `expiresAt` the entry is stale: plain reads miss it, but `getOrSet` may still
   * serve it (stale-while-revalidate, grace) until this time. Unset: gone at `expiresAt`.
   */
  readonly staleUntil?: number;
  /**
   * A remembered loader outcome rather than a value (`getOrSet` with `negativeTtl`): the
   * loader failed, or found nothing. `value` is `undefined`.
   */
  readonly negative?: Negative;
  /** The entry's tags: it is valid only while none of them was invalidated after it. */
  readonly tags?: readonly string[];
  /**
   * L2 never vouched for this value: it was loaded here while L2 could not take it (then
   * `version` is the newest this instance had seen when the load started, so any change of
   * the key seen later replaces it), or it is a stale value kept for `graceBackoff` after a
   * failed load (at its own version).
   */
  readonly unvouched?: true;
  /**
   * A value loaded here while L2 could not take it is fresh in L1 only within the sync's
   * staleness bound (`expiresAt`), so that once L2 is back the instances converge on what
   * it holds; while L2 still cannot be read, `getOrSet` serves it until this time (its own
   * TTL).
   */
  readonly unvouchedUntil?: number;
  /**
   * After a failed load: until this time `getOrSet` serves this stale value (within grace)
   * without calling the loader again (`graceBackoff`). Plain reads still treat it as stale.
   */
  readonly holdUntil?: number;
}

/** What a negative entry remembers: the loader threw, or returned `undefined`. */
export type Negative = "error" | "absent";

/**
 * The in-process tier. The built-in one is an `lru-cache`; supply your own (an LFU, a
 * shared Map in tests) by implementing this and passing it as `local: { cache }`. One
 * instance must serve one cache only (each namespace gets a built-in L1 of its own).
 *
 * @example
 * ```ts
 * const map = new Map<string, Parameters<LocalCache["set"]>[1]>();
 * const myLocal: LocalCache = {
 *   get: (k) => map.get(k),
 *   set: (k, e) => void map.set(k, e),
 *   delete: (k) => void map.delete(k),
 *   clear: () => map.clear(),
 *   get size() { return map.size; },
 *   get bytes() { return 0; },
 * };
 * createCache({ store, local: { cache: myLocal } });
 * ```
 */
export interface LocalCache {
  /** The entry under `key`, expired or not (the cache checks `expiresAt` itself). */
  get(key: string): LocalEntry | undefined;
  /** Stores `entry` under `key`, evicting whatever the implementation's bounds require. */
  set(key: string, entry: LocalEntry): void;
  /** Drops `key`. */
  delete(key: string): void;
  /** Drops every entry. */
  clear(): void;
  /** Number of entries held. */
  readonly size: number;
  /** Sum of the entries' `size`. */
  readonly bytes: number;
  /** Entries dropped to stay within bounds, if the implementation counts them. */
  readonly evictions?: number;
}

/**
 * Options of the L1 (the `local` option): the built-in L1's bounds, how long entries may
 * stay, copying on read, or an L1 of your own as `cache`.
 */
export interface LocalOptions {
  /**
   * Most entries held, at most 2^24 (16,777,216). The built-in L1 reserves its index
   * for this many entries up front (about 30 bytes each), so size it to what you hold.
   * @default 10_000
   */
  maxItems?: number;
  /**
   * Most bytes held, counting each entry's encoded value and key. An entry larger than
   * this is not kept in L1 at all.
   * @default 33_554_432 (32 MiB)
   */
  maxBytes?: number;
  /**
   * How the built-in L1 chooses what to keep within `maxItems` and `maxBytes`:
   *
   * - `"lru"`: drop the least recently used entry.
   * - `"tinylfu"`: W-TinyLFU. A new entry passes through a small LRU window and then
   *   stays only if it was used more often than the entry it would push out (counted in a
   *   small, aging frequency sketch). It keeps clearly more hits when some keys are used
   *   much more than others and when one-off reads (scans) would flush an LRU, and adapts
   *   its window toward LRU where recency rules. It costs about 12 bytes of sketch per
   *   `maxItems` slot. Numbers: docs/performance.md.
   *
   * Deletes, clears and expiry work the same under both.
   * @default "lru"
   * @example
   * ```ts
   * createCache({ store, local: { maxItems: 50_000, policy: "tinylfu" } });
   * ```
   */
  policy?: "lru" | "tinylfu";
  /**
   * Longest time an entry may live in L1, in ms, whatever its L2 TTL. Leave unset to keep
   * entries as long as their L2 TTL.
   */
  ttl?: number;
  /**
   * L1 hands the same object to every caller by default: fast, but a caller that mutates
   * a returned value changes what others read. Set `true` to give every reader its own
   * `structuredClone` (and to clone on `set`), or pass a function that copies.
   * @default false
   */
  copyOnRead?: boolean | ((value: unknown) => unknown);
  /**
   * An L1 of your own, instead of the built-in `lru-cache` one: it keeps its own bounds
   * (`maxItems`, `maxBytes` and `policy` then apply only to the built-in L1 each namespace
   * gets), while
   * `ttl` and `copyOnRead` apply to it too. It must serve this cache only.
   * @default the built-in `lru-cache` L1
   */
  cache?: LocalCache;
}

/**
 * The largest `local.maxItems`: 2^24 entries, whose index alone takes about 0.5 GB.
 * Larger values would make lru-cache fail to allocate at construction.
 */
const MAX_LOCAL_ITEMS = 2 ** 24;

type Bounds = Pick<LocalOptions, "maxItems" | "maxBytes">;

function localBounds(o: Bounds) {
  const max = positiveInt("local.maxItems", o.maxItems, 10_000);
  if (max > MAX_LOCAL_ITEMS) {
    throw new InvalidOptionError(`local.maxItems must be at most ${MAX_LOCAL_ITEMS}`);
  }
  return { max, maxSize: positiveInt("local.maxBytes", o.maxBytes, 32 << 20) };
}

function localPolicy(policy: unknown): "lru" | "tinylfu" {
  if (policy === undefined || policy === "lru" || policy === "tinylfu") return policy ?? "lru";
  throw new InvalidOptionError('local.policy must be "lru" or "tinylfu"');
}

/**
 * The built-in L1: an `lru-cache` bounded by entries and bytes. It is used without
 * lru-cache's TTL machinery (which relies on timers that a Workers isolate may never run);
 * the cache checks expiry on read against its own clock. It subclasses `LRUCache` so that
 * a hit is a direct call into lru-cache with no wrapper in between.
 */
class LruLocal extends LRUCache<string, LocalEntry> implements LocalCache {
  #evictions = 0;

  constructor(options: Bounds) {
    super({
      ...localBounds(options),
      sizeCalculation: (entry) => Math.max(1, entry.size),
    });
  }

  // Evictions are counted from size changes here rather than with lru-cache's `dispose`
  // hook, which would slow down every get.
  override set(key: string, entry: LocalEntry): this {
    const expected = this.size + (this.has(key) ? 0 : 1);
    super.set(key, entry);
    this.#evictions += expected - this.size;
    return this;
  }

  get bytes(): number {
    return this.calculatedSize;
  }

  get evictions(): number {
    return this.#evictions;
  }
}

/** Creates the built-in L1 (see {@link LocalOptions}). */
export function lruLocal(options: Bounds = {}): LocalCache {
  return new LruLocal(options);
}

function isLocalCache(v: unknown): v is LocalCache {
  return (
    isRecord(v) &&
    typeof (v as LocalCache).get === "function" &&
    typeof (v as LocalCache).set === "function" &&
    typeof (v as LocalCache).delete === "function" &&
    typeof (v as LocalCache).clear === "function"
  );
}

/** The resolved L1 configuration of a cache. */
export interface ResolvedLocal {
  cache: LocalCache;
  ttl: number;
  copy: ((value: unknown) => unknown) | undefined;
}

/**
 * Resolves the `local` option; `undefined` means no L1. A bare {@link LocalCache} (the form
 * before `local: { cache }`) is still accepted.
 */
export function resolveLocal(
  option: false | LocalOptions | LocalCache | undefined,
): ResolvedLocal | undefined {
  if (option === false) return undefined;
  if (isLocalCache(option))
    return { cache: option, ttl: Number.POSITIVE_INFINITY, copy: undefined };
  const o: LocalOptions = option === undefined ? {} : option;
  if (!isRecord(o)) {
    throw new InvalidOptionError(
      "local must be false or { maxItems, maxBytes, policy, ttl, copyOnRead, cache }",
    );
  }
  // Unset: entries live in L1 as long as their freshness does.
  const ttl =
    o.ttl === undefined ? Number.POSITIVE_INFINITY : duration("local.ttl", o.ttl, { zero: false });
  let copy: ((value: unknown) => unknown) | undefined;
  if (o.copyOnRead === true) copy = (v) => structuredClone(v);
  else if (typeof o.copyOnRead === "function") copy = o.copyOnRead;
  else if (o.copyOnRead !== undefined && o.copyOnRead !== false) {
    throw new InvalidOptionError("local.copyOnRead must be a boolean or a function");
  }
  if (o.cache !== undefined) {
    if (!isLocalCache(o.cache)) {
      throw new InvalidOptionError("local.cache must implement get, set, delete and clear");
    }
    // A cache of your own keeps its own bounds; these still bound the built-in L1 that
    // each namespace gets (an L1 is never shared), so they are checked here all the same.
    localBounds(o);
    localPolicy(o.policy);
    return { cache: o.cache, ttl, copy };
  }
  const cache = localPolicy(o.policy) === "tinylfu" ? tinyLfuLocal(localBounds(o)) : lruLocal(o);
  return { cache, ttl, copy };
}
