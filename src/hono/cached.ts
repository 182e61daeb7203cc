/**
 * `cached(options)`: a Hono middleware that caches whole responses (status, headers, body
 * bytes) in an edgecache {@link Cache} and replays them, following HTTP caching rules
 * (RFC 9111) and reporting what it did in a `Cache-Status` header (RFC 9211).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { cached } from "edgecache/hono";
 *
 * const app = new Hono();
 * app.get(
 *   "/products/*",
 *   cached({ cache: cache.namespace("http"), ttl: 60_000, staleWhileRevalidate: 300_000, tags: () => ["products"] }),
 *   (c) => {
 *     c.var.cacheTag(`product:${c.req.path.split("/")[2]}`);
 *     return c.json(loadProduct(c.req.path));
 *   },
 * );
 * // later, on any instance:
 * await cache.namespace("http").invalidateTag("products");
 * ```
 * @module
 */

import type { Context, MiddlewareHandler, Next } from "hono";
import { checkTags, checkTtl } from "../entries.js";
import { EdgeCacheError, InvalidOptionError } from "../errors.js";
import { consoleLogger, GuardedLogger } from "../logger.js";
import type { Cache, GetOrSetOptions, LoaderContext } from "../types.js";
import {
  cacheStatus,
  judgeResponse,
  NOT_MODIFIED_HEADERS,
  notModified,
  requestPolicy,
  type StatusParams,
  type StoreRules,
} from "./cached-http.js";
import {
  isStoredResponse,
  isVaryRecord,
  nullBody,
  PASSED,
  readBody,
  replay,
  type Stored,
  type StoredResponse,
  storedHeaders,
  toBase64,
  type VaryRecord,
} from "./cached-snapshot.js";
import { baseKey, headerNames, normalizeUrl, variantKey } from "./key.js";

