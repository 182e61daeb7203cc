/**
 * The HTTP rules of the `cached` Hono middleware: Cache-Control parsing, what a request asks
 * of the cache, whether a response may be stored and for how long (RFC 9111), conditional
 * requests answered from a stored response, and the `Cache-Status` field (RFC 9211).
 * @module
 */

import { parseVary } from "./key.js";

/** Cache-Control directives by lowercased name; `true` for a directive without a value. */
export type Directives = Map<string, string | true>;

/** Parses a Cache-Control value (comma-separated, values may be quoted strings). */
export function parseCacheControl(value: string | null): Directives {
  const directives: Directives = new Map();
  if (value === null) return directives;
  const n = value.length;
  let i = 0;
  while (i < n) {
    let start = i;
    while (i < n && value[i] !== "=" && value[i] !== ",") i++;
    const name = value.slice(start, i).trim().toLowerCase();
    let directive: string | true = true;
    if (value[i] === "=") {
      i++;
      while (i < n && (value[i] === " " || value[i] === "\t")) i++;
      if (value[i] === '"') {
        let text = "";
        for (i++; i < n && value[i] !== '"'; i++) {
          if (value[i] === "\\" && i + 1 < n) i++;
          text += value[i];
        }
        directive = text;
        while (i < n && value[i] !== ",") i++;
      } else {
        start = i;
        while (i < n && value[i] !== ",") i++;
        directive = value.slice(start, i).trim();
      }
    }
    i++; // the comma
    if (name !== "" && !directives.has(name)) directives.set(name, directive);
  }
  return directives;
}

/**
 * A delta-seconds value in ms; `undefined` when the directive is absent. An invalid value
 * counts as 0 (RFC 9111 4.2.1: treat the response as stale).
 */
export function seconds(directive: string | true | undefined): number | undefined {
  if (directive === undefined) return undefined;
  if (directive === true || !/^\d+$/.test(directive)) return 0;
  return Math.min(Number(directive), 2 ** 31) * 1000;
}

/** What a request asks of the cache through its own headers. */
export interface RequestPolicy {
  /** `Cache-Control: no-store`: nothing of this exchange may be stored. */
  readonly noStore: boolean;
  /** `no-cache`, `max-age=0` or `Pragma: no-cache`: do not answer from the cache. */
  readonly revalidate: boolean;
  /** `only-if-cached`: answer from the cache or with 504, never forward. */
  readonly onlyIfCached: boolean;
}

/** Reads a request's `Cache-Control` (and, without one, `Pragma`) into a {@link RequestPolicy}. */
export function requestPolicy(headers: Headers): RequestPolicy {
  const header = headers.get("cache-control");
  const cc = parseCacheControl(header);
  const pragma =
    header === null && /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(headers.get("pragma") ?? "");
  return {
    noStore: cc.has("no-store"),
    revalidate: cc.has("no-cache") || seconds(cc.get("max-age")) === 0 || pragma,
    onlyIfCached: cc.has("only-if-cached"),
  };
}

