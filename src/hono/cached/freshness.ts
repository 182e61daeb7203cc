/**
 * Whether a response may be stored, for how long it is fresh and how old it is (RFC 9111 3,
 * 4.2), and whether a stored response may answer a given request (4.2, 5.2.1, RFC 5861).
 * @module
 */

import { parseHttpDate } from "./dates.js";
import { type Directives, parseCacheControl, type RequestPolicy, seconds } from "./http.js";
import { parseVary } from "./key.js";
import type { StoredResponse } from "./snapshot.js";
import { targetedDirectives } from "./targeted.js";

/** Settings that decide whether and how long a response is stored. */
export interface StoreRules {
  readonly statuses: ReadonlySet<number>;
  /** Use the response's s-maxage, max-age or Expires as the TTL. */
  readonly honorMaxAge: boolean;
  /** TTL in ms when the response does not give one; 0 in origin-driven mode (none). */
  readonly ttl: number;
  /** Stale-while-revalidate: the window of responses that do not say, and the most honoured. */
  readonly swr: number;
  /** Stale-if-error (grace): likewise. */
  readonly sie: number;
  /** Origin-driven: only the response's headers (or the heuristic) make it fresh. */
  readonly origin: boolean;
  /** Heuristic freshness (origin-driven mode only): a fraction of the time since Last-Modified. */
  readonly heuristic: { readonly fraction: number; readonly max: number } | false;
  /** Targeted cache-control fields, first first (RFC 9213). */
  readonly targets: readonly string[];
}

/** Why a response was not stored (a `detail` token of Cache-Status). */
export type NotStored =
  | "status"
  | "set-cookie"
  | "no-store"
  | "private"
  | "no-cache"
  | "vary-star"
  | "event-stream"
  | "expired"
  | "error";

/** When the request for a response was sent and the response received (ms). */
export interface Timing {
  readonly requestTime: number;
  readonly responseTime: number;
}

/** What {@link judgeResponse} decided: store, with its freshness and stale windows; or why not. */
export type StoreDecision =
  | {
      readonly ok: true;
      /** Freshness left when received, in ms; 0 for a response stored only to revalidate. */
      readonly ttl: number;
      /** The response's age when received (RFC 9111 4.2.3 corrected_initial_age), in seconds. */
      readonly age: number;
      /** Lowercased names the response varies on. */
      readonly vary: string[];
      /** Ms it may be served stale while it is revalidated (RFC 5861 3). */
      readonly swr: number;
      /** Ms it may be served stale when revalidation fails (RFC 5861 4). */
      readonly sie: number;
      /** `always`: revalidated on every use (no-cache); `stale`: never served stale. */
      readonly revalidate: "always" | "stale" | undefined;
      /** Field names not to store (qualified no-cache, RFC 9111 5.2.2.4). */
      readonly omit: readonly string[];
    }
  | { readonly ok: false; readonly detail: NotStored };

/** Statuses that are heuristically cacheable (RFC 9110 15.1). */
const HEURISTIC = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

/** The directives this cache obeys: a targeted field's, else Cache-Control's. */
export function directivesOf(h: Headers, rules: StoreRules): Directives {
  return targetedDirectives(h, rules.targets) ?? parseCacheControl(h.get("cache-control"));
}

/** `Age` in seconds: the first member of a list (RFC 9111 5.1); an invalid one counts as 0. */
export function ageOf(h: Headers): number {
  const first = (h.get("age") ?? "").split(",")[0]?.trim() ?? "";
  return /^\d+$/.test(first) ? Math.min(Number(first), 2 ** 31) : 0;
}

function fieldList(value: string | true | undefined): string[] {
  return typeof value === "string"
    ? value
        .split(",")
        .map((n) => n.trim().toLowerCase())
        .filter((n) => n !== "")
    : [];
}

