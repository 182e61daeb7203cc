import type { Decoded } from "./envelope.js";
import type { LocalCache, LocalEntry } from "./local.js";
import type { ChangedKey } from "./store/contract.js";

/**
 * The L1 tier with the guards that keep late answers out of it. An answer from L2 may be
 * installed only if its version is at least every change of that key this instance saw
 * complete while the answer was on its way (the floors, kept while operations overlap),
 * and only if L1 was not dropped whole since it was asked for (the epoch).
 */
export class GuardedL1 {
  readonly #local: LocalCache | undefined;
  readonly #ttl: number;
  readonly #slack: number;
  readonly #now: () => number;
  #inflight = 0;
  readonly #floors = new Map<string, number>();
  #epoch = 0;
  /** Keys loads are running for: how many, and when (on `#ticks`) a change was last seen. */
  readonly #watched = new Map<string, { loads: number; changedAt: number }>();
  #ticks = 0;
  #droppedAt = 0;

  /**
   * @param local the L1 itself, or undefined for none
   * @param ttl longest an entry may live in L1, in ms
   * @param slack how far the hit path's clock reading may lag the real clock, in ms
   */
  constructor(local: LocalCache | undefined, ttl: number, slack: number, now: () => number) {
    this.#local = local;
    this.#ttl = ttl;
    this.#slack = slack;
    this.#now = now;
  }

  /** Bumped whenever L1 is dropped whole. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The fresh entry of `key` at `t`, dropping an expired one. The hot path: kept flat. */
  lookup(key: string, t: number): LocalEntry | undefined {
    const local = this.#local;
    if (local === undefined) return undefined;
    const entry = local.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt > t + this.#slack) return entry;
    // A stale entry stays for getOrSet (stale-while-revalidate, grace) until it runs out.
    if (!((entry.staleUntil ?? 0) > t)) local.delete(key);
    return undefined;
  }

  /** Whether L1 holds a value kept while L2 refused it, still within its own TTL at `t`. */
  keptUnvouched(key: string, t: number): boolean {
    const until = this.#local?.get(key)?.unvouchedUntil;
    return until !== undefined && until > t;
  }

  /** The entry of `key` at `t`, fresh or still within its stale time. */
  lookupStale(key: string, t: number): LocalEntry | undefined {
    const entry = this.#local?.get(key);
    if (entry === undefined) return undefined;
    return entry.expiresAt > t + this.#slack || (entry.staleUntil ?? 0) > t ? entry : undefined;
  }

