import { coarseClock } from "./clock.js";
import { utf8Length } from "./codec.js";
import { Entries, MISS } from "./entries.js";
import {
  ClosedError,
  CorruptEntryError,
  EdgeCacheError,
  InvalidKeyError,
  InvalidOptionError,
  StoreError,
} from "./errors.js";
import { HubClient } from "./hub/client.js";
import { GuardedL1 } from "./l1.js";
import type { Logger } from "./logger.js";
import { resolveOptions } from "./options.js";
import type { ChangeBatch, ChangeRecord, Store, StoreEntry, WriteMeta } from "./store.js";
import { SyncState, type Verdict } from "./sync/stamps.js";
import type { Cache, CacheOptions, CacheStats, SetManyEntry, SetOptions } from "./types.js";

export type { Cache, CacheOptions, CacheStats, SetManyEntry, SetOptions } from "./types.js";

interface PendingSync {
  promise: Promise<boolean>;
  sentAt: number;
  /**
   * Started by refresh-ahead, awaited by no read. Reads do not join such a sync: in
   * Workers its I/O belongs to a request that may already have responded, and may be
   * cancelled with it.
   */
  background: boolean;
}

class EdgeCache implements Cache {
  readonly namespace: string;
  readonly #store: Store;
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
  };
  constructor(options: CacheOptions) {
    const o = resolveOptions(options);
    this.#store = o.store;
    this.namespace = o.namespace;
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
      maxKeyBytes: o.maxKeyBytes,
      maxValueBytes: o.maxValueBytes,
      propagateMaxBytes: sync ? sync.propagateMaxBytes : -1,
    });
    this.#origin = o.instanceId;
    if (sync?.hub) {
      const state = this.#sync!;
      const relaxed = Math.max(sync.maxStaleness, sync.hub.options.relaxedStaleness ?? 0);
      this.#hub = new HubClient(sync.hub, o.namespace, {
        records: (records, receivedAt) => this.#fromHub(records, receivedAt),
        // Only a sync sent after the socket opened covers what it may have missed.
        opened: () => this.#startSync(false).promise,
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
      const entry = this.#tier.lookup(key, t);
      if (entry !== undefined) {
        this.#stats.l1Hits++;
        this.#refreshAhead(t);
        return this.#out(entry.value) as T;
      }
    }
    const [value] = await this.#slowRead([key], t);
    return (value === undefined ? undefined : this.#out(value)) as T | undefined;
  }

  peek<T = unknown>(key: string): T | undefined {
    this.#open();
    this.#entries.checkKey(key);
    const t = this.#hitClock();
    const entry =
      this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack)
        ? this.#tier.lookup(key, t)
        : undefined;
    if (entry === undefined) {
      this.#stats.l1Misses++;
      return undefined;
    }
    this.#stats.l1Hits++;
    return this.#out(entry.value) as T;
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
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
      const entry = fresh ? this.#tier.lookup(key, t) : undefined;
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
    const values = await this.#slowRead([...slow.keys()], t);
    let j = 0;
    for (const slots of slow.values()) {
      const v = values[j++];
      // Each slot gets its own copy when copies are on; duplicates must not share one.
      for (const i of slots) out[i] = v === undefined ? undefined : this.#out(v);
    }
    return out as Array<T | undefined>;
  }

  /**
   * Reads distinct keys that L1 could not answer on its own at `t`: misses, and entries
   * whose sync window ran out. At most two requests: the misses with a sync riding along
   * (or a sync alone), then a read of the entries that sync invalidated.
   */
  async #slowRead(keys: string[], t: number): Promise<unknown[]> {
    const out: unknown[] = new Array(keys.length);
    const held: number[] = [];
    const missing: number[] = [];
    keys.forEach((key, i) => {
      (this.#tier.lookup(key, t) === undefined ? missing : held).push(i);
    });
    let synced = this.#sync === undefined || this.#sync.fresh(t, this.#hitSlack);
    if (missing.length > 0) {
      const read = await this.#fetch(missing.map((i) => keys[i]!));
      missing.forEach((i, j) => {
        out[i] = read.values[j];
      });
      synced ||= read.synced;
    }
    if (held.length === 0) return out;
    if (!synced) synced = await this.#syncFor(t);
    const again: number[] = [];
    const now = this.#now();
    for (const i of held) {
      const entry = synced ? this.#tier.lookup(keys[i]!, now) : undefined;
      if (entry !== undefined) {
        this.#stats.l1Hits++;
        out[i] = entry.value;
      } else if (synced) {
        again.push(i);
      } else {
        // No sync could vouch for the L1 copy within the bound: a miss, not a stale value.
        this.#stats.l1Misses++;
        this.#stats.l2Misses++;
      }
    }
    if (again.length > 0) {
      const read = await this.#fetch(again.map((i) => keys[i]!));
      again.forEach((i, j) => {
        out[i] = read.values[j];
      });
    }
    return out;
  }

  /** One L2 read of `keys` (counted as L1 misses), with a sync riding along when on. */
  async #fetch(keys: string[]): Promise<{ values: unknown[]; synced: boolean }> {
    this.#stats.l1Misses += keys.length;
    const sentAt = this.#now();
    const request = this.#sync?.request();
    const epoch = this.#tier.epoch;
    this.#tier.begin();
    try {
      let entries: ReadonlyArray<StoreEntry | undefined>;
      let changes: ChangeBatch | undefined;
      try {
        const result = await this.#store.get(this.namespace, keys, request);
        entries = result.entries;
        changes = result.changes;
        if (!Array.isArray(entries) || entries.length !== keys.length) {
          throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
        }
        if (request !== undefined && changes === undefined) {
          throw new StoreError("EC_STORE_ERROR", "store.get ignored the sync request");
        }
        if (result.corrupt > 0) this.#corrupt(result.corrupt, undefined);
      } catch (err) {
        this.#stats.l2Misses += keys.length;
        this.#absorb(this.#failed(err, "get", keys));
        return { values: keys.map(() => undefined), synced: false };
      }
      const { synced, installable } = this.#answered(changes, request?.cursor, sentAt, epoch);
      const values = keys.map((key, i) => {
        const entry = entries[i];
        if (entry === undefined) {
          this.#stats.l2Misses++;
          return undefined;
        }
        const value = this.#entries.decode(entry.value);
        if (value === MISS) {
          this.#stats.l2Misses++;
          this.#corrupt(1, key);
          return undefined;
        }
        this.#stats.l2Hits++;
        const expiresAt = this.#tier.expiry(sentAt, entry.ttl);
        if (installable) {
          this.#tier.install(
            key,
            value,
            entry.version,
            expiresAt,
            utf8Length(entry.value) + key.length,
          );
        }
        return value;
      });
      return { values, synced };
    } finally {
      this.#tier.settle();
    }
  }

  // ---- coherence -----------------------------------------------------------------------

  /** Resolves true once a sync that vouches for reads started at `t` has been applied. */
  #syncFor(t: number): Promise<boolean> {
    const pending = this.#pendingSync;
    // An answer to a sync sent before `t` is good enough if it was sent within the window.
    if (pending && !pending.background && this.#sync!.covers(pending.sentAt, t, this.#hitSlack)) {
      return pending.promise;
    }
    return this.#startSync(false).promise;
  }

  #startSync(background: boolean): PendingSync {
    const sync = this.#sync!;
    const sentAt = this.#now();
    const request = sync.request();
    this.#tier.begin();
    const pending = { sentAt, background } as PendingSync;
    let settled = false;
    const run = async (): Promise<boolean> => {
      try {
        // Awaited before anything else, so a store that throws synchronously still ends
        // up in the catch below after `pending` is complete.
        await undefined;
        const batch = await this.#store.sync(this.namespace, request);
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
    const verdict = this.#sync!.accept(batch, asked, sentAt);
    if (verdict.kind === "flush") this.#tier.drop();
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
      this.#tier.drop();
      return;
    }
    for (const change of record.keys) {
      // Decoding is only worth it for a key this instance holds at an older version.
      let value: unknown;
      if (change.value !== undefined && this.#tier.holdsOlder(change.key, change.version)) {
        value = this.#entries.decode(change.value);
        if (value === MISS) {
          this.#corrupt(1, change.key);
          value = undefined;
        }
      }
      const size = change.value === undefined ? 0 : utf8Length(change.value) + change.key.length;
      this.#tier.change(change, value, sentAt, size);
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
    const keys = prepared.map((p) => p.key);
    const started = this.#now();
    const meta = this.#meta();
    const epoch = this.#tier.epoch;
    let installable: boolean;
    let versions: number[];
    this.#tier.begin();
    try {
      const result = await this.#store.set(
        this.namespace,
        prepared.map((p) => p.write),
        meta,
      );
      versions = result.version;
      if (!Array.isArray(versions) || versions.length !== prepared.length) {
        throw new StoreError("EC_STORE_ERROR", "store.set returned the wrong number of versions");
      }
      installable = this.#written(result.changes, meta, started, epoch);
    } catch (err) {
      this.#tier.forget(keys);
      this.#tier.settle();
      throw this.#failed(err, "set", keys);
    }
    this.#stats.sets += prepared.length;
    // A clear or flush while the write was in flight, or an answer overtaken by a newer
    // sync, leaves the keys out of L1: a later read fetches whatever L2 holds by then.
    prepared.forEach((p, i) => {
      const version = versions[i]!;
      this.#tier.raiseFloor(p.key, version);
      if (!installable) {
        this.#tier.delete(p.key);
        return;
      }
      // Measured from before the request: the L2 expiry started later, so L1 never outlives it.
      const expiresAt = this.#tier.expiry(started, p.write.ttl);
      this.#tier.install(
        p.key,
        this.#copy ? this.#copy(p.value) : p.value,
        version,
        expiresAt,
        p.size,
      );
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
      const result = await this.#store.delete(this.namespace, unique, meta);
      version = result.version;
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
      const result = await this.#store.clear(this.namespace, meta);
      version = result.version;
      this.#written(result.changes, meta, started, epoch);
    } catch (err) {
      // Whether or not L2 applied it, an empty L1 is never wrong.
      this.#tier.drop();
      this.#tier.settle();
      throw this.#failed(err, "clear", []);
    }
    this.#stats.clears++;
    this.#tier.drop();
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
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#hub?.close();
    await Promise.allSettled([...this.#background, this.#pendingSync?.promise]);
    this.#tier.drop();
  }

  // ---- helpers -------------------------------------------------------------------------

  #open(): void {
    if (this.#closed) throw new ClosedError();
  }

  #out(value: unknown): unknown {
    return this.#copy === undefined ? value : this.#copy(value);
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
