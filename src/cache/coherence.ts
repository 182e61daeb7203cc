import type { BreakerStats } from "../breaker.js";
import { type Decoded, MISS } from "../envelope.js";
import { StoreError } from "../errors.js";
import { HubClient, type PushEvents } from "../hub/client.js";
import type { ResolvedOptions } from "../options.js";
import type { ChangeBatch, ChangeRecord, WriteMeta } from "../store/contract.js";
import { PubSubClient } from "../sync/pubsub.js";
import type { SyncState, SyncVerdict } from "../sync/state.js";
import type { CacheStats } from "../types.js";
import { utf8Length } from "../util/bytes.js";
import { handOff } from "../util/runtime.js";
import type { Core } from "./core.js";
import { TAG_PREFIX } from "./tags.js";
import type { Op } from "./trace.js";

/** How much earlier than their TTL says values pushed by the hub leave L1, in ms. */
const HUB_TRANSIT_MARGIN = 1000;

interface PendingSync {
  promise: Promise<boolean>;
  sentAt: number;
  /** The cursor the request carried (-1: sent before this instance had one). */
  asked: number;
  /**
   * Started by refresh-ahead, awaited by no read. Reads do not join such a sync: in
   * Workers its I/O belongs to a request that may already have responded, and may be
   * cancelled with it.
   */
  background: boolean;
}

/**
 * Keeps L1 coherent with the other instances: syncs with the change log (on reads, ahead
 * of the window, riding along writes), applies change records, polled or pushed by the
 * hub, and tells the hub about this instance's writes.
 */
export class Coherence {
  readonly #core: Core;
  readonly #sync: SyncState | undefined;
  readonly hub: HubClient | undefined;
  readonly pubsub: PubSubClient | undefined;
  #pending: PendingSync | undefined;
  // A value was kept in L1 without L2 before the first sync (see `apply`).
  #keptUnanchored = false;
  // Changes from other instances applied, and L1 drops caused by their clears (the sync
  // state counts the drops it decides itself).
  changesApplied = 0;
  remoteFlushes = 0;
  /** Called for each key a change record names (read-through wakes its waiters). */
  changed: ((key: string) => void) | undefined;

  constructor(core: Core, o: ResolvedOptions) {
    this.#core = core;
    this.#sync = core.sync;
    const sync = o.sync;
    if (sync?.hub) {
      this.hub = new HubClient(
        sync.hub,
        o.namespace,
        this.#pushed(sync.hub.options.relaxedStaleness),
      );
    }
    if (sync?.pubsub?.subscribe) {
      this.pubsub = new PubSubClient(
        core.store,
        core.name,
        sync.pubsub,
        this.#pushed(sync.pubsub.relaxedStaleness),
      );
    }
  }

