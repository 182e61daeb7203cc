/**
 * The L2 contract. A store keeps opaque strings per namespace, stamps every write with a
 * version from a per-namespace counter, and answers each call in one round trip. It never
 * serializes values: the cache hands it strings and gets strings back.
 *
 * Invariants every store must keep (the shared suite in `test/store-suite.ts` checks them):
 * - Namespaces are disjoint: no call on one namespace reads or changes another's entries.
 * - Versions come from one counter per namespace and strictly increase across `set`,
 *   `delete` and `clear`; `set` of n entries consumes n versions, in the order given.
 * - `clear` makes every entry written before it unreadable at once, in O(1) work on the
 *   request path (no key scans); storage is reclaimed by expiry or in the background.
 * - `get` reports the remaining lifetime of each entry so the cache can keep L1 from
 *   outliving L2.
 * - Data under the store's prefix that it did not write is reported as corrupt, never
 *   returned as an entry.
 * - A failed call rejects; a call that resolved really happened.
 *
 * @module
 */

/** One entry as read from a store. */
export interface StoreEntry {
  /** The string the cache wrote. */
  readonly value: string;
  /** The version the write was stamped with. */
  readonly version: number;
  /** Milliseconds left before the entry expires in the store, measured when it was read. */
  readonly ttl: number;
}

/** The answer to {@link Store.get}: entries aligned with the keys asked for. */
export interface StoreReadResult {
  /** One slot per requested key; `undefined` for a miss. */
  readonly entries: ReadonlyArray<StoreEntry | undefined>;
  /** How many of the misses were undecodable data under the store's prefix. */
  readonly corrupt: number;
}

/** One entry to write. */
export interface StoreWrite {
  /** The cache key (without any prefix; the store adds its own). */
  readonly key: string;
  /** The encoded value. */
  readonly value: string;
  /** Time to live in whole milliseconds, at least 1. */
  readonly ttl: number;
}

/**
 * A shared L2 backend. Implement this to put edgecache in front of something other than
 * Redis; run `test/store-suite.ts` against it to check the invariants above.
 */
export interface Store {
  /** Short name for stats and error messages, e.g. `"memory"` or `"upstash"`. */
  readonly name: string;
  /** Reads entries; one slot per key, in order. Keys may repeat. */
  get(namespace: string, keys: readonly string[]): Promise<StoreReadResult>;
  /** Writes entries atomically with their versions; resolves to one version per entry. */
  set(namespace: string, entries: readonly StoreWrite[]): Promise<number[]>;
  /** Deletes keys; resolves to the version stamped on the deletion. */
  delete(namespace: string, keys: readonly string[]): Promise<number>;
  /** Makes every current entry of the namespace unreadable; resolves to the clear's version. */
  clear(namespace: string): Promise<number>;
  /** Releases connections or timers. Optional. */
  close?(): Promise<void>;
}

/**
 * Namespaces are spelled into store keys between braces, so they may not contain braces or
 * whitespace; this keeps two namespaces from ever producing the same key.
 */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9_.:/-]{1,128}$/;
