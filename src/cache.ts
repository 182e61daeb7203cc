import { Breaker, guardStore, resolveBreaker } from "./breaker.js";
import { coarseClock } from "./clock.js";
import { utf8Length } from "./codec.js";
import { checkTags, type Decoded, Entries, MISS, type Prepared, tagKey } from "./entries.js";
import {
  ClosedError,
  CorruptEntryError,
  EdgeCacheError,
  InvalidKeyError,
  InvalidOptionError,
  LoaderError,
  StoreError,
} from "./errors.js";
import { HubClient } from "./hub/client.js";
import { GuardedL1 } from "./l1.js";
import { type LoadSettings, resolveLoad } from "./load.js";
import type { LocalEntry } from "./local.js";
import type { Logger } from "./logger.js";
import { resolveOptions } from "./options.js";
import {
  type ChangeBatch,
  type ChangeRecord,
  NAMESPACE_PATTERN,
  type Store,
  type StoreEntry,
  type WriteMeta,
} from "./store.js";
import { SyncState, type Verdict } from "./sync/stamps.js";
import type {
  Cache,
  CacheOptions,
  CacheStats,
  GetOrSetOptions,
  Group,
  InspectResult,
  Loader,
  LoaderContext,
  NamespaceOptions,
  SetManyEntry,
  SetOptions,
} from "./types.js";

/** How a load ended, shared by every caller that joined it. */
type Outcome =
  | { kind: "value"; value: unknown }
  /** The loader asked not to cache or share its value (`ctx.noStore()`). */
  | { kind: "private"; value: unknown }
  | { kind: "negative"; negative: "error" | "absent" }
  | { kind: "error"; error: unknown }
  /** A background refresh found another instance's lease: that instance refreshes. */
  | { kind: "skipped" };

/** What the callers of a miss get, decided once per miss. */
/** A load's watch on its key (`GuardedL1.watch`) and what its value is at least as new as. */
interface LocalBasis {
  mark: number;
  basis: number;
  /** The instance had synced when the load started. */
  anchored: boolean;
}

type Resolution =
  | { kind: "fresh"; entry: LocalEntry }
  /** Stale within staleWhileRevalidate: served while a refresh runs. */
  | { kind: "stale"; entry: LocalEntry }
  /** L2 could not be read: the last value, within grace, served while a refresh runs. */
  | { kind: "graced"; entry: LocalEntry }
  /** A load that ended after the read was sent answers it. */
  | { kind: "done"; outcome: Outcome; stale: LocalEntry | undefined }
  | { kind: "load"; stale: LocalEntry | undefined };

/**
 * The L1 settings a namespace takes from its parent: the same bounds, but never the same
 * `LocalCache` instance (one serves one cache only: keys are not prefixed in L1, so two
 * namespaces sharing one would read each other's values).
 */
function inheritedLocal(local: CacheOptions["local"]): CacheOptions["local"] {
  if (typeof local !== "object" || local === null) return local;
  if ("get" in local) return undefined; // an instance: the child gets the built-in L1
  if (local.cache === undefined) return local;
  const { cache: _own, ...bounds } = local;
  return bounds;
}

/** What a namespace inherits from the cache that made it. */
interface Inherited {
  store: Store;
  breaker: Breaker | undefined;
  options: NamespaceOptions;
}

interface PendingSync {
  promise: Promise<boolean>;
  sentAt: number;
  /** The cursor the request carried (-1: sent before this instance had one). */
  asked: number;
  /**
   * Started by refresh-ahead, awaited by no read. Reads do not join such a sync: in
   * Workers its I/O belongs to a request that may already have responded, and may be
   * cancelled with it.
   */
  background: boolean;
}

