/**
 * The L2 contract. A store keeps opaque strings per namespace, stamps every write with a
 * version from a per-namespace counter, and answers each call in one round trip. It never
 * serializes values: the cache hands it strings and gets strings back.
 *
 * Invariants every store must keep (`storeSuite` from `edgecache/store` checks them):
 * - Namespaces are disjoint: no call on one namespace reads or changes another's entries.
 * - Versions come from one counter per namespace and strictly increase across `set`,
 *   `delete` and `clear`; `set` of n entries consumes n versions, in the order given.
 * - `clear` makes every entry written before it unreadable at once, in O(1) work on the
 *   request path (no key scans); storage is reclaimed by expiry or in the background.
 * - `get` reports the remaining lifetime of each entry so the cache can keep L1 from
 *   outliving L2.
 * - Data under the store's prefix that it did not write is reported as corrupt, never
 *   returned as an entry.
 * - A failed call rejects; a call that resolved really happened. A write that rejected is
 *   settled: it took effect before the rejection or never will (a request still on its way
 *   must not land later). A store that cannot promise this must say so in its docs.
 * - A write either happens whole or not at all: a refused or failed call leaves L2 as it
 *   was (a sharded store: per shard).
 * - Every `set`, `delete` and `clear` appends one record to the namespace's change log in
 *   the same atomic step, covering exactly the versions it consumed, so that the log read
 *   after a cursor is contiguous unless it was trimmed. The log is bounded.
 *
 * @module
 */

import { InvalidOptionError } from "../errors.js";

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
  /** The change log after `sync.cursor`: present exactly when the read carried a sync. */
  readonly changes?: ChangeBatch;
}

/** One entry to write. */
export interface StoreWrite {
  /** The cache key (without any prefix; the store adds its own). */
  readonly key: string;
  /** The encoded value. */
  readonly value: string;
  /** Time to live in whole milliseconds, at least 1. */
  readonly ttl: number;
  /**
   * Whether the change-log record carries the value itself, so other instances can update
   * their L1 without reading L2; otherwise it only invalidates.
   */
  readonly propagate: boolean;
}

/** Who writes, whether the write is recorded in the change log, and what to sync. */
export interface WriteMeta {
  /** The writing instance's id, recorded so it can skip its own changes. */
  readonly origin: string;
  /**
   * Most records the namespace's change log keeps (trimmed approximately); `0` records
   * nothing (a namespace used without coherence).
   */
  readonly logLength: number;
  /** Also return the change log after this cursor, read after the write. */
  readonly sync?: SyncRequest;
  /**
   * Also push each change record to the namespace's subscribers (see `subscribe`), in the
   * same atomic step as the write. Set only for stores that offer `subscribe`.
   */
  readonly publish?: boolean;
}

/** The answer to a write: its version(s), and the change log when `meta.sync` asked. */
export interface StoreWriteResult<V> {
  /** One version per entry for `set`; the operation's version for `delete` and `clear`. */
  readonly version: V;
  /** The change log after `meta.sync.cursor`: present exactly when the write carried a sync. */
  readonly changes?: ChangeBatch;
  /**
   * How many pieces of data under the namespace the call found in a state it never writes
   * and repaired (the cache reports them as `EC_CORRUPT_ENTRY`).
   */
  readonly corrupt?: number;
}

/** Ask for the change log after `cursor`, piggybacked on a read or alone. */
export interface SyncRequest {
  /** The last version this instance has applied; `-1` when it has applied none yet. */
  readonly cursor: number;
  /** Most records returned. */
  readonly limit: number;
}

/** One key of a change record. */
export interface ChangedKey {
  readonly key: string;
  /** The version of this key's change. */
  readonly version: number;
  /** The new encoded value, when the write propagated it. */
  readonly value?: string;
  /** With `value`: ms the L2 entry had left when the log was read. */
  readonly ttl?: number;
}

/** One change-log record: one write, delete or clear, covering versions `first..last`. */
export interface ChangeRecord {
  /** The operation that made the change. */
  readonly op: "set" | "delete" | "clear";
  /** First version the operation consumed. */
  readonly first: number;
  /** Last version the operation consumed (the record's id). */
  readonly last: number;
  /** The instance that made the change. */
  readonly origin: string;
  /** The keys changed (empty for `clear`). */
  readonly keys: readonly ChangedKey[];
}

/** The change log after a cursor, read atomically with the namespace's version counter. */
export interface ChangeBatch {
  /** The namespace's version counter: every change up to it happened. */
  readonly head: number;
  /** Records with `last > cursor`, oldest first, at most `limit`. */
  readonly records: readonly ChangeRecord[];
}

/**
 * A shared L2 backend. Implement this to put edgecache in front of something other than
 * Redis; run `storeSuite` from `edgecache/store` against it to check the invariants above.
 */
