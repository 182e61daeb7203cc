/**
 * Conditional revalidation (RFC 9111 4.3): the request the handler sees when a stored
 * response is revalidated, and a stored response freshened by a 304 (4.3.4) or by a 200 to
 * a HEAD (4.3.5).
 * @module
 */

import type { Context } from "hono";
import type { Exchange } from "./exchange.js";
import { fromBase64, nullBody, type StoredResponse } from "./snapshot.js";

/** Request fields that make a request conditional on the client's own copy. */
const CONDITIONALS = ["if-none-match", "if-modified-since"];

/** A stored field's value, or null. */
export function storedField(entry: StoredResponse, name: string): string | null {
  for (const [n, v] of entry.headers) if (n === name) return v;
  return null;
}

/**
 * Runs `run` with the request's conditional fields set to those of `stale` (its `ETag` and
 * `Last-Modified`), or removed when there is none: the handler answers the cache, which
 * answers the client's own conditions itself. The client's request is put back afterwards.
 */
export async function withValidators<T>(
  x: Exchange,
  stale: StoredResponse | undefined,
  run: () => Promise<T>,
): Promise<T> {
  const req = x.c.req;
  const client = req.raw;
  const etag = stale === undefined ? null : storedField(stale, "etag");
  const modified = stale === undefined ? null : storedField(stale, "last-modified");
  const needed =
    etag !== null || modified !== null || CONDITIONALS.some((n) => client.headers.has(n));
  if (!needed) return run();
  const headers = new Headers(client.headers);
  for (const name of CONDITIONALS) headers.delete(name);
  if (etag !== null) headers.set("if-none-match", etag);
  if (modified !== null) headers.set("if-modified-since", modified);
  req.raw = new Request(client, { headers });
  try {
    return await run();
  } finally {
    req.raw = client;
  }
}

/** Fields of a 304 or HEAD response never copied onto the stored response (RFC 9111 3.2). */
const NOT_UPDATED = new Set(["content-length", "content-encoding", "transfer-encoding"]);

/**
 * Makes the chain's 304 (folded into the stored response by `freshened`) carry only what it
 * may update: Hono merges the headers of the response `c.res` held into the one set next.
 */
export function keepUpdatable(c: Context): void {
  const chain = c.res;
  if (chain === undefined) return;
  const headers = new Headers(chain.headers);
  for (const name of NOT_UPDATED) headers.delete(name);
  c.res = undefined;
  c.res = new Response(null, { status: chain.status, headers });
}

/**
 * The stored response with the fields of `update` (a 304, or a 200 to a HEAD) replacing its
 * own, as a full response to judge and store again (RFC 9111 3.2, 4.3.4).
 */
export function freshened(stale: StoredResponse, update: Headers): Response {
  const headers = new Headers(stale.headers as Array<[string, string]>);
  const replaced = new Set<string>();
  update.forEach((value, name) => {
    if (NOT_UPDATED.has(name)) return;
    if (!replaced.has(name)) {
      headers.delete(name);
      replaced.add(name);
    }
    headers.append(name, value);
  });
  return new Response(nullBody(stale.status) ? null : fromBase64(stale.body), {
    status: stale.status,
    headers,
  });
}

/**
 * Whether a 304 (or a HEAD's 200) is about the stored response (RFC 9111 4.3.4, 4.3.5): its
 * strong `ETag`, or else its `Last-Modified`, must match the stored one; with neither, it is.
 * A HEAD's `Content-Length` must match too.
 */
export function sameRepresentation(stale: StoredResponse, update: Headers, head = false): boolean {
  const etag = update.get("etag");
  if (etag !== null) {
    const ours = storedField(stale, "etag");
    return ours !== null && ours.replace(/^W\//, "") === etag.replace(/^W\//, "");
  }
  const modified = update.get("last-modified");
  if (modified !== null && modified !== storedField(stale, "last-modified")) return false;
  if (head) {
    const length = update.get("content-length");
    const stored = storedField(stale, "content-length");
    if (length !== null && stored !== null && length.trim() !== stored.trim()) return false;
  }
  return true;
}
