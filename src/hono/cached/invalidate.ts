/**
 * What other requests do to stored responses: a successful unsafe method invalidates its
 * URL and the same-origin URLs in its `Location` and `Content-Location` (RFC 9111 4.4), and
 * a 200 to a HEAD freshens or invalidates the stored GET response (4.3.5).
 * @module
 */

import type { Exchange } from "./exchange.js";
import { drop, put } from "./fill.js";
import { judgeResponse } from "./freshness.js";
import { baseKey, headerNames, normalizeUrl, variantKey } from "./key.js";
import { isVaryRecord, type StoredResponse, storedHeaders } from "./snapshot.js";
import { freshened, sameRepresentation } from "./validate.js";

/** Methods that are safe (RFC 9110 9.2.1): every other one, unknown ones too, is unsafe. */
const SAFE = new Set(["GET", "HEAD", "OPTIONS", "TRACE"]);

/** Deletes the stored GET response of a resource: its URL's entry, and this request's variant. */
async function invalidate(x: Exchange, resource: string): Promise<void> {
  const s = x.s;
  const headers = x.c.req.raw.headers;
  const base = await baseKey("GET", resource);
  const urlKey = await variantKey(base, s.vary, headers);
  try {
    const record = await s.cache.get(urlKey);
    if (isVaryRecord(record)) {
      await drop(x, await variantKey(base, headerNames([...s.vary, ...record.names]), headers));
    }
  } catch (error) {
    s.onError(error);
  }
  await drop(x, urlKey);
}

/**
 * After a request with a method `cached` passes through: when the method is unsafe and the
 * response is a success (2xx, 3xx), invalidates the stored responses of the request's URL
 * and of the URLs in `Location` and `Content-Location` that have the same origin. With a
 * `key` function, only the request's own resource (the key of this request) is reached.
 */
export async function invalidateAfter(x: Exchange): Promise<void> {
  const { c, s } = x;
  const status = c.res.status;
  if (SAFE.has(c.req.method) || status < 200 || status >= 400) return;
  const resources = new Set<string>();
  try {
    if (s.key !== undefined) {
      const custom: unknown = await s.key(c);
      if (typeof custom === "string" && custom !== "") resources.add(custom);
    } else {
      const target = new URL(c.req.url);
      resources.add(normalizeUrl(target.href));
      for (const field of ["location", "content-location"]) {
        const value = c.res.headers.get(field);
        if (value === null) continue;
        let url: URL;
        try {
          url = new URL(value, target);
        } catch {
          continue;
        }
        // Another origin's responses are not this request's to invalidate (4.4).
        if (url.origin === target.origin) resources.add(normalizeUrl(url.href));
      }
    }
    for (const resource of resources) await invalidate(x, resource);
  } catch (error) {
    s.onError(error);
  }
}

/**
 * After a HEAD went to the handler while a GET response is stored under `key`: a 200 that
 * matches it (validators, length) freshens its fields and freshness; one that does not
 * invalidates it (RFC 9111 4.3.5).
 */
export async function updateFromHead(
  x: Exchange,
  key: string,
  entry: StoredResponse,
): Promise<void> {
  const s = x.s;
  const res = x.c.res;
  if (res.status !== 200) return;
  if (!sameRepresentation(entry, res.headers, true)) return drop(x, key);
  const now = s.now();
  const updated = freshened(entry, res.headers);
  const verdict = judgeResponse(updated, false, s.rules, { requestTime: now, responseTime: now });
  if (!verdict.ok) return drop(x, key);
  const { swr: _swr, sie: _sie, revalidate: _revalidate, ...kept } = entry;
  const next: StoredResponse = {
    ...kept,
    id: crypto.randomUUID(),
    headers: storedHeaders(updated.headers, atob(entry.body).length, verdict.omit),
    storedAt: now,
    ttl: verdict.ttl,
    age: verdict.age,
    ...(verdict.swr === s.rules.swr ? {} : { swr: verdict.swr }),
    ...(verdict.sie === s.rules.sie ? {} : { sie: verdict.sie }),
    ...(verdict.revalidate === undefined ? {} : { revalidate: verdict.revalidate }),
  };
  // The handler ran for this HEAD: its tags are those of the response it describes.
  let tags: readonly string[] = x.tags;
  try {
    const fromOption = typeof s.tags === "function" ? await s.tags(x.c) : (s.tags ?? []);
    tags = [...fromOption, ...x.tags];
  } catch (error) {
    s.onError(error);
    return drop(x, key);
  }
  await put(x, key, next, Math.max(1, verdict.ttl), tags);
}
