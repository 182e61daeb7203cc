/**
 * The options users write: of `createCache`, of one `set` or `getOrSet`, and of a namespace.
 * What they resolve to lives with the code that checks them (`options.ts`, `load.ts`).
 *
 * @module
 */

import type { BreakerOptions } from "./breaker.js";
import type { SerializerOption } from "./codec.js";
import type { EdgeCacheError } from "./errors.js";
import type { LocalCache, LocalOptions } from "./local.js";
import type { Logger } from "./logger.js";
import type { Store } from "./store/contract.js";
import type { SyncOptions } from "./sync/state.js";

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
   * The in-process L1: options of the built-in `lru-cache` one, or `false` for no L1 (every
   * read goes to L2). To use an L1 of your own (a {@link LocalCache}), pass it as
   * `local: { cache: myLocal }`; `ttl` and `copyOnRead` still apply to it. (A bare
   * `LocalCache` is still accepted at run time, as before, but is not part of the type, so
   * that completion for `local: {` offers the options only.)
   * @default { maxItems: 10_000, maxBytes: 32 MiB }
   * @example
   * ```ts
   * createCache({ store, local: { maxItems: 50_000, ttl: 5_000 } });
   * createCache({ store, local: { cache: myLocalCache } });
   * ```
   */
  local?: false | LocalOptions;
  /**
   * How values are encoded for L2: `"superjson"` (Dates, Maps, Sets, BigInts survive),
   * `"json"`, or your own {@link Serializer}. With the built-in ones, `set` refuses a value
   * that would not read back the same (a `Blob`, a `WeakMap`, `NaN` under `"json"`...) with
   * `SerializationError` (`EC_SERIALIZE`) naming where it sits, e.g. `value.avatar: Blob`;
   * {@link SerializerOption} lists what each one carries.
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
   * Diagnostics sink; `false` silences it. An object with `warn` and `error` methods
   * (`debug` and `info` optional); anything else is refused at setup. A method that throws
   * or rejects is ignored: logging never fails a read or a write. Repeated lines are
   * rate-limited (see `logInterval`).
   * @default consoleLogger("warn")
   */
  logger?: Logger | false;
  /**
   * Rate limit of log lines, in ms: the cache writes at most one line per level and error
   * code in this interval (say, one `EC_STORE_UNAVAILABLE` warning a minute while L2 is
   * down, however many reads fail). The first line after the interval says how many were
   * dropped: `(41 similar suppressed in the last 60 s)` in the message, `{ suppressed: 41 }`
   * in the meta. Measured on `now`, without timers. Each cache and each namespace counts
   * its own. `0` writes every line. `onError` is never rate-limited.
   * @default 60_000
   */
  logInterval?: number;
  /**
   * Called with every error the cache absorbs instead of throwing: failed L2 reads (served
   * as misses) and corrupt L2 entries. Thrown errors (failed writes, bad input) are not
   * passed here. It gets every error, without the rate limit of log lines. A hook that
   * throws (or returns a promise that rejects) does not fail the read: the cache logs
   * `onError threw` at error level instead. When unset, absorbed errors go to `logger.warn`.
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
  /**
   * The L2 circuit breaker: after repeated L2 failures, stop calling L2 for a while and
   * serve from L1 and loaders; it recovers on its own. Shared by the cache's namespaces.
   * `false` turns it off.
   * @default { threshold: 5, cooldown: 5000 }
   */
  breaker?: BreakerOptions | false;
  /**
   * Default TTL jitter of writes: each entry's TTL is shortened by a random fraction of up
   * to this (0 <= jitter < 1), so entries written together do not expire together.
   * @default 0
   */
  jitter?: number;
}

