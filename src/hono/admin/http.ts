/**
 * The admin's request and response parts: where it is mounted, JSON problems, and the
 * preamble its cache routes share (the cache `?ns=` selects, the key or tag of the path, a
 * JSON list body), each a middleware that puts its result on `c.var` or answers.
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import { type SuperJSONValue, serialize } from "superjson";
import type { EdgeCacheErrorCode } from "../../errors.js";
import type { Cache, InspectResult } from "../../types.js";

/** Variables the admin's middleware put on `c.var` for its routes. */
export interface AdminVariables {
  /** The cache `?ns=` selects (id `""`: the default one). */
  target: { id: string; cache: Cache };
  /** The key or tag of the last path segment, percent-decoded once. */
  segment: string;
  /** The `keys` or `tags` of a JSON body. */
  list: string[];
  /** The CSP nonce of this response (see `guard.ts`). */
  adminNonce: string;
  /** Where the admin is mounted (see {@link mountOf}). */
  adminMount: { path: string; raw: string };
}

/** The Hono environment of the admin's handlers. */
export interface AdminEnv {
  Variables: AdminVariables;
}

/** Largest JSON body read (`DELETE /keys`, `DELETE /tags`), and most items in one. */
const MAX_BODY_BYTES = 1 << 20;
const MAX_ITEMS = 1000;

const decoder = new TextDecoder();

/** A JSON error answer: `{ error, message }`. */
export const problem = (
  c: Context,
  status: 400 | 403 | 404 | 413,
  error: string,
  message: string,
) => c.json({ error, message }, status);

/** The request path as it went over the wire (percent-encoding intact). */
export const rawPath = (c: Context) => new URL(c.req.url).pathname;

/**
 * Records where the admin is mounted, for {@link mountOf}. Registered first, as `use("*")`:
 * its route path is then the mount path plus `/*` on every hono 4 (`basePath` of
 * `hono/route` needs hono 4.8). A mount path with parameters (`/:tenant/_cache`) takes the
 * request's segments, as many as it has; the raw path's segments line up with them because
 * routing never decodes `%2F`.
 */
export const mountPoint: MiddlewareHandler<AdminEnv> = async function adminMount(c, next) {
  const pattern = c.req.routePath.replace(/\/?\*$/, "").replace(/\/+$/, "");
  const segments = pattern.split("/").length;
  const path = /[:*]/.test(pattern) ? c.req.path.split("/").slice(0, segments).join("/") : pattern;
  const raw = path === "" ? "" : rawPath(c).split("/").slice(0, segments).join("/");
  c.set("adminMount", { path, raw });
  await next();
};

/** Where the admin is mounted, as the browser addresses it (`raw`) and as routed (`path`). */
export const mountOf = (c: Context<AdminEnv>): { path: string; raw: string } => c.var.adminMount;

/** Whether the browser reached the admin over https (directly or through a proxy). */
export const isHttps = (c: Context) =>
  new URL(c.req.url).protocol === "https:" ||
  c.req.header("x-forwarded-proto")?.split(",")[0]?.trim() === "https";

/**
 * Selects the cache `?ns=` names into `c.var.target`, or answers `404 unknown_namespace`.
 * @example
 * ```ts
 * app.get("/stats", selectCache(byId), (c) => c.json(c.var.target.cache.stats()));
 * ```
 */
export function selectCache(byId: ReadonlyMap<string, Cache>): MiddlewareHandler<AdminEnv> {
  return async function adminSelectCache(c, next) {
    const id = c.req.query("ns") ?? "";
    const cache = byId.get(id);
    if (cache === undefined) return problem(c, 404, "unknown_namespace", "no cache with that ns");
    c.set("target", { id, cache });
    await next();
  };
}

/**
 * Decodes the key or tag in the last path segment exactly once into `c.var.segment` (from the
 * raw path: the router's own decoding would let `%2F` and `/` meet), or answers
 * `400 invalid_encoding`.
 */
export const pathSegment: MiddlewareHandler<AdminEnv> = async function adminPathSegment(c, next) {
  const path = rawPath(c);
  let segment: string;
  try {
    segment = decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    return problem(c, 400, "invalid_encoding", "bad percent-encoding");
  }
  c.set("segment", segment);
  await next();
};

/**
 * Reads `{ [field]: string[] }` from a JSON body of at most 1 MiB and 1000 items into
 * `c.var.list`, or answers 413 / `400 invalid_body | too_many`.
 */
export function listBody(field: "keys" | "tags"): MiddlewareHandler<AdminEnv> {
  return async function adminListBody(c, next) {
    const declared = Number(c.req.header("content-length") ?? 0);
    if (declared > MAX_BODY_BYTES) {
      return problem(c, 413, "body_too_large", "the body is over 1 MiB");
    }
    const bytes = await c.req.arrayBuffer();
    if (bytes.byteLength > MAX_BODY_BYTES) {
      return problem(c, 413, "body_too_large", "the body is over 1 MiB");
    }
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(bytes));
    } catch {
      return problem(c, 400, "invalid_body", `the body must be JSON: { "${field}": [...] }`);
    }
    const list = (body as Record<string, unknown> | null)?.[field];
    if (!Array.isArray(list) || !list.every((item) => typeof item === "string")) {
      return problem(c, 400, "invalid_body", `"${field}" must be an array of strings`);
    }
    if (list.length > MAX_ITEMS) {
      return problem(c, 400, "too_many", `at most ${MAX_ITEMS} ${field} per request`);
    }
    c.set("list", list as string[]);
    await next();
  };
}

/**
 * An inspect result as JSON. The value goes through superjson, so Dates, Maps, Sets,
 * BigInts and cycles come out as JSON plus a `valueMeta` that says how to revive them.
 */
export function renderInspect(result: InspectResult): Record<string, unknown> {
  let value: unknown = null;
  let meta: unknown;
  if (result.value !== undefined) {
    const out = serialize(result.value as SuperJSONValue);
    value = out.json ?? null;
    meta = out.meta;
  }
  return {
    key: result.key,
    tier: result.tier,
    version: result.version,
    ttl: result.ttl,
    expiresIn: result.expiresIn,
    stale: result.stale,
    tags: result.tags,
    negative: result.negative ?? null,
    value,
    ...(meta === undefined ? {} : { valueMeta: meta }),
  };
}

/** The status an edgecache error thrown by a route answers with (else 500). */
export const ERROR_STATUS: Partial<Record<EdgeCacheErrorCode, 400 | 503 | 504>> = {
  EC_INVALID_KEY: 400,
  EC_INVALID_OPTION: 400,
  EC_STORE_UNAVAILABLE: 503,
  EC_STORE_AUTH: 503,
  EC_STORE_ERROR: 503,
  EC_CIRCUIT_OPEN: 503,
  EC_CLOSED: 503,
  EC_STORE_TIMEOUT: 504,
};
