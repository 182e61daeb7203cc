/**
 * A {@link Store} that spreads each namespace's keys over several stores, by a consistent-hash
 * ring with virtual nodes.
 *
 * Coherence. The cache keeps one cursor per namespace and needs one contiguous version
 * sequence, but every shard has its own counter and its own change log. So this store keeps,
 * per namespace, a virtual log: `vec[i]` is how far shard i's log has been merged, `vhead` the
 * virtual head, and a bounded buffer holds merged records renumbered into virtual versions.
 * Every call that syncs asks every shard for its log after `vec[i]` (the shards that hold the
 * call's keys answer the read or write and their log at once), and merges the answers
 * synchronously, so merges are atomic with respect to each other. Why the cache stays within
 * its staleness bound:
 *
 * 1. Nothing is skipped silently. Each shard's records are renumbered once, in raw order,
 *    contiguously from `vec[i] + 1`. What cannot be renumbered so (a trimmed log, a lost or
 *    recreated counter, more than `limit` records, a first answer racing another) leaves a
 *    hole in the virtual sequence, and a cache whose cursor precedes a hole sees a gap and
 *    drops its L1. A cursor older than the buffer also reads as a gap.
 * 2. The head is honest. A batch's head is `vhead` after the merge, which covers every shard
 *    up to at least this call's own answer from it, and that answer includes every write that
 *    resolved before the call was sent: what the cache assumes when it takes the batch.
 * 3. Values are never older than the head vouches for, for long. The cache installs the
 *    values of an answer whose head is at or past its cursor, trusting them to be as new as
 *    every record up to that head (one Redis snapshot, for a single store). A shard's answer
 *    that was merged in this call (its head at or past `vec[i]`) is that snapshot. One that is
 *    older (another call merged the shard further first) may hold values that records
 *    already numbered below the head have changed: the cache's floors cover this only while
 *    its own operations overlap, not across caches sharing this store, nor when the same
 *    batch makes it flush. So for each key such an answer returned or wrote, the store checks
 *    the buffered records of that shard after the answer's head and, if any change the key
 *    (or clear, or cannot be accounted for), appends an invalidation record just after the
 *    head it returns: the next sync of every cache carries it and drops the older copy. The
 *    changes it stands for reached the shard after this call's request did, so after the
 *    call was sent; the copy stands until the cache's next sync. (One corner can stretch the
 *    bound by at most the overtaken call's flight time: the same batch makes the cache flush
 *    while another of its syncs, sent after those changes and merged earlier, is still to be
 *    taken; that sync then renews the window without carrying the invalidation.)
 * 4. Versions of keys stay raw. The cache compares a key's versions only with versions of
 *    the same key, and they all come from the counter of the key's shard. `delete` and
 *    `clear` report the highest version among the shards they touched: the cache uses it as
 *    a floor for each key, where too high is safe (colder), too low would not be.
 *
 * Every instance must use the same shards (ids, weights) and `replicas`: instances that place
 * a key on different shards do not see each other's writes of it.
 *
 * @module
 */

import { InvalidOptionError, StoreError } from "../errors.js";
import type {
  ChangeBatch,
  ChangedKey,
  ChangeRecord,
  Store,
  StoreEntry,
  StoreReadWithChanges,
  StoreWrite,
  StoreWriteResult,
  SyncRequest,
  WriteMeta,
} from "../store.js";

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

const DEFAULT_REPLICAS = 2000;
// Bounds that keep a typo from allocating a huge ring.
const MAX_REPLICAS = 100_000;
const MAX_POINTS = 2_000_000;
// Merged records kept per namespace for caches that read the log after an older cursor; a
// cursor older than the oldest kept one is a gap (the cache drops its L1).
const BUFFER_RECORDS = 10_000;
const BUFFER_SLACK = 1_000;

interface Item {
  /** The shard the record came from; -1 for an invalidation this store added. */
  readonly shard: number;
  /** The record's raw versions in its shard. */
  readonly rawFirst: number;
  readonly rawLast: number;
  /** Its last virtual version. */
  readonly vlast: number;
  /** The renumbered record; `undefined` for a hole (versions nobody will see a record of). */
  readonly record: ChangeRecord | undefined;
}