/** Options of {@link cached}. Validated when `cached` is called (`InvalidOptionError`). */
export interface CachedOptions {
  /**
   * The cache responses are stored in; typically a namespace of its own, e.g.
   * `cache.namespace("http")`, so `clear()` and tags there touch responses only. Handlers
   * find it as `c.var.cache`.
   */
  cache: Cache;
  /**
   * How long a stored response is fresh, in ms, when the response itself does not say (see
   * `honorMaxAge`).
   * @default the namespace's `ttl` when `cache` is a namespace that sets one, else 60_000
   */
  ttl?: number;
  /**
   * For this many ms after a response goes stale, serve it at once (`Cache-Status: ...; hit;
   * ttl=<negative>; detail=stale-while-revalidate`) and refresh it in the background, once
   * per key (with `lock`, once across instances), through `c.executionCtx.waitUntil` where
   * there is one (Workers), in-process otherwise. Passed to `getOrSet`.
   *
   * The refresh runs the rest of the chain (the middleware after this one and the handler) on
   * this request's context, after the stale response has been returned and the middleware
   * before this one have had a macrotask to finish with it; meanwhile the stale response is
   * detached from the context and put back afterwards. Middleware placed before `cached`
   * that still works on `c.res` later than that (after a slow `await` following `next()`)
   * should not be combined with this option.
   * @default the namespace's, else 0
   */
  staleWhileRevalidate?: number;
  /**
   * Fail-safe: for this many ms after a response goes stale, keep it, and serve it when the
   * handler fails (throws or answers 5xx): `Cache-Status: ...; fwd=stale; fwd-status=500;
   * detail=stale-if-error`. Passed to `getOrSet`.
   * @default the namespace's, else 0
   */
  grace?: number;
  /**
   * Coalesce misses of one response across instances with a lease in L2, so the handler runs
   * once for all of them (on one instance, concurrent misses always share one run). Passed
   * to `getOrSet`.
   * @default false
   */
  lock?: boolean | { ttl?: number; wait?: number };
  /**
   * Tags of every response stored through this middleware, for `cache.invalidateTag(tag)`: an
   * array, or a function of the request's context (called on misses only). Handlers add
   * more with `c.var.cacheTag(...)`. Non-empty strings of at most 256 characters, at most 64
   * per response. On a cache whose store cannot carry tags (a sharded one), a tagged
   * response is served but not stored (`detail=tag-error`), and the refusal is reported.
   */
  tags?: readonly string[] | ((c: Context) => readonly string[] | Promise<readonly string[]>);
  /**
   * Request methods answered from the cache. `HEAD` is answered from the `GET` response
   * (without its body) and never stores one. Other methods are passed through
   * (`Cache-Status: ...; fwd=method`). Methods besides GET and HEAD need a `key` function,
   * since a request body is not part of the default key.
   * @default ["GET", "HEAD"]
   */
  methods?: readonly string[];
  /**
   * Response statuses that may be stored; responses with other statuses pass through.
   * @default [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
   */
  statuses?: readonly number[];
  /**
   * Request headers every key varies on, besides those a response names in its `Vary`.
   * Their values enter keys only as a SHA-256 hash. A request with `Authorization` or
   * `Cookie` bypasses the cache unless that header is listed here; listed, it makes one
   * entry per distinct credential.
   * @default []
   */
  vary?: readonly string[];
  /**
   * The request's resource in the key, instead of the normalized URL (scheme, host, path as
   * sent, query parameters decoded, re-encoded and sorted by name). Whatever the function
   * leaves out, responses must not depend on. The method, the `vary` headers and the
   * response's `Vary` headers are always added.
   * @default the normalized URL
   */
  key?: (c: Context) => string | Promise<string>;
  /**
   * Responses with larger bodies are passed through (streamed, not buffered) and not stored.
   * Up to this size a body is read whole before the response goes out, so routes that
   * stream slowly or never finish (long polling, NDJSON feeds) do not belong behind `cached`.
   * Stored bodies are base64 in the entry, so keep `maxBodyBytes * 4 / 3` plus the headers
   * under the cache's `maxValueBytes`.
   * @default 524_288 (512 KiB)
   */
  maxBodyBytes?: number;
  /**
   * Use the response's own freshness as its TTL: `s-maxage`, else `max-age` (less its `Age`),
   * else `Expires` minus `Date`. A response whose freshness is 0 is not stored.
   * @default true
   */
  honorMaxAge?: boolean;
  /**
   * This cache's name in `Cache-Status` (an RFC 8941 token).
   * @default "edgecache"
   */
  name?: string;
  /**
   * Clock in ms, for `Age` and the `ttl` of `Cache-Status`; tests inject a fake one (the
   * same as the cache's).
   * @default Date.now
   */
  now?: () => number;
  /**
   * Receives the errors the middleware absorbs: a failed cache read or write (the request is
   * then served by the handler), an invalid key or tag. Never given cached values.
   * @default log a warning with the error's code and message
   */
  onError?: (error: unknown) => void;
}

/** What `cached` puts on `c.var` for the handlers after it. */
export interface CachedVariables {
  /** The cache of the `cache` option. */
  cache: Cache;
  /**
   * Adds tags to the response being stored (besides the `tags` option), for
   * `cache.invalidateTag`. Calls where nothing is stored (a hit, a bypass) are ignored.
   */
  cacheTag: (...tags: string[]) => void;
}

/**
 * The Hono environment `cached` provides: `new Hono<CachedEnv>()` (or intersect it with
 * your own) types `c.var.cache` and `c.var.cacheTag` everywhere; handlers registered after
 * `cached` on a route get them without it.
 */
export interface CachedEnv {
  Variables: CachedVariables;
}

const DEFAULT_STATUSES = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
const DEFAULT_TTL = 60_000;
const DEFAULT_MAX_BODY = 524_288;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*$/;
/** Request headers that carry credentials: their requests bypass unless keyed on them. */
const CREDENTIALS = ["authorization", "cookie"];

interface Settings {
  readonly cache: Cache;
  readonly ttl: number;
  readonly staleWhileRevalidate: number | undefined;
  readonly grace: number | undefined;
  /** The stale-while-revalidate window in effect (ours or the namespace's). */
  readonly swrWindow: number;
  readonly lock: GetOrSetOptions["lock"];
  readonly tags: CachedOptions["tags"];
  readonly methods: ReadonlySet<string>;
  readonly vary: readonly string[];
  readonly key: CachedOptions["key"];
  readonly maxBodyBytes: number;
  readonly rules: StoreRules;
  readonly name: string;
  readonly now: () => number;
  readonly onError: (error: unknown) => void;
}

