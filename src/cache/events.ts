/**
 * `cache.on(event, listener)`: what happened to each operation, for logs, traces and
 * dashboards. Listeners run synchronously where the event happens; whatever they throw or
 * reject is logged and dropped, so a listener can never break a cache call. With no
 * listener the cache holds no emitter, and every event site costs one `undefined` check.
 * @module
 */
import type { EdgeCacheError } from "../errors.js";
import type { Logger } from "../logger.js";

/** The events of a cache, each with what its listeners receive. Keys are never values. */
export interface CacheEventMap {
  /** A read answered from L1 (`tier: "l1"`) or L2 (`"l2"`). */
  hit: { key: string; tier: "l1" | "l2" };
  /** A read found nothing fresh (after L2 was asked, or L1 only for `peek`). */
  miss: { key: string };
  /** Keys written to L2 (by `set`, `setMany` or a load). */
  set: { keys: readonly string[] };
  /** Keys deleted. */
  delete: { keys: readonly string[] };
  /** The namespace was cleared. */
  clear: Record<string, never>;
  /**
   * A sync with the change log was applied: `applied` records from others, or `flushed`
   * when L1 had to be dropped whole (a gap, a clear, a backlog too long).
   */
  sync: { applied: number; flushed: boolean };
  /** A loader call ended, after `ms`: `ok`, `error` (it threw) or `timeout`. */
  load: { key: string; ms: number; outcome: "ok" | "error" | "timeout" };
  /** A stale value was served: while it reloads (`swr`) or because loading failed (`grace`). */
  stale: { key: string; reason: "swr" | "grace" };
  /** The L2 circuit breaker changed state (`breaker` option). */
  breaker: { state: "closed" | "open" | "half-open" };
  /** An error was absorbed (a fail-open read, a background job): what `onError` receives. */
  error: { error: EdgeCacheError };
}

/** An event's name. */
export type CacheEvent = keyof CacheEventMap;

type Listener = (payload: never) => unknown;

/** The listeners of one cache. */
export class Emitter {
  readonly #listeners = new Map<CacheEvent, Set<Listener>>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  on(event: CacheEvent, listener: Listener): void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
  }

  /** Removes `listener`; true when no listener is left at all. */
  off(event: CacheEvent, listener: Listener): boolean {
    const set = this.#listeners.get(event);
    if (set?.delete(listener) && set.size === 0) this.#listeners.delete(event);
    return this.#listeners.size === 0;
  }

  emit<E extends CacheEvent>(event: E, payload: CacheEventMap[E]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        const result = (listener as (p: CacheEventMap[E]) => unknown)(payload);
        if (result !== null && typeof (result as Promise<unknown>)?.then === "function") {
          (result as Promise<unknown>).then(undefined, (err: unknown) => this.#dropped(event, err));
        }
      } catch (err) {
        this.#dropped(event, err);
      }
    }
  }

  #dropped(event: CacheEvent, err: unknown): void {
    try {
      this.#logger.warn(`a "${event}" listener threw; ignored`, {
        name: err instanceof Error ? err.name : typeof err,
      });
    } catch {
      // A logger that throws cannot break the cache either.
    }
  }
}

const EVENTS: ReadonlySet<string> = new Set<CacheEvent>([
  "hit",
  "miss",
  "set",
  "delete",
  "clear",
  "sync",
  "load",
  "stale",
  "breaker",
  "error",
]);

/** Whether `event` names one of the cache's events. */
export function isCacheEvent(event: unknown): event is CacheEvent {
  return typeof event === "string" && EVENTS.has(event);
}
