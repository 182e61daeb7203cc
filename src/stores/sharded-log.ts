/**
 * The virtual log of a `shardedStore`: per namespace, the shards' change logs merged
 * into one contiguous version sequence, which is what a cache's single cursor needs.
 *
 * Every shard has its own counter and its own change log. So the store keeps, per namespace,
 * a virtual log: `vec[i]` is how far shard i's log has been merged, `vhead` the virtual head,
 * and a bounded buffer holds merged records renumbered into virtual versions. Every call that
 * syncs asks every shard for its log after `vec[i]` (the shards that hold the call's keys
 * answer the read or write and their log at once), and merges the answers synchronously, so
 * merges are atomic with respect to each other. Why the cache stays within its staleness bound:
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
 * @module
 */

import { InvalidOptionError, StoreError } from "../errors.js";
import type { ChangeBatch, ChangedKey, ChangeRecord, SyncRequest } from "../store.js";

// Merged records kept per namespace for caches that read the log after an older cursor; a
// cursor older than the oldest kept one is a gap (the cache drops its L1).
const BUFFER_RECORDS = 10_000;
const BUFFER_SLACK = 1_000;

/** One merged record of the buffer, or a hole. */
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

/** A namespace's virtual log. */
export interface Space {
  /** Raw head of each shard merged so far; `undefined` before the first answer. */
  readonly vec: Array<number | undefined>;
  vhead: number;
  /** Oldest first, by `vlast`. */
  readonly items: Item[];
}

/** An empty virtual log over `shards` shards, none of them merged yet. */
export function newSpace(shards: number): Space {
  return { vec: new Array(shards).fill(undefined), vhead: 0, items: [] };
}

/** What one shard answered a call that synced: its log, and the keys it read or wrote. */
export interface ShardAnswer {
  readonly shard: number;
  /** The cursor the shard was asked with. */
  readonly asked: number;
  readonly batch: ChangeBatch;
  /** The keys this call read or wrote on the shard, whose values the cache may install. */
  readonly keys: readonly string[] | undefined;
}

/**
 * Merges the shards' answers into the namespace's virtual log and returns the head to report
 * for this call. Synchronous: merges never interleave.
 */
export function merge(space: Space, answers: readonly ShardAnswer[]): number {
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
export function batchFor(space: Space, request: SyncRequest, head: number): ChangeBatch {
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

/** Throws unless `request` has an integer cursor >= -1 and limit >= 1. */
export function checkRequest(request: SyncRequest): void {
  if (
    !Number.isSafeInteger(request?.cursor) ||
    request.cursor < -1 ||
    !Number.isSafeInteger(request.limit) ||
    request.limit < 1
  ) {
    throw new InvalidOptionError("a sync request needs an integer cursor >= -1 and limit >= 1");
  }
}

/** Throws unless a shard's change log has the shape the merge relies on. */
export function checkBatch(batch: ChangeBatch): void {
  if (
    typeof batch !== "object" ||
    batch === null ||
    !Number.isSafeInteger(batch.head) ||
    !Array.isArray(batch.records)
  ) {
    throw new StoreError("EC_STORE_ERROR", "a shard returned a malformed change log");
  }
}