/** What a loader gets besides the key. */
export interface LoaderContext<V = unknown> {
  /** The key to load. */
  readonly key: string;
  /** The stale value being replaced, when there is one (a refresh, or a load within grace). */
  readonly stale: V | undefined;
  /**
   * `true` when this load started as a background refresh (stale-while-revalidate, or the
   * refresh while L2 cannot be read): the caller that started it was answered with the
   * stale value (callers that come later may still join it and wait). `false` when it
   * started for a caller that waits for its outcome (until `timeout`, if set).
   */
  readonly background: boolean;
  /** Aborted when the load runs past `hardTimeout`; pass it on to `fetch` and the like. */
  readonly signal: AbortSignal;
  /**
   * Adds tags to the value being loaded (besides the `tags` option), for `invalidateTag`.
   * Throws `InvalidOptionError` on a store without tags (a sharded one).
   */
  tag(...tags: string[]): void;
  /** Caches this value for `ms` instead of the `ttl` option (e.g. from an HTTP max-age). */
  setTtl(ms: number): void;
  /**
   * Do not cache this value, and do not hand it to other callers that joined this load:
   * each of them runs its own load (e.g. a response that turned out to be private).
   */
  noStore(): void;
}

/**
 * Loads the value of a key on a miss. Return `undefined` for "no such value" (not cached
 * unless `negativeTtl` is set); throw to report a failure.
 */
export type Loader<V = unknown> = (key: string, context: LoaderContext<V>) => V | Promise<V>;

/**
 * What a batch loader gets besides the keys: the {@link LoaderContext} of each key, by key.
 * Tags, TTLs and `noStore` name the key they are for; a key not among `keys` is refused
 * with `InvalidOptionError`.
 */
export interface BatchLoaderContext<V = unknown> {
  /** The keys to load, each once, in the order the caller first asked for them. */
  readonly keys: readonly string[];
  /** The stale values being replaced (refreshes, loads within grace), by key. */
  readonly stale: ReadonlyMap<string, V>;
  /** `true` when this load started as a background refresh (see {@link LoaderContext.background}). */
  readonly background: boolean;
  /** Aborted when the load runs past `hardTimeout`. */
  readonly signal: AbortSignal;
  /** Adds tags to the value of `key` (besides the `tags` option). */
  tag(key: string, ...tags: string[]): void;
  /** Caches the value of `key` for `ms` instead of the `ttl` option. */
  setTtl(key: string, ms: number): void;
  /** Neither cache the value of `key` nor hand it to other callers (see {@link LoaderContext.noStore}). */
  noStore(key: string): void;
}

/**
 * Loads the values of several keys in one call (one database query for every miss):
 * returns a `Map` or a plain object by key, or an array in the order of `keys`. A key it
 * does not return (or returns `undefined` for) has no value: not cached unless
 * `negativeTtl` is set. Throwing fails every key of the call.
 *
 * @example
 * ```ts
 * const load: BatchLoader<Product> = async (keys) => {
 *   const rows = await db.products(keys.map((k) => k.slice("product:".length)));
 *   return new Map(rows.map((row) => [`product:${row.id}`, row]));
 * };
 * ```
 */
export type BatchLoader<V = unknown> = (
  keys: readonly string[],
  context: BatchLoaderContext<V>,
) =>
  | ReadonlyMap<string, V | undefined>
  | Readonly<Record<string, V | undefined>>
  | ReadonlyArray<V | undefined>
  | Promise<
      | ReadonlyMap<string, V | undefined>
      | Readonly<Record<string, V | undefined>>
      | ReadonlyArray<V | undefined>
    >;

