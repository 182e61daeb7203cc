import type { Breaker } from "./breaker.js";
import { assemble } from "./cache/assemble.js";
import type { Coherence } from "./cache/coherence.js";
import type { Core } from "./cache/core.js";
import { type CacheEvent, type CacheEventMap, isCacheEvent } from "./cache/events.js";
import { listKeys } from "./cache/keys.js";
import { type Inherited, namespaceName, namespaceOptions } from "./cache/namespace.js";
import { type Reader, spread } from "./cache/read.js";
import { limited, oneAtATime } from "./cache/read-through/batch.js";
import type { ReadThrough } from "./cache/read-through/get-or-set.js";
import type { Leases } from "./cache/read-through/lease.js";
import { installTracing, traceable, traced } from "./cache/trace.js";
import type { Writer } from "./cache/write.js";
import { ClosedError, InvalidKeyError, InvalidOptionError } from "./errors.js";
import { type LoadSettings, resolveLoad } from "./load.js";
import type {
  BatchLoader,
  Cache,
  CacheOptions,
  CacheStats,
  GetOrSetOptions,
  Group,
  InspectResult,
  Loader,
  NamespaceOptions,
  SetManyEntry,
  SetOptions,
} from "./types.js";
import { isRecord } from "./util/check.js";

/**
 * The cache: validates each call, answers L1 hits itself (the hot path, one call deep),
 * and hands everything else to its parts: reads, writes, coherence and read-through.
 */
class EdgeCache implements Cache {
  readonly name: string;
  readonly #options: CacheOptions;
  readonly #breaker: Breaker | undefined;
  readonly #load: LoadSettings;
  readonly #core: Core;
  readonly #coherence: Coherence;
  readonly #reader: Reader;
  readonly #writer: Writer;
  readonly #leases: Leases;
  readonly #readThrough: ReadThrough;
  readonly #children = new Map<string, { group: EdgeCache; options: NamespaceOptions }>();

  constructor(options: CacheOptions, inherited?: Inherited) {
    const parts = assemble(options, inherited);
    const core = parts.core;
    this.#options = options;
    this.#breaker = parts.breaker;
    this.#load = resolveLoad(inherited?.options ?? {}, parts.ttl);
    this.name = core.name;
    this.#core = core;
    this.#coherence = parts.coherence;
    this.#reader = parts.reader;
    this.#writer = parts.writer;
    this.#leases = parts.leases;
    this.#readThrough = parts.readThrough;
    traceable(this, (tracing) => {
      core.tracing = tracing;
      for (const child of this.#children.values()) installTracing(child.group, tracing);
    });
  }

  // ---- reads ---------------------------------------------------------------------------

  // The L1-hit path checks the key after the lookup: L1 only ever holds keys that passed
  // `checkKey`, so a bad key misses there and is refused below, having changed nothing.
  async get<T = unknown>(key: string): Promise<T | undefined> {
    const core: Core = this.#core;
    if (core.closed) throw new ClosedError();
    const t = core.hitClock();
    if (typeof key === "string" && core.inWindow(t)) {
      const entry = core.l1.lookup(key, t);
      if (entry !== undefined && (entry.tags === undefined || core.tags.hold(key, entry))) {
        core.stats.l1Hits++;
        if (core.events !== undefined) core.events.emit("hit", { key, tier: "l1" });
        if (core.refreshesAhead) this.#coherence.refreshAhead(t);
        return (core.copy === undefined ? entry.value : core.copy(entry.value)) as T;
      }
    }
    core.codec.checkKey(key);
    const { entries } = await traced(core.tracing, "get", this.name, [key], (op) =>
      this.#reader.slow([key], t, false, op),
    );
    const entry = entries[0];
    return (entry === undefined ? undefined : core.out(entry.value)) as T | undefined;
  }

  peek<T = unknown>(key: string): T | undefined {
    const core: Core = this.#core;
    if (core.closed) throw new ClosedError();
    const t = core.hitClock();
    const entry = typeof key === "string" && core.inWindow(t) ? core.l1.lookup(key, t) : undefined;
    if (entry === undefined || (entry.tags !== undefined && !core.tags.hold(key, entry))) {
      core.codec.checkKey(key);
      core.stats.l1Misses++;
      if (core.events !== undefined) core.events.emit("miss", { key });
      return undefined;
    }
    core.stats.l1Hits++;
    if (core.events !== undefined) core.events.emit("hit", { key, tier: "l1" });
    return (core.copy === undefined ? entry.value : core.copy(entry.value)) as T;
  }

  async has(key: string): Promise<boolean> {
    // The plain read, also in a read-through namespace (whose `get` loads).
    return (await EdgeCache.prototype.get.call(this, key)) !== undefined;
  }

  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    this.#open();
    const core: Core = this.#core;
    if (!Array.isArray(keys)) throw new InvalidKeyError("getMany expects an array of keys");
    for (const key of keys) core.codec.checkKey(key);
    const t = core.hitClock();
    const { out, slow } = this.#reader.hits(keys, t, (entry) => core.out(entry.value));
    if (slow.size === 0) {
      this.#coherence.refreshAhead(t);
      return out as Array<T | undefined>;
    }
    const missing = [...slow.keys()];
    const { entries } = await traced(core.tracing, "getMany", this.name, missing, (op) =>
      this.#reader.slow(missing, t, false, op),
    );
    spread(
      out,
      slow,
      entries.map((e) => e?.value),
      core,
    );
    return out as Array<T | undefined>;
  }

