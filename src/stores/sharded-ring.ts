/**
 * Where a key lives in a `shardedStore`: the shard list checked and turned into a
 * consistent-hash ring with virtual nodes, and the hash that places keys on it.
 *
 * @module
 */

import { InvalidOptionError } from "../errors.js";
import type { Store } from "../store/contract.js";
import type { Shard, ShardedStoreOptions } from "./sharded.js";

const DEFAULT_REPLICAS = 2000;
// Bounds that keep a typo from allocating a huge ring.
const MAX_REPLICAS = 100_000;
const MAX_POINTS = 2_000_000;

/** The shards, checked, in list order, and the shard index that holds each key. */
export interface Placement {
  /** The shards' stores, in list order. */
  readonly stores: readonly Store[];
  /** Their ids on the ring: given, or the list index. */
  readonly ids: readonly string[];
  /** The index of the shard that holds `key`. */
  shardOf(key: string): number;
}

/**
 * Checks the shard list and `replicas`, and builds the ring every instance must agree on.
 * @throws InvalidOptionError for an empty list, a non-store, a duplicate or empty id, a
 *   weight that is not a finite number > 0, or a ring past its size bounds.
 */
export function placement(shards: readonly Shard[], options: ShardedStoreOptions): Placement {
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
  return { stores, ids, shardOf: (key) => owner(ring, hash32(key)) };
}

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

/** Positions `0..count-1` grouped by the shard of `keyAt(position)`, in shard order. */
export function groupByShard(
  shardOf: (key: string) => number,
  count: number,
  keyAt: (i: number) => string,
): Map<number, number[]> {
  const groups = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const s = shardOf(keyAt(i));
    const slots = groups.get(s);
    if (slots) slots.push(i);
    else groups.set(s, [i]);
  }
  return new Map([...groups].sort((a, b) => a[0] - b[0]));
}
