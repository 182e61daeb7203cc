/**
 * How `cached` answers a request: with a stored response (or a 304), with the handler's
 * response, or by running the rest of the chain without the cache; always adding its
 * member of `Cache-Status`.
 * @module
 */

import type { Exchange, Run } from "./exchange.js";
import { discard } from "./fill.js";
import { cacheStatus, NOT_MODIFIED_HEADERS, notModified, type StatusParams } from "./http.js";
import { headerNames } from "./key.js";
import { replay, type StoredResponse } from "./snapshot.js";
import { keepUpdatable } from "./validate.js";

/** Makes `res` the response (when it is not already) and adds this cache's Cache-Status. */
export function respond(x: Exchange, res: Response, params: StatusParams): void {
  const c = x.c;
  if (c.res !== res) c.res = res;
  c.header("cache-status", cacheStatus(x.s.name, params), { append: true });
}

/** Runs the rest of the chain without the cache (unless it has run already). */
export async function forward(x: Exchange, params: StatusParams): Promise<void> {
  if (!x.chainUsed) {
    x.chainUsed = true;
    await x.next();
  }
  const c = x.c;
  c.header("cache-status", cacheStatus(x.s.name, { ...params, fwdStatus: c.res.status }), {
    append: true,
  });
}

/** A 304 from a stored response when the request's own conditions match it, else undefined. */
function notModifiedFrom(x: Exchange, entry: StoredResponse): Response | undefined {
  const stored = new Headers(entry.headers as Array<[string, string]>);
  if (!notModified(x.c.req.raw.headers, entry.status, stored)) return undefined;
  const kept = new Headers();
  for (const name of NOT_MODIFIED_HEADERS) {
    const value = stored.get(name);
    if (value !== null) kept.set(name, value);
  }
  return new Response(null, { status: 304, headers: kept });
}

/** `Age`: its age when received plus the time since (RFC 9111 4.2.3), in whole seconds. */
function ageAt(entry: StoredResponse, now: number): string {
  return String(Math.max(0, Math.floor((now - entry.storedAt) / 1000 + entry.age)));
}

/**
 * Answers with a stored response: 200-style, or 304 to a matching conditional request.
 * `key` (where it was found) tells a collapsed request from a hit; `params` overrides both.
 * `staleDetail` says why a stale response may answer.
 */
export function serve(
  x: Exchange,
  entry: StoredResponse,
  key: string | undefined,
  params?: StatusParams,
  staleDetail?: string,
): void {
  const s = x.s;
  const now = s.now();
  const expiresAt = entry.storedAt + entry.ttl;
  const left = expiresAt - now;
  let status: StatusParams;
  if (params !== undefined) status = { ...params, ttl: left };
  else if (left <= 0) {
    status = {
      hit: true,
      ttl: left,
      detail:
        staleDetail ??
        (now - expiresAt < s.swrWindow ? "stale-while-revalidate" : "stale-if-error"),
    };
  } else if (key !== undefined && x.recent.collapsed(key, entry.id, x.since)) {
    status = { fwd: "miss", collapsed: true, ttl: left };
  } else status = { hit: true, ttl: left };
  const res = notModifiedFrom(x, entry) ?? replay(entry);
  res.headers.set("age", ageAt(entry, now));
  // Headers middleware before this one set for this request win over the stored ones
  // (Hono merges them in when c.res is set); Vary is the union of both.
  const before = x.c.res.headers.get("vary");
  const vary = res.headers.get("vary");
  respond(x, res, status);
  if (before !== null && vary !== null) {
    x.c.header("vary", headerNames([...before.split(","), ...vary.split(",")]).join(", "));
  }
}

/**
 * Answers with what this request's own run of the handler came to. `stale` is what the
 * load answered with: a stored response there after a failed run was served from grace.
 */
export function ran(
  x: Exchange,
  run: Run,
  stale: StoredResponse | undefined,
  fwd: "miss" | "vary-miss" | "request" | "stale",
): void {
  if (run.kind === "threw") throw run.error;
  const fwdStatus = run.response.status;
  if (run.kind === "stored") {
    const outcome = run.stored ? { stored: true, ttl: run.entry.ttl } : { detail: "store-error" };
    const validated = run.validated === true;
    const params: StatusParams = {
      fwd: validated && fwd !== "request" ? "stale" : fwd,
      fwdStatus: validated ? 304 : fwdStatus,
      ...outcome,
    };
    // The 304 is in the stored response now: its Content-Length and such must not reach
    // the answer (RFC 9111 3.2).
    if (validated) keepUpdatable(x.c);
    // The client's own conditions are answered from what was stored (RFC 9111 4.3.2).
    const notModifiedRes = notModifiedFrom(x, run.entry);
    if (notModifiedRes !== undefined) void discard(run.response);
    const res = notModifiedRes ?? run.response;
    // Its age, when it has one to tell (4.2.3): from Date and Age, or the stored one's.
    const age = ageAt(run.entry, x.s.now());
    if (validated || age !== "0") res.headers.set("age", age);
    respond(x, res, params);
  } else if (run.kind === "pass") {
    respond(x, run.response, { fwd, fwdStatus, detail: run.detail });
  } else if (stale !== undefined) {
    void discard(run.response);
    // Detach the failed response, so Hono merges none of its headers into the stale one.
    x.c.res = undefined;
    serve(x, stale, undefined, { fwd: "stale", fwdStatus, detail: "stale-if-error" });
  } else respond(x, run.response, { fwd, fwdStatus });
}
