import { InvalidOptionError } from "../errors.js";
import { type HubOptions, type ResolvedHub, resolveHub } from "../hub/options.js";
import type { ChangeBatch, ChangeRecord, SyncRequest } from "../store/contract.js";
import { isRecord, nonNegative } from "../util/check.js";
import { type ResolvedPubSub, resolvePubSub } from "./pubsub.js";

/**
 * Options of cross-instance coherence (`createCache({ sync })`).
 *
 * @example
 * ```ts
 * createCache({ store, namespace: "app", sync: { maxStaleness: 500 } });
 * createCache({ store, sync: false }); // a single instance: no coherence traffic
 * ```
 */
export interface SyncOptions {
  /**
   * The staleness bound in ms: once a write has resolved on one instance, every read that
   * starts more than this later on any other instance sees it (or something newer). An
   * instance reads the change log at most once per this window, lazily, on reads. `0`
   * checks the log on every read.
   * @default 1000
   */
  maxStaleness?: number;
  /**
   * Records the namespace's change log keeps (trimmed approximately). An instance whose
   * cursor falls off the end drops its whole L1 and starts over: correct, but colder.
   * Redis memory for the log is about `logLength × (key + propagated value + 60 bytes)`.
   * @default 5000
   */
  logLength?: number;
  /**
   * Largest encoded value a `set` sends to other instances through the log; larger values
   * only invalidate (the others read them from L2 when they need them).
   * @default 1024
   */
  propagateMaxBytes?: number;
  /**
   * Most records one sync reads. An instance further behind than this drops its L1 and
   * jumps to the head instead of paging through the backlog.
   * @default 1000
   */
  batch?: number;
  /**
   * Start a background sync once the window is this fraction used (0 < f < 1), so that
   * busy instances rarely make a read wait for one. The bound is unaffected: a read that
   * finds the window expired still waits. `0` turns it off.
   * @default 0
   */
  refreshAhead?: number;
  /**
   * Hands background work (refresh-ahead syncs) to the runtime so it may finish after the
   * response, e.g. `waitUntil` from `cloudflare:workers`. Without it the work runs
   * in-process, which is right for Node, Deno and Bun.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * Push invalidations through the Durable Object hub (`edgecache/cloudflare`) for
   * near-instant propagation; the change log stays the source of truth.
   */
  hub?: HubOptions;
  /**
   * Push changes over Redis pub/sub, without a Durable Object: each write's script also
   * PUBLISHes its change records (still one request per write), and long-lived Node, Deno
   * and Bun instances hold a stream of them open (the Upstash REST protocol's SSE
   * subscribe), applying them as the hub's pushes are applied. The change log stays the
   * source of truth: after every (re)connect an instance catches up from it before it
   * counts the stream as healthy, and while the stream is down it polls. `true` publishes
   * and subscribes; in Cloudflare Workers, which cannot hold a stream, pass
   * `{ subscribe: false }` to publish only. Needs `upstashStore({ url, token })` (or a
   * `shardedStore` of them: one stream per shard) to subscribe. See docs/pubsub.md.
   */
  pubsub?:
    | boolean
    | {
        /**
         * Hold a stream open; `false` only publishes (Workers, short-lived functions).
         * @default true
         */
        subscribe?: boolean;
        /**
         * The staleness window while the stream is open and caught up, in ms (as the hub's
         * `relaxedStaleness`). Defaults to `maxStaleness`: pushes then only make
         * propagation faster.
         */
        relaxedStaleness?: number;
        /**
         * First reconnection delay in ms; it doubles per failed attempt, with jitter.
         * @default 100
         */
        minBackoff?: number;
        /**
         * Longest reconnection delay in ms.
         * @default 10_000
         */
        maxBackoff?: number;
      };
}

/** Resolved {@link SyncOptions}. */
export interface SyncSettings {
  maxStaleness: number;
  logLength: number;
  propagateMaxBytes: number;
  batch: number;
  refreshAhead: number;
  waitUntil: ((promise: Promise<unknown>) => void) | undefined;
  hub: ResolvedHub | undefined;
  pubsub: ResolvedPubSub | undefined;
}

/** The shape of `sync.hub`; its values are checked by `resolveHub`. */
function checkHub(hub: unknown): HubOptions | undefined {
  if (hub !== undefined && !isRecord(hub)) {
    throw new InvalidOptionError("sync.hub must be an options object");
  }
  return hub as HubOptions | undefined;
}

/** Validates the `sync` option; `undefined` means coherence is off. */
export function resolveSync(option: SyncOptions | false | undefined): SyncSettings | undefined {
  if (option === false) return undefined;
  const o: SyncOptions = option === undefined ? {} : option;
  if (!isRecord(o)) {
    throw new InvalidOptionError("sync must be false or an options object");
  }
  const batch = nonNegative("sync.batch", o.batch, 1000, true);
  const logLength = nonNegative("sync.logLength", o.logLength, 5000, true);
  if (batch < 1 || logLength < 1) {
    throw new InvalidOptionError("sync.batch and sync.logLength must be at least 1");
  }
  const refreshAhead = nonNegative("sync.refreshAhead", o.refreshAhead, 0);
  if (refreshAhead >= 1) throw new InvalidOptionError("sync.refreshAhead must be below 1");
  if (o.waitUntil !== undefined && typeof o.waitUntil !== "function") {
    throw new InvalidOptionError("sync.waitUntil must be a function");
  }
  const hub = resolveHub(checkHub(o.hub));
  const pubsub = resolvePubSub(o.pubsub);
  if (hub?.options.url !== undefined && pubsub?.subscribe) {
    throw new InvalidOptionError(
      "sync.hub with a url and sync.pubsub both subscribe: choose one (sync.pubsub: { subscribe: false } still publishes)",
    );
  }
  return {
    maxStaleness: nonNegative("sync.maxStaleness", o.maxStaleness, 1000),
    logLength,
    propagateMaxBytes: nonNegative("sync.propagateMaxBytes", o.propagateMaxBytes, 1024, true),
    batch,
    refreshAhead,
    waitUntil: o.waitUntil,
    hub,
    pubsub,
  };
}

