/**
 * What this process knows of Redis' clock, so that a write can carry a deadline that Redis
 * itself enforces (the write scripts refuse to run past it).
 *
 * Every script answers with Redis' time. A reply that reports Redis time `r`, to a request
 * sent at local time `s` and answered at `a`, was produced between `s` and `a`, so the
 * offset (Redis minus local) lies in `[r - a, r - s]`. The clock keeps a lower bound of it,
 * the tightest one seen, worn down over time by a drift allowance; a sample whose upper
 * bound falls below the kept lower bound means one of the clocks stepped, and replaces it.
 *
 * A deadline computed from a lower bound errs early, never late: whenever Redis runs a
 * write at or before the deadline, this process' clock had not yet reached the local limit.
 *
 * @module
 */

/** Allowed drift between the two clocks, in ms per ms (1000 ppm, ten times NTP's worst). */
const DRIFT = 1e-3;

/** Slack for clock granularity (Workers' coarse timers, Redis' ms rounding). */
const SLACK = 5;

/** A monotonic local clock in ms. */
export const monotonic = (): number => performance.now();

export class RedisClock {
  // Lower bound of (Redis ms - local ms), as of #at.
  #low: number | undefined;
  #at = 0;

  constructor(readonly local: () => number = monotonic) {}

  /** Whether any reply has told Redis' time yet. */
  get known(): boolean {
    return this.#low !== undefined;
  }

  /** Takes Redis' time `redisNow` from a reply to a request sent at `sent`, answered at `received`. */
  observe(redisNow: unknown, sent: number, received: number): void {
    if (typeof redisNow !== "number" || !Number.isFinite(redisNow) || redisNow <= 0) return;
    const low = redisNow - received;
    const high = redisNow - sent;
    const kept = this.#bound(received);
    if (kept === undefined || low >= kept || high < kept) {
      this.#low = low;
      this.#at = received;
    }
  }

  /**
   * The latest time on Redis' clock (whole ms) that is surely no later than local time
   * `limit`; undefined until a reply has told Redis' time.
   */
  deadline(limit: number): number | undefined {
    const low = this.#bound(limit);
    return low === undefined ? undefined : Math.floor(limit + low - SLACK);
  }

  #bound(at: number): number | undefined {
    if (this.#low === undefined) return undefined;
    return this.#low - DRIFT * Math.abs(at - this.#at);
  }
}

// One clock per Redis endpoint, shared by the stores of this process (a Worker that builds
// its cache per request learns Redis' time once per isolate, not once per request).
const byUrl = new Map<string, RedisClock>();
const byClient = new WeakMap<object, RedisClock>();
const MAX_URLS = 64;

/** The shared clock of the Redis at `endpoint` (a URL, or the client object that reaches it). */
export function clockFor(endpoint: string | object): RedisClock {
  if (typeof endpoint === "object") {
    let clock = byClient.get(endpoint);
    if (clock === undefined) {
      clock = new RedisClock();
      byClient.set(endpoint, clock);
    }
    return clock;
  }
  let clock = byUrl.get(endpoint);
  if (clock === undefined) {
    if (byUrl.size >= MAX_URLS) byUrl.delete(byUrl.keys().next().value as string);
    clock = new RedisClock();
    byUrl.set(endpoint, clock);
  }
  return clock;
}
