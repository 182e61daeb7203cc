/**
 * One request through one `cached` middleware: what its flow (`request.ts`) and its loads
 * (`fill.ts`) share, and the context variable a load reports this request's run of the
 * handler in.
 * @module
 */

import type { Context, Next } from "hono";
import type { GetOrSetOptions } from "../../types.js";
import type { CachedEnv } from "./index.js";
import type { Settings } from "./settings.js";
import type { StoredResponse } from "./snapshot.js";

/** What this request's own run of the handler, inside a load, came to. */
export type Run =
  /** Stored (or, when `stored` is false, the write failed); `response` is rebuilt from the bytes. */
  | {
      kind: "stored";
      response: Response;
      entry: StoredResponse;
      stored: boolean;
      /** The stored response was revalidated: the handler answered 304. */
      validated?: boolean;
    }
  /** Not storable: `response` passes through. */
  | { kind: "pass"; response: Response; detail: string }
  /** Failed (5xx or an error) while a stale response was at hand: served from grace. */
  | { kind: "failed"; response: Response }
  /** The chain threw something Hono could not turn into a response: rethrown. */
  | { kind: "threw"; error: unknown };

/**
 * Context variables `cached` keeps for itself. `cachedRun` is set by a foreground load that
 * ran the handler on this context (as Hono sets `c.res`), and read by the flow once
 * `getOrSet` answers; it is cleared before each load.
 */
export interface CachedLocals {
  cachedRun?: Run | undefined;
}

/** The context as `cached` sees it: the public variables and its own. */
export type CachedContext = Context<{ Variables: CachedEnv["Variables"] & CachedLocals }>;

/**
 * Which loads of one middleware finished lately (key, response id), so a request that got a
 * response another request's load produced while it waited can say it was collapsed.
 */
export class RecentLoads {
  #seq = 0;
  readonly #loads = new Map<string, { id: string; seq: number }>();

  /** A mark to pass to {@link collapsed}: loads noted after it are "later". */
  get seq(): number {
    return this.#seq;
  }

  /** Records that a load of `key` produced the response `id`. */
  note(key: string, id: string): void {
    this.#loads.delete(key);
    this.#loads.set(key, { id, seq: ++this.#seq });
    if (this.#loads.size > 1_000) {
      const oldest = this.#loads.keys().next();
      if (!oldest.done) this.#loads.delete(oldest.value);
    }
  }

  /** Whether the response `id` of `key` comes from a load that ended after `since`. */
  collapsed(key: string, id: string, since: number): boolean {
    const load = this.#loads.get(key);
    return load !== undefined && load.id === id && load.seq > since;
  }
}

/** One request through one `cached` middleware. */
export interface Exchange {
  readonly s: Settings;
  readonly recent: RecentLoads;
  readonly c: CachedContext;
  readonly next: Next;
  /** {@link RecentLoads.seq} when the request came in. */
  readonly since: number;
  /** Tags the handler added with `c.var.cacheTag`. */
  readonly tags: string[];
  /** Settles when the middleware has returned this request's response. */
  readonly finished: Promise<void>;
  /**
   * The rest of the chain has run (or is running): Hono allows one `next()` per middleware,
   * and a second load or a refresh on this context must not ask for another.
   */
  chainUsed: boolean;
}

/** A new exchange for this request, and the function that settles its `finished`. */
export function openExchange(
  s: Settings,
  recent: RecentLoads,
  c: CachedContext,
  next: Next,
): { exchange: Exchange; finish: () => void } {
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const exchange: Exchange = {
    s,
    recent,
    c,
    next,
    since: recent.seq,
    tags: [],
    finished,
    chainUsed: false,
  };
  return { exchange, finish };
}

/** `ctx.waitUntil` of the runtime, when there is one (Hono throws without one). */
function waitUntilOf(c: Context): ((promise: Promise<unknown>) => void) | undefined {
  let ctx: { waitUntil?: unknown };
  try {
    ctx = c.executionCtx;
  } catch {
    return undefined;
  }
  if (typeof ctx?.waitUntil !== "function") return undefined;
  const waitUntil = ctx.waitUntil as (promise: Promise<unknown>) => void;
  return (promise) => waitUntil.call(ctx, promise);
}

/** The `getOrSet` options of this request's loads. */
export function loadOptions(x: Exchange): GetOrSetOptions {
  const s = x.s;
  const waitUntil = waitUntilOf(x.c);
  return {
    ttl: s.ttl > 0 ? s.ttl : 60_000,
    ...(s.staleWhileRevalidate === undefined
      ? {}
      : { staleWhileRevalidate: s.staleWhileRevalidate }),
    // Stale responses stay (for a conditional revalidation, or grace): the loader decides
    // whether a failed one is served (stale-if-error).
    grace: s.staleFor,
    ...(s.lock === undefined ? {} : { lock: s.lock }),
    ...(waitUntil === undefined ? {} : { waitUntil }),
  };
}