function fail(message: string): never {
  throw new InvalidOptionError(`cached: ${message}`);
}

function ms(name: string, value: unknown, positive: boolean): number | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value !== "number" ||
    !Number.isFinite(value) ||
    value < 0 ||
    (positive && value === 0)
  ) {
    fail(`${name} must be a finite number of ms${positive ? " greater than 0" : " >= 0"}`);
  }
  return value;
}

/** What a namespace (a `Group`) sets as its defaults, when `cache` is one. */
function namespaceDefault(cache: Cache, name: "ttl" | "staleWhileRevalidate" | "grace") {
  const options = (cache as { options?: unknown }).options;
  if (typeof options !== "object" || options === null) return undefined;
  const value = (options as Record<string, unknown>)[name];
  return typeof value === "number" ? value : undefined;
}

/**
 * The default `onError`: a console line per error code per minute at most (an L2 outage
 * must not write a line per request), naming an unexpected error's kind only.
 */
function defaultOnError(): (error: unknown) => void {
  const log = new GuardedLogger(consoleLogger("warn"), Date.now, 60_000);
  return (error) => {
    if (error instanceof EdgeCacheError) {
      log.warn(`edgecache/hono: ${error.code}: ${error.message}`, { code: error.code });
    } else {
      const name = error instanceof Error ? error.name : typeof error;
      log.warn(`edgecache/hono: an error was absorbed (${name})`, { code: "unexpected" });
    }
  };
}

function resolve(options: CachedOptions): Settings {
  if (typeof options !== "object" || options === null) fail("needs an options object");
  const { cache } = options;
  if (
    typeof cache !== "object" ||
    cache === null ||
    typeof cache.getOrSet !== "function" ||
    typeof cache.get !== "function" ||
    typeof cache.set !== "function" ||
    typeof cache.delete !== "function"
  ) {
    fail("cache must be an edgecache Cache (createCache or cache.namespace)");
  }
  const ttl = options.ttl === undefined ? undefined : checkTtl(options.ttl);
  const staleWhileRevalidate = ms("staleWhileRevalidate", options.staleWhileRevalidate, false);
  const grace = ms("grace", options.grace, false);
  const { lock } = options;
  if (lock !== undefined && typeof lock !== "boolean") {
    if (typeof lock !== "object" || lock === null) fail("lock must be a boolean or { ttl, wait }");
    ms("lock.ttl", lock.ttl, true);
    ms("lock.wait", lock.wait, false);
  }
  const { tags } = options;
  if (typeof tags !== "function") {
    try {
      checkTags(tags);
    } catch {
      fail(
        "tags must be an array of non-empty strings (at most 256 characters, 64 tags) or a function",
      );
    }
  }
  const methods = options.methods ?? ["GET", "HEAD"];
  if (!Array.isArray(methods) || methods.length === 0) fail("methods must be a non-empty array");
  const upper = methods.map((m: unknown) => {
    if (typeof m !== "string" || !TOKEN.test(m)) fail("methods must be HTTP method names");
    return m.toUpperCase();
  });
  if (options.key !== undefined && typeof options.key !== "function") {
    fail("key must be a function of the context");
  }
  if (options.key === undefined && upper.some((m) => m !== "GET" && m !== "HEAD")) {
    fail(
      "methods other than GET and HEAD need a key function (the body is not in the default key)",
    );
  }
  const statuses = options.statuses ?? DEFAULT_STATUSES;
  if (
    !Array.isArray(statuses) ||
    statuses.length === 0 ||
    !statuses.every((s) => Number.isInteger(s) && s >= 200 && s <= 599)
  ) {
    fail("statuses must be a non-empty array of status codes from 200 to 599");
  }
  const vary = options.vary ?? [];
  if (
    !Array.isArray(vary) ||
    !vary.every((h) => typeof h === "string" && TOKEN.test(h) && h !== "*")
  ) {
    fail("vary must be an array of request header names");
  }
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
  if (typeof maxBodyBytes !== "number" || !Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) {
    fail("maxBodyBytes must be a whole number of bytes >= 0");
  }
  const honorMaxAge = options.honorMaxAge ?? true;
  if (typeof honorMaxAge !== "boolean") fail("honorMaxAge must be a boolean");
  const name = options.name ?? "edgecache";
  if (typeof name !== "string" || !SF_TOKEN.test(name)) fail("name must be a token (RFC 8941)");
  if (options.now !== undefined && typeof options.now !== "function")
    fail("now must be a function");
  if (options.onError !== undefined && typeof options.onError !== "function") {
    fail("onError must be a function");
  }
  const swrWindow = staleWhileRevalidate ?? namespaceDefault(cache, "staleWhileRevalidate") ?? 0;
  const graceWindow = grace ?? namespaceDefault(cache, "grace") ?? 0;
  return {
    cache,
    ttl: ttl ?? namespaceDefault(cache, "ttl") ?? DEFAULT_TTL,
    staleWhileRevalidate,
    grace,
    swrWindow,
    lock,
    tags,
    methods: new Set(upper),
    vary: headerNames(vary),
    key: options.key,
    maxBodyBytes,
    rules: {
      statuses: new Set(statuses),
      honorMaxAge,
      ttl: ttl ?? namespaceDefault(cache, "ttl") ?? DEFAULT_TTL,
      servesStale: swrWindow > 0 || graceWindow > 0,
    },
    name,
    now: options.now ?? Date.now,
    onError: options.onError ?? defaultOnError(),
  };
}

