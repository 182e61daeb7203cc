/**
 * A {@link Store} that spreads each namespace's keys over several stores, by a consistent-hash
 * ring with virtual nodes (`sharded-ring.ts`). The cache needs one contiguous version
 * sequence per namespace, so the shards' change logs are merged into a virtual log
 * (`sharded-log.ts`, which also says why the cache stays within its staleness bound).
 *
 * Every instance must use the same shards (ids, weights) and `replicas`: instances that place
 * a key on different shards do not see each other's writes of it.
 *
 * @module
 */

import { StoreError } from "../errors.js";
import type {
  ChangeBatch,
  Store,
  StoreEntry,
  StoreReadResult,
  StoreWrite,
  StoreWriteResult,
  SyncRequest,
  WriteMeta,
} from "../store/contract.js";
import { shardedKeys } from "./sharded-keys.js";
import { shardedLeases } from "./sharded-leases.js";
import {
  batchFor,
  checkBatch,
  checkRequest,
  merge,
  newSpace,
  type ShardAnswer,
  type Space,
} from "./sharded-log.js";
import { subscribeAll } from "./sharded-push.js";
import { groupByShard, placement } from "./sharded-ring.js";

/** Options of {@link shardedStore}. */
export interface ShardedStoreOptions {
  /**
   * Virtual nodes per shard on the ring (times the shard's `weight`). More spread the keys
   * more evenly, at the cost of a larger ring (4 bytes × 2 per node) built once. With the
   * default, 100,000 keys land within 10% of the mean load on each of 2 to 10 shards, and
   * adding a shard moves close to 1/(n+1) of them, all to the new shard.
   * @default 2000
   */
  replicas?: number;
}

/**
 * One shard: a store, or a store with a stable `id` and a `weight`. A shard's place on the
 * ring derives from its id (by default its index, `"0"`, `"1"`, ...), so appending a shard
 * moves only the keys the new one takes over.
 */
export type Shard =
  | Store
  | {
      /** The shard's identity on the ring. Keep it when the list changes. */
      id: string;
      store: Store;
      /**
       * Relative share of the keys: scales the shard's virtual nodes.
       * @default 1
       */
      weight?: number;
    };

/** A {@link Store} over several shards, which also says where a key lives. */
export interface ShardedStore extends Store {
  /** The id of the shard that holds `key`. */
  shardFor(key: string): string;
}

/** The part of a call that goes to one shard holding some of its keys. */
interface Job<R> {
  readonly keys: readonly string[];
  run(sync: SyncRequest | undefined): Promise<R>;
  /** Throws if the answer has the wrong shape. */
  check(result: R): void;
  changes(result: R): ChangeBatch | undefined;
}

/**
 * A {@link Store} that spreads one namespace's keys over several stores (say, several Redis
 * databases) with a consistent-hash ring, and keeps caches coherent across all of them. A
 * key lives only in its shard; the shard is chosen by hashing the key (not the namespace),
 * so a namespace's keys spread out.
 *
 * Requests: with coherence on, every call that syncs asks every shard for its change log, in
 * parallel. A `get` of one key costs n requests (its shard answers the read and its log in
 * one; each other shard its log), as do `set`, `delete`, `clear` and a sync; hot reads within
 * the staleness window cost none. Without a sync, a call costs one request per shard that
 * holds some of its keys. A call fails if any shard fails, including a write that landed on
 * the other shards; so while one shard is down, reads that need a sync miss.
 *
 * Leases (`getOrSet({ lock: true })`) are kept by each key's shard, and offered only if every
 * shard offers them; so is key listing (`keys`, one shard after the other). `close()` closes
 * every shard.
 *
 * Every instance of a namespace must use the same shards (ids and weights) and `replicas`.
 * Changing them is a migration: a key that moves is a miss on its new shard, and the copy
 * left on its old shard goes stale, to be served again if the key ever moves back. Prefer a
 * new namespace (or a `clear()` once every instance runs the new list).
 *
 * @example
 * ```ts
 * const store = shardedStore([
 *   upstashStore({ url: env.REDIS_A_URL, token: env.REDIS_A_TOKEN }),
 *   upstashStore({ url: env.REDIS_B_URL, token: env.REDIS_B_TOKEN }),
 * ]);
 * const cache = createCache({ store, namespace: "app" });
 * ```
 * @see docs/sharding.md (shipped in the package).
 */
