/**
 * The admin's entry routes beyond one key: listing keys by prefix (`GET /keys`), and finding
 * the entry `cached()` keeps for a URL (`GET /entries/by-url`) by making its key the way the
 * middleware does, following the URL's vary record to the variant the given headers select.
 * @module
 */

import type { Context } from "hono";
import type { Cache } from "../../types.js";
import { baseKey, headerNames, type KeyScope, resourceOf, variantKey } from "../cached/key.js";
import { isVaryRecord } from "../cached/snapshot.js";
import { problem, renderInspect } from "./http.js";

/** `GET /keys?prefix=&cursor=&limit=`: one page of the namespace's keys. */
export async function listKeysRoute(c: Context, id: string, cache: Cache) {
  const limit = c.req.query("limit");
  const page = await cache.keys({
    prefix: c.req.query("prefix") ?? "",
    cursor: c.req.query("cursor") ?? "",
    // Not a number: refused by the cache as an invalid option (400).
    ...(limit === undefined ? {} : { limit: limit === "" ? Number.NaN : Number(limit) }),
  });
  return c.json({ ns: id, keys: page.keys, cursor: page.cursor });
}

/** The request a `by-url` lookup stands for: its URL, key scope and header values. */
function lookupOf(c: Context) {
  const url = c.req.query("url");
  const scope = (c.req.query("key") ?? "url") as KeyScope;
  if (scope !== "url" && scope !== "path") {
    return { error: 'key must be "url" or "path", as the cached() option' };
  }
  let parsed: URL | undefined;
  try {
    // A path alone is enough when keys leave the origin out.
    parsed =
      url === undefined ? undefined : new URL(url, scope === "path" ? "http://x" : undefined);
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    return { error: "url must be an absolute http(s) URL (with key=path, a path will do)" };
  }
  const headers = new Headers();
  for (const pair of c.req.queries("header") ?? []) {
    const colon = pair.indexOf(":");
    try {
      if (colon < 1) throw new TypeError("no name");
      headers.append(pair.slice(0, colon).trim(), pair.slice(colon + 1).trim());
    } catch {
      return { error: "header must be name:value" };
    }
  }
  const vary = headerNames((c.req.query("vary") ?? "").split(","));
  return { url: parsed.href, scope, headers, vary };
}

/**
 * `GET /entries/by-url?url=&key=url|path&vary=a,b&header=name:value`: the entry `cached()`
 * (with the same `key` and `vary` options) keeps for a GET of `url`, sent with these headers.
 */
export async function entryByUrlRoute(c: Context, cache: Cache) {
  const lookup = lookupOf(c);
  if ("error" in lookup) return problem(c, 400, "invalid_query", lookup.error as string);
  const resource = resourceOf(lookup.url, lookup.scope);
  const base = await baseKey("GET", resource);
  const urlKey = await variantKey(base, lookup.vary, lookup.headers);
  const found = await cache.inspect(urlKey);
  if (found === undefined) {
    return c.json({ error: "not_found", message: "no entry for that URL", resource }, 404);
  }
  if (!isVaryRecord(found.value)) return c.json({ resource, ...renderInspect(found) });
  // The URL's responses vary: the variant these header values select.
  const varies = [...found.value.names];
  const key = await variantKey(base, headerNames([...lookup.vary, ...varies]), lookup.headers);
  const variant = await cache.inspect(key);
  if (variant === undefined) {
    const message = "the URL's responses vary; none is stored for these header values";
    return c.json({ error: "not_found", message, resource, varyKey: urlKey, varies }, 404);
  }
  return c.json({ resource, varyKey: urlKey, varies, ...renderInspect(variant) });
}