  /** When an entry fetched at `sentAt` with `ttl` ms left in L2 must leave L1. */
  expiry(sentAt: number, ttl: number): number {
    return sentAt + Math.min(ttl, this.#ttl);
  }

  /**
   * The L1 entry for a decoded payload read at `sentAt` with `ttl` ms left in L2: fresh for
   * `ttl - tail` (within L1's own TTL), kept as stale until L2 lets it go.
   */
  entry(decoded: Decoded, version: number, sentAt: number, ttl: number, size: number): LocalEntry {
    const expiresAt = this.expiry(sentAt, ttl - decoded.tail);
    if (decoded.negative !== undefined) {
      return { value: undefined, version, expiresAt, size, negative: decoded.negative };
    }
    const entry: {
      value: unknown;
      version: number;
      expiresAt: number;
      size: number;
      staleUntil?: number;
      tags?: readonly string[];
    } = { value: decoded.value, version, expiresAt, size };
    if (decoded.tail > 0) entry.staleUntil = sentAt + ttl;
    if (decoded.tags !== undefined) entry.tags = decoded.tags;
    return entry;
  }

  /** Puts an answer in L1 unless a newer change of the key was seen meanwhile. */
  install(key: string, entry: LocalEntry): void {
    const local = this.#local;
    if (local === undefined) return;
    if (!(Math.max(entry.expiresAt, entry.staleUntil ?? 0) > this.#now())) return;
    if (entry.version < (this.#floors.get(key) ?? 0)) return;
    const current = local.get(key);
    if (current !== undefined && current.version > entry.version) return;
    if (current?.holdUntil !== undefined && current.version === entry.version) {
      // The same version read again: the backoff after a failed load goes on.
      local.set(key, {
        ...entry,
        holdUntil: current.holdUntil,
        staleUntil: Math.max(entry.staleUntil ?? 0, current.staleUntil ?? 0),
      });
      return;
    }
    local.set(key, entry);
  }

  /**
   * A load of `key` starts: from now on, changes of the key are noted for it. Returns the
   * mark to ask {@link changedSince} with; call {@link unwatch} when the load ends.
   */
  watch(key: string): number {
    const watched = this.#watched.get(key);
    if (watched === undefined) this.#watched.set(key, { loads: 1, changedAt: 0 });
    else watched.loads++;
    return ++this.#ticks;
  }

  /** A load of `key` ended. */
  unwatch(key: string): void {
    const watched = this.#watched.get(key);
    if (watched !== undefined && --watched.loads === 0) this.#watched.delete(key);
  }

  /** Whether L1 was dropped, or a change of the watched `key` seen, since `mark`. */
  changedSince(key: string, mark: number): boolean {
    return this.#droppedAt > mark || (this.#watched.get(key)?.changedAt ?? 0) > mark;
  }

  /**
   * Puts a value L2 never vouched for in L1 (see `LocalEntry.unvouched`), for a load that took
   * `mark` when it started: not if a change of the key was seen, or L1 dropped, since then,
   * nor over a copy of a newer version; with `"same-version"`, only over a copy of the
   * entry's own version. Floors are not consulted: they guard against late
   * L2 answers, and the only ones left for the key (after the failed write of this very
   * value) stop such answers from replacing it afterwards.
   */
  installLocal(key: string, entry: LocalEntry, mark: number, replacing?: "same-version"): void {
    const local = this.#local;
    if (local === undefined || this.changedSince(key, mark)) return;
    if (!(Math.max(entry.expiresAt, entry.staleUntil ?? 0) > this.#now())) return;
    const current = local.get(key);
    if (replacing === "same-version") {
      // The same copy, held longer: only while it is still there (not deleted, dropped or
      // replaced, even before the load started). L2 vouched for it: not a local value.
      if (current?.version !== entry.version) return;
      local.set(key, entry);
      return;
    }
    if (current !== undefined && current.version > entry.version) return;
    local.set(key, { ...entry, unvouched: true });
  }

  /**
   * Applies one key of a change record. Only keys L1 holds at an older version change: a
   * propagated value (already decoded, `undefined` if it could not be) replaces the copy in
   * place, anything else drops it.
   */
  change(change: ChangedKey, decoded: Decoded | undefined, sentAt: number, size: number): void {
    this.raiseFloor(change.key, change.version);
    const local = this.#local;
    const current = local?.get(change.key);
    if (local === undefined || current === undefined || current.version >= change.version) return;
    if (decoded !== undefined && change.ttl !== undefined && change.ttl > 0) {
      local.set(change.key, this.entry(decoded, change.version, sentAt, change.ttl, size));
      return;
    }
    local.delete(change.key);
  }

  /** Whether `key` is in L1 at an older version than `version` (worth decoding a value for). */
  holdsOlder(key: string, version: number): boolean {
    const current = this.#local?.get(key);
    return current !== undefined && current.version < version;
  }

  delete(key: string): void {
    this.#local?.delete(key);
  }

  /** Drops L1 whole; answers asked for before this are not installed afterwards. */
  drop(): void {
    this.#local?.clear();
    this.#epoch++;
    this.#droppedAt = ++this.#ticks;
  }

  /** An operation that may install answers or change keys starts. */
  begin(): void {
    this.#inflight++;
  }

  /** It ended; once nothing is in flight the floors are no longer needed. */
  settle(): void {
    this.#inflight--;
    if (this.#inflight === 0) this.#floors.clear();
  }

  /**
   * Remember the newest completed change of a key while answers that started earlier may
   * still arrive (any operation in flight besides the current one). Every completed change
   * (a write or delete here, a change record from elsewhere) comes through here, so it is
   * also where loads watching the key learn of it.
   */
  raiseFloor(key: string, version: number): void {
    const watched = this.#watched.get(key);
    if (watched !== undefined) watched.changedAt = ++this.#ticks;
    if (this.#inflight > 1 && version > (this.#floors.get(key) ?? 0)) {
      this.#floors.set(key, version);
    }
  }

  /**
   * A failed write may or may not have reached L2: drop the keys from L1 and refuse any
   * answer for them until the operations in flight have settled.
   */
  forget(keys: readonly string[], quiet = false): void {
    for (const key of keys) {
      // It may have reached L2: a load of the key running meanwhile must not keep its value
      // over it (unless this is that load's own write: `quiet`).
      const watched = quiet ? undefined : this.#watched.get(key);
      if (watched !== undefined) watched.changedAt = ++this.#ticks;
      this.#local?.delete(key);
      if (this.#inflight > 1) this.#floors.set(key, Number.POSITIVE_INFINITY);
    }
  }

  get size(): number {
    return this.#local?.size ?? 0;
  }

  get bytes(): number {
    return this.#local?.bytes ?? 0;
  }

  get evictions(): number {
    return this.#local?.evictions ?? 0;
  }
}
