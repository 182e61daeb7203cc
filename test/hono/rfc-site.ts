/**
 * What the RFC cases of `cached` share, in Node and in workerd: a site with `cached` in front
 * of a scripted handler (it sees the request as forwarded), over an in-process store, with
 * one fake clock for the store, the cache and the middleware. HTTP dates are made from it.
 */
import { type Context, Hono } from "hono";
import { type CachedEnv, type CachedOptions, cached } from "../../src/hono/cached/index.js";
import { createCache, memoryStore } from "../../src/index.js";

/** How a runtime sends a request to an app (workerd passes its own ExecutionContext). */
export type Send = (app: Hono<CachedEnv>, path: string, init?: RequestInit) => Promise<Response>;

export type Script = (
  c: Context<CachedEnv>,
  n: number,
  req: Request,
) => Response | Promise<Response>;

export const T0 = 1_700_000_000_000;

/** An RFC 9110 IMF-fixdate. */
export const httpDate = (ms: number) => new Date(ms).toUTCString();

/** A site with `cached` in front of `script`; `seen` holds the requests the handler got. */
export function rfcSite(
  send: Send,
  options: Omit<CachedOptions, "cache"> & { cache?: CachedOptions["cache"] },
  script: Script,
) {
  let t = T0;
  const now = () => t;
  const cache =
    options.cache ??
    createCache({
      store: memoryStore({ now }),
      namespace: "rfc",
      now,
      sync: { maxStaleness: 0 },
      logger: false,
    });
  const seen: Request[] = [];
  const app = new Hono<CachedEnv>();
  app.onError((_err, c) => c.text("Internal Server Error", 500));
  app.all("*", cached({ now, ...options, cache }), (c) => {
    seen.push(c.req.raw);
    return script(c, seen.length, c.req.raw);
  });
  return {
    app,
    cache,
    seen,
    get calls() {
      return seen.length;
    },
    now,
    advance(ms: number) {
      t += ms;
    },
    get: (path: string, init?: RequestInit) => send(app, path, init),
  };
}

export const status = (res: Response) => res.headers.get("cache-status") ?? "";