/** Options of {@link Cache.getOrSet}; a namespace's options give their defaults. */
export interface GetOrSetOptions {
  /**
   * How long a loaded value is fresh, in ms.
   * @default the cache's (or namespace's) `ttl`
   */
  ttl?: number;
  /**
   * Shorten the TTL by a random fraction of up to this (0 <= jitter < 1).
   * @default the cache's `jitter`
   */
  jitter?: number;
  /**
   * For this many ms after a value goes stale, a read answers with the stale value at once
   * and refreshes it in the background, once per key (through `waitUntil` when given).
   * Refresh errors are reported to `onError`.
   * @default 0
   */
  staleWhileRevalidate?: number;
  /**
   * Fail-safe: for this many ms after a value goes stale, keep it, and serve it when the
   * loader or L2 fails (the failure goes to `onError`). When L2 cannot be read, the value
   * L1 holds is served at once and one refresh runs in the background. Stale entries live in
   * L2 for `max(staleWhileRevalidate, grace)` past their TTL.
   * @default 0
   */
  grace?: number;
  /**
   * After a load fails and a value is served from grace, serve that value for this many ms
   * before calling the loader again, so a failing origin is not called on every read.
   * @default 5000
   */
  graceBackoff?: number;
  /**
   * Soft timeout in ms: when a stale value is at hand (within grace or
   * staleWhileRevalidate) and the loader has not finished by then, answer with the stale
   * value; the load goes on in the background and caches its result.
   */
  timeout?: number;
  /**
   * Hard timeout in ms: a load that has not finished by then rejects with
   * `LoaderError` (`EC_LOADER_TIMEOUT`), or serves the value within grace if there is one.
   * The loader's `signal` is aborted.
   */
  hardTimeout?: number;
  /**
   * Coalesce loads across instances: the first instance to miss takes a short lease in L2
   * (`SET NX PX`) and loads; the others wait for its value (polling L2 with backoff, or
   * woken by the hub), and load themselves only if the lease ends without one. Within one
   * instance, concurrent loads of a key are always coalesced. `ttl` is the lease's length
   * (it ends early when its holder finishes, and on its own if the holder dies); `wait` is
   * how long others wait before loading themselves.
   * @default false
   */
  lock?: boolean | { ttl?: number; wait?: number };
  /**
   * Negative caching: remember a loader's failure (rethrown as `LoaderError`,
   * `EC_LOADER_FAILED`) or its `undefined` for this many ms, in L1 and L2, instead of
   * calling it again. Unset: failures and `undefined` are not cached.
   */
  negativeTtl?: number;
  /**
   * Hands background loads (refreshes, loads that outlived `timeout`) to the runtime, e.g.
   * `ctx.waitUntil` in Workers.
   * @default the `sync.waitUntil` option; in-process otherwise
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * What other instances get when a loaded value is written (see {@link SetOptions}).
   * @default "value"
   */
  propagate?: "value" | "invalidate";
  /** Tags of the loaded value (see {@link SetOptions.tags}); the loader can add more. */
  tags?: readonly string[];
}

/** Options of {@link Cache.namespace}: the namespace's loader and its defaults. */
export interface NamespaceOptions<V = unknown> extends GetOrSetOptions {
  /** The loader of this namespace: `get` loads through it on a miss (read-through). */
  loader?: Loader<V>;
  /**
   * The batch loader of this namespace: `getMany` loads all its misses through it in one
   * call (and `get` through it with one key, when there is no `loader`). Without it,
   * `getMany` of a namespace with a `loader` calls that for each miss, at most
   * `loadConcurrency` at a time.
   */
  loadMany?: BatchLoader<V>;
  /**
   * How many calls of `loader` one `getMany` runs at once, when there is no `loadMany`.
   * @default 8
   */
  loadConcurrency?: number;
  /**
   * This namespace's own L1 budget.
   * @default the parent's `local` options (a separate L1 of the same size)
   */
  local?: false | LocalOptions;
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
  /**
   * Shorten this entry's TTL by a random fraction of up to `jitter` (0 <= jitter < 1), so
   * that entries written together do not all expire, and reload, at the same moment.
   * @default the cache's `jitter`
   */
  jitter?: number;
  /**
   * Tags of this entry: `invalidateTag(tag)` makes every entry with that tag a miss, on
   * every instance within the staleness bound. Non-empty, well-formed strings (no lone
   * surrogates) of at most 256 characters; at most 64 per entry. Not available on a sharded
   * store (its versions do not order writes across keys): there, tags are refused with
   * `EC_INVALID_OPTION`.
   */
  tags?: readonly string[];
  /**
   * Keep the entry in L2 this many ms past its TTL, as a stale value: `getOrSet` with
   * `staleWhileRevalidate` or `grace` can then serve it while it reloads, as it can an entry
   * its own loader wrote. A plain `get` never returns it once the TTL has passed.
   * @default 0
   */
  staleFor?: number;
}

/** One entry of `setMany`: `[key, value]` or `[key, value, { ttl }]`. */
export type SetManyEntry<V = unknown> = readonly [key: string, value: V, options?: SetOptions];