/**
 * Which loads of this middleware finished lately (key, response id), so a request that got a
 * response another request's load produced while it waited can say it was collapsed.
 */
class RecentLoads {
  #seq = 0;
  readonly #loads = new Map<string, { id: string; seq: number }>();

  get seq(): number {
    return this.#seq;
  }

  note(key: string, id: string): void {
    this.#loads.delete(key);
    this.#loads.set(key, { id, seq: ++this.#seq });
    if (this.#loads.size > 1_000) {
      const oldest = this.#loads.keys().next();
      if (!oldest.done) this.#loads.delete(oldest.value);
    }
  }

  /** Whether the response `id` of `key` comes from a load that ended after `since`. */
  collapsed(key: string, id: string, since: number): boolean {
    const load = this.#loads.get(key);
    return load !== undefined && load.id === id && load.seq > since;
  }
}

/** What this request's own run of the handler (inside a load) came to. */
type Run =
  /** Stored (or, when `stored` is false, the write failed); `response` is rebuilt from the bytes. */
  | { kind: "stored"; response: Response; entry: StoredResponse; stored: boolean }
  /** Not storable: `response` passes through. */
  | { kind: "pass"; response: Response; detail: string }
  /** Failed (5xx or an error) while a stale response was at hand: served from grace. */
  | { kind: "failed"; response: Response }
  /** The chain threw something Hono could not turn into a response: rethrown. */
  | { kind: "threw"; error: unknown };

/** One `getOrSet` call of a request. */
interface Step {
  run: Run | undefined;
}

interface StepResult {
  value: unknown;
  failure: { error: unknown } | undefined;
  run: Run | undefined;
}

const macrotask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Thrown by a load whose handler failed (an error, or 5xx) while a stale response is at hand,
 * so that `getOrSet` serves that response (grace). Carries the status only.
 */