interface Space {
  /** Raw head of each shard merged so far; `undefined` before the first answer. */
  readonly vec: Array<number | undefined>;
  vhead: number;
  /** Oldest first, by `vlast`. */
  readonly items: Item[];
}

interface ShardAnswer {
  readonly shard: number;
  /** The cursor the shard was asked with. */
  readonly asked: number;
  readonly batch: ChangeBatch;
  /** The keys this call read or wrote on the shard, whose values the cache may install. */
  readonly keys: readonly string[] | undefined;
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
 * shard offers them. `close()` closes every shard.
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
 */
export function shardedStore(
  shards: readonly Shard[],
  options: ShardedStoreOptions = {},
): ShardedStore {
  if (!Array.isArray(shards) || shards.length === 0) {
    throw new InvalidOptionError("shardedStore needs at least one shard");
  }
  if (typeof options !== "object" || options === null) {
    throw new InvalidOptionError("shardedStore options must be an object");
  }
  const replicas = options.replicas ?? DEFAULT_REPLICAS;
  if (!Number.isSafeInteger(replicas) || replicas < 1 || replicas > MAX_REPLICAS) {
    throw new InvalidOptionError(
      `shardedStore replicas must be an integer from 1 to ${MAX_REPLICAS}`,
    );
  }
  const stores: Store[] = [];
  const ids: string[] = [];
  const nodes: number[] = [];
  shards.forEach((shard, i) => {
    const described = isDescribed(shard);
    const store = described ? shard.store : shard;
    if (!isStore(store)) throw new InvalidOptionError("every shard must be a Store");
    const id = described ? shard.id : String(i);
    if (typeof id !== "string" || id.length === 0) {
      throw new InvalidOptionError("a shard id must be a non-empty string");
    }
    if (ids.includes(id)) throw new InvalidOptionError("shard ids must be unique");
    const weight = described ? (shard.weight ?? 1) : 1;
    if (typeof weight !== "number" || !Number.isFinite(weight) || weight <= 0) {
      throw new InvalidOptionError("a shard weight must be a finite number > 0");
    }
    stores.push(store);
    ids.push(id);
    nodes.push(Math.max(1, Math.round(replicas * weight)));
  });
  if (nodes.reduce((a, b) => a + b, 0) > MAX_POINTS) {
    throw new InvalidOptionError(`shardedStore rings are limited to ${MAX_POINTS} virtual nodes`);
  }
  const ring = buildRing(ids, nodes);
  const n = stores.length;
  const spaces = new Map<string, Space>();

  const shardOf = (key: string): number => owner(ring, hash32(key));

  const space = (ns: string): Space => {
    let s = spaces.get(ns);
    if (s === undefined) {
      s = { vec: new Array(n).fill(undefined), vhead: 0, items: [] };
      spaces.set(ns, s);
    }
    return s;
  };

  /** Groups positions `0..count-1` by the shard of `keyAt(position)`, in shard order. */
  const group = (count: number, keyAt: (i: number) => string): Map<number, number[]> => {
    const groups = new Map<number, number[]>();
    for (let i = 0; i < count; i++) {
      const s = shardOf(keyAt(i));
      const slots = groups.get(s);
      if (slots) slots.push(i);
      else groups.set(s, [i]);
    }
    return new Map([...groups].sort((a, b) => a[0] - b[0]));
  };

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

    async get(ns, keys, sync): Promise<StoreReadWithChanges> {
      if (keys.length === 0 && !sync) return { entries: [], corrupt: 0 };
      const jobs = new Map<number, Job<StoreReadWithChanges>>();
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

  if (stores.every((x) => x.acquireLease !== undefined && x.releaseLease !== undefined)) {
    store.acquireLease = (ns, key, token, ttl) =>
      stores[shardOf(key)]!.acquireLease!(ns, key, token, ttl);
    store.releaseLease = (ns, key, token) => stores[shardOf(key)]!.releaseLease!(ns, key, token);
  }
  return store;
}

// ---- the virtual log --------------------------------------------------------------------

/**
 * Merges the shards' answers into the namespace's virtual log and returns the head to report
 * for this call. Synchronous: merges never interleave.
 */
function merge(space: Space, answers: readonly ShardAnswer[]): number {
  // Keys whose values in this call's answers may predate changes below the returned head.
  const stale = new Map<string, number>();
  for (const { shard: i, asked, batch, keys } of answers) {
    const { head, records } = batch;
    const prev = space.vec[i];
    if (prev === undefined) {
      // First sight of the shard: nothing before it concerns anything the caches hold.
      space.vec[i] = head;
      continue;
    }
    if (head < prev) {
      if (asked >= 0 && head < asked) {
        // Below the cursor the shard was asked with: its counter went backwards (data lost).
        hole(space, i);
        space.vec[i] = head;
      } else if (keys !== undefined && keys.length > 0) {
        // An older answer than one merged before: its log adds nothing, its values may lag.
        lagging(space, i, head, prev, keys, stale);
      }
      continue;
    }
    if (head === prev) continue;
    // The run of records that ends exactly at the head, contiguous, all after `prev`.
    let start = records.length;
    let next = head + 1;
    while (start > 0) {
      const r = records[start - 1]!;
      if (r.last + 1 !== next || r.first > r.last || r.first <= prev) break;
      next = r.first;
      start--;
    }
    if (next !== prev + 1) hole(space, i);
    for (let k = start; k < records.length; k++) {
      const r = records[k]!;
      const first = space.vhead + 1;
      const last = space.vhead + (r.last - r.first + 1);
      space.vhead = last;
      space.items.push({
        shard: i,
        rawFirst: r.first,
        rawLast: r.last,
        vlast: last,
        record: { op: r.op, first, last, origin: r.origin, keys: r.keys },
      });
    }
    space.vec[i] = head;
  }
  const head = space.vhead;
  if (stale.size > 0) {
    // After the head this call reports: the cache must apply it after installing the values.
    const version = ++space.vhead;
    const keys: ChangedKey[] = [...stale].map(([key, v]) => ({ key, version: v }));
    space.items.push({
      shard: -1,
      rawFirst: 0,
      rawLast: 0,
      vlast: version,
      record: { op: "delete", first: version, last: version, origin: "", keys },
    });
  }
  if (space.items.length > BUFFER_RECORDS + BUFFER_SLACK) {
    space.items.splice(0, space.items.length - BUFFER_RECORDS);
  }
  return head;
}

/** Skips one virtual version: a cache whose cursor is before it sees a gap and flushes. */
function hole(space: Space, shard: number): void {
  const v = ++space.vhead;
  space.items.push({ shard, rawFirst: 0, rawLast: 0, vlast: v, record: undefined });
}

/**
 * For an answer of `shard` at `head`, older than the merged `prev`: adds to `out` each of
 * `keys` that a buffered record of the shard in `(head, prev]` changed, at the version of
 * its newest change, or every key at `prev` if that range is not wholly in the buffer.
 */
function lagging(
  space: Space,
  shard: number,
  head: number,
  prev: number,
  keys: readonly string[],
  out: Map<string, number>,
): void {
  const raise = (key: string, v: number) => {
    if (v > (out.get(key) ?? Number.NEGATIVE_INFINITY)) out.set(key, v);
  };
  const wanted = new Set(keys);
  const found = new Map<string, number>();
  let cleared = Number.NEGATIVE_INFINITY;
  let need = prev;
  for (let j = space.items.length - 1; j >= 0 && need > head; j--) {
    const item = space.items[j]!;
    if (item.shard !== shard) continue;
    if (item.record === undefined || item.rawLast !== need) break;
    if (item.record.op === "clear") cleared = Math.max(cleared, item.rawLast);
    else {
      for (const change of item.record.keys) {
        if (wanted.has(change.key) && change.version > (found.get(change.key) ?? 0)) {
          found.set(change.key, change.version);
        }
      }
    }
    need = item.rawFirst - 1;
  }
  for (const key of wanted) {
    if (need !== head) raise(key, prev);
    else {
      const v = Math.max(found.get(key) ?? Number.NEGATIVE_INFINITY, cleared);
      if (v > head) raise(key, v);
    }
  }
}

/** The records after `request.cursor` up to `head`, oldest first, at most `limit`. */
function batchFor(space: Space, request: SyncRequest, head: number): ChangeBatch {
  if (request.cursor < 0 || request.cursor >= head) return { head, records: [] };
  const items = space.items;
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid]!.vlast <= request.cursor) lo = mid + 1;
    else hi = mid;
  }
  const records: ChangeRecord[] = [];
  for (let j = lo; j < items.length && records.length < request.limit; j++) {
    const item = items[j]!;
    if (item.vlast > head) break;
    if (item.record !== undefined) records.push(item.record);
  }
  return { head, records };
}

