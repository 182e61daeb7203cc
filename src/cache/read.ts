import { MISS } from "../envelope.js";
import { StoreError } from "../errors.js";
import type { LocalEntry } from "../local.js";
import type { ChangeBatch, StoreEntry } from "../store/contract.js";
import type { InspectResult } from "../types.js";
import { utf8Length } from "../util/bytes.js";
import type { Coherence } from "./coherence.js";
import type { Core } from "./core.js";
import { type Op, reached } from "./trace.js";

/** What a read of L2 answers: entries by key, and whether L2 could be read and vouch. */
export interface Read {
  entries: Array<LocalEntry | undefined>;
  failed: boolean;
}

/**
 * The read path past an L1 hit, in the order it happens: split the keys into those L1
 * holds and those it misses, read the misses from L2 with a sync riding along (or sync
 * alone), decode, check tags, install in L1.
 */
export class Reader {
  readonly #core: Core;
  readonly #coherence: Coherence;

  constructor(core: Core, coherence: Coherence) {
    this.#core = core;
    this.#coherence = coherence;
  }

  /** L1's fresh entry of `key`, if its tags still hold. */
  lookup(key: string, t: number): LocalEntry | undefined {
    const entry = this.#core.l1.lookup(key, t);
    if (entry === undefined || entry.tags === undefined || this.#core.tags.hold(key, entry)) {
      return entry;
    }
    return undefined;
  }

  /** L1's entry of `key`, fresh or stale, if its tags still hold. */
  lookupStale(key: string, t: number): LocalEntry | undefined {
    const entry = this.#core.l1.lookupStale(key, t);
    return entry?.tags !== undefined && !this.#core.tags.hold(key, entry) ? undefined : entry;
  }