  async getOrSet<T>(key: string, loader: Loader<T>, options?: GetOrSetOptions): Promise<T> {
    this.#open();
    const core: Core = this.#core;
    core.codec.checkKey(key);
    if (typeof loader !== "function") {
      throw new InvalidOptionError("getOrSet needs a loader function", { key });
    }
    const o =
      options === undefined ? this.#load : resolveLoad(options, this.#load.ttl, this.#load, key);
    core.codec.allowTags(o.tags, key);
    const t = core.hitClock();
    if (core.inWindow(t)) {
      const entry = this.#reader.lookup(key, t);
      if (entry !== undefined) {
        core.stats.l1Hits++;
        if (core.events !== undefined) core.events.emit("hit", { key, tier: "l1" });
        this.#coherence.refreshAhead(t);
        return this.#readThrough.cached(entry, key) as T;
      }
    }
    return (await traced(core.tracing, "getOrSet", this.name, [key], (op) =>
      this.#readThrough.miss(key, loader as Loader, o, t, op),
    )) as T;
  }

  async getOrSetMany<T>(
    keys: readonly string[],
    loader: BatchLoader<T>,
    options?: GetOrSetOptions,
  ): Promise<Array<T | undefined>> {
    if (typeof loader !== "function") throw new InvalidOptionError("getOrSetMany needs a loader");
    return this.readMany(
      "getOrSetMany",
      keys,
      options,
      oneAtATime(loader as BatchLoader),
      loader as BatchLoader,
    );
  }

