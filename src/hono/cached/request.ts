/**
 * The flow of one request through `cached`, top to bottom: pass it on (method, credentials,
 * `no-store`), make its key, then look up (HEAD, `only-if-cached`) or load: the URL's key,
 * and the variant's when the URL's responses vary.
 * @module
 */

import { checkTags } from "../../envelope.js";
import { InvalidOptionError } from "../../errors.js";
import { forward, ran, respond, serve } from "./answer.js";
import { type Exchange, loadOptions } from "./exchange.js";
import { fill, type Load } from "./fill.js";
import { requestPolicy } from "./http.js";
import { baseKey, headerNames, normalizeUrl, variantKey } from "./key.js";
import { isStoredResponse, isVaryRecord } from "./snapshot.js";

/** Request headers that carry credentials: their requests bypass unless keyed on them. */
const CREDENTIALS = ["authorization", "cookie"];

/** Handles one request. */
export async function handle(x: Exchange): Promise<void> {
  const { c, s } = x;
  c.set("cache", s.cache);
  c.set("cacheTag", (...tags: string[]) => {
    checkTags(tags);
    x.tags.push(...tags);
  });
  const method = c.req.method;
  if (!s.methods.has(method)) return forward(x, { fwd: "method" });
  const headers = c.req.raw.headers;
  if (CREDENTIALS.some((name) => headers.has(name) && !s.vary.includes(name))) {
    return forward(x, { fwd: "bypass", detail: "credentials" });
  }
  const policy = requestPolicy(headers);
  if (policy.noStore) return forward(x, { fwd: "request", detail: "no-store" });
  let resource: string;
  if (s.key === undefined) resource = normalizeUrl(c.req.url);
  else {
    const custom: unknown = await s.key(c);
    if (typeof custom !== "string" || custom === "") {
      throw new InvalidOptionError("cached: the key function must return a non-empty string");
    }
    resource = custom;
  }
  const base = await baseKey(method === "HEAD" ? "GET" : method, resource);
  const urlKey = await variantKey(base, s.vary, headers);
  if (method === "HEAD" || policy.onlyIfCached) {
    return lookup(x, base, urlKey, policy.onlyIfCached);
  }
  if (policy.revalidate) {
    try {
      await s.cache.delete(urlKey);
    } catch (error) {
      s.onError(error);
    }
  }
  return loadAndAnswer(x, base, urlKey, policy.revalidate);
}

/** What one load answered, and what this request's own run of the handler came to in it. */
async function load(x: Exchange, l: Load) {
  x.c.set("cachedRun", undefined);
  try {
    const value = await x.s.cache.getOrSet(l.key, fill(x, l), loadOptions(x));
    return { value, failed: false, error: undefined, run: x.c.get("cachedRun") };
  } catch (error) {
    return { value: undefined, failed: true, error, run: x.c.get("cachedRun") };
  }
}

/** GET: the URL's key, then (when its responses vary) the variant's key, loading on a miss. */
async function loadAndAnswer(
  x: Exchange,
  base: string,
  urlKey: string,
  revalidate: boolean,
): Promise<void> {
  const s = x.s;
  const at = (key: string, expected: readonly string[] | null): Load => ({
    key,
    expected,
    base,
    urlKey,
    force: revalidate,
  });
  let key = urlKey;
  let fwd: "miss" | "vary-miss" | "request" = revalidate ? "request" : "miss";
  let r = await load(x, at(key, null));
  if (r.run === undefined && !r.failed && isVaryRecord(r.value)) {
    // The URL's responses vary: follow its record with this request's header values.
    const names = r.value.names;
    key = await variantKey(base, headerNames([...s.vary, ...names]), x.c.req.raw.headers);
    if (!revalidate) fwd = "vary-miss";
    r = await load(x, at(key, names));
  }
  if (r.run !== undefined) {
    const stale = !r.failed && isStoredResponse(r.value) ? r.value : undefined;
    return ran(x, r.run, stale, fwd);
  }
  if (r.failed) {
    s.onError(r.error);
    return forward(x, { fwd, detail: "cache-error" });
  }
  if (isStoredResponse(r.value)) return serve(x, r.value, key);
  // Not a value this version of the middleware wrote (another release's, say): drop it, so
  // the next request loads afresh, and answer this one from the handler. Not through
  // getOrSet again: when the value was stale, the refresh getOrSet started runs this
  // request's loader, which waits for this request to finish; joining it would wait for ever.
  try {
    await s.cache.delete(key);
  } catch (error) {
    s.onError(error);
  }
  return forward(x, { fwd, detail: "unreadable" });
}

/** HEAD and only-if-cached: answer from the cache, never load. */
async function lookup(
  x: Exchange,
  base: string,
  urlKey: string,
  onlyIfCached: boolean,
): Promise<void> {
  const s = x.s;
  let key = urlKey;
  let value: unknown;
  let varied = false;
  try {
    value = await s.cache.get(key);
    if (isVaryRecord(value)) {
      varied = true;
      key = await variantKey(base, headerNames([...s.vary, ...value.names]), x.c.req.raw.headers);
      value = await s.cache.get(key);
    }
  } catch (error) {
    s.onError(error);
    value = undefined;
  }
  if (isStoredResponse(value)) return serve(x, value, key);
  if (!onlyIfCached) return forward(x, { fwd: varied ? "vary-miss" : "miss" });
  return respond(x, new Response(null, { status: 504 }), { detail: "only-if-cached" });
}