class HandlerFailed extends Error {
  constructor(status: number) {
    super(`the handler failed (status ${status}); a stale response may be served`);
    this.name = "HandlerFailed";
  }
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // Already consumed or errored: nothing to release.
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** `ctx.waitUntil` of the runtime, when there is one (Hono throws without one). */
function waitUntilOf(c: Context): ((promise: Promise<unknown>) => void) | undefined {
  let ctx: { waitUntil?: unknown };
  try {
    ctx = c.executionCtx;
  } catch {
    return undefined;
  }
  if (typeof ctx?.waitUntil !== "function") return undefined;
  const waitUntil = ctx.waitUntil as (promise: Promise<unknown>) => void;
  return (promise) => waitUntil.call(ctx, promise);
}

/** Handles one request through the middleware. */
class CachedRequest {
  readonly #s: Settings;
  readonly #recent: RecentLoads;
  readonly #c: Context<CachedEnv>;
  readonly #next: Next;
  /** Tags the handler added with `c.var.cacheTag`. */
  readonly #tags: string[] = [];
  /** The rest of the chain has run (or is running): it must not run twice. */
  #nextUsed = false;
  readonly #since: number;
  #k0 = "";
  #finish!: () => void;
  /** Settles when the middleware has returned this request's response. */
  readonly finished = new Promise<void>((resolve) => {
    this.#finish = resolve;
  });

  constructor(s: Settings, recent: RecentLoads, c: Context<CachedEnv>, next: Next) {
    this.#s = s;
    this.#recent = recent;
    this.#c = c;
    this.#next = next;
    this.#since = recent.seq;
  }

  finish(): void {
    this.#finish();
  }

  async handle(): Promise<void> {
    const c = this.#c;
    const s = this.#s;
    c.set("cache", s.cache);
    c.set("cacheTag", (...tags: string[]) => {
      checkTags(tags);
      this.#tags.push(...tags);
    });
    const method = c.req.method;
    if (!s.methods.has(method)) return this.#forward({ fwd: "method" });
    const headers = c.req.raw.headers;
    if (CREDENTIALS.some((name) => headers.has(name) && !s.vary.includes(name))) {
      return this.#forward({ fwd: "bypass", detail: "credentials" });
    }
    const policy = requestPolicy(headers);
    if (policy.noStore) return this.#forward({ fwd: "request", detail: "no-store" });
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
    this.#k0 = await variantKey(base, s.vary, headers);
    if (method === "HEAD" || policy.onlyIfCached) return this.#lookup(base, policy.onlyIfCached);
    if (policy.revalidate) {
      try {
        await s.cache.delete(this.#k0);
      } catch (error) {
        s.onError(error);
      }
    }
    return this.#load(base, policy.revalidate);
  }

  /** The getOrSet options of this request. */
  #options(): GetOrSetOptions {
    const s = this.#s;
    const waitUntil = waitUntilOf(this.#c);
    return {
      ttl: s.ttl,
      ...(s.staleWhileRevalidate === undefined
        ? {}
        : { staleWhileRevalidate: s.staleWhileRevalidate }),
      ...(s.grace === undefined ? {} : { grace: s.grace }),
      ...(s.lock === undefined ? {} : { lock: s.lock }),
      ...(waitUntil === undefined ? {} : { waitUntil }),
    };
  }

  /** GET: the URL's key, then (when its responses vary) the variant's key, loading on a miss. */
  async #load(base: string, revalidate: boolean): Promise<void> {
    const s = this.#s;
    let key = this.#k0;
    let expected: readonly string[] | null = null;
    let fwd: "miss" | "vary-miss" | "request" = revalidate ? "request" : "miss";
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await this.#step(key, expected, base, revalidate);
      if (r.run !== undefined) return this.#ran(r, fwd);
      if (r.failure !== undefined) {
        s.onError(r.failure.error);
        return this.#forward({ fwd, detail: "cache-error" });
      }
      if (isStoredResponse(r.value)) return this.#serve(r.value, key);
      if (isVaryRecord(r.value) && expected === null) {
        expected = r.value.names;
        key = await variantKey(
          base,
          headerNames([...s.vary, ...expected]),
          this.#c.req.raw.headers,
        );
        if (!revalidate) fwd = "vary-miss";
        continue;
      }
      // Not a value this version of the middleware wrote (another release's, say): drop it,
      // so the next request loads afresh, and answer this one from the handler. Not through
      // getOrSet again: when the value was stale, the refresh getOrSet started runs this
      // request's loader, which waits for this request to finish; joining it would wait
      // for ever.
      try {
        await s.cache.delete(key);
      } catch (error) {
        s.onError(error);
      }
      break;
    }
    return this.#forward({ fwd, detail: "unreadable" });
  }