/** Settings that decide whether and how long a response is stored. */
export interface StoreRules {
  readonly statuses: ReadonlySet<number>;
  /** Use the response's s-maxage, max-age or Expires as the TTL. */
  readonly honorMaxAge: boolean;
  /** TTL in ms when the response does not give one (or honorMaxAge is off). */
  readonly ttl: number;
  /** Whether stale responses may be served (stale-while-revalidate or grace is on). */
  readonly servesStale: boolean;
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
  | "must-revalidate"
  | "expired"
  | "error";

/** What {@link judgeResponse} decided: store, with a TTL, its `Age` and `Vary`; or why not. */
export type StoreDecision =
  | {
      readonly ok: true;
      /** Freshness lifetime from now, in ms. */
      readonly ttl: number;
      /** The response's `Age` when it was received, in seconds. */
      readonly age: number;
      /** Lowercased names the response varies on. */
      readonly vary: string[];
    }
  | { readonly ok: false; readonly detail: NotStored };

/** Whether a response may be stored in a shared cache, and for how long (RFC 9111 3, 4.2). */
export function judgeResponse(res: Response, failed: boolean, rules: StoreRules): StoreDecision {
  if (failed) return { ok: false, detail: "error" };
  if (!rules.statuses.has(res.status)) return { ok: false, detail: "status" };
  const h = res.headers;
  if (h.has("set-cookie")) return { ok: false, detail: "set-cookie" };
  const cc = parseCacheControl(h.get("cache-control"));
  if (cc.has("no-store")) return { ok: false, detail: "no-store" };
  if (cc.has("private")) return { ok: false, detail: "private" };
  // Storing it would need a revalidation on every use, which this cache does not do.
  if (cc.has("no-cache")) return { ok: false, detail: "no-cache" };
  const vary = parseVary(h.get("vary"));
  if (vary.includes("*")) return { ok: false, detail: "vary-star" };
  if ((h.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")) {
    return { ok: false, detail: "event-stream" };
  }
  if (rules.servesStale && (cc.has("must-revalidate") || cc.has("proxy-revalidate"))) {
    return { ok: false, detail: "must-revalidate" };
  }
  const ageHeader = seconds(h.get("age") ?? undefined);
  const age = ageHeader === undefined ? 0 : ageHeader / 1000;
  let ttl = rules.ttl;
  if (rules.honorMaxAge) {
    const lifetime = seconds(cc.get("s-maxage")) ?? seconds(cc.get("max-age")) ?? expires(h);
    if (lifetime !== undefined) ttl = lifetime - age * 1000;
  }
  if (!(ttl >= 1)) return { ok: false, detail: "expired" };
  return { ok: true, ttl: Math.floor(ttl), age, vary };
}

/** Freshness lifetime from `Expires` (minus `Date`), in ms; invalid dates are in the past. */
function expires(h: Headers): number | undefined {
  const value = h.get("expires");
  if (value === null) return undefined;
  const at = Date.parse(value);
  const date = Date.parse(h.get("date") ?? "");
  if (Number.isNaN(at) || Number.isNaN(date)) return 0;
  return at - date;
}

/** The entity tags of an If-None-Match value, without their weakness prefix. */
function entityTags(value: string): string[] {
  return (value.match(/(?:W\/)?"[^"]*"/g) ?? []).map((tag) => tag.replace(/^W\//, ""));
}

/**
 * Whether a stored response answers a conditional request with 304 (RFC 9110 13.1.2, 13.1.3):
 * If-None-Match by weak comparison; otherwise If-Modified-Since against Last-Modified.
 */
export function notModified(request: Headers, status: number, stored: Headers): boolean {
  if (status !== 200) return false;
  const ifNoneMatch = request.get("if-none-match");
  if (ifNoneMatch !== null) {
    const etag = stored.get("etag");
    if (ifNoneMatch.trim() === "*") return etag !== null;
    if (etag === null) return false;
    const ours = etag.replace(/^W\//, "");
    return entityTags(ifNoneMatch).includes(ours);
  }
  const since = Date.parse(request.get("if-modified-since") ?? "");
  const modified = Date.parse(stored.get("last-modified") ?? "");
  return !Number.isNaN(since) && !Number.isNaN(modified) && modified <= since;
}

/** Headers a 304 keeps from the stored response (RFC 9110 15.4.5). */
export const NOT_MODIFIED_HEADERS = [
  "cache-control",
  "content-location",
  "date",
  "etag",
  "expires",
  "vary",
] as const;

/** How a response came to be, in the terms of RFC 9211. */
export interface StatusParams {
  /** Served from the cache without going to the handler. */
  readonly hit?: boolean;
  /** Why the request went to the handler. */
  readonly fwd?: "bypass" | "method" | "miss" | "vary-miss" | "request" | "stale";
  /** The status the handler answered with. */
  readonly fwdStatus?: number;
  /** The handler's response was stored. */
  readonly stored?: boolean;
  /** This request waited for another one's trip to the handler and got its response. */
  readonly collapsed?: boolean;
  /** Freshness left, in ms (negative when stale). */
  readonly ttl?: number;
  readonly detail?: string;
}

/** A member of the Cache-Status list for this cache (RFC 9211 2). */
export function cacheStatus(name: string, p: StatusParams): string {
  const parts = [name];
  if (p.hit) parts.push("hit");
  if (p.fwd !== undefined) parts.push(`fwd=${p.fwd}`);
  if (p.fwdStatus !== undefined) parts.push(`fwd-status=${p.fwdStatus}`);
  if (p.stored) parts.push("stored");
  if (p.collapsed) parts.push("collapsed");
  if (p.ttl !== undefined) parts.push(`ttl=${Math.floor(p.ttl / 1000)}`);
  if (p.detail !== undefined) parts.push(`detail=${p.detail}`);
  return parts.join("; ");
}
