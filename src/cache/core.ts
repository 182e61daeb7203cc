import { coarseClock } from "../clock.js";
import { Envelope } from "../envelope.js";
import { CorruptEntryError, EdgeCacheError, StoreError } from "../errors.js";
import { GuardedL1 } from "../l1.js";
import type { Logger } from "../logger.js";
import type { ResolvedOptions } from "../options.js";
import type { Store } from "../store/contract.js";
import { SyncState } from "../sync/state.js";
import type { CacheStats } from "../types.js";
import { handOff, type WaitUntil } from "../util/runtime.js";
import { type CacheEventMap, Emitter } from "./events.js";
import { Tags } from "./tags.js";
import type { Tracing } from "./trace.js";

/** The counters behind `stats()`, bumped by every part. */
export type Counters = Pick<
  CacheStats,
  | "l1Hits"
  | "l1Misses"
  | "l2Hits"
  | "l2Misses"
  | "sets"
  | "deletes"
  | "clears"
  | "errors"
  | "corrupt"
  | "loads"
  | "loadErrors"
  | "coalesced"
  | "lockWaits"
  | "staleHits"
  | "graceHits"
>;

/**
 * What every part of one cache shares: its L1, L2, codec, sync state, clocks, counters and
 * error reporting. The parts (reads, writes, coherence, read-through) each own the rest of
 * their state.
 */
export class Core {
  readonly name: string;
  readonly store: Store;
  readonly l1: GuardedL1;
  readonly codec: Envelope;
  readonly sync: SyncState | undefined;
  readonly tags: Tags;
  readonly now: () => number;
  /** The clock of the L1 hit path, and how far its reading may lag the real one. */
  readonly hitClock: () => number;
  readonly hitSlack: number;
  /** `sync.refreshAhead` is on: hits may start a background sync. */
  readonly refreshesAhead: boolean;
  readonly copy: ((value: unknown) => unknown) | undefined;
  /** Whether the store's versions compare across keys (`Store.orderedVersions`). */
  readonly orderedVersions: boolean;
  /** This instance's id in the change log; made on the first write when not given. */
  origin: string | undefined;
  closed = false;
  /** What traces operations that leave L1 (`edgecache/otel`), when installed. */
  tracing: Tracing | undefined = undefined;
  /** Work that goes on after its caller was answered; `close()` waits for it. */
  readonly background = new Set<Promise<unknown>>();
  readonly stats: Counters = {
    l1Hits: 0,
    l1Misses: 0,
    l2Hits: 0,
    l2Misses: 0,
    sets: 0,
    deletes: 0,
    clears: 0,
    errors: 0,
    corrupt: 0,
    loads: 0,
    loadErrors: 0,
    coalesced: 0,
    lockWaits: 0,
    staleHits: 0,
    graceHits: 0,
  };
  readonly #logger: Logger;
  readonly #onError: ((error: EdgeCacheError) => void) | undefined;
  /** The listeners of `cache.on`; `undefined` while there are none (hot paths check it). */
  events: Emitter | undefined;

  constructor(o: ResolvedOptions, store: Store) {
    this.name = o.namespace;
    this.store = store;
    this.now = o.now;
    this.hitClock = o.clockResolution > 0 ? coarseClock(o.now, o.clockResolution) : o.now;
    this.hitSlack = o.clockResolution;
    this.refreshesAhead = (o.sync?.refreshAhead ?? 0) > 0;
    this.copy = o.local?.copy;
    this.#logger = o.logger;
    this.#onError = o.onError;
    this.l1 = new GuardedL1(
      o.local?.cache,
      o.local?.ttl ?? Number.POSITIVE_INFINITY,
      o.clockResolution,
      o.now,
    );
    this.sync = o.sync && new SyncState(o.sync);
    this.orderedVersions = o.store.orderedVersions !== false;
    this.codec = new Envelope({
      serializer: o.serializer,
      ttl: o.ttl,
      jitter: o.jitter,
      maxKeyBytes: o.maxKeyBytes,
      maxValueBytes: o.maxValueBytes,
      propagateMaxBytes: o.sync ? o.sync.propagateMaxBytes : -1,
      tags: this.orderedVersions,
    });
    this.origin = o.instanceId;
    this.tags = new Tags(this);
  }

  /** Whether L1 may answer a read that started at `t` without a sync. */
  inWindow(t: number): boolean {
    return this.sync === undefined || this.sync.fresh(t, this.hitSlack);
  }

  /** A value as its caller gets it: its own copy when copies are on. */
  out(value: unknown): unknown {
    return this.copy === undefined ? value : this.copy(value);
  }

  /** Drops L1 whole, and with it what it knew of tags. */
  dropAll(): void {
    this.l1.drop();
    this.tags.forgetAll();
  }

  /**
   * Lets background work finish: through `waitUntil` (the call's own, else the sync's) when
   * there is one, in-process anyway. Returns whether `waitUntil` took it.
   */
  keepAlive(
    work: Promise<unknown>,
    waitUntil: WaitUntil | undefined = this.sync?.settings.waitUntil,
  ): boolean {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
    return handOff(work, waitUntil);
  }

  /** Counts and reports entries L2 held that could not be decoded (or were repaired). */
  corrupt(count: number, key: string | undefined, repaired = false): void {
    this.stats.corrupt += count;
    let message =
      count === 1
        ? "an L2 entry could not be decoded; served as a miss"
        : `${count} L2 entries could not be decoded; served as misses`;
    if (repaired) {
      message =
        key === undefined
          ? "L2 held data under this namespace that edgecache never writes; it was reset (a clear)"
          : "L2 held a lease edgecache never writes (no expiry, or another type); it was replaced";
    }
    this.absorb(new CorruptEntryError(message, key === undefined ? {} : { key }));
  }

  /** Counts a failed store call and types its error. */
  failed(err: unknown, op: string, keys: readonly string[]): EdgeCacheError {
    this.stats.errors++;
    if (err instanceof EdgeCacheError) return err;
    // A custom store threw something untyped; do not forward its message (it may hold data).
    return new StoreError("EC_STORE_ERROR", `store.${op} failed`, {
      cause: err,
      ...(keys.length === 1 ? { key: keys[0] } : {}),
    });
  }

  /** Emits an event off the hot paths (the payload is built even with no listener). */
  emit<E extends keyof CacheEventMap>(event: E, payload: CacheEventMap[E]): void {
    this.events?.emit(event, payload);
  }

  /** The emitter, made on the first `on`. */
  listen(): Emitter {
    this.events ??= new Emitter(this.#logger);
    return this.events;
  }

  /** Reports an error that the caller is not told about (a fail-open read, a background job). */
  absorb(error: EdgeCacheError): void {
    this.events?.emit("error", { error });
    if (this.#onError) {
      try {
        this.#onError(error);
      } catch (hookError) {
        this.#logger.error("onError threw", { name: (hookError as Error)?.name });
      }
      return;
    }
    this.#logger.warn(error.message, { code: error.code, namespace: this.name });
  }
}
