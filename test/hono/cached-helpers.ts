/**
 * What the `cached` tests share: caches over the REST bridge or an in-process store with a
 * fake clock, a one-route site that counts handler runs, and small response helpers.
 */
import { type Context, Hono } from "hono";
import { inject } from "vitest";
import { type CachedEnv, type CachedOptions, cached } from "../../src/hono/cached/index.js";
import { type Cache, type CacheOptions, createCache, memoryStore } from "../../src/index.js";
import type { Store } from "../../src/store/contract.js";
import { upstashStore } from "../../src/stores/upstash.js";
import { fakeClock } from "../helpers.js";

export const url = inject("bridgeUrl");
export const token = inject("bridgeToken");

export const fresh = () => `hono.${crypto.randomUUID()}`;

/** A cache over the real bridge; two with the same namespace are two instances. */
export function bridged(namespace = fresh(), extra: Partial<CacheOptions> = {}): Cache {
  return createCache({
    store: upstashStore({ url, token }),
    namespace,
    sync: { maxStaleness: 0 },
    logger: false,
    ...extra,
  });
}

/** A cache over an in-process store, with a clock the test moves. */
export function clocked(store?: Store) {
  const clock = fakeClock();
  const shared = store ?? memoryStore({ now: clock.now });
  const make = () =>
    createCache({
      store: shared,
      namespace: "hono",
      now: clock.now,
      sync: { maxStaleness: 0 },
      logger: false,
    });
  return { clock, cache: make(), make };
}

export type Respond = (c: Context<CachedEnv>, n: number) => Response | Promise<Response>;

/** An app with `cached` in front of one handler for every method and path; counts runs. */
export function site(options: CachedOptions, respond: Respond = (c, n) => c.text(`body ${n}`)) {
  let calls = 0;
  const app = new Hono<CachedEnv>();
  // Hono's default error handler logs; the tests look at the 500 instead.
  app.onError((_err, c) => c.text("Internal Server Error", 500));
  app.all("*", cached(options), (c) => respond(c, ++calls));
  return {
    app,
    get calls() {
      return calls;
    },
    get: (path: string, init?: RequestInit) => app.request(path, init),
  };
}

export const cacheStatus = (res: Response) => res.headers.get("cache-status");

/** Byte-for-byte equality (toEqual walks typed arrays element by element: slow). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** An ExecutionContext whose waitUntil promises the test can wait for. */
export function executionContext() {
  const pending: Array<Promise<unknown>> = [];
  return {
    ctx: {
      waitUntil: (promise: Promise<unknown>) => {
        pending.push(promise);
      },
      passThroughOnException() {},
      props: {},
    },
    async settle() {
      while (pending.length > 0) await Promise.all(pending.splice(0));
    },
  };
}

/** A store that records the keys and encoded values written through it. */
export function recording(inner: Store) {
  const written: string[] = [];
  const store = new Proxy(inner, {
    get(target, property) {
      if (property === "set") {
        return (
          ns: string,
          entries: Parameters<Store["set"]>[1],
          meta: Parameters<Store["set"]>[2],
        ) => {
          for (const e of entries) written.push(e.key, e.value);
          return target.set(ns, entries, meta);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { store, written };
}
