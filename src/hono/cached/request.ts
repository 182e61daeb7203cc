/**
 * The flow of one request through `cached`, top to bottom: pass it on (method, credentials,
 * `no-store`), make its key, then look up (HEAD, `only-if-cached`) or load: the URL's key,
 * and the variant's when the URL's responses vary.
 * @module
 */

import { checkTags } from "../../envelope.js";
import { InvalidOptionError } from "../../errors.js";
import type { LoaderContext } from "../../types.js";
import { forward, ran, respond, serve } from "./answer.js";
import { type Exchange, loadOptions } from "./exchange.js";
import { fill, type Load, put } from "./fill.js";
import { usable } from "./freshness.js";
import { type RequestPolicy, requestPolicy } from "./http.js";
import { invalidateAfter, updateFromHead } from "./invalidate.js";
import { baseKey, headerNames, normalizeUrl, variantKey } from "./key.js";
import { isStoredResponse, isVaryRecord, type Stored, type StoredResponse } from "./snapshot.js";

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
  if (!s.methods.has(method)) {
    await forward(x, { fwd: "method" });
    return invalidateAfter(x);
  }
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
  if (method === "HEAD" || policy.onlyIfCached) return lookup(x, base, urlKey, policy);
  return loadAndAnswer(x, base, urlKey, policy);
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

/**
 * Revalidates a stored response that getOrSet handed over but that may not answer this
 * request as it is (it asked for fresher, or the response forbids serving it stale): the
 * same loader as a load's, run here with that response as its stale value, and what it
 * returns written with a plain `set`.
 */
async function revalidate(x: Exchange, l: Load, stale: StoredResponse) {
  let ttl = x.s.ttl;
  const tags: string[] = [];
  let noStore = false;
  const ctx: LoaderContext<Stored> = {
    key: l.key,
    stale,
    background: false,
    signal: new AbortController().signal,
    tag: (...more) => {
      tags.push(...more);
    },
    setTtl: (ms) => {
      ttl = ms;
    },
    noStore: () => {
      noStore = true;
    },
  };
  x.c.set("cachedRun", undefined);
  try {
    const value = await fill(x, l)(l.key, ctx);
    if (!noStore) await put(x, l.key, value, ttl, tags);
    return { value, failed: false, error: undefined, run: x.c.get("cachedRun") };
  } catch (error) {
    const run = x.c.get("cachedRun");
    // The handler failed and the stale response may be served (stale-if-error).
    if (run?.kind === "failed") return { value: stale, failed: false, error: undefined, run };
    return { value: undefined, failed: true, error, run };
  }
}

/** Which of getOrSet's ways handed over a stale value: its SWR window, or grace. */
function pathOf(x: Exchange, entry: StoredResponse): "swr" | "grace" {
  return x.s.now() - (entry.storedAt + entry.ttl) < x.s.swrWindow ? "swr" : "grace";
}

/** GET: the URL's key, then (when its responses vary) the variant's key, loading on a miss. */
async function loadAndAnswer(
  x: Exchange,
  base: string,
  urlKey: string,
  policy: RequestPolicy,
): Promise<void> {
  const s = x.s;
  const forced = policy.revalidate;
  const at = (key: string, expected: readonly string[] | null): Load => ({
    key,
    expected,
    base,
    urlKey,
    force: forced,
    policy,
  });
  let key = urlKey;
  let expected: readonly string[] | null = null;
  let fwd: "miss" | "vary-miss" | "request" | "stale" = forced ? "request" : "miss";
  let r = await load(x, at(key, null));
  if (r.run === undefined && !r.failed && isVaryRecord(r.value)) {
    // The URL's responses vary: follow its record with this request's header values.
    expected = r.value.names;
    key = await variantKey(base, headerNames([...s.vary, ...expected]), x.c.req.raw.headers);
    if (!forced) fwd = "vary-miss";
    r = await load(x, at(key, expected));
  }
  let staleDetail: string | undefined;
  if (r.run === undefined && !r.failed && isStoredResponse(r.value)) {
    const use = usable(r.value, s.now(), policy, s.rules, pathOf(x, r.value));
    if (use.ok) staleDetail = use.stale;
    else {
      // Not fresh enough for this request, or not to be served stale: revalidated now.
      if (!forced && policy.maxAge === undefined && policy.minFresh === undefined) fwd = "stale";
      else fwd = "request";
      r = await revalidate(x, at(key, expected), r.value);
    }
  }
  if (r.run !== undefined) {
    const stale = !r.failed && isStoredResponse(r.value) ? r.value : undefined;
    return ran(x, r.run, stale, fwd);
  }
  if (r.failed) {
    s.onError(r.error);
    return forward(x, { fwd, detail: "cache-error" });
  }
  if (isStoredResponse(r.value)) return serve(x, r.value, key, undefined, staleDetail);
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

/**
 * HEAD and only-if-cached: answer from the cache, never load. A look through getOrSet whose
 * loader only hands over the stored response, stale or not, and never runs the chain.
 */
async function lookup(
  x: Exchange,
  base: string,
  urlKey: string,
  policy: RequestPolicy,
): Promise<void> {
  const s = x.s;
  const peek = (key: string, expected: readonly string[] | null): Load => ({
    key,
    expected,
    base,
    urlKey,
    force: false,
    peek: true,
  });
  let key = urlKey;
  let value: unknown;
  let varied = false;
  try {
    value = await s.cache.getOrSet(key, fill(x, peek(key, null)), loadOptions(x));
    if (isVaryRecord(value)) {
      varied = true;
      key = await variantKey(base, headerNames([...s.vary, ...value.names]), x.c.req.raw.headers);
      value = await s.cache.getOrSet(key, fill(x, peek(key, value.names)), loadOptions(x));
    }
  } catch (error) {
    s.onError(error);
    value = undefined;
  }
  const entry = isStoredResponse(value) ? value : undefined;
  if (entry !== undefined) {
    const use = usable(entry, s.now(), policy, s.rules, "none");
    if (use.ok) return serve(x, entry, key, undefined, use.stale);
  }
  if (policy.onlyIfCached) {
    return respond(x, new Response(null, { status: 504 }), { detail: "only-if-cached" });
  }
  await forward(x, { fwd: entry !== undefined ? "stale" : varied ? "vary-miss" : "miss" });
  // A HEAD's 200 freshens (or invalidates) the stored GET response (RFC 9111 4.3.5).
  if (entry !== undefined) await updateFromHead(x, key, entry);
}
