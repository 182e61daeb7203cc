/**
 * Pushes over Redis pub/sub (`sync.pubsub`): writes publish their change records from the
 * write script itself, and long-lived instances hold the store's stream open, catching up
 * from the change log each time it (re)opens before they trust it.
 * @module
 */
import { EdgeCacheError, InvalidOptionError, StoreError } from "../errors.js";
import type { PushEvents } from "../hub/client.js";
import type { Store } from "../store/contract.js";
import { duration, isRecord, MAX_TIMER } from "../util/check.js";
import { unref } from "../util/runtime.js";

/** `sync.pubsub` resolved. */
export interface ResolvedPubSub {
  /** Hold a stream open (long-lived servers); off, writes only publish (Workers). */
  subscribe: boolean;
  relaxedStaleness: number | undefined;
  minBackoff: number;
  maxBackoff: number;
}

/** Validates `sync.pubsub` (`true`, or an options object). */
export function resolvePubSub(option: unknown): ResolvedPubSub | undefined {
  if (option === undefined || option === false) return undefined;
  const o: Record<string, unknown> = option === true ? {} : (option as Record<string, unknown>);
  if (!isRecord(o)) throw new InvalidOptionError("sync.pubsub must be true or an options object");
  if (o.subscribe !== undefined && typeof o.subscribe !== "boolean") {
    throw new InvalidOptionError("sync.pubsub.subscribe must be a boolean");
  }
  const subscribe = o.subscribe !== false;
  const inWorkers = (globalThis as { navigator?: { userAgent?: unknown } }).navigator?.userAgent;
  if (subscribe && inWorkers === "Cloudflare-Workers") {
    throw new InvalidOptionError(
      "sync.pubsub cannot subscribe in Cloudflare Workers (a Worker cannot hold a stream " +
        "open): use sync.pubsub: { subscribe: false } to publish, and the Durable Object hub " +
        "(sync.hub, edgecache/cloudflare) for pushes to Workers",
    );
  }
  const minBackoff = duration("sync.pubsub.minBackoff", o.minBackoff, {
    zero: false,
    max: MAX_TIMER,
    fallback: 100,
  });
  const maxBackoff = duration("sync.pubsub.maxBackoff", o.maxBackoff, {
    zero: false,
    max: MAX_TIMER,
    fallback: 10_000,
  });
  const relaxedStaleness =
    o.relaxedStaleness === undefined
      ? undefined
      : duration("sync.pubsub.relaxedStaleness", o.relaxedStaleness);
  return { subscribe, relaxedStaleness, minBackoff: Math.min(minBackoff, maxBackoff), maxBackoff };
}

/** Pub/sub statistics, part of the cache's stats. */
export interface PubSubStats {
  /** The stream is open and caught up with the change log. */
  healthy: boolean;
  /** Reconnections scheduled since the start. */
  reconnects: number;
  /** Change records received. */
  received: number;
}

/** Keeps the namespace's stream open: reconnects with jittered backoff, never throws. */
export class PubSubClient {
  readonly #subscribe: NonNullable<Store["subscribe"]>;
  readonly #namespace: string;
  readonly #settings: ResolvedPubSub;
  readonly #events: PushEvents;
  #sub: { close(): void } | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #generation = 0;
  #closed = false;
  readonly stats: PubSubStats = { healthy: false, reconnects: 0, received: 0 };

  constructor(store: Store, namespace: string, settings: ResolvedPubSub, events: PushEvents) {
    if (typeof store.subscribe !== "function") {
      throw new InvalidOptionError(
        `sync.pubsub needs a store that can subscribe (upstashStore({ url, token }), or a ` +
          `shardedStore of them); ${store.name} cannot`,
      );
    }
    this.#subscribe = store.subscribe.bind(store);
    this.#namespace = namespace;
    this.#settings = settings;
    this.#events = events;
    this.#connect();
  }

  #connect(): void {
    if (this.#closed) return;
    const generation = ++this.#generation;
    const current = () => generation === this.#generation && !this.#closed;
    try {
      this.#sub = this.#subscribe(this.#namespace, {
        open: () => {
          if (!current()) return;
          void this.#events.opened().then((caughtUp) => {
            if (!current()) return;
            if (!caughtUp) return this.#drop(undefined);
            this.#attempt = 0;
            this.#health(true);
          });
        },
        records: (records) => {
          if (!current()) return;
          this.stats.received += records.length;
          this.#events.records(records, this.#events.now());
        },
        end: (error) => {
          if (current()) this.#drop(error);
        },
      });
    } catch (error) {
      this.#drop(error);
    }
  }

  /** The stream is gone: poll again at once, and open it again after a backoff. */
  #drop(error: unknown): void {
    this.#generation++;
    this.#sub?.close();
    this.#sub = undefined;
    this.#health(false);
    if (error !== undefined) {
      const why = error instanceof StoreError ? `: ${error.message}` : "";
      this.#events.error(
        new EdgeCacheError("EC_PUBSUB_UNAVAILABLE", `the pub/sub stream dropped${why}`, {
          tier: "l2",
          ...(error instanceof StoreError ? { cause: error } : {}),
        }),
      );
    }
    if (this.#closed) return;
    const { minBackoff, maxBackoff } = this.#settings;
    const delay = Math.min(maxBackoff, minBackoff * 2 ** this.#attempt++);
    this.stats.reconnects++;
    this.#timer = setTimeout(() => this.#connect(), delay * (0.5 + Math.random() / 2));
    unref(this.#timer);
  }

  #health(healthy: boolean): void {
    if (this.stats.healthy === healthy) return;
    this.stats.healthy = healthy;
    this.#events.health(healthy);
  }

  close(): void {
    this.#closed = true;
    this.#generation++;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#sub?.close();
    this.#sub = undefined;
    this.#health(false);
  }
}