export function shardedStore(
  shards: readonly Shard[],
  options: ShardedStoreOptions = {},
): ShardedStore {
  const { stores, ids, shardOf } = placement(shards, options);
  const n = stores.length;
  const spaces = new Map<string, Space>();
  const pushAll = subscribeAll(stores);

  const space = (ns: string): Space => {
    let s = spaces.get(ns);
    if (s === undefined) {
      s = newSpace(n);
      spaces.set(ns, s);
    }
    return s;
  };

  const group = (count: number, keyAt: (i: number) => string) =>
    groupByShard(shardOf, count, keyAt);

  /**
   * Sends the jobs to their shards and, with `request`, the log request to every other
   * shard; waits for all of them, fails if any failed, and merges the logs.
   */
  async function fanOut<R>(
    ns: string,
    request: SyncRequest | undefined,
    jobs: ReadonlyMap<number, Job<R>>,
  ): Promise<{ results: Map<number, R>; changes: ChangeBatch | undefined }> {
    if (request !== undefined) checkRequest(request);
    const s = request === undefined ? undefined : space(ns);
    const asked: number[] = [];
    const shardsAsked: number[] = [];
    const calls: Array<Promise<R | ChangeBatch>> = [];
    for (let i = 0; i < n; i++) {
      const job = jobs.get(i);
      if (s === undefined || request === undefined) {
        if (job !== undefined) {
          shardsAsked.push(i);
          calls.push(attempt(() => job.run(undefined)));
        }
        continue;
      }
      const sync = { cursor: s.vec[i] ?? -1, limit: request.limit };
      asked[i] = sync.cursor;
      shardsAsked.push(i);
      calls.push(
        attempt<R | ChangeBatch>(() =>
          job === undefined ? stores[i]!.sync(ns, sync) : job.run(sync),
        ),
      );
    }
    const settled = await Promise.allSettled(calls);
    for (const outcome of settled) if (outcome.status === "rejected") throw outcome.reason;
    // Everything is checked before the merge, so that a bad answer changes no state.
    const results = new Map<number, R>();
    const answers: ShardAnswer[] = [];
    shardsAsked.forEach((i, j) => {
      const value = (settled[j] as PromiseFulfilledResult<R | ChangeBatch>).value;
      const job = jobs.get(i);
      let batch: ChangeBatch | undefined;
      if (job === undefined) batch = value as ChangeBatch;
      else {
        job.check(value as R);
        results.set(i, value as R);
        batch = job.changes(value as R);
      }
      if (s === undefined) return;
      if (batch === undefined) {
        throw new StoreError("EC_STORE_ERROR", "a shard ignored the sync request");
      }
      checkBatch(batch);
      answers.push({ shard: i, asked: asked[i]!, batch, keys: job?.keys });
    });
    if (s === undefined || request === undefined) return { results, changes: undefined };
    const head = merge(s, answers);
    return { results, changes: batchFor(s, request, head) };
  }

  const store: ShardedStore = {
    name: `sharded(${stores.map((x) => x.name).join(",")})`,
    // Each shard has its own counter: versions of keys on different shards do not compare.
    orderedVersions: false,
    // Shards are called at once: a call waits as long as the slowest may.
    ...timeoutOf(stores),
    shardFor: (key) => ids[shardOf(key)]!,
    ...(pushAll === undefined ? {} : { subscribe: pushAll }),

    async get(ns, keys, sync): Promise<StoreReadResult> {
      if (keys.length === 0 && !sync) return { entries: [], corrupt: 0 };
      const jobs = new Map<number, Job<StoreReadResult>>();
      const groups = group(keys.length, (i) => keys[i]!);
      for (const [i, slots] of groups) {
        const sub = slots.map((j) => keys[j]!);
        jobs.set(i, {
          keys: sub,
          run: (request) => stores[i]!.get(ns, sub, request),
          check: (r) => {
            if (!Array.isArray(r?.entries) || r.entries.length !== sub.length) {
              throw new StoreError(
                "EC_STORE_ERROR",
                "a shard returned the wrong number of entries",
              );
            }
          },
          changes: (r) => r.changes,
        });
      }
      const { results, changes } = await fanOut(ns, sync, jobs);
      const entries: Array<StoreEntry | undefined> = new Array(keys.length);
      let corrupt = 0;
      for (const [i, slots] of groups) {
        const r = results.get(i)!;
        corrupt += r.corrupt;
        slots.forEach((slot, j) => {
          entries[slot] = r.entries[j];
        });
      }
      return changes === undefined ? { entries, corrupt } : { entries, corrupt, changes };
    },

    async sync(ns, request) {
      const { changes } = await fanOut(ns, request, new Map());
      return changes!;
    },

    async set(ns, writes: readonly StoreWrite[], meta) {
      if (writes.length === 0 && !meta.sync) return { version: [] };
      const jobs = new Map<number, Job<StoreWriteResult<number[]>>>();
      const groups = group(writes.length, (i) => writes[i]!.key);
      for (const [i, slots] of groups) {
        const sub = slots.map((j) => writes[j]!);
        jobs.set(i, {
          keys: sub.map((w) => w.key),
          run: (request) => stores[i]!.set(ns, sub, withSync(meta, request)),
          check: (r) => {
            if (!Array.isArray(r?.version) || r.version.length !== sub.length) {
              throw new StoreError(
                "EC_STORE_ERROR",
                "a shard returned the wrong number of versions",
              );
            }
            for (const v of r.version) checkVersion(v);
          },
          changes: (r) => r.changes,
        });
      }
      const { results, changes } = await fanOut(ns, meta.sync, jobs);
      const version: number[] = new Array(writes.length);
      for (const [i, slots] of groups) {
        const r = results.get(i)!;
        slots.forEach((slot, j) => {
          version[slot] = r.version[j]!;
        });
      }
      const corrupt = corruptOf(results.values());
      return { version, ...(changes === undefined ? {} : { changes }), ...corrupt };
    },

    async delete(ns, keys, meta) {
      // Deleting nothing still stamps a version: on every shard, so it is above all of them.
      const groups =
        keys.length === 0
          ? new Map(stores.map((_, i) => [i, [] as number[]]))
          : group(keys.length, (i) => keys[i]!);
      const jobs = new Map<number, Job<StoreWriteResult<number>>>();
      for (const [i, slots] of groups) {
        const sub = slots.map((j) => keys[j]!);
        jobs.set(i, {
          keys: [],
          run: (request) => stores[i]!.delete(ns, sub, withSync(meta, request)),
          check: (r) => checkVersion(r?.version),
          changes: (r) => r.changes,
        });
      }
      return highest(await fanOut(ns, meta.sync, jobs));
    },

    async clear(ns, meta) {
      const jobs = new Map<number, Job<StoreWriteResult<number>>>();
      stores.forEach((shard, i) => {
        jobs.set(i, {
          keys: [],
          run: (request) => shard.clear(ns, withSync(meta, request)),
          check: (r) => checkVersion(r?.version),
          changes: (r) => r.changes,
        });
      });
      return highest(await fanOut(ns, meta.sync, jobs));
    },

    async close() {
      const settled = await Promise.allSettled(stores.map((x) => attempt(async () => x.close?.())));
      for (const outcome of settled) if (outcome.status === "rejected") throw outcome.reason;
    },
  };

  Object.assign(store, shardedLeases(stores, shardOf));
  if (stores.every((x) => x.keys !== undefined)) {
    store.keys = (ns, page) => shardedKeys(stores, ns, page);
  }
  return store;
}

