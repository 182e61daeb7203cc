/**
 * The options of `cached`, checked and resolved once, when the middleware is made: every
 * mistake is an `InvalidOptionError` at setup, never a surprise on some request.
 * @module
 */

import type { Context } from "hono";
import { checkTags, checkTtl } from "../../envelope.js";
import { EdgeCacheError, InvalidOptionError } from "../../errors.js";
import { consoleLogger, GuardedLogger } from "../../logger.js";
import type { Cache, GetOrSetOptions } from "../../types.js";
import type { StoreRules } from "./http.js";
import type { CachedOptions } from "./index.js";
import { headerNames, normalizePath } from "./key.js";

/** {@link CachedOptions} resolved: defaults filled in, namespace defaults looked up. */
export interface Settings {
  readonly cache: Cache;
  readonly ttl: number;
  readonly staleWhileRevalidate: number | undefined;
  readonly grace: number | undefined;
  /** The stale-while-revalidate window in effect (ours or the namespace's). */
  readonly swrWindow: number;
  /**
   * How long a stored response stays in L2 past its TTL: the wider stale window in effect,
   * and at least long enough to be revalidated with a conditional request.
   */
  readonly staleFor: number;
  readonly lock: GetOrSetOptions["lock"];
  readonly tags: CachedOptions["tags"];
  readonly methods: ReadonlySet<string>;
  /** Lowercased, sorted names of the `vary` option. */
  readonly vary: readonly string[];
  /** The `key` function: `undefined` keys on the normalized URL (`key: "url"`). */
  readonly key: ((c: Context) => string | Promise<string>) | undefined;
  readonly maxBodyBytes: number;
  readonly rules: StoreRules;
  readonly name: string;
  readonly now: () => number;
  readonly onError: (error: unknown) => void;
}