// ---- the ring ---------------------------------------------------------------------------

interface Ring {
  /** Point positions, ascending. */
  readonly points: Uint32Array;
  /** The shard index of each point. */
  readonly owners: Uint32Array;
}

function buildRing(ids: readonly string[], nodes: readonly number[]): Ring {
  const hashes: number[] = [];
  const shards: number[] = [];
  ids.forEach((id, s) => {
    // `#` then digits: splitting at the last `#` recovers (id, r), so no two points share a name.
    for (let r = 0; r < nodes[s]!; r++) {
      hashes.push(hash32(`${id}#${r}`));
      shards.push(s);
    }
  });
  const order = hashes.map((_, i) => i);
  // Ties (rare) go to the smaller id, so a point's owner does not depend on list order.
  order.sort((a, b) => {
    const d = hashes[a]! - hashes[b]!;
    if (d !== 0) return d;
    const x = ids[shards[a]!]!;
    const y = ids[shards[b]!]!;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  return {
    points: Uint32Array.from(order, (i) => hashes[i]!),
    owners: Uint32Array.from(order, (i) => shards[i]!),
  };
}

/** The shard of the first point at or after `h`, wrapping around. */
function owner(ring: Ring, h: number): number {
  const { points } = ring;
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (points[mid]! < h) lo = mid + 1;
    else hi = mid;
  }
  return ring.owners[lo === points.length ? 0 : lo]!;
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * 32-bit FNV-1a over the UTF-8 bytes of `text` (lone surrogates as U+FFFD, like
 * TextEncoder), then the murmur3 finalizer so that near-identical keys land far apart.
 */
function hash32(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, FNV_PRIME);
      continue;
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >>> 6)), FNV_PRIME);
      h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i++;
        h = Math.imul(h ^ (0xf0 | (cp >>> 18)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >>> 12) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | ((cp >>> 6) & 0x3f)), FNV_PRIME);
        h = Math.imul(h ^ (0x80 | (cp & 0x3f)), FNV_PRIME);
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    h = Math.imul(h ^ (0xe0 | (c >>> 12)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | ((c >>> 6) & 0x3f)), FNV_PRIME);
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), FNV_PRIME);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

// ---- helpers ----------------------------------------------------------------------------

function isDescribed(shard: Shard): shard is { id: string; store: Store; weight?: number } {
  return typeof shard === "object" && shard !== null && "store" in shard && "id" in shard;
}

function isStore(value: unknown): value is Store {
  if (typeof value !== "object" || value === null) return false;
  const s = value as Record<string, unknown>;
  return (
    typeof s.name === "string" &&
    typeof s.get === "function" &&
    typeof s.sync === "function" &&
    typeof s.set === "function" &&
    typeof s.delete === "function" &&
    typeof s.clear === "function"
  );
}

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

function checkRequest(request: SyncRequest): void {
  if (
    !Number.isSafeInteger(request?.cursor) ||
    request.cursor < -1 ||
    !Number.isSafeInteger(request.limit) ||
    request.limit < 1
  ) {
    throw new InvalidOptionError("a sync request needs an integer cursor >= -1 and limit >= 1");
  }
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

function checkBatch(batch: ChangeBatch): void {
  if (
    typeof batch !== "object" ||
    batch === null ||
    !Number.isSafeInteger(batch.head) ||
    !Array.isArray(batch.records)
  ) {
    throw new StoreError("EC_STORE_ERROR", "a shard returned a malformed change log");
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
