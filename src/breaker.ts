import { EdgeCacheError, InvalidOptionError, StoreError } from "./errors.js";
import type { Store } from "./store/contract.js";
import { duration, positiveInt } from "./util/check.js";

/**
 * Options of the L2 circuit breaker (`createCache({ breaker })`). After `threshold`
 * consecutive failed L2 calls the circuit opens: for `cooldown` ms every L2 call fails at
 * once with `EC_CIRCUIT_OPEN` instead of waiting on a backend that is down, so reads are
 * served from L1 and loaders. Then one trial call is let through (half-open): if it
 * succeeds the circuit closes, otherwise it opens for another `cooldown`.
 *
 * @example
 * ```ts
 * createCache({ store, breaker: { threshold: 3, cooldown: 10_000 } });
 * createCache({ store, breaker: false }); // always call L2
 * ```
 */
export interface BreakerOptions {
  /**
   * Consecutive failed L2 calls that open the circuit.
   * @default 5
   */
  threshold?: number;
  /**
   * How long the circuit stays open before a trial call, in ms.
   * @default 5000
   */
  cooldown?: number;
}

/** The breaker's state, as `stats().breaker` reports it. */
export interface BreakerStats {
  /**
   * The namespace of the cache that owns this breaker. Its namespaces share it, so their
   * stats show the same breaker under the parent's name.
   */
  owner: string;
  /** `closed`: calls go through; `open`: they fail at once; `half-open`: one trial is out. */
  state: "closed" | "open" | "half-open";
  /** Consecutive failures counted towards `threshold`. */
  failures: number;
  /** Times the circuit opened. */
  opens: number;
  /** Calls refused while open. */
  rejected: number;
}

/** Resolved {@link BreakerOptions}; `undefined` means no breaker. */
export interface BreakerSettings {
  threshold: number;
  cooldown: number;
}

export function resolveBreaker(
  option: BreakerOptions | false | undefined,
): BreakerSettings | undefined {
  if (option === false) return undefined;
  const o = option ?? {};
  if (typeof o !== "object" || o === null) {
    throw new InvalidOptionError("breaker must be false or { threshold, cooldown }");
  }
  // A `null` never gets here: `createCache`'s shape check of `breaker` refuses it first.
  const threshold = positiveInt("breaker.threshold", o.threshold, 5);
  const cooldown = duration("breaker.cooldown", o.cooldown, { fallback: 5000, zero: false });
  return { threshold, cooldown };
}

/**
 * Only unavailability of L2 counts: it could not be reached, timed out, refused the
 * credentials, or answered that it cannot serve now. Bad input (a typed validation error)
 * and a Redis error reply about one call or one key's data do not: they say nothing about
 * the next call. Untyped errors from a custom store count.
 */
function isBackendFailure(err: unknown): boolean {
  if (!(err instanceof EdgeCacheError)) return true;
  return (
    err instanceof StoreError &&
    (err.code === "EC_STORE_UNAVAILABLE" ||
      err.code === "EC_STORE_TIMEOUT" ||
      err.code === "EC_STORE_AUTH")
  );
}

/** The circuit breaker shared by a cache and its namespaces (they share one store). */
export class Breaker {
  readonly #settings: BreakerSettings;
  readonly #now: () => number;
  #state: BreakerStats["state"] = "closed";
  #failures = 0;
  #openedAt = 0;
  #opens = 0;
  #rejected = 0;

  readonly #owner: string;

  constructor(settings: BreakerSettings, now: () => number, owner: string) {
    this.#settings = settings;
    this.#now = now;
    this.#owner = owner;
  }

  get stats(): BreakerStats {
    this.#tick();
    return {
      owner: this.#owner,
      state: this.#state,
      failures: this.#failures,
      opens: this.#opens,
      rejected: this.#rejected,
    };
  }

  /** Runs one L2 call through the breaker. */
  async run<T>(call: () => Promise<T>): Promise<T> {
    this.#tick();
    const trial = this.#state === "half-open";
    if (this.#state === "open" || (trial && this.#trialOut)) {
      this.#rejected++;
      throw new StoreError(
        "EC_CIRCUIT_OPEN",
        "L2 calls are paused after repeated failures (circuit open)",
      );
    }
    if (trial) this.#trialOut = true;
    try {
      const result = await call();
      this.#failures = 0;
      this.#to("closed");
      return result;
    } catch (err) {
      // Bad input says nothing about the backend: it neither counts nor decides a trial
      // (the next call is the trial).
      if (!isBackendFailure(err)) throw err;
      this.#failures++;
      if (trial || this.#failures >= this.#settings.threshold) this.#open();
      throw err;
    } finally {
      if (trial) this.#trialOut = false;
    }
  }

  // Whether the half-open trial call is in flight.
  #trialOut = false;

  /** Called with the new state on every change (the cache's `breaker` event). */
  changed: ((state: BreakerStats["state"]) => void) | undefined;

  #to(state: BreakerStats["state"]): void {
    if (this.#state === state) return;
    this.#state = state;
    this.changed?.(state);
  }

  #open(): void {
    this.#to("open");
    this.#openedAt = this.#now();
    this.#opens++;
  }

  #tick(): void {
    if (this.#state === "open" && this.#now() - this.#openedAt >= this.#settings.cooldown) {
      this.#to("half-open");
    }
  }
}

/** `store` with every call going through `breaker`. */
export function guardStore(store: Store, breaker: Breaker): Store {
  const guarded: Store = {
    name: store.name,
    ...(store.orderedVersions === undefined ? {} : { orderedVersions: store.orderedVersions }),
    ...(store.timeout === undefined ? {} : { timeout: store.timeout }),
    get: (ns, keys, sync) => breaker.run(() => store.get(ns, keys, sync)),
    sync: (ns, request) => breaker.run(() => store.sync(ns, request)),
    set: (ns, writes, meta) => breaker.run(() => store.set(ns, writes, meta)),
    delete: (ns, keys, meta) => breaker.run(() => store.delete(ns, keys, meta)),
    clear: (ns, meta) => breaker.run(() => store.clear(ns, meta)),
  };
  if (store.acquireLease && store.releaseLease) {
    const acquire = store.acquireLease.bind(store);
    const release = store.releaseLease.bind(store);
    guarded.acquireLease = (ns, key, token, ttl) => breaker.run(() => acquire(ns, key, token, ttl));
    guarded.releaseLease = (ns, key, token) => breaker.run(() => release(ns, key, token));
  }
  if (store.acquireLeases && store.releaseLeases) {
    const acquire = store.acquireLeases.bind(store);
    const release = store.releaseLeases.bind(store);
    guarded.acquireLeases = (ns, keys, token, ttl) =>
      breaker.run(() => acquire(ns, keys, token, ttl));
    guarded.releaseLeases = (ns, keys, token) => breaker.run(() => release(ns, keys, token));
  }
  // A stream is not a call: it reconnects with its own backoff, and the log covers it.
  if (store.subscribe) guarded.subscribe = store.subscribe.bind(store);
  if (store.keys) {
    const keys = store.keys.bind(store);
    guarded.keys = (ns, page) => breaker.run(() => keys(ns, page));
  }
  return guarded;
}