  /**
   * What a push transport (the hub, pub/sub) reports to: its records are applied as hints,
   * every (re)connect is vouched for by a sync sent after it, and the window relaxes to
   * `relaxedStaleness` only while the transport is healthy.
   */
  #pushed(relaxedStaleness: number | undefined): PushEvents {
    const core = this.#core;
    const state = core.sync!;
    const bound = state.settings.maxStaleness;
    const relaxed = Math.max(bound, relaxedStaleness ?? 0);
    return {
      records: (records, receivedAt) => this.#fromPush(records, receivedAt),
      // Only a sync sent after the stream opened covers what it may have missed.
      opened: () => this.#vouched(this.#start(false)),
      health: (healthy) => {
        state.window = healthy ? relaxed : bound;
      },
      error: (error) => core.absorb(error),
      now: core.now,
    };
  }

  /** The sync in flight, for `close()` to wait for. */
  get pending(): Promise<boolean> | undefined {
    return this.#pending?.promise;
  }

  /** A value was kept in L1 before the first sync: that sync drops L1. */
  keptUnanchored(): void {
    this.#keptUnanchored = true;
  }

  /** Resolves true once a sync that vouches for reads started at `t` has been applied. */
  syncFor(t: number, trace?: Op): Promise<boolean> {
    const pending = this.#pending;
    // An answer to a sync sent before `t` is good enough if it was sent within the window.
    if (
      pending &&
      !pending.background &&
      this.#sync!.covers(pending.sentAt, t, this.#core.hitSlack)
    ) {
      return this.#vouched(pending);
    }
    if (trace !== undefined) trace.requests++;
    return this.#vouched(this.#start(false));
  }

  /** Starts a background sync before the window runs out, when asked to. */
  refreshAhead(t: number): void {
    const sync = this.#sync;
    if (sync === undefined || this.#pending || !sync.due(t, this.#core.hitSlack)) return;
    const { promise } = this.#start(true); // never rejects: failures are absorbed
    this.#core.keepAlive(promise);
  }

  /**
   * A sync's verdict, made good where it can be: a sync sent before this instance had a
   * cursor cannot vouch for anything once another answer has set one (its answer carries no
   * records), so a read that joined it would have to miss. Such a sync is followed by one
   * sent now, which can.
   */
  async #vouched(pending: PendingSync): Promise<boolean> {
    if (await pending.promise) return true;
    if (pending.asked >= 0 || this.#sync!.cursor < 0 || this.#core.closed) return false;
    return this.#start(false).promise;
  }

  #start(background: boolean): PendingSync {
    const core = this.#core;
    const sentAt = core.now();
    const request = this.#sync!.request();
    core.l1.begin();
    const pending = { sentAt, background, asked: request.cursor } as PendingSync;
    let settled = false;
    const run = async (): Promise<boolean> => {
      try {
        // Awaited before anything else, so a store that throws synchronously still ends
        // up in the catch below after `pending` is complete.
        await undefined;
        const batch = await core.store.sync(core.name, request);
        return this.#apply(batch, request.cursor, sentAt).kind !== "unverified";
      } catch (err) {
        core.absorb(core.failed(err, "sync", []));
        return false;
      } finally {
        settled = true;
        core.l1.settle();
        if (this.#pending === pending) this.#pending = undefined;
      }
    };
    pending.promise = run();
    // A foreground sync replaces a background one as the sync to join.
    if (!settled && (!background || this.#pending === undefined)) this.#pending = pending;
    return pending;
  }

  /** Applies a change batch to L1, per the verdict of the sync state. */
  #apply(batch: ChangeBatch, asked: number, sentAt: number): SyncVerdict {
    const sync = this.#sync!;
    const first = sync.cursor < 0;
    const verdict = sync.accept(batch, asked, sentAt);
    if (first && this.#keptUnanchored && sync.cursor >= 0) {
      // Values kept before the first sync cannot be checked against the log: drop them.
      this.#keptUnanchored = false;
      this.#core.dropAll();
    }
    if (verdict.kind === "flush") this.#core.dropAll();
    else if (verdict.kind === "apply") {
      for (const record of verdict.records) this.#applyRecord(record, sentAt);
    }
    if (this.#core.events !== undefined && verdict.kind !== "unverified") {
      const records = verdict.kind === "apply" ? verdict.records : [];
      this.#core.events.emit("sync", {
        applied: records.length,
        flushed: verdict.kind === "flush" || records.some((r) => r.op === "clear"),
      });
    }
    return verdict;
  }

  #applyRecord(record: ChangeRecord, sentAt: number): void {
    const core = this.#core;
    // Own records are applied too: the version guards make them no-ops when this instance
    // already applied the change, and they matter when it did not (a write that timed out
    // here but landed in Redis later). Only others' changes are counted.
    const foreign = record.origin !== core.origin;
    if (foreign) this.changesApplied += record.op === "clear" ? 1 : record.keys.length;
    if (record.op === "clear") {
      if (foreign) this.remoteFlushes++;
      core.dropAll();
      return;
    }
    for (const change of record.keys) {
      if (change.key.startsWith(TAG_PREFIX)) {
        core.tags.note(change.key.slice(TAG_PREFIX.length), change.version);
        continue;
      }
      // Decoding is only worth it for a key this instance holds at an older version.
      let decoded: Decoded | undefined;
      if (change.value !== undefined && core.l1.holdsOlder(change.key, change.version)) {
        const d = core.codec.decode(change.value);
        if (d === MISS) core.corrupt(1, change.key);
        else decoded = d;
      }
      const size = change.value === undefined ? 0 : utf8Length(change.value) + change.key.length;
      core.l1.change(change, decoded, sentAt, size);
      this.changed?.(change.key);
    }
  }

  /**
   * Records pushed by the hub or pub/sub: hints applied at once (version-guarded, own records
   * skipped), without moving the cursor, which only the change log moves. Pushed values
   * expire from L1 a second early, to absorb the time they spent in transit.
   */
  #fromPush(records: ChangeRecord[], receivedAt: number): void {
    if (this.#core.closed) return;
    // Counted as an operation, so that answers already in flight get floors for these keys.
    this.#core.l1.begin();
    try {
      for (const record of records) this.#applyRecord(record, receivedAt - HUB_TRANSIT_MARGIN);
    } finally {
      this.#core.l1.settle();
    }
    this.#core.emit("sync", {
      applied: records.length,
      flushed: records.some((r) => r.op === "clear"),
    });
  }

  /** Tells the hub about a write that succeeded; awaited unless `waitUntil` takes it. */
  async publish(records: ChangeRecord[]): Promise<void> {
    const hub = this.hub;
    if (hub === undefined) return;
    const work = hub.publish(records); // never rejects
    // Outside a request context (or without waitUntil) it is waited for here.
    if (!handOff(work, this.#sync?.settings.waitUntil)) await work;
  }

  /** The metadata of a write: who writes, and the sync riding along. */
  meta(): WriteMeta {
    const core = this.#core;
    core.origin ??= crypto.randomUUID();
    const sync = this.#sync;
    return sync
      ? {
          origin: core.origin,
          logLength: sync.settings.logLength,
          sync: sync.request(),
          ...(sync.settings.pubsub ? { publish: true } : {}),
        }
      : { origin: core.origin, logLength: 0 };
  }

  /** A write's answer carries the change log up to and including the write itself. */
  written(
    changes: ChangeBatch | undefined,
    meta: WriteMeta,
    sentAt: number,
    epoch: number,
  ): boolean {
    if (meta.sync !== undefined && changes === undefined) {
      throw new StoreError("EC_STORE_ERROR", "the store ignored the sync request of a write");
    }
    return this.answered(changes, meta.sync?.cursor, sentAt, epoch).installable;
  }

  /**
   * Takes an L2 answer asked for at `epoch`: applies the change log it carried (if a sync
   * rode along from cursor `asked`) and says whether its own values may enter L1. They may
   * not if L1 was dropped by anything else since `epoch` (a drop this very log causes does
   * not count: the values come from the same snapshot), nor if the cursor has moved past
   * the answer's snapshot: changes in between were applied while those keys were not in
   * L1, so they would never be applied to them again.
   */
  answered(
    changes: ChangeBatch | undefined,
    asked: number | undefined,
    sentAt: number,
    epoch: number,
  ): { synced: boolean; installable: boolean } {
    const undisturbed = this.#core.l1.epoch === epoch;
    if (changes === undefined || asked === undefined) {
      return { synced: false, installable: undisturbed };
    }
    const synced = this.#apply(changes, asked, sentAt).kind !== "unverified";
    return { synced, installable: undisturbed && changes.head >= this.#sync!.cursor };
  }

  /** The cache's `stats()`: the shared counters, L1's occupancy, and the sync's and pushes' state. */
  report(breaker: BreakerStats | undefined): CacheStats {
    const core = this.#core;
    const sync = core.sync?.stats;
    const hub = this.hub;
    return {
      ...core.stats,
      l1Items: core.l1.size,
      l1Bytes: core.l1.bytes,
      l1Evictions: core.l1.evictions,
      syncs: sync?.syncs ?? 0,
      changesApplied: this.changesApplied,
      flushes: (sync?.flushes ?? 0) + this.remoteFlushes,
      syncLag: sync?.syncLag ?? 0,
      cursor: core.sync?.cursor ?? -1,
      hub: hub && { healthy: hub.healthy, ...hub.stats },
      pubsub: this.pubsub && { ...this.pubsub.stats },
      breaker,
    };
  }
}