/** Whether a response may be stored in a shared cache, and how (RFC 9111 3, 4.2). */
export function judgeResponse(
  res: Response,
  failed: boolean,
  rules: StoreRules,
  timing: Timing,
): StoreDecision {
  if (failed) return { ok: false, detail: "error" };
  if (!rules.statuses.has(res.status)) return { ok: false, detail: "status" };
  const h = res.headers;
  // Stricter than RFC 9111: a response that sets a cookie is someone's, never shared.
  if (h.has("set-cookie")) return { ok: false, detail: "set-cookie" };
  const cc = directivesOf(h, rules);
  if (cc.has("no-store")) return { ok: false, detail: "no-store" };
  // Qualified private is treated as private too: stricter than 5.2.2.7 requires.
  if (cc.has("private")) return { ok: false, detail: "private" };
  const vary = parseVary(h.get("vary"));
  if (vary.includes("*")) return { ok: false, detail: "vary-star" };
  if ((h.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")) {
    return { ok: false, detail: "event-stream" };
  }
  const noCache = cc.get("no-cache");
  const validator = h.has("etag") || h.has("last-modified");
  // Without a validator, a response to revalidate on every use is a response to fetch again.
  if (noCache === true && !validator) return { ok: false, detail: "no-cache" };

  const { requestTime, responseTime } = timing;
  const date = parseHttpDate(h.get("date"), responseTime);
  // RFC 9111 4.2.3: the older of what Age says (plus the trip) and what Date says.
  const apparent = date === undefined ? 0 : Math.max(0, responseTime - date);
  const corrected = ageOf(h) * 1000 + Math.max(0, responseTime - requestTime);
  const initialAge = Math.max(apparent, corrected);

  let ttl = rules.ttl;
  if (rules.honorMaxAge) {
    let lifetime = seconds(cc.get("s-maxage")) ?? seconds(cc.get("max-age"));
    if (lifetime === undefined && h.has("expires")) {
      const expires = parseHttpDate(h.get("expires"), responseTime);
      // An invalid Expires is a time in the past (5.3).
      lifetime = expires === undefined ? 0 : Math.max(0, expires - (date ?? responseTime));
    }
    if (lifetime === undefined && rules.origin && rules.heuristic !== false) {
      const modified = parseHttpDate(h.get("last-modified"), responseTime);
      if (modified !== undefined && HEURISTIC.has(res.status)) {
        const since = (date ?? responseTime) - modified;
        lifetime = Math.min(Math.max(0, since) * rules.heuristic.fraction, rules.heuristic.max);
      }
    }
    if (lifetime !== undefined) ttl = lifetime - initialAge;
  }
  const revalidate =
    noCache === true
      ? "always"
      : cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage")
        ? "stale"
        : undefined;
  if (revalidate === "always") ttl = 0;
  if (!(ttl >= 1)) {
    // Stale on arrival, or no freshness at all: stored only when the response asks to be
    // revalidated on every use (no-cache with a validator).
    if (revalidate !== "always") return { ok: false, detail: "expired" };
    ttl = 0;
  }
  const window = (name: string, limit: number) => {
    if (revalidate !== undefined) return 0;
    const said = seconds(cc.get(name));
    if (said !== undefined) return Math.min(said, limit);
    return rules.origin ? 0 : limit;
  };
  return {
    ok: true,
    ttl: Math.floor(ttl),
    age: initialAge / 1000,
    vary,
    swr: window("stale-while-revalidate", rules.swr),
    sie: window("stale-if-error", rules.sie),
    revalidate,
    omit: fieldList(noCache),
  };
}

/** Whether a stored response's validators let it be revalidated with a conditional request. */
export function hasValidator(entry: StoredResponse): boolean {
  return entry.headers.some(([name]) => name === "etag" || name === "last-modified");
}

/** How a stored response may answer a request, if at all. */
export type Usable =
  | {
      readonly ok: true;
      readonly stale?: "stale-while-revalidate" | "stale-if-error" | "max-stale";
    }
  | { readonly ok: false };

/**
 * Whether `entry` may answer this request at `now` without going to the handler: fresh
 * enough for the request's max-age and min-fresh (RFC 9111 5.2.1), or stale within what the
 * request's max-stale, or the response's own stale windows allow (`path`: the stale value
 * came from getOrSet's stale-while-revalidate path, or its grace path, or neither). A
 * response to revalidate on every use, or whose freshness ended under must-revalidate,
 * proxy-revalidate or s-maxage, never does once stale (5.2.2.2, 5.2.2.8, 5.2.2.10).
 */
export function usable(
  entry: StoredResponse,
  now: number,
  policy: RequestPolicy,
  defaults: { swr: number; sie: number },
  path: "swr" | "grace" | "none",
): Usable {
  if (entry.revalidate === "always" || policy.revalidate) return { ok: false };
  const left = entry.storedAt + entry.ttl - now;
  const age = now - entry.storedAt + entry.age * 1000;
  if (policy.maxAge !== undefined && age > policy.maxAge) return { ok: false };
  if (left > 0) {
    if (policy.minFresh !== undefined && left < policy.minFresh) return { ok: false };
    return { ok: true };
  }
  if (entry.revalidate === "stale") return { ok: false };
  const staleFor = -left;
  if (policy.maxStale !== undefined && staleFor <= policy.maxStale) {
    return { ok: true, stale: "max-stale" };
  }
  if (policy.minFresh !== undefined || path === "none") return { ok: false };
  if (path === "swr") {
    return staleFor < (entry.swr ?? defaults.swr)
      ? { ok: true, stale: "stale-while-revalidate" }
      : { ok: false };
  }
  return staleFor < (entry.sie ?? defaults.sie)
    ? { ok: true, stale: "stale-if-error" }
    : { ok: false };
}
