/**
 * The virtual log of a `shardedStore`: per namespace, the shards' change logs merged
 * into one contiguous version sequence, which is what a cache's single cursor needs.
 *
 * Per namespace, `vec[i]` is how far shard i's log has been merged, `vhead` the virtual head,
 * and a bounded buffer holds merged records renumbered into virtual versions. Why a cache on
 * it stays within its staleness bound (no silent skips, an honest head, values never older
 * than the head vouches for, raw per-key versions) is argued in docs/internals.md.
 *
 * @module
 */

import { InvalidOptionError, StoreError } from "../errors.js";
import type { ChangeBatch, ChangedKey, ChangeRecord, SyncRequest } from "../store/contract.js";

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