export interface Store {
  /** Short name for stats and error messages, e.g. `"memory"` or `"upstash"`. */
  readonly name: string;
  /**
   * Whether the versions of different keys of a namespace come from one counter, so that
   * they order writes across keys. Tags rely on it (an entry holds while no marker of its
   * tags has a newer version); a store that spreads keys over several counters (a sharded
   * one) says `false`, and the cache then refuses tags. A wrapper around a store must pass
   * it on.
   * @default true
   */
  readonly orderedVersions?: boolean;
  /**
   * The longest a call waits for L2 before it rejects, in ms, when the store bounds it.
   * `getOrSet` waits for the write of a loaded value only for what is left of it after the
   * read, so that an answer never waits on more than one such timeout.
   */
  readonly timeout?: number;
  /**
   * Reads entries; one slot per key, in order. Keys may repeat. With `sync`, also returns
   * the change log after `sync.cursor`, from the same atomic snapshot as the entries.
   */
  get(namespace: string, keys: readonly string[], sync?: SyncRequest): Promise<StoreReadResult>;
  /** The change log after `sync.cursor`, alone. */
  sync(namespace: string, sync: SyncRequest): Promise<ChangeBatch>;
  /**
   * Writes entries with their versions and their change-log record, atomically; resolves to
   * one version per entry.
   */
  set(
    namespace: string,
    entries: readonly StoreWrite[],
    meta: WriteMeta,
  ): Promise<StoreWriteResult<number[]>>;
  /** Deletes keys and records it; resolves to the version stamped on the deletion. */
  delete(
    namespace: string,
    keys: readonly string[],
    meta: WriteMeta,
  ): Promise<StoreWriteResult<number>>;
  /** Makes every current entry unreadable and records it; resolves to the clear's version. */
  clear(namespace: string, meta: WriteMeta): Promise<StoreWriteResult<number>>;
  /**
   * Takes a short lease on `key` for `token` unless someone holds one (Redis `SET NX PX`):
   * resolves true if this call took it. The lease ends after `ttl` ms even if its holder
   * dies. Used by `getOrSet({ lock: true })` so that one instance loads a key while the
   * others wait. Optional: without it, loads are coalesced per instance only. Resolves
   * `"repaired"` when it took the lease after replacing something under the lease's key
   * that no holder could ever have released (no expiry, another type).
   */
  acquireLease?(
    namespace: string,
    key: string,
    token: string,
    ttl: number,
  ): Promise<boolean | "repaired">;
  /** Ends the lease on `key` if `token` still holds it; a no-op otherwise. */
  releaseLease?(namespace: string, key: string, token: string): Promise<void>;
  /**
   * Optional, beside `acquireLease`: takes the leases of several keys at once (one request),
   * each as `acquireLease` would, resolving to one answer per key in order. Without it,
   * `getOrSetMany({ lock: true })` asks for each key's lease on its own.
   */
  acquireLeases?(
    namespace: string,
    keys: readonly string[],
    token: string,
    ttl: number,
  ): Promise<Array<boolean | "repaired">>;
  /** Optional, beside `releaseLease`: ends the leases of several keys `token` still holds. */
  releaseLeases?(namespace: string, keys: readonly string[], token: string): Promise<void>;
  /**
   * Optional: a stream of the namespace's change records, as writes with `meta.publish`
   * make them (`sync.pubsub`). What it delivers is a hint: the change log stays the source
   * of truth, and the cache catches up from it each time `open` is called. The stream must
   * end (`end`) when it can no longer vouch that it delivers every record, including when
   * it falls silent.
   */
  subscribe?(
    namespace: string,
    handlers: {
      /** The subscription is in place: every record published from now on is delivered. */
      open(): void;
      /** Records as they were published, in order per shard. */
      records(records: ChangeRecord[]): void;
      /** The stream ended or failed; called at most once, and never after `close`. */
      end(error?: unknown): void;
    },
  ): { close(): void };
  /**
   * Lists the keys of the namespace's live entries that start with `prefix`, a page at a
   * time, for diagnostics (the admin API's key listing); never on a cache's request path.
   * Start with `cursor: ""`; each answer carries the cursor of the next page, `""` once the
   * listing is done. `limit` bounds the work of one call: a page holds about `limit` keys
   * (a store that scans, as Redis does, may return a few more), and may hold fewer, even
   * none, before the end. Every key whose entry is live from the first call to the last is
   * listed at least once (a key may appear twice); entries written or removed meanwhile may
   * or may not be. Deleted, expired and cleared entries, other namespaces' entries and the
   * store's own data (the change log, leases) are never listed. The keys the cache keeps for
   * itself (starting with U+0000: tag markers) are listed like any other; the cache drops
   * them. Optional: without it the admin API cannot list keys.
   * @throws InvalidOptionError for a cursor this store did not hand out.
   */
  keys?(
    namespace: string,
    page: { readonly prefix: string; readonly cursor: string; readonly limit: number },
  ): Promise<{ readonly keys: readonly string[]; readonly cursor: string }>;
  /** Releases connections or timers. Optional. */
  close?(): Promise<void>;
}

/**
 * The longest TTL an entry can have in L2, in ms (2^52, about 142,000 years): Redis' clock
 * plus a TTL must stay an exact integer both in Lua (doubles) and in JavaScript. The cache
 * refuses longer ones before any I/O.
 */
export const MAX_TTL = 2 ** 52;

/**
 * Namespaces are spelled into store keys between braces, so they may not contain braces or
 * whitespace; this keeps two namespaces from ever producing the same key.
 */
export const NAMESPACE_PATTERN = /^[A-Za-z0-9_.:/-]{1,128}$/;

/**
 * Checks the page a `keys` call asks for: a string prefix and cursor, and a whole `limit` of
 * at least 1; throws `InvalidOptionError` (`EC_INVALID_OPTION`) otherwise.
 */
export function checkKeysPage(page: { prefix: unknown; cursor: unknown; limit: unknown }): void {
  if (typeof page?.prefix !== "string" || typeof page.cursor !== "string") {
    throw new InvalidOptionError("keys: prefix and cursor must be strings");
  }
  if (!Number.isSafeInteger(page.limit) || (page.limit as number) < 1) {
    throw new InvalidOptionError("keys: limit must be a whole number, at least 1");
  }
}

/**
 * Checks a lease TTL for `acquireLease`: whole ms, at least 1; throws `InvalidOptionError`
 * (`EC_INVALID_OPTION`) otherwise, as the contract wants.
 */
export function leaseTtl(ttl: number): number {
  if (!Number.isSafeInteger(ttl) || ttl < 1) {
    throw new InvalidOptionError("a lease ttl must be a whole number of ms, at least 1");
  }
  return ttl;
}