  async #step(
    key: string,
    expected: readonly string[] | null,
    base: string,
    force: boolean,
  ): Promise<StepResult> {
    const step: Step = { run: undefined };
    let value: unknown;
    let failure: StepResult["failure"];
    try {
      value = await this.#s.cache.getOrSet<Stored>(
        key,
        (_key, ctx) => this.#loader(key, ctx, step, expected, base, force),
        this.#options(),
      );
    } catch (error) {
      failure = { error };
    }
    return { value, failure, run: step.run };
  }

  /**
   * The loader: runs the rest of the chain and decides what becomes of its response. A
   * background refresh (stale-while-revalidate) waits until this request's stale response
   * is handed over and runs the chain detached from it.
   */
  async #loader(
    key: string,
    ctx: LoaderContext<Stored>,
    step: Step,
    expected: readonly string[] | null,
    base: string,
    force: boolean,
  ): Promise<Stored> {
    const s = this.#s;
    const stale = ctx.stale;
    // A URL's vary record is renewed as it is: the variant's own load checks it.
    if (expected === null && isVaryRecord(stale)) {
      ctx.setTtl(s.ttl);
      return stale;
    }
    const background = ctx.background;
    if (background) {
      // A refresh may start before getOrSet answers this request with the stale response:
      // wait until that response is handed over, then let the middleware before this one
      // have a macrotask to finish with it (two turns: their timer may be set after ours),
      // then run the chain detached from it.
      await this.finished;
      await macrotask();
      await macrotask();
    }
    if (this.#nextUsed) {
      ctx.noStore();
      return PASSED;
    }
    this.#nextUsed = true;
    let res: Response;
    let error: unknown;
    if (background) ({ res, error } = await this.#detached());
    else {
      try {
        await this.#next();
      } catch (thrown) {
        step.run = { kind: "threw", error: thrown };
        throw thrown;
      }
      res = this.#c.res;
      error = this.#c.error;
    }
    const record = (run: Run) => {
      if (!background) step.run = run;
      else if (run.kind === "pass" || run.kind === "failed") void discard(run.response);
    };
    // Bad tags, or tags the cache cannot carry: the response is served, and not stored.
    const refuseTags = (thrown: unknown, response: Response): Stored => {
      s.onError(thrown);
      ctx.noStore();
      record({ kind: "pass", response, detail: "tag-error" });
      return PASSED;
    };
    const verdict = judgeResponse(res, error !== undefined, s.rules);
    if (!verdict.ok) {
      if ((error !== undefined || res.status >= 500) && isStoredResponse(stale)) {
        record({ kind: "failed", response: res });
        throw new HandlerFailed(res.status);
      }
      ctx.noStore();
      record({ kind: "pass", response: res, detail: verdict.detail });
      return PASSED;
    }
    let tags: readonly string[];
    try {
      const fromOption = typeof s.tags === "function" ? await s.tags(this.#c) : (s.tags ?? []);
      tags = checkTags([...fromOption, ...this.#tags]) ?? [];
    } catch (thrown) {
      return refuseTags(thrown, res);
    }
    let body: Awaited<ReturnType<typeof readBody>>;
    try {
      body = await readBody(res, s.maxBodyBytes);
    } catch (thrown) {
      // The body failed midway: nothing whole to store or to pass on; Hono answers 500.
      if (!background) step.run = { kind: "threw", error: thrown };
      throw thrown;
    }
    if ("over" in body) {
      ctx.noStore();
      record({ kind: "pass", response: body.over, detail: "too-large" });
      return PASSED;
    }
    const entry: StoredResponse = {
      kind: "response",
      v: 1,
      id: crypto.randomUUID(),
      status: res.status,
      headers: storedHeaders(res.headers, body.bytes.byteLength),
      body: toBase64(body.bytes),
      storedAt: s.now(),
      ttl: verdict.ttl,
      age: verdict.age,
      vary: verdict.vary,
    };
    const response = new Response(nullBody(res.status) ? null : body.bytes, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
    // Names the response varies on beyond the `vary` option, which every key has already.
    const extra = verdict.vary.filter((name) => !s.vary.includes(name));
    if (sameNames(extra, expected ?? [])) {
      ctx.setTtl(verdict.ttl);
      if (tags.length > 0) {
        try {
          ctx.tag(...tags);
        } catch (thrown) {
          // The cache cannot carry tags (a sharded store): served, not stored.
          return refuseTags(thrown, response);
        }
      }
      this.#recent.note(key, entry.id);
      record({ kind: "stored", response, entry, stored: true });
      return entry;
    }
    // It varies on other headers than this key was made with: it goes under the key made
    // with those, never under this one (a request differing in them could read it here).
    const headers = this.#c.req.raw.headers;
    const right = await variantKey(base, headerNames([...s.vary, ...extra]), headers);
    let stored: boolean;
    let value: Stored = PASSED;
    if (expected === null) {
      // The URL's key gets the vary record instead; callers that joined this load follow it
      // with their own header values.
      stored = await this.#put(right, entry, verdict.ttl, tags, force);
      ctx.setTtl(verdict.ttl);
      value = { kind: "vary", v: 1, names: extra } satisfies VaryRecord;
    } else {
      ctx.noStore();
      stored = await this.#put(right, entry, verdict.ttl, tags, null);
      if (extra.length > 0) {
        const varyRecord: VaryRecord = { kind: "vary", v: 1, names: extra };
        stored = (await this.#put(this.#k0, varyRecord, verdict.ttl, [], null)) && stored;
      }
    }
    if (stored) this.#recent.note(right, entry.id);
    record({ kind: "stored", response, entry, stored });
    return value;
  }

  /**
   * Writes a value under another key than the one being loaded. From the URL's load
   * (`force` a boolean) through getOrSet, so the entry gets the stale window (after a delete
   * when the request asked to revalidate); from a variant's load (`force` null) with `set`,
   * which waits for no other load (two loads waiting on each other would never end).
   */
  async #put(
    key: string,
    value: Stored,
    ttl: number,
    tags: readonly string[],
    force: boolean | null,
  ): Promise<boolean> {
    const cache = this.#s.cache;
    try {
      if (force === null) {
        await cache.set(key, value, { ttl, ...(tags.length > 0 ? { tags } : {}) });
      } else {
        if (force) await cache.delete(key);
        await cache.getOrSet(key, () => value, {
          ...this.#options(),
          lock: false,
          ttl,
          ...(tags.length > 0 ? { tags } : {}),
        });
      }
      return true;
    } catch (error) {
      this.#s.onError(error);
      return false;
    }
  }

  /**
   * Runs the rest of the chain for a background refresh, detached from the response this
   * request already returned (restored afterwards), so neither can touch the other.
   */
  async #detached(): Promise<{ res: Response; error: unknown }> {
    const c = this.#c;
    const client = c.res;
    const error = c.error;
    c.res = undefined;
    c.finalized = false;
    try {
      await this.#next();
      return { res: c.res, error: c.error };
    } finally {
      c.res = undefined;
      c.res = client;
      c.error = error;
    }
  }

  /** Answers with what this request's own run of the handler came to. */
  #ran(r: StepResult, fwd: "miss" | "vary-miss" | "request"): void {
    const run = r.run!;
    if (run.kind === "threw") throw run.error;
    const fwdStatus = run.response.status;
    if (run.kind === "stored") {
      const outcome = run.stored ? { stored: true, ttl: run.entry.ttl } : { detail: "store-error" };
      this.#respond(run.response, { fwd, fwdStatus, ...outcome });
    } else if (run.kind === "pass") {
      this.#respond(run.response, { fwd, fwdStatus, detail: run.detail });
    } else if (r.failure === undefined && isStoredResponse(r.value)) {
      void discard(run.response);
      // Detach the failed response, so Hono merges none of its headers into the stale one.
      this.#c.res = undefined;
      this.#serve(r.value, undefined, { fwd: "stale", fwdStatus, detail: "stale-if-error" });
    } else this.#respond(run.response, { fwd, fwdStatus });
  }

  /** HEAD and only-if-cached: answer from the cache, never load. */
  async #lookup(base: string, onlyIfCached: boolean): Promise<void> {
    const s = this.#s;
    let key = this.#k0;
    let value: unknown;
    let varied = false;
    try {
      value = await s.cache.get(key);
      if (isVaryRecord(value)) {
        varied = true;
        key = await variantKey(
          base,
          headerNames([...s.vary, ...value.names]),
          this.#c.req.raw.headers,
        );
        value = await s.cache.get(key);
      }
    } catch (error) {
      s.onError(error);
      value = undefined;
    }
    if (isStoredResponse(value)) return this.#serve(value, key);
    if (!onlyIfCached) return this.#forward({ fwd: varied ? "vary-miss" : "miss" });
    return this.#respond(new Response(null, { status: 504 }), { detail: "only-if-cached" });
  }

  /** Answers with a stored response: 200-style, or 304 to a matching conditional request. */
  #serve(entry: StoredResponse, key: string | undefined, params?: StatusParams): void {
    const s = this.#s;
    const now = s.now();
    const expiresAt = entry.storedAt + entry.ttl;
    const left = expiresAt - now;
    let status: StatusParams;
    if (params !== undefined) status = { ...params, ttl: left };
    else if (left <= 0) {
      status = {
        hit: true,
        ttl: left,
        detail: now - expiresAt < s.swrWindow ? "stale-while-revalidate" : "stale-if-error",
      };
    } else if (key !== undefined && this.#recent.collapsed(key, entry.id, this.#since)) {
      status = { fwd: "miss", collapsed: true, ttl: left };
    } else status = { hit: true, ttl: left };
    let res: Response;
    const stored = new Headers(entry.headers as Array<[string, string]>);
    if (notModified(this.#c.req.raw.headers, entry.status, stored)) {
      const kept = new Headers();
      for (const name of NOT_MODIFIED_HEADERS) {
        const value = stored.get(name);
        if (value !== null) kept.set(name, value);
      }
      res = new Response(null, { status: 304, headers: kept });
    } else res = replay(entry);
    res.headers.set(
      "age",
      String(Math.max(0, Math.floor((now - entry.storedAt) / 1000)) + entry.age),
    );
    // Headers middleware before this one set for this request win over the stored ones
    // (Hono merges them in when c.res is set); Vary is the union of both.
    const before = this.#c.res.headers.get("vary");
    const vary = res.headers.get("vary");
    this.#respond(res, status);
    if (before !== null && vary !== null) {
      this.#c.header("vary", headerNames([...before.split(","), ...vary.split(",")]).join(", "));
    }
  }

  /** Makes `res` the response (when it is not already) and adds this cache's Cache-Status. */
  #respond(res: Response, params: StatusParams): void {
    const c = this.#c;
    if (c.res !== res) c.res = res;
    c.header("cache-status", cacheStatus(this.#s.name, params), { append: true });
  }

  /** Runs the rest of the chain without the cache. */
  async #forward(params: StatusParams): Promise<void> {
    if (!this.#nextUsed) {
      this.#nextUsed = true;
      await this.#next();
    }
    const c = this.#c;
    c.header("cache-status", cacheStatus(this.#s.name, { ...params, fwdStatus: c.res.status }), {
      append: true,
    });
  }
}

/**
 * A Hono middleware that caches whole responses in `options.cache` and replays them. On a
 * miss the rest of the chain runs inside `cache.getOrSet`, so concurrent misses of a
 * response run the handler once (across instances too with `lock`). Only GET and HEAD by
 * default; responses with `Cache-Control: no-store` or `private`, with `Set-Cookie`, with
 * `Vary: *`, or with a status not in `statuses` are never stored; requests with
 * `Authorization` or `Cookie` bypass the cache unless `vary` names them. Every response
 * through it carries a `Cache-Status` header (RFC 9211).
 *
 * @throws InvalidOptionError when an option is invalid.
 */
export function cached(options: CachedOptions): MiddlewareHandler<CachedEnv> {
  const settings = resolve(options);
  const recent = new RecentLoads();
  return async (c, next) => {
    const request = new CachedRequest(settings, recent, c, next);
    try {
      await request.handle();
    } finally {
      request.finish();
    }
  };
}