  /**
   * `getMany` that loads its misses: with `batch`, in one call for all of them; without,
   * one `loader` call per key (which the caller bounds).
   */
  protected async readMany(
    operation: "getMany" | "getOrSetMany",
    keys: readonly string[],
    options: GetOrSetOptions | undefined,
    loader: Loader,
    batch: BatchLoader | undefined,
  ): Promise<Array<never>> {
    this.#open();
    const core: Core = this.#core;
    if (!Array.isArray(keys)) throw new InvalidKeyError(`${operation} expects an array of keys`);
    for (const key of keys) core.codec.checkKey(key);
    const o = options && resolveLoad(options, this.#load.ttl, this.#load, keys[0]);
    core.codec.allowTags(o?.tags, keys[0] ?? "");
    const t = core.hitClock();
    const rt = this.#readThrough;
    const { out, slow } = this.#reader.hits(keys, t, (entry, key) => rt.cached(entry, key));
    if (slow.size === 0) this.#coherence.refreshAhead(t);
    else {
      const missing = [...slow.keys()];
      const values = await traced(core.tracing, operation, this.name, missing, (op) =>
        rt.missMany(missing, loader, batch, o ?? this.#load, t, op),
      );
      spread(out, slow, values, core);
    }
    return out as never[];
  }

  async inspect(key: string): Promise<InspectResult | undefined> {
    this.#open();
    this.#core.codec.checkKey(key);
    return traced(this.#core.tracing, "inspect", this.name, [key], (op) =>
      this.#reader.inspect(key, op),
    );
  }

  on<E extends CacheEvent>(event: E, listener: (payload: CacheEventMap[E]) => unknown): void {
    this.#open();
    if (!isCacheEvent(event)) throw new InvalidOptionError(`no event named ${String(event)}`);
    if (typeof listener !== "function")
      throw new InvalidOptionError("a listener must be a function");
    this.#core.listen().on(event, listener as never);
  }

  off<E extends CacheEvent>(event: E, listener: (payload: CacheEventMap[E]) => unknown): void {
    const events = this.#core.events;
    // The last listener gone, the hot paths are as without any.
    if (events?.off(event, listener as never)) this.#core.events = undefined;
  }

  keys(options?: Parameters<Cache["keys"]>[0]): Promise<{ keys: string[]; cursor: string }> {
    this.#open();
    return traced(this.#core.tracing, "keys", this.name, [], (op) =>
      listKeys(this.#core, options, op),
    );
  }

  // ---- writes --------------------------------------------------------------------------

  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    await this.setMany([[key, value, options]]);
  }

  async setWithInvalidate(
    key: string,
    value: unknown,
    options?: Omit<SetOptions, "propagate">,
  ): Promise<void> {
    if (options !== undefined && !isRecord(options)) {
      this.#core.codec.checkKey(key);
      throw new InvalidOptionError("set options must be an object", { key });
    }
    await this.setMany([[key, value, { ...options, propagate: "invalidate" }]]);
  }

  async setMany(entries: ReadonlyArray<SetManyEntry>): Promise<void> {
    this.#open();
    await this.#writer.setMany(entries);
  }

  async delete(key: string): Promise<void> {
    await this.deleteMany([key]);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.#open();
    await this.#writer.deleteMany(keys);
  }

  async clear(): Promise<void> {
    this.#open();
    await traced(this.#core.tracing, "clear", this.name, [], (op) => this.#writer.clear(op));
  }

  async invalidateTag(tag: string): Promise<void> {
    await this.invalidateTags([tag]);
  }

  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#open();
    await traced(this.#core.tracing, "invalidateTags", this.name, [], (op) =>
      this.#writer.invalidateTags(tags, op),
    );
  }

  // ---- namespaces ----------------------------------------------------------------------

  namespace<V = unknown>(name: string, options?: NamespaceOptions<V>): Group<V> {
    this.#open();
    const full = namespaceName(this.name, name);
    const existing = this.#children.get(full);
    if (existing !== undefined) {
      if (options !== undefined && options !== existing.options) {
        throw new InvalidOptionError(
          `namespace "${name}" exists already; get it again with namespace(name) alone`,
        );
      }
      return existing.group as unknown as Group<V>;
    }
    const { o, childOptions } = namespaceOptions(
      this.#options,
      full,
      options as NamespaceOptions | undefined,
    );
    const inherited: Inherited = { store: this.#core.store, breaker: this.#breaker, options: o };
    const group =
      o.loader || o.loadMany
        ? new ReadThroughGroup(childOptions, inherited)
        : new GroupCache(childOptions, inherited);
    this.#children.set(full, { group, options: o });
    installTracing(group, this.#core.tracing);
    return group as unknown as Group<V>;
  }

  // ---- lifecycle -----------------------------------------------------------------------

  stats(): CacheStats {
    return this.#coherence.report(this.#breaker?.stats);
  }

  async close(): Promise<void> {
    const core: Core = this.#core;
    if (core.closed) return;
    core.closed = true;
    this.#coherence.hub?.close();
    this.#coherence.pubsub?.close();
    // Loads waiting on another instance's lease stop at once rather than at their next poll.
    this.#leases.wakeAll();
    await Promise.allSettled([
      ...[...this.#children.values()].map((c) => c.group.close()),
      ...core.background,
      ...this.#readThrough.running(),
      this.#coherence.pending,
    ]);
    core.dropAll();
  }

  #open(): void {
    if (this.#core.closed) throw new ClosedError();
  }
}

/** A namespace of a cache. */
class GroupCache extends EdgeCache {
  readonly options: Readonly<NamespaceOptions>;
  constructor(options: CacheOptions, inherited: Inherited) {
    super(options, inherited);
    this.options = inherited.options;
  }
}

/** A namespace with a loader: `get` and `getMany` read through it. */
class ReadThroughGroup extends GroupCache {
  readonly #loader: Loader;
  readonly #batch: BatchLoader | undefined;
  constructor(options: CacheOptions, inherited: Inherited) {
    super(options, inherited);
    this.#batch = inherited.options.loadMany as BatchLoader | undefined;
    this.#loader = (inherited.options.loader as Loader) ?? oneAtATime(this.#batch!);
  }

  override get<T = unknown>(key: string): Promise<T | undefined> {
    return this.getOrSet(key, this.#loader as Loader<T>);
  }

  override getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    // Without a batch loader, each getMany loads its misses a few at a time.
    const each = this.#batch
      ? this.#loader
      : limited(this.options.loadConcurrency ?? 8, this.#loader);
    return this.readMany("getMany", keys, undefined, each, this.#batch);
  }
}

/**
 * Creates a two-level cache: an in-process L1 in front of a shared L2 store, kept coherent
 * across instances through the store's change log.
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
 *   sync: { maxStaleness: 1_000 },
 * });
 * await cache.set("user:1", { name: "Ada" });
 * const user = await cache.get<{ name: string }>("user:1");
 * ```
 * @see docs/api.md (shipped in the package)
 */
export function createCache(options: CacheOptions): Cache {
  return new EdgeCache(options);
}