/** What to do with a batch: apply these records, or drop the whole L1. */
export type SyncVerdict =
  | { readonly kind: "apply"; readonly records: readonly ChangeRecord[] }
  | { readonly kind: "flush"; readonly reason: "gap" | "behind" | "reset" }
  /** Nothing to do; L1 is as new as the answer's snapshot. */
  | { readonly kind: "none" }
  /** The answer could not be checked against the cursor: it vouches for nothing. */
  | { readonly kind: "unverified" };

const NONE: SyncVerdict = { kind: "none" };
const UNVERIFIED: SyncVerdict = { kind: "unverified" };

/**
 * An instance's position in its namespace's change log, and the rules that keep L1 within
 * the staleness bound:
 *
 * - `syncedAt` is when the newest applied sync was *sent*. Every write that resolved before
 *   then is in its answer, so L1 may answer reads until `syncedAt + maxStaleness`.
 * - The log is applied only if it continues exactly from the cursor; a gap (trimmed log, a
 *   lost stream), a backlog longer than `batch`, or a counter that went backwards (Redis
 *   lost its data) drops the whole L1 instead.
 * - Answers may arrive out of order; one that is older than the cursor changes nothing.
 */
export class SyncState {
  /** The last version applied; -1 before the first sync or write. */
  cursor = -1;
  /** When the newest applied sync was sent, on the cache's clock. */
  syncedAt = Number.NEGATIVE_INFINITY;
  readonly stats = { syncs: 0, flushes: 0, syncLag: 0 };
  /**
   * The staleness window in force: `maxStaleness`, or the hub's `relaxedStaleness` while
   * the hub is connected and caught up.
   */
  window: number;

  constructor(readonly settings: SyncSettings) {
    this.window = settings.maxStaleness;
  }

  /**
   * Whether L1 may answer a read that started at `t` without syncing. `slack` is how far
   * the reading `t` may lag the real clock.
   */
  fresh(t: number, slack = 0): boolean {
    return t + slack - this.syncedAt < this.window;
  }

  /** Whether a sync sent at `sentAt` is recent enough for a read that started at `t`. */
  covers(sentAt: number, t: number, slack = 0): boolean {
    return t + slack - sentAt < this.window;
  }

  /** Whether to start a background sync for a read at `t` that L1 can still answer. */
  due(t: number, slack = 0): boolean {
    const f = this.settings.refreshAhead;
    return f > 0 && t + slack - this.syncedAt >= this.window * f;
  }

  request(): SyncRequest {
    return { cursor: this.cursor, limit: this.settings.batch };
  }

  /** Takes a sync answer: `asked` is the cursor the request carried, `sentAt` when it left. */
  accept(batch: ChangeBatch, asked: number, sentAt: number): SyncVerdict {
    const { head } = batch;
    this.stats.syncs++;
    if (this.cursor < 0) {
      // Nothing is in L1 that a change could concern: start at the head.
      this.cursor = head;
      this.#synced(sentAt, 0);
      return NONE;
    }
    if (asked >= 0 && head < asked) {
      // An answer overtaken by a newer applied one says nothing about now.
      if (sentAt < this.syncedAt) return UNVERIFIED;
      // The counter went backwards: Redis lost its data. Nothing in L1 can be trusted.
      return this.#flush(head, sentAt, "reset");
    }
    if (head <= this.cursor) {
      // Nothing new, or an answer overtaken by a newer one: L1 already holds at least its
      // state, so it refreshes the window all the same.
      this.#synced(sentAt, 0);
      return NONE;
    }
    if (asked < 0) {
      // Asked before the cursor existed, so it carries no records; a later sync will.
      return UNVERIFIED;
    }
    const lag = head - this.cursor;
    const records = batch.records.filter((r) => r.last > this.cursor);
    let expected = this.cursor + 1;
    for (const r of records) {
      if (r.first !== expected || r.last < r.first) return this.#flush(head, sentAt, "gap", lag);
      expected = r.last + 1;
    }
    if (expected !== head + 1) {
      return this.#flush(head, sentAt, records.length === 0 ? "gap" : "behind", lag);
    }
    this.cursor = head;
    this.#synced(sentAt, lag);
    return { kind: "apply", records };
  }

  #flush(head: number, sentAt: number, reason: "gap" | "behind" | "reset", lag = 0): SyncVerdict {
    this.cursor = head;
    this.stats.flushes++;
    this.#synced(sentAt, lag);
    return { kind: "flush", reason };
  }

  #synced(sentAt: number, lag: number): void {
    if (sentAt > this.syncedAt) this.syncedAt = sentAt;
    this.stats.syncLag = lag;
  }
}
