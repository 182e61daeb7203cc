/**
 * The HTTP rules of the `cached` Hono middleware: Cache-Control parsing, what a request asks
 * of the cache, whether a response may be stored and for how long (RFC 9111), conditional
 * requests answered from a stored response, and the `Cache-Status` field (RFC 9211).
 * @module
 */

import { parseHttpDate } from "./dates.js";

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

/** What a request asks of the cache through its own headers (RFC 9111 5.2.1). */
export interface RequestPolicy {
  /** `Cache-Control: no-store`: nothing of this exchange may be stored. */
  readonly noStore: boolean;
  /** `no-cache`, `max-age=0` or `Pragma: no-cache`: do not answer from the cache unvalidated. */
  readonly revalidate: boolean;
  /** `only-if-cached`: answer from the cache or with 504, never forward. */
  readonly onlyIfCached: boolean;
  /** `max-age`: the oldest response it accepts, in ms. */
  readonly maxAge: number | undefined;
  /** `min-fresh`: the freshness a response must have left, in ms. */
  readonly minFresh: number | undefined;
  /** `max-stale`: how stale a response it accepts, in ms (`Infinity` without a value). */
  readonly maxStale: number | undefined;
}

/** Reads a request's `Cache-Control` (and, without one, `Pragma`) into a {@link RequestPolicy}. */
export function requestPolicy(headers: Headers): RequestPolicy {
  const header = headers.get("cache-control");
  const cc = parseCacheControl(header);
  const pragma =
    header === null && /(?:^|,)\s*no-cache\s*(?:,|$)/i.test(headers.get("pragma") ?? "");
  const maxAge = seconds(cc.get("max-age"));
  const maxStale = cc.get("max-stale");
  return {
    noStore: cc.has("no-store"),
    revalidate: cc.has("no-cache") || maxAge === 0 || pragma,
    onlyIfCached: cc.has("only-if-cached"),
    maxAge,
    minFresh: seconds(cc.get("min-fresh")),
    maxStale: maxStale === true ? Number.POSITIVE_INFINITY : seconds(maxStale),
  };
}

export type { StoreRules } from "./freshness.js";

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
  const since = parseHttpDate(request.get("if-modified-since"));
  const modified = parseHttpDate(stored.get("last-modified"));
  return since !== undefined && modified !== undefined && modified <= since;
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