const DEFAULT_STATUSES = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];
const DEFAULT_TTL = 60_000;
const DEFAULT_MAX_BODY = 524_288;
const DEFAULT_TARGETS = ["Cloudflare-CDN-Cache-Control", "CDN-Cache-Control"];
/** How long a stale response with a validator is kept for a conditional revalidation. */
const KEEP_FOR_REVALIDATION = 300_000;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const SF_TOKEN = /^[A-Za-z*][!#$%&'*+.^_`|~0-9A-Za-z:/-]*$/;

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

function isCache(cache: unknown): cache is Cache {
  const c = cache as Partial<Cache> | null;
  return (
    typeof c === "object" &&
    c !== null &&
    typeof c.getOrSet === "function" &&
    typeof c.get === "function" &&
    typeof c.set === "function" &&
    typeof c.delete === "function"
  );
}

/** The key option as the flow uses it: a function, or `undefined` for the URL. */
function keyFunction(key: CachedOptions["key"]): Settings["key"] {
  if (key === "path") return (c) => normalizePath(c.req.url);
  return key === "url" ? undefined : key;
}

function checkMethods(options: CachedOptions): string[] {
  const methods = options.methods ?? ["GET", "HEAD"];
  if (!Array.isArray(methods) || methods.length === 0) fail("methods must be a non-empty array");
  const upper = methods.map((m: unknown) => {
    if (typeof m !== "string" || !TOKEN.test(m)) fail("methods must be HTTP method names");
    return m.toUpperCase();
  });
  const { key } = options;
  if (key !== undefined && key !== "url" && key !== "path" && typeof key !== "function") {
    fail('key must be "url", "path" or a function of the context');
  }
  if (typeof key !== "function" && upper.some((m) => m !== "GET" && m !== "HEAD")) {
    fail(
      "methods other than GET and HEAD need a key function (the body is not in the default key)",
    );
  }
  return upper;
}

/** The `heuristic` option resolved: `false`, or a fraction and a cap (RFC 9111 4.2.2). */
function checkHeuristic(value: CachedOptions["heuristic"]) {
  if (value === false) return false;
  const h = value ?? {};
  if (typeof h !== "object" || h === null) fail("heuristic must be false or { fraction, max }");
  const fraction = h.fraction ?? 0.1;
  if (typeof fraction !== "number" || !(fraction > 0 && fraction <= 1)) {
    fail("heuristic.fraction must be a number greater than 0 and at most 1");
  }
  const max = ms("heuristic.max", h.max, true) ?? 86_400_000;
  return { fraction, max };
}

/**
 * Checks every option of {@link CachedOptions} and resolves its default. What depends on the
 * cache (the namespace's defaults) is resolved once per cache: at once for a cache, on first
 * use of each cache a `cache` function returns otherwise.
 * @returns the settings of a request.
 * @throws InvalidOptionError naming the first option that is invalid; the function it returns
 *   throws one when a `cache` function returns something else than a cache.
 */
export function resolve(options: CachedOptions): (c: Context) => Settings {
  if (typeof options !== "object" || options === null) fail("needs an options object");
  const { cache } = options;
  if (typeof cache !== "function" && !isCache(cache)) {
    fail(
      "cache must be an edgecache Cache (createCache or cache.namespace) or a function of the context returning one",
    );
  }
  // `ttl: 0`: origin-driven, nothing is fresh unless its headers (or the heuristic) say so.
  const origin = options.ttl === 0;
  const ttl = options.ttl === undefined || origin ? undefined : checkTtl(options.ttl);
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
  const methods = checkMethods(options);
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
  if (origin && !honorMaxAge) fail("ttl: 0 (origin-driven) needs honorMaxAge");
  const heuristic = checkHeuristic(options.heuristic);
  const targets = options.targetedFields ?? DEFAULT_TARGETS;
  if (!Array.isArray(targets) || !targets.every((h) => typeof h === "string" && TOKEN.test(h))) {
    fail("targetedFields must be an array of header names");
  }
  const name = options.name ?? "edgecache";
  if (typeof name !== "string" || !SF_TOKEN.test(name)) fail("name must be a token (RFC 8941)");
  if (options.now !== undefined && typeof options.now !== "function")
    fail("now must be a function");
  if (options.onError !== undefined && typeof options.onError !== "function") {
    fail("onError must be a function");
  }
  const onError = options.onError ?? defaultOnError();
  const settingsOf = (cache: Cache): Settings => {
    const swrWindow = staleWhileRevalidate ?? namespaceDefault(cache, "staleWhileRevalidate") ?? 0;
    const graceWindow = grace ?? namespaceDefault(cache, "grace") ?? 0;
    const resolvedTtl = origin ? 0 : (ttl ?? namespaceDefault(cache, "ttl") ?? DEFAULT_TTL);
    return {
      cache,
      ttl: resolvedTtl,
      staleWhileRevalidate,
      grace,
      swrWindow,
      staleFor: Math.max(swrWindow, graceWindow, KEEP_FOR_REVALIDATION),
      lock,
      tags,
      methods: new Set(methods),
      vary: headerNames(vary),
      key: keyFunction(options.key),
      maxBodyBytes,
      rules: {
        statuses: new Set(statuses),
        honorMaxAge,
        ttl: resolvedTtl,
        swr: swrWindow,
        sie: graceWindow,
        origin,
        heuristic,
        targets,
      },
      name,
      now: options.now ?? Date.now,
      onError,
    };
  };
  if (typeof cache !== "function") {
    const fixed = settingsOf(cache);
    return () => fixed;
  }
  // Per cache, not per request: the function is expected to return the same few caches.
  const made = new WeakMap<Cache, Settings>();
  return function settingsFor(c) {
    const got: unknown = cache(c);
    if (!isCache(got)) {
      throw new InvalidOptionError(
        `cached: the cache function returned ${got instanceof Promise ? "a promise" : "something else"}, not an edgecache Cache (createCache or cache.namespace)`,
      );
    }
    let settings = made.get(got);
    if (settings === undefined) {
      settings = settingsOf(got);
      made.set(got, settings);
    }
    return settings;
  };
}