class EdgeCache implements Cache {
  readonly name: string;
  readonly #options: CacheOptions;
  readonly #store: Store;
  readonly #breaker: Breaker | undefined;
  readonly #load: LoadSettings;
  // Loads running on this instance, by key: concurrent misses join them.
  readonly #loads = new Map<string, Promise<Outcome>>();
  // Loads waiting for another instance's value, woken early when a change of the key arrives.
  readonly #waiters = new Map<string, Set<() => void>>();
  // Whether the store's versions compare across keys (`Store.orderedVersions`).
  readonly #orderedVersions: boolean;
  // A value was kept in L1 without L2 before the first sync (see `#apply`).
  #keptUnanchored = false;
  // The watch mark of the load of each key running here (see `#loadAndStore`).
  readonly #loadMarks = new Map<string, number>();
  // Ms of L2 time already spent on the miss of each key being loaded (its read, its lease),
  // and fills still being written after their callers were answered (see `#fillWithin`).
  readonly #l2Spent = new Map<string, number>();
  readonly #filling = new Map<string, Promise<void>>();
  // Misses being resolved (L2 read, then a decision), by key.
  readonly #jobs = new Map<string, Promise<Resolution>>();
  // Loads that ended while a read of their key was in flight, and when (in #seq order).
  readonly #finished = new Map<string, { seq: number; outcome: Outcome }>();
  #seq = 0;
  // The version of each tag's newest invalidation seen (0: none); kept current by the change
  // log, cleared whenever L1 is dropped whole. Bounded: a forgotten tag is read again.
  readonly #tagVersions = new Map<string, number>();
  readonly #children = new Map<string, { group: EdgeCache; options: NamespaceOptions }>();
  readonly #tier: GuardedL1;
  readonly #entries: Entries;
  readonly #copy: ((value: unknown) => unknown) | undefined;
  readonly #logger: Logger;
  readonly #onError: ((error: EdgeCacheError) => void) | undefined;
  readonly #now: () => number;
  // The clock of the L1 hit path, and how far its reading may lag the real one.
  readonly #hitClock: () => number;
  readonly #hitSlack: number;
  readonly #sync: SyncState | undefined;
  readonly #hub: HubClient | undefined;
  #origin: string | undefined;
  #pendingSync: PendingSync | undefined;
  // Changes from other instances applied, and L1 drops caused by their clears (the sync
  // state counts the drops it decides itself).
  #changesApplied = 0;
  #remoteFlushes = 0;
  readonly #background = new Set<Promise<unknown>>();
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
    loads: 0,
    loadErrors: 0,
    coalesced: 0,
    lockWaits: 0,
    staleHits: 0,
    graceHits: 0,
  };
  constructor(options: CacheOptions, inherited?: Inherited) {
    const o = resolveOptions(options);
    this.#options = options;
    if (inherited) {
      this.#store = inherited.store;
      this.#breaker = inherited.breaker;
    } else {
      const breaker = resolveBreaker(options.breaker);
      this.#breaker = breaker && new Breaker(breaker, o.now, o.namespace);
      this.#store = this.#breaker ? guardStore(o.store, this.#breaker) : o.store;
    }
    this.#load = resolveLoad(inherited?.options ?? {}, o.ttl);
    this.name = o.namespace;
    this.#copy = o.local?.copy;
    this.#logger = o.logger;
    this.#onError = o.onError;
    this.#now = o.now;
    this.#hitClock = o.clockResolution > 0 ? coarseClock(o.now, o.clockResolution) : o.now;
    this.#hitSlack = o.clockResolution;
    this.#tier = new GuardedL1(
      o.local?.cache,
      o.local?.ttl ?? Number.POSITIVE_INFINITY,
      o.clockResolution,
      o.now,
    );
    const sync = o.sync;
    this.#sync = sync && new SyncState(sync);
    this.#entries = new Entries({
      serializer: o.serializer,
      ttl: o.ttl,
      jitter: o.jitter,
      maxKeyBytes: o.maxKeyBytes,
      maxValueBytes: o.maxValueBytes,
      propagateMaxBytes: sync ? sync.propagateMaxBytes : -1,
      tags: o.store.orderedVersions !== false,
    });
    this.#orderedVersions = o.store.orderedVersions !== false;
    this.#origin = o.instanceId;
    if (sync?.hub) {
      const state = this.#sync!;
      const relaxed = Math.max(sync.maxStaleness, sync.hub.options.relaxedStaleness ?? 0);
      this.#hub = new HubClient(sync.hub, o.namespace, {
        records: (records, receivedAt) => this.#fromHub(records, receivedAt),
        // Only a sync sent after the socket opened covers what it may have missed.
        opened: () => this.#vouched(this.#startSync(false)),
        health: (healthy) => {
          state.window = healthy ? relaxed : sync.maxStaleness;
        },
        error: (error) => this.#absorb(error),
        now: this.#now,
      });
    }
  }

  // ---- reads ---------------------------------------------------------------------------

  async get<T = unknown>(key: string): Promise<T | undefined> {
    this.#open();
    this.#entries.checkKey(key);
    const t = this.#hitClock();
    if (this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack)) {
      // #lookup, inlined: the hot path.
      const entry = this.#tier.lookup(key, t);
      if (entry !== undefined && (entry.tags === undefined || this.#tagsHold(key, entry))) {
        this.#stats.l1Hits++;
        this.#refreshAhead(t);
        return this.#out(entry.value) as T;
      }
    }
    const { entries } = await this.#slowRead([key], t, false);
    const entry = entries[0];
    return (entry === undefined ? undefined : this.#out(entry.value)) as T | undefined;
  }

  peek<T = unknown>(key: string): T | undefined {
    this.#open();
    this.#entries.checkKey(key);
    const t = this.#hitClock();
    const entry =
      this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack)
        ? this.#tier.lookup(key, t)
        : undefined;
    if (entry === undefined || (entry.tags !== undefined && !this.#tagsHold(key, entry))) {
      this.#stats.l1Misses++;
      return undefined;
    }
    this.#stats.l1Hits++;
    return this.#out(entry.value) as T;
  }

  async has(key: string): Promise<boolean> {
    // The plain read, also in a read-through namespace (whose `get` loads).
    return (await EdgeCache.prototype.get.call(this, key)) !== undefined;
  }

  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    this.#open();
    if (!Array.isArray(keys)) throw new InvalidKeyError("getMany expects an array of keys");
    for (const key of keys) this.#entries.checkKey(key);
    const t = this.#hitClock();
    const fresh = this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack);
    const out: unknown[] = new Array(keys.length);
    // Each distinct key L1 could not answer alone, and the slots waiting for it.
    const slow = new Map<string, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const entry = fresh ? this.#lookup(key, t) : undefined;
      if (entry !== undefined) {
        this.#stats.l1Hits++;
        out[i] = this.#out(entry.value);
        continue;
      }
      const slots = slow.get(key);
      if (slots) slots.push(i);
      else slow.set(key, [i]);
    }
    if (slow.size === 0) {
      this.#refreshAhead(t);
      return out as Array<T | undefined>;
    }
    const { entries } = await this.#slowRead([...slow.keys()], t, false);
    let j = 0;
    for (const slots of slow.values()) {
      const v = entries[j++]?.value;
      // Each slot gets its own copy when copies are on; duplicates must not share one.
      for (const i of slots) out[i] = v === undefined ? undefined : this.#out(v);
    }
    return out as Array<T | undefined>;
  }

  /**
   * Reads distinct keys that L1 could not answer on its own at `t`: misses, and entries
   * whose sync window ran out. At most two requests: the misses with a sync riding along
   * (or a sync alone), then a read of the entries that sync invalidated. Answers the fresh
   * entries, and with `stale` the stale ones too (for getOrSet); `failed` when L2 could not
   * be read or could not vouch for L1.
   */
  async #slowRead(
    keys: string[],
    t: number,
    stale: boolean,
  ): Promise<{ entries: Array<LocalEntry | undefined>; failed: boolean }> {
    const out: Array<LocalEntry | undefined> = new Array(keys.length);
    const held: number[] = [];
    const missing: number[] = [];
    keys.forEach((key, i) => {
      // A value kept while L2 refused it, past its bound but within its TTL, is held too:
      // a sync that gets through decides whether to read it again.
      const kept = this.#lookup(key, t) !== undefined || this.#tier.keptLocally(key, t);
      (kept ? held : missing).push(i);
    });
    let synced = this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack);
    let failed = false;
    if (missing.length > 0) {
      const read = await this.#fetch(
        missing.map((i) => keys[i]!),
        stale,
      );
      missing.forEach((i, j) => {
        out[i] = read.entries[j];
      });
      synced ||= read.synced;
      failed = read.failed;
    }
    if (held.length === 0) return { entries: out, failed };
    // The read carried the sync and failed: L2 is not asked a second time (one store
    // timeout per read, not two).
    if (!synced && !failed) synced = await this.#syncFor(t);
    if (!synced) failed = true;
    const again: number[] = [];
    const now = this.#now();
    for (const i of held) {
      const entry = synced ? this.#lookup(keys[i]!, now) : undefined;
      if (entry !== undefined) {
        this.#stats.l1Hits++;
        out[i] = entry;
      } else if (synced) {
        again.push(i);
      } else {
        // No sync could vouch for the L1 copy within the bound: a miss, not a stale value.
        this.#stats.l1Misses++;
        this.#stats.l2Misses++;
      }
    }
    if (again.length > 0) {
      const read = await this.#fetch(
        again.map((i) => keys[i]!),
        stale,
      );
      again.forEach((i, j) => {
        out[i] = read.entries[j];
      });
      failed ||= read.failed;
    }
    return { entries: out, failed };
  }

  /**
   * One L2 read of `keys` (counted as L1 misses), with a sync riding along when on. Stale
   * entries count as misses, and are answered only when `stale` asks for them.
   */
  async #fetch(
    keys: string[],
    stale: boolean,
  ): Promise<{ entries: Array<LocalEntry | undefined>; synced: boolean; failed: boolean }> {
    this.#stats.l1Misses += keys.length;
    const sentAt = this.#now();
    const request = this.#sync?.request();
    const epoch = this.#tier.epoch;
    this.#tier.begin();
    try {
      let stored: ReadonlyArray<StoreEntry | undefined>;
      let changes: ChangeBatch | undefined;
      try {
        const result = await this.#store.get(this.name, keys, request);
        stored = result.entries;
        changes = result.changes;
        if (!Array.isArray(stored) || stored.length !== keys.length) {
          throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
        }
        if (request !== undefined && changes === undefined) {
          throw new StoreError("EC_STORE_ERROR", "store.get ignored the sync request");
        }
        if (result.corrupt > 0) this.#corrupt(result.corrupt, undefined);
      } catch (err) {
        this.#stats.l2Misses += keys.length;
        this.#absorb(this.#failed(err, "get", keys));
        return { entries: keys.map(() => undefined), synced: false, failed: true };
      }
      const { synced, installable } = this.#answered(changes, request?.cursor, sentAt, epoch);
      const decoded = keys.map((key, i) => {
        const found = stored[i];
        if (found === undefined) return undefined;
        const d = this.#entries.decode(found.value);
        if (d === MISS) this.#corrupt(1, key);
        return d === MISS ? undefined : d;
      });
      // Tagged entries hold only if no tag was invalidated after them: learn the tags this
      // instance does not know yet (all of them without coherence, which keeps none current).
      const unknown = new Set<string>();
      for (const d of this.#orderedVersions ? decoded : []) {
        for (const tag of d?.tags ?? []) {
          if (this.#sync === undefined || !this.#tagVersions.has(tag)) unknown.add(tag);
        }
      }
      // A tag whose marker could not be read stays unknown: its entries count as misses.
      if (unknown.size > 0) await this.#readTags([...unknown]);
      const entries = keys.map((key, i) => {
        const found = stored[i];
        const d = decoded[i];
        if (found === undefined || d === undefined) {
          this.#stats.l2Misses++;
          return undefined;
        }
        if (d.tags !== undefined && !this.#tagsValid(d.tags, found.version)) {
          this.#stats.l2Misses++;
          return undefined;
        }
        const entry = this.#tier.entry(
          d,
          found.version,
          sentAt,
          found.ttl,
          utf8Length(found.value) + key.length,
        );
        if (installable) this.#tier.install(key, entry);
        if (entry.expiresAt > sentAt) {
          this.#stats.l2Hits++;
          return entry;
        }
        this.#stats.l2Misses++;
        return stale ? entry : undefined;
      });
      return { entries, synced, failed: false };
    } finally {
      this.#tier.settle();
    }
  }

  /**
   * Reads the invalidation markers of `tags` from L2 and notes their versions. When L2
   * cannot be read, they stay unknown (the entries carrying them count as misses).
   */
  async #readTags(tags: string[]): Promise<void> {
    try {
      const { entries } = await this.#store.get(this.name, tags.map(tagKey));
      if (!Array.isArray(entries) || entries.length !== tags.length) {
        throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
      }
      tags.forEach((tag, i) => {
        this.#noteTag(tag, entries[i]?.version ?? 0);
      });
    } catch (err) {
      // Without coherence a tag's noted version may be old: forget it rather than trust it.
      if (this.#sync === undefined) for (const tag of tags) this.#tagVersions.delete(tag);
      this.#absorb(this.#failed(err, "get", []));
    }
  }

  /** Whether an entry of `version` with `tags` holds against the noted invalidations. */
  #tagsValid(tags: readonly string[], version: number): boolean {
    // Where versions do not compare across keys, a tagged entry (written before tags were
    // refused there) cannot be checked: it never holds.
    if (!this.#orderedVersions) return false;
    for (const tag of tags) {
      const v = this.#tagVersions.get(tag);
      if (v === undefined || v > version) return false;
    }
    return true;
  }

  // ---- read-through ---------------------------------------------------------------------

  async getOrSet<T>(key: string, loader: Loader<T>, options?: GetOrSetOptions): Promise<T> {
    this.#open();
    this.#entries.checkKey(key);
    if (typeof loader !== "function") {
      throw new InvalidOptionError("getOrSet needs a loader function", { key });
    }
    const o =
      options === undefined ? this.#load : resolveLoad(options, this.#load.ttl, this.#load, key);
    this.#entries.allowTags(o.tags, key);
    const t = this.#hitClock();
    if (this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack)) {
      const entry = this.#lookup(key, t);
      if (entry !== undefined) {
        this.#stats.l1Hits++;
        this.#refreshAhead(t);
        return this.#cached(entry, key) as T;
      }
    }
    // Concurrent misses of a key share one L2 read and one decision, not only one load.
    const running = this.#jobs.get(key);
    const joined = running !== undefined;
    let job: Promise<Resolution>;
    if (running !== undefined) {
      this.#stats.coalesced++;
      job = running;
    } else {
      const started = this.#resolveMiss(key, loader as Loader, o, t);
      job = started;
      this.#jobs.set(key, started);
      void started.then(
        () => this.#jobDone(key, started),
        () => this.#jobDone(key, started),
      );
    }
    const r = await job;
    switch (r.kind) {
      case "fresh":
        return this.#cached(r.entry, key) as T;
      case "stale":
        this.#stats.staleHits++;
        return this.#out(r.entry.value) as T;
      case "graced":
        this.#stats.graceHits++;
        return this.#out(r.entry.value) as T;
      case "done":
        return this.#settle(key, r.outcome, r.stale, loader as Loader, o, false) as T;
      default:
        return (await this.#loadFor(key, loader as Loader, o, r.stale, !joined)) as T;
    }
  }

  #jobDone(key: string, job: Promise<Resolution>): void {
    if (this.#jobs.get(key) !== job) return;
    this.#jobs.delete(key);
    this.#finished.delete(key);
  }

  /** Reads L2 for a key L1 could not answer, and decides what the callers get. */
  async #resolveMiss(key: string, loader: Loader, o: LoadSettings, t: number): Promise<Resolution> {
    const asked = ++this.#seq;
    const readStarted = this.#now();
    const { entries, failed } = await this.#slowRead([key], t, true);
    const now = this.#now();
    const found = entries[0];
    if (found !== undefined && found.expiresAt > now) return { kind: "fresh", entry: found };
    // Past its TTL, or (when L2 failed) what L1 still holds, not vouched for by a sync:
    // usable only as stale. Looked up after the read, so that a change, delete or drop that
    // arrived meanwhile (a sync may have got through where the read did not) counts.
    const down = failed && found === undefined;
    const kept = this.#lookupStale(key, t);
    // Held off after a failed load (graceBackoff): served without calling the loader, while
    // L2 still has that very version or cannot be read.
    if (
      kept?.holdUntil !== undefined &&
      kept.holdUntil > now &&
      (down || (found !== undefined && found.version === kept.version))
    ) {
      return { kind: "graced", entry: kept };
    }
    const last = found ?? (down ? kept : undefined);
    // Loaded (or remembered as failed) here while L2 could not take it: good for its TTL.
    if (down && last?.local === true && (last.localUntil ?? last.expiresAt) > now) {
      return { kind: "fresh", entry: last };
    }
    let stale: LocalEntry | undefined;
    if (last !== undefined && last.negative === undefined) {
      const age = now - last.expiresAt;
      if (age < o.staleWhileRevalidate) {
        this.#revalidate(key, loader, o, last);
        return { kind: "stale", entry: last };
      }
      if (age < o.grace) {
        if (!down) stale = last;
        else {
          // Fail-safe: with L2 unreachable, leases cannot coordinate the instances, so a
          // foreground load on each would hit the origin at once. The caller gets the last
          // value now (the L2 error is reported) and one refresh runs in the background.
          this.#revalidate(key, loader, o, last);
          return { kind: "graced", entry: last };
        }
      }
    }
    // A load of this key that ended after the read was sent answers it: the read missed
    // only because it overtook that load's write.
    const done = this.#finished.get(key);
    if (done !== undefined && done.seq > asked)
      return { kind: "done", outcome: done.outcome, stale };
    this.#l2Spent.set(key, now - readStarted);
    return { kind: "load", stale };
  }

  /** A fresh entry's answer: its value, or what a negative entry remembers. */
  #cached(entry: LocalEntry, key: string): unknown {
    if (entry.negative === "error") {
      throw new LoaderError("EC_LOADER_FAILED", "the loader failed recently (negative cache)", {
        key,
      });
    }
    return entry.value === undefined ? undefined : this.#out(entry.value);
  }

  /** Waits for the key's load (joining one in flight), within this caller's timeouts. */
  async #loadFor(
    key: string,
    loader: Loader,
    o: LoadSettings,
    stale: LocalEntry | undefined,
    count: boolean,
  ): Promise<unknown> {
    const own = !this.#loads.has(key);
    const flight = this.#flight(key, loader, o, stale, false, count);
    const soft = stale !== undefined ? o.timeout : undefined;
    const hard = o.hardTimeout;
    let outcome: Outcome | "soft" | "hard";
    if (soft === undefined && hard === undefined) outcome = await flight;
    else {
      const timers: Array<ReturnType<typeof setTimeout>> = [];
      const race: Array<Promise<Outcome | "soft" | "hard">> = [flight];
      if (soft !== undefined) {
        race.push(new Promise((r) => timers.push(setTimeout(() => r("soft"), soft))));
      }
      if (hard !== undefined) {
        race.push(new Promise((r) => timers.push(setTimeout(() => r("hard"), hard))));
      }
      outcome = await Promise.race(race);
      for (const timer of timers) clearTimeout(timer);
      if (typeof outcome === "string") {
        // The load goes on and caches its result; only this caller stops waiting.
        this.#keepAlive(flight, o);
        if (outcome === "soft" && stale !== undefined) {
          this.#stats.staleHits++;
          return this.#out(stale.value);
        }
        const error = loaderTimeout(key, hard as number);
        if (stale !== undefined) return this.#graced(key, stale, error, o);
        throw error;
      }
    }
    return this.#settle(key, outcome, stale, loader, o, own);
  }

  /** What a caller gets from a load's outcome. */
  async #settle(
    key: string,
    result: Outcome,
    stale: LocalEntry | undefined,
    loader: Loader,
    o: LoadSettings,
    own: boolean,
  ): Promise<unknown> {
    let outcome = result;
    let mine = own;
    if (outcome.kind === "skipped") {
      // Joined a background refresh that left the load to another instance: load (or wait
      // for that instance) in the foreground instead.
      mine = !this.#loads.has(key);
      outcome = await this.#flight(key, loader, o, stale, false);
    }
    if (outcome.kind === "private" && !mine) {
      // The value was only for the caller whose load made it: this caller loads its own.
      outcome = await this.#loadAndStore(key, loader, o, stale);
    }
    switch (outcome.kind) {
      case "value":
      case "private":
        return outcome.value === undefined ? undefined : this.#out(outcome.value);
      case "negative":
        return this.#cached(
          { value: undefined, version: 0, expiresAt: 0, size: 0, negative: outcome.negative },
          key,
        );
      case "error": {
        // Closed while waiting on another instance's lease: not a failure of the loader.
        if (outcome.error instanceof ClosedError) throw outcome.error;
        if (stale !== undefined) {
          return this.#graced(key, stale, loaderFailed(outcome.error, key, "the loader failed"), o);
        }
        throw outcome.error;
      }
      default:
        // A second skip cannot happen: foreground loads never skip.
        throw new LoaderError("EC_LOADER_FAILED", "the load was skipped", { key });
    }
  }

  /**
   * Serves a stale value because the load failed, reports why, and keeps serving it for
   * `graceBackoff` so the failing loader is not called on every read.
   */
  #graced(key: string, stale: LocalEntry, error: LoaderError, o: LoadSettings): unknown {
    this.#stats.graceHits++;
    this.#absorb(error);
    // A load that failed has held the value off already; one still running (past a
    // timeout) has not.
    const running = this.#loadMarks.get(key);
    if (running !== undefined) this.#holdOff(key, stale, o, running);
    return this.#out(stale.value);
  }

  /**
   * After a failed load, keeps serving `stale` (within its grace) for `graceBackoff` without
   * calling the loader again: unless the key changed (or L1 was dropped) since the load took
   * `mark`. It is kept as a local value at its own version: any change of the key seen
   * later replaces it, and while L2 is down it is served for the backoff without a refresh.
   */
  #holdOff(key: string, stale: LocalEntry, o: LoadSettings, mark: number): void {
    const now = this.#now();
    if (o.graceBackoff <= 0 || now - stale.expiresAt >= o.grace) return;
    // Never past grace; and the entry keeps its own freshness (plain reads see it as it was).
    const until = Math.min(now + o.graceBackoff, stale.expiresAt + o.grace);
    this.#tier.installLocal(
      key,
      { ...stale, holdUntil: until, staleUntil: Math.max(stale.staleUntil ?? 0, until) },
      mark,
      "same-version",
    );
  }

  /** The key's load on this instance: the one in flight, or a new one. Never rejects. */
  #flight(
    key: string,
    loader: Loader,
    o: LoadSettings,
    stale: LocalEntry | undefined,
    background: boolean,
    count = true,
  ): Promise<Outcome> {
    const running = this.#loads.get(key);
    if (running !== undefined) {
      if (count) this.#stats.coalesced++;
      return running;
    }
    const flight = this.#runLoad(key, loader, o, stale, background).then((outcome) => {
      if (this.#loads.get(key) === flight) this.#loads.delete(key);
      // A read of the key in flight meanwhile may have overtaken this load's write.
      if (outcome.kind !== "skipped" && outcome.kind !== "private" && this.#jobs.has(key)) {
        this.#finished.set(key, { seq: ++this.#seq, outcome });
      }
      return outcome;
    });
    this.#loads.set(key, flight);
    return flight;
  }

  /** Stale-while-revalidate: one background refresh per key; errors are reported. */
  #revalidate(key: string, loader: Loader, o: LoadSettings, stale: LocalEntry): void {
    if (this.#loads.has(key)) return;
    const work = this.#flight(key, loader, o, stale, true).then((outcome) => {
      if (outcome.kind === "error") {
        this.#absorb(loaderFailed(outcome.error, key, "a background refresh failed"));
      }
    });
    this.#keepAlive(work, o);
  }

  /** Lets background work finish: through `waitUntil` when there is one, in-process anyway. */
  #keepAlive(work: Promise<unknown>, o: LoadSettings): void {
    this.#background.add(work);
    void work.finally(() => this.#background.delete(work));
    const waitUntil = o.waitUntil ?? this.#sync?.settings.waitUntil;
    if (waitUntil === undefined) return;
    try {
      waitUntil(work);
    } catch {
      // Outside a request context: it runs in-process.
    }
  }

  /**
   * Loads the key, with a lease in L2 when `lock` asks for one: whoever takes the lease
   * loads; the others wait for its value and load themselves only if it never comes.
   */
  async #runLoad(
    key: string,
    loader: Loader,
    o: LoadSettings,
    stale: LocalEntry | undefined,
    background: boolean,
  ): Promise<Outcome> {
    const store = this.#store;
    const lock = o.lock;
    if (lock === undefined || store.acquireLease === undefined) {
      return this.#loadAndStore(key, loader, o, stale, background);
    }
    const token = crypto.randomUUID();
    const deadline = this.#now() + lock.wait;
    let delay = 10;
    let waited = false;
    for (let first = true; ; first = false) {
      let taken: boolean;
      const asking = this.#now();
      try {
        const asked = store.acquireLease(this.name, key, token, lock.ttl);
        // The miss's first lease request gets what is left of one store timeout after its
        // read: past that, L2 is too slow to arbitrate and this instance loads itself.
        const answer = first ? await this.#withinTimeout(key, asked) : await asked;
        if (answer === undefined) {
          const late = asked.then(
            (got) => (got === false ? undefined : store.releaseLease?.(this.name, key, token)),
            () => undefined,
          );
          this.#keepAlive(late, o);
          return this.#loadAndStore(key, loader, o, stale, background);
        }
        this.#l2Spent.set(key, (this.#l2Spent.get(key) ?? 0) + this.#now() - asking);
        if (answer === "repaired") this.#corrupt(1, key, true);
        taken = answer !== false;
      } catch (err) {
        // L2 cannot arbitrate: load here rather than not at all.
        this.#absorb(this.#failed(err, "acquireLease", [key]));
        return this.#loadAndStore(key, loader, o, stale, background);
      }
      if (taken) {
        try {
          // The holder before us may have stored its value and let go since we looked.
          const seen = await this.#lookAgain(key);
          if (seen !== undefined) return seen;
          return await this.#loadAndStore(key, loader, o, stale, background);
        } finally {
          // Let go once the value is in L2 (a fill still being written holds the lease).
          const filled = this.#filling.get(key) ?? Promise.resolve();
          const release = filled
            .then(() => store.releaseLease?.(this.name, key, token))
            .catch((err) => this.#absorb(this.#failed(err, "releaseLease", [key])));
          this.#keepAlive(release, o);
        }
      }
      if (background) return { kind: "skipped" };
      if (!waited) {
        waited = true;
        this.#stats.lockWaits++;
      }
      if (this.#now() >= deadline) return this.#loadAndStore(key, loader, o, stale, background);
      await this.#nap(key, delay * (0.5 + Math.random() / 2));
      // Closed meanwhile: stop waiting (close() waits for this load) and touch L2 no more.
      if (this.#closed) return { kind: "error", error: new ClosedError() };
      delay = Math.min(delay * 2, 250);
      const seen = await this.#lookAgain(key);
      if (seen !== undefined) return seen;
    }
  }

  /** A fresh answer for `key` that appeared meanwhile: in L1 (a hub push) or in L2. */
  async #lookAgain(key: string): Promise<Outcome | undefined> {
    const now = this.#now();
    let entry: LocalEntry | undefined = this.#lookup(key, now);
    if (entry === undefined) {
      const read = await this.#fetch([key], false);
      entry = read.entries[0];
    }
    if (entry === undefined) return undefined;
    return entry.negative === undefined
      ? { kind: "value", value: entry.value }
      : { kind: "negative", negative: entry.negative };
  }

  /** Sleeps up to `ms`, waking early when a change of `key` arrives. */
  #nap(key: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(key);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  }

  #wake(key: string): void {
    const waiters = this.#waiters.get(key);
    if (waiters === undefined) return;
    for (const done of [...waiters]) done();
  }

  /**
   * Calls the loader and caches what it returns (or, with `negativeTtl`, its failure),
   * watching the key meanwhile: what L1 keeps without L2 must not cover a change seen
   * while the loader ran.
   */
  async #loadAndStore(
    key: string,
    loader: Loader,
    o: LoadSettings,
    stale: LocalEntry | undefined,
    background = false,
  ): Promise<Outcome> {
    const mark = this.#tier.watch(key);
    // The flight's load, for a caller that stops waiting for it (`#graced`); a private
    // load running beside it does not replace it.
    if (!this.#loadMarks.has(key)) this.#loadMarks.set(key, mark);
    // What a value loaded now is at least as new as: every change seen so far (the cursor),
    // where versions compare across keys; else the copy it replaces.
    const seen = this.#orderedVersions ? (this.#sync?.cursor ?? 0) : 0;
    const basis = Math.max(seen, stale?.version ?? 0, 0);
    // Before its first sync an instance has no place in the change log: the first sync
    // starts at the head, so changes made meanwhile never reach what it kept. Such values
    // are dropped with L1 when that sync arrives (see `#apply`).
    const anchored = this.#sync === undefined || this.#sync.cursor >= 0;
    try {
      return await this.#loadWatched(key, loader, o, stale, background, {
        mark,
        basis,
        anchored,
      });
    } finally {
      this.#tier.unwatch(key);
      if (this.#loadMarks.get(key) === mark) this.#loadMarks.delete(key);
    }
  }

  async #loadWatched(
    key: string,
    loader: Loader,
    o: LoadSettings,
    stale: LocalEntry | undefined,
    background: boolean,
    local: LocalBasis,
  ): Promise<Outcome> {
    this.#stats.loads++;
    const controller = new AbortController();
    const hard = o.hardTimeout;
    const timer =
      hard === undefined
        ? undefined
        : setTimeout(() => controller.abort(loaderTimeout(key, hard)), hard);
    const tags: string[] = [];
    let ttl: number | undefined;
    let noStore = false;
    // A refused `ctx.tag` is a mistake in the call, not the loader's failure: not remembered.
    let tagRefused = false;
    const context: LoaderContext = {
      key,
      // Its own copy when copies are on: a loader that changes it must not change L1.
      stale: stale === undefined ? undefined : this.#out(stale.value),
      background,
      signal: controller.signal,
      tag: (...more) => {
        try {
          this.#entries.allowTags(more, key);
        } catch (refusal) {
          tagRefused = true;
          throw refusal;
        }
        tags.push(...more);
      },
      setTtl: (ms) => {
        ttl = ms;
      },
      noStore: () => {
        noStore = true;
      },
    };
    let value: unknown;
    try {
      value = await loader(key, context);
    } catch (error) {
      this.#stats.loadErrors++;
      // A value within grace is better than a remembered failure: keep it.
      if (stale !== undefined) this.#holdOff(key, stale, o, local.mark);
      else if (o.negativeTtl !== undefined && !tagRefused) {
        await this.#fillWithin(key, this.#storeLoaded(key, undefined, o, local, "error"), o);
      }
      return { kind: "error", error };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    if (noStore) return { kind: "private", value };
    if (value === undefined) {
      if (o.negativeTtl !== undefined) {
        await this.#fillWithin(key, this.#storeLoaded(key, undefined, o, local, "absent"), o);
      }
      return { kind: "value", value: undefined };
    }
    const fill = this.#storeLoaded(key, value, o, local, undefined, {
      ...(tags.length > 0 ? { tags } : {}),
      ...(ttl === undefined ? {} : { ttl }),
    });
    await this.#fillWithin(key, fill, o);
    return { kind: "value", value };
  }

  /**
   * `call`'s answer, or undefined when what is left of the store's timeout after the key's
   * L2 calls so far runs out first.
   */
  async #withinTimeout<T>(key: string, call: Promise<T>): Promise<T | undefined> {
    const limit = this.#store.timeout;
    if (limit === undefined) return call;
    const left = limit - (this.#l2Spent.get(key) ?? 0);
    if (left <= 0) {
      call.catch(() => {});
      return undefined;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const out = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), left);
    });
    try {
      return await Promise.race([call, out]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  /**
   * Waits for the write of a loaded value only for what is left of the store's timeout
   * after the miss's other L2 calls: a `getOrSet` on a hung L2 answers within one store
   * timeout plus the loader's own time. The write goes on in the background (holding the
   * key's lease, if any, until it ends).
   */
  async #fillWithin(key: string, fill: Promise<void>, o: LoadSettings): Promise<void> {
    const done = await this.#withinTimeout(
      key,
      fill.then(() => true as const),
    );
    this.#l2Spent.delete(key);
    if (done) return;
    const pending = fill.finally(() => {
      if (this.#filling.get(key) === pending) this.#filling.delete(key);
    });
    this.#filling.set(key, pending);
    this.#keepAlive(pending, o);
  }

  /**
   * Caches a loaded value. A value that cannot be cached (encoding, size) or a write L2
   * refuses is reported, not thrown: the caller still gets what the loader returned, and
   * L1 keeps it for its TTL when L2 could not take it.
   */
  async #storeLoaded(
    key: string,
    value: unknown,
    o: LoadSettings,
    local: LocalBasis,
    negative: "error" | "absent" | undefined,
    fromLoader: { tags?: readonly string[]; ttl?: number } = {},
  ): Promise<void> {
    let prepared: Prepared;
    try {
      prepared = this.#entries.prepare(
        key,
        value,
        {
          ttl: negative === undefined ? o.ttl : (o.negativeTtl as number),
          ...(o.jitter === undefined ? {} : { jitter: o.jitter }),
          ...(o.propagate === undefined ? {} : { propagate: o.propagate }),
          ...(o.tags === undefined || negative !== undefined ? {} : { tags: o.tags }),
        },
        negative === undefined ? { tail: o.tail, ...fromLoader } : { negative },
      );
    } catch (err) {
      this.#absorb(err instanceof EdgeCacheError ? err : this.#failed(err, "set", [key]));
      return;
    }
    try {
      await this.#commit([prepared], true, true);
    } catch (err) {
      this.#absorb(err instanceof EdgeCacheError ? err : this.#failed(err, "set", [key]));
      this.#installPrepared(prepared, local, this.#now());
    }
  }

  /**
   * Puts a prepared write in L1 (a copy, when copies are on), as of `at`: at `version`, or
   * as a local value (see `LocalEntry.local`) when L2 did not take it.
   */
  #installPrepared(p: Prepared, version: number | LocalBasis, at: number): void {
    const value = this.#copy && p.value !== undefined ? this.#copy(p.value) : p.value;
    const entry = this.#tier.entry(
      { value, tail: p.tail, negative: p.negative, tags: p.tags },
      typeof version === "number" ? version : version.basis,
      at,
      p.write.ttl,
      p.size,
    );
    if (typeof version === "number") {
      this.#tier.install(p.key, entry);
      return;
    }
    if (!version.anchored) {
      // Kept until the first sync drops it; if that sync came during the load, not at all.
      if (this.#sync!.cursor >= 0) return;
      this.#keptUnanchored = true;
    }
    // Nothing in the log will ever replace it when L2 comes back holding something else:
    // fresh within the staleness bound only, then read from L2 again (see `localUntil`).
    const bound = this.#sync === undefined ? undefined : at + this.#sync.settings.maxStaleness;
    this.#tier.installLocal(
      p.key,
      bound === undefined || bound >= entry.expiresAt
        ? entry
        : {
            ...entry,
            expiresAt: bound,
            localUntil: entry.expiresAt,
            staleUntil: Math.max(entry.staleUntil ?? 0, entry.expiresAt),
          },
      version.mark,
    );
  }

  // ---- namespaces ----------------------------------------------------------------------

  namespace<V = unknown>(name: string, options?: NamespaceOptions<V>): Group<V> {
    this.#open();
    const full = `${this.name}/${name}`;
    if (typeof name !== "string" || name.length === 0 || !NAMESPACE_PATTERN.test(full)) {
      throw new InvalidOptionError(
        "a namespace name is letters, digits and _ . : / -, and the full name (parent/name) at most 128 characters",
      );
    }
    const existing = this.#children.get(full);
    if (existing !== undefined) {
      if (options !== undefined && options !== existing.options) {
        throw new InvalidOptionError(
          `namespace "${name}" exists already; get it again with namespace(name) alone`,
        );
      }
      return existing.group as unknown as Group<V>;
    }
    const o = (options === undefined ? {} : options) as NamespaceOptions;
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new InvalidOptionError("namespace options must be an object");
    }
    const parent = this.#options;
    const local = o.local !== undefined ? o.local : inheritedLocal(parent.local);
    const childOptions: CacheOptions = { ...parent, namespace: full };
    if (o.ttl !== undefined) childOptions.ttl = o.ttl;
    if (local === undefined) delete childOptions.local;
    else childOptions.local = local;
    const inherited: Inherited = { store: this.#store, breaker: this.#breaker, options: o };
    const group = o.loader
      ? new ReadThroughGroup(childOptions, inherited)
      : new GroupCache(childOptions, inherited);
    this.#children.set(full, { group, options: o });
    return group as unknown as Group<V>;
  }

  // ---- coherence -----------------------------------------------------------------------

  /** Resolves true once a sync that vouches for reads started at `t` has been applied. */
  #syncFor(t: number): Promise<boolean> {
    const pending = this.#pendingSync;
    // An answer to a sync sent before `t` is good enough if it was sent within the window.
    if (pending && !pending.background && this.#sync!.covers(pending.sentAt, t, this.#hitSlack)) {
      return this.#vouched(pending);
    }
    return this.#vouched(this.#startSync(false));
  }

  /**
   * A sync's verdict, made good where it can be: a sync sent before this instance had a
   * cursor cannot vouch for anything once another answer has set one (its answer carries no
   * records), so a read that joined it would have to miss. Such a sync is followed by one
   * sent now, which can.
   */
  async #vouched(pending: PendingSync): Promise<boolean> {
    if (await pending.promise) return true;
    if (pending.asked >= 0 || this.#sync!.cursor < 0 || this.#closed) return false;
    return this.#startSync(false).promise;
  }

  #startSync(background: boolean): PendingSync {
    const sync = this.#sync!;
    const sentAt = this.#now();
    const request = sync.request();
    this.#tier.begin();
    const pending = { sentAt, background, asked: request.cursor } as PendingSync;
    let settled = false;
    const run = async (): Promise<boolean> => {
      try {
        // Awaited before anything else, so a store that throws synchronously still ends
        // up in the catch below after `pending` is complete.
        await undefined;
        const batch = await this.#store.sync(this.name, request);
        return this.#apply(batch, request.cursor, sentAt).kind !== "unverified";
      } catch (err) {
        this.#absorb(this.#failed(err, "sync", []));
        return false;
      } finally {
        settled = true;
        this.#tier.settle();
        if (this.#pendingSync === pending) this.#pendingSync = undefined;
        this.#background.delete(pending.promise);
      }
    };
    pending.promise = run();
    // A foreground sync replaces a background one as the sync to join.
    if (!settled && (!background || this.#pendingSync === undefined)) this.#pendingSync = pending;
    return pending;
  }

  // Starts a background sync before the window runs out, when asked to.
  #refreshAhead(t: number): void {
    const sync = this.#sync;
    if (sync === undefined || this.#pendingSync || !sync.due(t, this.#hitSlack)) return;
    const { promise } = this.#startSync(true); // never rejects: failures are absorbed
    this.#background.add(promise);
    try {
      sync.settings.waitUntil?.(promise);
    } catch {
      // waitUntil outside a request context: it still runs in-process.
    }
  }

  /** Applies a change batch to L1, per the verdict of the sync state. */
  #apply(batch: ChangeBatch, asked: number, sentAt: number): Verdict {
    const first = this.#sync!.cursor < 0;
    const verdict = this.#sync!.accept(batch, asked, sentAt);
    if (first && this.#keptUnanchored && this.#sync!.cursor >= 0) {
      // Values kept before the first sync cannot be checked against the log: drop them.
      this.#keptUnanchored = false;
      this.#dropAll();
    }
    if (verdict.kind === "flush") this.#dropAll();
    else if (verdict.kind === "apply") {
      for (const record of verdict.records) this.#applyRecord(record, sentAt);
    }
    return verdict;
  }

  #applyRecord(record: ChangeRecord, sentAt: number): void {
    // Own records are applied too: the version guards make them no-ops when this instance
    // already applied the change, and they matter when it did not (a write that timed out
    // here but landed in Redis later). Only others' changes are counted.
    if (record.origin !== this.#origin) {
      this.#changesApplied += record.op === "clear" ? 1 : record.keys.length;
    }
    if (record.op === "clear") {
      if (record.origin !== this.#origin) this.#remoteFlushes++;
      this.#dropAll();
      return;
    }
    for (const change of record.keys) {
      if (change.key.startsWith(TAG_PREFIX)) {
        this.#noteTag(change.key.slice(TAG_PREFIX.length), change.version);
        continue;
      }
      // Decoding is only worth it for a key this instance holds at an older version.
      let decoded: Decoded | undefined;
      if (change.value !== undefined && this.#tier.holdsOlder(change.key, change.version)) {
        const d = this.#entries.decode(change.value);
        if (d === MISS) this.#corrupt(1, change.key);
        else decoded = d;
      }
      const size = change.value === undefined ? 0 : utf8Length(change.value) + change.key.length;
      this.#tier.change(change, decoded, sentAt, size);
      if (this.#waiters.size > 0) this.#wake(change.key);
    }
  }

  /**
   * Records pushed by the hub: hints applied at once (version-guarded, own records
   * skipped), without moving the cursor, which only the change log moves. Pushed values
   * expire from L1 a second early, to absorb the time they spent in transit.
   */
  #fromHub(records: ChangeRecord[], receivedAt: number): void {
    if (this.#closed) return;
    // Counted as an operation, so that answers already in flight get floors for these keys.
    this.#tier.begin();
    try {
      for (const record of records) this.#applyRecord(record, receivedAt - HUB_TRANSIT_MARGIN);
    } finally {
      this.#tier.settle();
    }
  }

  /** Tells the hub about a write that succeeded; awaited unless `waitUntil` takes it. */
  async #publish(records: ChangeRecord[]): Promise<void> {
    const hub = this.#hub;
    if (hub === undefined) return;
    const work = hub.publish(records); // never rejects
    const waitUntil = this.#sync?.settings.waitUntil;
    if (waitUntil) {
      try {
        waitUntil(work);
        return;
      } catch {
        // Outside a request context: wait for it here instead.
      }
    }
    await work;
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
    if (
      options !== undefined &&
      (typeof options !== "object" || options === null || Array.isArray(options))
    ) {
      this.#entries.checkKey(key);
      throw new InvalidOptionError("set options must be an object", { key });
    }
    await this.setMany([[key, value, { ...options, propagate: "invalidate" }]]);
  }

  async setMany(entries: ReadonlyArray<SetManyEntry>): Promise<void> {
    this.#open();
    if (!Array.isArray(entries)) {
      throw new InvalidOptionError("setMany expects an array of entries");
    }
    // Validate and encode everything before the first byte goes out: bad input changes nothing.
    const prepared = entries.map((entry) => {
      if (!Array.isArray(entry)) {
        throw new InvalidOptionError("setMany entries are [key, value, options?]");
      }
      return this.#entries.prepare(entry[0], entry[1], entry[2]);
    });
    if (prepared.length === 0) return;
    await this.#commit(prepared);
  }

  /** Writes prepared entries to L2, then L1, then tells the hub; throws if L2 did not take them. */
  async #commit(prepared: Prepared[], install = true, fromLoad = false): Promise<number[]> {
    const keys = prepared.map((p) => p.key);
    const started = this.#now();
    const meta = this.#meta();
    const epoch = this.#tier.epoch;
    let installable: boolean;
    let versions: number[];
    // Tags this instance has not seen: read their markers alongside the write, so that
    // reads of what it writes are L1 hits at once.
    const unknown = new Set<string>();
    for (const p of prepared) {
      for (const tag of p.tags ?? []) if (!this.#tagVersions.has(tag)) unknown.add(tag);
    }
    const learning = unknown.size > 0 ? this.#readTags([...unknown]) : undefined;
    this.#tier.begin();
    try {
      const result = await this.#store.set(
        this.name,
        prepared.map((p) => p.write),
        meta,
      );
      if (learning !== undefined) await learning;
      versions = result.version;
      if (result.corrupt) this.#corrupt(result.corrupt, undefined, true);
      if (!Array.isArray(versions) || versions.length !== prepared.length) {
        throw new StoreError("EC_STORE_ERROR", "store.set returned the wrong number of versions");
      }
      installable = this.#written(result.changes, meta, started, epoch);
    } catch (err) {
      this.#tier.forget(keys, fromLoad);
      this.#tier.settle();
      throw this.#failed(err, "set", keys);
    }
    this.#stats.sets += prepared.length;
    // A clear or flush while the write was in flight, or an answer overtaken by a newer
    // sync, leaves the keys out of L1: a later read fetches whatever L2 holds by then.
    prepared.forEach((p, i) => {
      const version = versions[i]!;
      this.#tier.raiseFloor(p.key, version);
      if (!installable || !install) {
        this.#tier.delete(p.key);
        return;
      }
      // Measured from before the request: the L2 expiry started later, so L1 never outlives it.
      this.#installPrepared(p, version, started);
    });
    this.#tier.settle();
    if (this.#hub) {
      const elapsed = this.#now() - started;
      await this.#publish([
        {
          op: "set",
          first: versions[0]!,
          last: versions[versions.length - 1]!,
          origin: meta.origin,
          keys: prepared.map((p, i) =>
            p.write.propagate && p.write.ttl - elapsed > 0
              ? {
                  key: p.key,
                  version: versions[i]!,
                  value: p.write.value,
                  ttl: p.write.ttl - elapsed,
                }
              : { key: p.key, version: versions[i]! },
          ),
        },
      ]);
    }
    return versions;
  }

  // ---- tags ----------------------------------------------------------------------------

  async invalidateTag(tag: string): Promise<void> {
    await this.invalidateTags([tag]);
  }

  async invalidateTags(tags: readonly string[]): Promise<void> {
    this.#open();
    const unique = checkTags(tags);
    if (unique === undefined) return;
    this.#entries.allowTags(unique);
    // A marker per tag, written like an entry: its version, from the namespace's counter,
    // is the line below which entries with the tag no longer hold. It reaches the other
    // instances through the change log (and the hub), without its value.
    const prepared = unique.map((tag) =>
      this.#entries.prepare(
        tagKey(tag),
        1,
        { ttl: TAG_MARKER_TTL, propagate: "invalidate", jitter: 0 },
        {},
        true,
      ),
    );
    const versions = await this.#commit(prepared, false);
    unique.forEach((tag, i) => {
      this.#noteTag(tag, versions[i]!);
    });
  }

  async inspect(key: string): Promise<InspectResult | undefined> {
    this.#open();
    this.#entries.checkKey(key);
    const t = this.#now();
    let tier: "l1" | "l2" = "l1";
    let entry = this.#lookupStale(key, t);
    if (entry === undefined) {
      tier = "l2";
      entry = (await this.#fetch([key], true)).entries[0];
    }
    if (entry === undefined) return undefined;
    return {
      key,
      tier,
      value: entry.value === undefined ? undefined : this.#out(entry.value),
      version: entry.version,
      ttl: entry.expiresAt - t,
      expiresIn: Math.max(entry.expiresAt, entry.staleUntil ?? 0) - t,
      stale: !(entry.expiresAt > t),
      tags: entry.tags ?? [],
      negative: entry.negative,
    };
  }

  async delete(key: string): Promise<void> {
    await this.deleteMany([key]);
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    this.#open();
    if (!Array.isArray(keys)) throw new InvalidKeyError("deleteMany expects an array of keys");
    for (const key of keys) this.#entries.checkKey(key);
    if (keys.length === 0) return;
    const unique = [...new Set(keys)];
    const started = this.#now();
    const meta = this.#meta();
    const epoch = this.#tier.epoch;
    this.#tier.begin();
    let version: number;
    try {
      const result = await this.#store.delete(this.name, unique, meta);
      version = result.version;
      if (result.corrupt) this.#corrupt(result.corrupt, undefined, true);
      if (!Number.isSafeInteger(version)) {
        throw new StoreError("EC_STORE_ERROR", "store.delete returned no version");
      }
      this.#written(result.changes, meta, started, epoch);
    } catch (err) {
      this.#tier.forget(unique);
      this.#tier.settle();
      throw this.#failed(err, "delete", unique);
    }
    this.#stats.deletes += unique.length;
    for (const key of unique) {
      this.#tier.raiseFloor(key, version);
      this.#tier.delete(key);
    }
    this.#tier.settle();
    await this.#publish([
      {
        op: "delete",
        first: version,
        last: version,
        origin: meta.origin,
        keys: unique.map((key) => ({ key, version })),
      },
    ]);
  }

  async clear(): Promise<void> {
    this.#open();
    const started = this.#now();
    const meta = this.#meta();
    const epoch = this.#tier.epoch;
    this.#tier.begin();
    let version: number;
    try {
      const result = await this.#store.clear(this.name, meta);
      version = result.version;
      if (result.corrupt) this.#corrupt(result.corrupt, undefined, true);
      this.#written(result.changes, meta, started, epoch);
    } catch (err) {
      // Whether or not L2 applied it, an empty L1 is never wrong.
      this.#dropAll();
      this.#tier.settle();
      throw this.#failed(err, "clear", []);
    }
    this.#stats.clears++;
    this.#dropAll();
    this.#tier.settle();
    await this.#publish([
      { op: "clear", first: version, last: version, origin: meta.origin, keys: [] },
    ]);
  }

  #meta(): WriteMeta {
    this.#origin ??= crypto.randomUUID();
    const sync = this.#sync;
    return sync
      ? { origin: this.#origin, logLength: sync.settings.logLength, sync: sync.request() }
      : { origin: this.#origin, logLength: 0 };
  }

  /** A write's answer carries the change log up to and including the write itself. */
  #written(
    changes: ChangeBatch | undefined,
    meta: WriteMeta,
    sentAt: number,
    epoch: number,
  ): boolean {
    if (meta.sync !== undefined && changes === undefined) {
      throw new StoreError("EC_STORE_ERROR", "the store ignored the sync request of a write");
    }
    return this.#answered(changes, meta.sync?.cursor, sentAt, epoch).installable;
  }

  /**
   * Takes an L2 answer asked for at `epoch`: applies the change log it carried (if a sync
   * rode along from cursor `asked`) and says whether its own values may enter L1. They may
   * not if L1 was dropped by anything else since `epoch` (a drop this very log causes does
   * not count: the values come from the same snapshot), nor if the cursor has moved past
   * the answer's snapshot: changes in between were applied while those keys were not in
   * L1, so they would never be applied to them again.
   */
  #answered(
    changes: ChangeBatch | undefined,
    asked: number | undefined,
    sentAt: number,
    epoch: number,
  ): { synced: boolean; installable: boolean } {
    const undisturbed = this.#tier.epoch === epoch;
    if (changes === undefined || asked === undefined) {
      return { synced: false, installable: undisturbed };
    }
    const synced = this.#apply(changes, asked, sentAt).kind !== "unverified";
    return { synced, installable: undisturbed && changes.head >= this.#sync!.cursor };
  }

  // ---- lifecycle -----------------------------------------------------------------------

  stats(): CacheStats {
    const sync = this.#sync?.stats;
    return {
      ...this.#stats,
      l1Items: this.#tier.size,
      l1Bytes: this.#tier.bytes,
      l1Evictions: this.#tier.evictions,
      syncs: sync?.syncs ?? 0,
      changesApplied: this.#changesApplied,
      flushes: (sync?.flushes ?? 0) + this.#remoteFlushes,
      syncLag: sync?.syncLag ?? 0,
      cursor: this.#sync?.cursor ?? -1,
      hub: this.#hub && { healthy: this.#hub.healthy, ...this.#hub.stats },
      breaker: this.#breaker?.stats,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#hub?.close();
    // Loads waiting on another instance's lease stop at once rather than at their next poll.
    for (const key of [...this.#waiters.keys()]) this.#wake(key);
    await Promise.allSettled([
      ...[...this.#children.values()].map((c) => c.group.close()),
      ...this.#background,
      ...this.#loads.values(),
      this.#pendingSync?.promise,
    ]);
    this.#dropAll();
  }

  // ---- helpers -------------------------------------------------------------------------

  #open(): void {
    if (this.#closed) throw new ClosedError();
  }

  /** L1's fresh entry of `key`, if its tags still hold. The hot path: kept small. */
  #lookup(key: string, t: number): LocalEntry | undefined {
    const entry = this.#tier.lookup(key, t);
    if (entry === undefined || entry.tags === undefined || this.#tagsHold(key, entry)) {
      return entry;
    }
    return undefined;
  }

  /**
   * Whether no tag of `entry` was invalidated after it was written. A tag this instance has
   * not seen yet counts as not holding (the entry is read again with its tags' markers);
   * an entry with a tag invalidated after it leaves L1.
   */
  #tagsHold(key: string, entry: LocalEntry): boolean {
    const tags = entry.tags!;
    if (this.#tagsValid(tags, entry.version)) return true;
    if (tags.some((tag) => (this.#tagVersions.get(tag) ?? 0) > entry.version)) {
      this.#tier.delete(key);
    }
    return false;
  }

  /** L1's entry of `key`, fresh or stale, if its tags still hold. */
  #lookupStale(key: string, t: number): LocalEntry | undefined {
    const entry = this.#tier.lookupStale(key, t);
    return entry?.tags !== undefined && !this.#tagsHold(key, entry) ? undefined : entry;
  }

  /** Notes that `tag` was invalidated at `version` (keeps the newest). */
  #noteTag(tag: string, version: number): void {
    const known = this.#tagVersions.get(tag);
    if (known !== undefined && known >= version) return;
    if (known === undefined && this.#tagVersions.size >= MAX_TAGS_KNOWN) {
      // Forget the oldest noted tag: it will be read from L2 again when needed.
      const oldest = this.#tagVersions.keys().next().value;
      if (oldest !== undefined) this.#tagVersions.delete(oldest);
    }
    this.#tagVersions.set(tag, version);
  }

  /** Drops L1 whole, and with it what it knew of tags. */
  #dropAll(): void {
    this.#tier.drop();
    this.#tagVersions.clear();
  }

  #out(value: unknown): unknown {
    return this.#copy === undefined ? value : this.#copy(value);
  }

  #corrupt(count: number, key: string | undefined, repaired = false): void {
    this.#stats.corrupt += count;
    let message =
      count === 1
        ? "an L2 entry could not be decoded; served as a miss"
        : `${count} L2 entries could not be decoded; served as misses`;
    if (repaired) {
      message =
        key === undefined
          ? "L2 held data under this namespace that edgecache never writes; it was reset (a clear)"
          : "L2 held a lease edgecache never writes (no expiry, or another type); it was replaced";
    }
    this.#absorb(new CorruptEntryError(message, key === undefined ? {} : { key }));
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
    this.#logger.warn(error.message, { code: error.code, namespace: this.name });
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

/** A namespace with a loader: `get` reads through it. */
class ReadThroughGroup extends GroupCache {
  override get<T = unknown>(key: string): Promise<T | undefined> {
    return this.getOrSet(key, this.options.loader as Loader<T>);
  }
}

/** The error of a load that ran past `hardTimeout`. */
function loaderTimeout(key: string, ms: number): LoaderError {
  return new LoaderError("EC_LOADER_TIMEOUT", `the loader did not finish within ${ms} ms`, {
    key,
  });
}

/** A loader's failure as a LoaderError (the loader's own error as its cause). */
function loaderFailed(error: unknown, key: string, message: string): LoaderError {
  return error instanceof LoaderError
    ? error
    : new LoaderError("EC_LOADER_FAILED", message, { key, cause: error });
}

/** Keys of tag invalidation markers start with this. */
const TAG_PREFIX = tagKey("");

/** Most tags whose invalidation version an instance remembers. */
const MAX_TAGS_KNOWN = 10_000;

/** How long a tag's invalidation marker stays in L2: longer than any tagged entry. */
const TAG_MARKER_TTL = 10 * 365 * 24 * 3_600_000;

/** How much earlier than their TTL says values pushed by the hub leave L1, in ms. */
const HUB_TRANSIT_MARGIN = 1000;

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
 */
export function createCache(options: CacheOptions): Cache {
  return new EdgeCache(options);
}