// ---- helpers ----------------------------------------------------------------------------

/** Runs `fn`, turning a synchronous throw into a rejection, so every shard gets its call. */
function attempt<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (err) {
    return Promise.reject(err);
  }
}

function withSync(meta: WriteMeta, sync: SyncRequest | undefined): WriteMeta {
  return sync === undefined ? meta : { ...meta, sync };
}

function timeoutOf(stores: readonly Store[]): { timeout?: number } {
  if (stores.some((x) => x.timeout === undefined)) return {};
  return { timeout: Math.max(...stores.map((x) => x.timeout as number)) };
}

function checkVersion(v: unknown): void {
  if (!Number.isSafeInteger(v)) {
    throw new StoreError("EC_STORE_ERROR", "a shard returned an invalid version");
  }
}

/** A delete's or clear's answer: the highest of the shards' versions (a safe floor). */
function highest({
  results,
  changes,
}: {
  results: Map<number, StoreWriteResult<number>>;
  changes: ChangeBatch | undefined;
}): StoreWriteResult<number> {
  let version = Number.NEGATIVE_INFINITY;
  for (const r of results.values()) version = Math.max(version, r.version);
  const corrupt = corruptOf(results.values());
  return { version, ...(changes === undefined ? {} : { changes }), ...corrupt };
}

/** The shards' repairs, summed, as a write answer's `corrupt` (absent when none). */
function corruptOf(results: Iterable<{ corrupt?: number }>): { corrupt?: number } {
  let corrupt = 0;
  for (const r of results) corrupt += r.corrupt ?? 0;
  return corrupt > 0 ? { corrupt } : {};
}