  /**
   * One pass over `keys` for what L1 holds fresh at `t`, each hit answered with `answer`;
   * and the distinct keys L1 could not answer, each with the slots waiting for it.
   */
  hits(
    keys: readonly string[],
    t: number,
    answer: (entry: LocalEntry, key: string) => unknown,
  ): { out: unknown[]; slow: Map<string, number[]> } {
    const core = this.#core;
    const fresh = core.inWindow(t);
    const out: unknown[] = new Array(keys.length);
    const slow = new Map<string, number[]>();
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i]!;
      const entry = fresh ? this.lookup(key, t) : undefined;
      if (entry !== undefined) {
        core.stats.l1Hits++;
        if (core.events !== undefined) core.events.emit("hit", { key, tier: "l1" });
        out[i] = answer(entry, key);
        continue;
      }
      const slots = slow.get(key);
      if (slots) slots.push(i);
      else slow.set(key, [i]);
    }
    return { out, slow };
  }

  /**
   * Reads distinct keys that L1 could not answer on its own at `t`: misses, and entries
   * whose sync window ran out. At most two requests: the misses with a sync riding along
   * (or a sync alone), then a read of the entries that sync invalidated. Answers the fresh
   * entries, and with `stale` the stale ones too (for getOrSet); `failed` when L2 could not
   * be read or could not vouch for L1.
   */
  async slow(keys: string[], t: number, stale: boolean, trace?: Op): Promise<Read> {
    const core = this.#core;
    const out: Array<LocalEntry | undefined> = new Array(keys.length);
    const held: number[] = [];
    const missing: number[] = [];
    keys.forEach((key, i) => {
      // A value kept while L2 refused it, past its bound but within its TTL, is held too:
      // a sync that gets through decides whether to read it again.
      const kept = this.lookup(key, t) !== undefined || core.l1.keptUnvouched(key, t);
      (kept ? held : missing).push(i);
    });
    let synced = core.inWindow(t);
    let failed = false;
    if (missing.length > 0) {
      const read = await this.fromL2(
        missing.map((i) => keys[i]!),
        stale,
        trace,
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
    if (!synced && !failed) synced = await this.#coherence.syncFor(t, trace);
    if (!synced) failed = true;
    const again: number[] = [];
    const now = core.now();
    for (const i of held) {
      const entry = synced ? this.lookup(keys[i]!, now) : undefined;
      if (entry !== undefined) {
        core.stats.l1Hits++;
        core.emit("hit", { key: keys[i]!, tier: "l1" });
        if (trace !== undefined) trace.hits++;
        out[i] = entry;
      } else if (synced) {
        again.push(i);
      } else {
        // No sync could vouch for the L1 copy within the bound: a miss, not a stale value.
        core.stats.l1Misses++;
        core.stats.l2Misses++;
        if (trace !== undefined) trace.misses++;
        core.emit("miss", { key: keys[i]! });
      }
    }
    if (again.length > 0) {
      const read = await this.fromL2(
        again.map((i) => keys[i]!),
        stale,
        trace,
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
  async fromL2(keys: string[], stale: boolean, trace?: Op): Promise<Read & { synced: boolean }> {
    const core = this.#core;
    const { l1, stats } = core;
    if (trace !== undefined) {
      trace.requests++;
      reached(trace, "l2");
    }
    stats.l1Misses += keys.length;
    const sentAt = core.now();
    const request = core.sync?.request();
    const epoch = l1.epoch;
    l1.begin();
    try {
      let stored: ReadonlyArray<StoreEntry | undefined>;
      let changes: ChangeBatch | undefined;
      try {
        const result = await core.store.get(core.name, keys, request);
        stored = result.entries;
        changes = result.changes;
        if (!Array.isArray(stored) || stored.length !== keys.length) {
          throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
        }
        if (request !== undefined && changes === undefined) {
          throw new StoreError("EC_STORE_ERROR", "store.get ignored the sync request");
        }
        if (result.corrupt > 0) core.corrupt(result.corrupt, undefined);
      } catch (err) {
        stats.l2Misses += keys.length;
        if (trace !== undefined) trace.misses += keys.length;
        for (const key of keys) core.emit("miss", { key });
        core.absorb(core.failed(err, "get", keys));
        return { entries: keys.map(() => undefined), synced: false, failed: true };
      }
      const { synced, installable } = this.#coherence.answered(
        changes,
        request?.cursor,
        sentAt,
        epoch,
      );
      const decoded = keys.map((key, i) => {
        const found = stored[i];
        if (found === undefined) return undefined;
        const d = core.codec.decode(found.value);
        if (d === MISS) core.corrupt(1, key);
        return d === MISS ? undefined : d;
      });
      // Tagged entries hold only if no tag was invalidated after them: learn the tags this
      // instance does not know yet (all of them without coherence, which keeps none current).
      const unknown = new Set<string>();
      for (const d of core.orderedVersions ? decoded : []) {
        for (const tag of d?.tags ?? []) {
          if (core.sync === undefined || !core.tags.knows(tag)) unknown.add(tag);
        }
      }
      // A tag whose marker could not be read stays unknown: its entries count as misses.
      if (unknown.size > 0) await core.tags.read([...unknown], trace);
      const entries = keys.map((key, i) => {
        const found = stored[i];
        const d = decoded[i];
        if (
          found === undefined ||
          d === undefined ||
          (d.tags !== undefined && !core.tags.valid(d.tags, found.version))
        ) {
          stats.l2Misses++;
          if (trace !== undefined) trace.misses++;
          core.emit("miss", { key });
          return undefined;
        }
        const size = utf8Length(found.value) + key.length;
        const entry = l1.entry(d, found.version, sentAt, found.ttl, size);
        if (installable) l1.install(key, entry);
        if (entry.expiresAt > sentAt) {
          stats.l2Hits++;
          if (trace !== undefined) trace.hits++;
          core.emit("hit", { key, tier: "l2" });
          return entry;
        }
        stats.l2Misses++;
        if (trace !== undefined) trace.misses++;
        core.emit("miss", { key });
        return stale ? entry : undefined;
      });
      return { entries, synced, failed: false };
    } finally {
      l1.settle();
    }
  }

  /** What the cache holds for `key` (L1 first, stale included; else one L2 read), for diagnostics. */
  async inspect(key: string, trace?: Op): Promise<InspectResult | undefined> {
    const core = this.#core;
    const t = core.now();
    let tier: "l1" | "l2" = "l1";
    let entry = this.lookupStale(key, t);
    if (entry === undefined) {
      tier = "l2";
      entry = (await this.fromL2([key], true, trace)).entries[0];
    }
    if (entry === undefined) return undefined;
    return {
      key,
      tier,
      value: entry.value === undefined ? undefined : core.out(entry.value),
      version: entry.version,
      ttl: entry.expiresAt - t,
      expiresIn: Math.max(entry.expiresAt, entry.staleUntil ?? 0) - t,
      stale: !(entry.expiresAt > t),
      tags: entry.tags ?? [],
      negative: entry.negative,
    };
  }
}

/**
 * Puts the value of each distinct key into every slot waiting for it; each slot after the
 * first gets its own copy when copies are on (duplicates must not share one).
 */
export function spread(
  out: unknown[],
  slots: Map<string, number[]>,
  values: unknown[],
  core: Core,
): void {
  let j = 0;
  for (const waiting of slots.values()) {
    const v = values[j++];
    waiting.forEach((i, n) => {
      out[i] = n === 0 || v === undefined ? v : core.out(v);
    });
  }
}
