/**
 * The `cached` Hono middleware: options, checked at setup, and the types it gives handlers.
 * Through `app.request`, over real caches (`upstashStore` on the REST bridge, or `memoryStore`
 * where a test moves the clock); every rule is asserted by counting handler runs, so a rule
 * that breaks fails its case.
 */
import { type Context, Hono } from "hono";
import { describe, expect, expectTypeOf, it } from "vitest";
import { type CachedEnv, type CachedOptions, cached } from "../../src/hono/cached/index.js";
import { type Cache, createCache, InvalidOptionError, memoryStore } from "../../src/index.js";

describe("cached: options", () => {
  const cache = createCache({ store: memoryStore(), logger: false });
  const bad: Array<[string, Partial<CachedOptions>]> = [
    ["no cache", { cache: undefined as unknown as Cache }],
    ["a cache that is not one", { cache: {} as Cache }],
    ["ttl -1", { ttl: -1 }],
    ["ttl 0 without honorMaxAge", { ttl: 0, honorMaxAge: false }],
    ["a heuristic fraction of 0", { heuristic: { fraction: 0 } }],
    ["a heuristic max of 0", { heuristic: { max: 0 } }],
    ["a targeted field with a space", { targetedFields: ["CDN Cache-Control"] }],
    ["ttl NaN", { ttl: Number.NaN }],
    ["negative staleWhileRevalidate", { staleWhileRevalidate: -1 }],
    ["grace Infinity", { grace: Number.POSITIVE_INFINITY }],
    ["lock a string", { lock: "yes" as unknown as boolean }],
    ["lock ttl 0", { lock: { ttl: 0 } }],
    ["an empty tag", { tags: [""] }],
    ["tags a string", { tags: "products" as unknown as string[] }],
    ["65 tags", { tags: Array.from({ length: 65 }, (_, i) => `t${i}`) }],
    ["no methods", { methods: [] }],
    ["a method with a space", { methods: ["GE T"] }],
    ["POST without a key", { methods: ["GET", "POST"] }],
    ["status 700", { statuses: [700] }],
    ["status 100", { statuses: [100] }],
    ["no statuses", { statuses: [] }],
    ["vary *", { vary: ["*"] }],
    ["vary with a space", { vary: ["Accept Language"] }],
    ["key neither a scope nor a function", { key: "host" as unknown as "path" }],
    ["key a number", { key: 5 as unknown as "url" }],
    ["POST with key: path", { methods: ["GET", "POST"], key: "path" }],
    ["negative maxBodyBytes", { maxBodyBytes: -1 }],
    ["fractional maxBodyBytes", { maxBodyBytes: 1.5 }],
    ["honorMaxAge a string", { honorMaxAge: "yes" as unknown as boolean }],
    ["a name that is not a token", { name: "my cache" }],
    ["now not a function", { now: 5 as unknown as () => number }],
    ["onError not a function", { onError: 5 as unknown as () => void }],
  ];
  for (const [what, options] of bad) {
    it(`rejects ${what} with InvalidOptionError`, () => {
      expect(() => cached({ cache, ...options } as CachedOptions)).toThrow(InvalidOptionError);
    });
  }

  it("accepts every option", () => {
    expect(() =>
      cached({
        cache,
        ttl: 1_000,
        staleWhileRevalidate: 0,
        grace: 5_000,
        lock: { ttl: 1_000, wait: 500 },
        tags: ["a"],
        methods: ["get", "HEAD", "POST"],
        statuses: [200],
        vary: ["Accept-Language"],
        key: (c) => c.req.path,
        maxBodyBytes: 0,
        honorMaxAge: false,
        name: "edge/cache:1",
        now: Date.now,
        onError: () => {},
      }),
    ).not.toThrow();
  });

  it("a key function returning a non-string is an InvalidOptionError at request time", async () => {
    const app = new Hono();
    let seen: unknown;
    app.onError((err, c) => {
      seen = err;
      return c.text("error", 500);
    });
    app.get("/", cached({ cache, key: () => 42 as unknown as string }), (c) => c.text("x"));
    expect((await app.request("/")).status).toBe(500);
    expect(seen).toBeInstanceOf(InvalidOptionError);
  });

  it("takes cache as a function of the context, called per request (a Worker's env arrives then)", async () => {
    type Env = { Bindings: { TENANT: string } };
    const store = memoryStore();
    // Memoized per "isolate": one cache per env value, as the option's docs ask.
    const made = new Map<string, Cache>();
    const calls: string[] = [];
    const cacheOf = (tenant: string) => {
      let c = made.get(tenant);
      if (c === undefined) {
        c = createCache({ store, namespace: tenant, logger: false }).namespace("http", {
          ttl: 5_000,
        });
        made.set(tenant, c);
      }
      return c;
    };
    let runs = 0;
    const app = new Hono<Env>();
    app.get(
      "/p",
      cached({
        cache: (c: Context<Env>) => {
          calls.push(c.env.TENANT);
          return cacheOf(c.env.TENANT);
        },
      }),
      (c) => {
        // Handlers get the cache the function returned.
        expect(c.var.cache).toBe(made.get(c.env.TENANT));
        return c.text(`${c.env.TENANT} ${++runs}`);
      },
    );
    const get = async (tenant: string) => {
      const res = await app.request("/p", {}, { TENANT: tenant });
      return { text: await res.text(), status: res.headers.get("cache-status") ?? "" };
    };
    expect((await get("a")).text).toBe("a 1");
    const hit = await get("a");
    expect(hit.text).toBe("a 1");
    // The namespace's ttl (5 s) is the default of this cache's responses.
    expect(hit.status).toMatch(/; hit; ttl=[45](;|$)/);
    expect((await get("b")).text).toBe("b 2");
    expect(calls).toEqual(["a", "a", "b"]);
  });

  it("a cache function that returns no cache fails the request with InvalidOptionError", async () => {
    for (const wrong of [undefined, {}, Promise.resolve(cache)]) {
      const app = new Hono();
      let seen: unknown;
      app.onError((err, c) => {
        seen = err;
        return c.text("error", 500);
      });
      let runs = 0;
      app.get("/", cached({ cache: () => wrong as unknown as Cache }), (c) => c.text(`${++runs}`));
      expect((await app.request("/")).status).toBe(500);
      expect(seen).toBeInstanceOf(InvalidOptionError);
      expect((seen as InvalidOptionError).code).toBe("EC_INVALID_OPTION");
      expect((seen as Error).message).toMatch(/cache function returned .*not an edgecache Cache/);
      expect(runs).toBe(0);
    }
  });

  it("types c.var.cache and c.var.cacheTag for handlers after it, and through CachedEnv", () => {
    const plain = new Hono();
    plain.get("/", cached({ cache }), (c) => {
      expectTypeOf(c.var.cache).toEqualTypeOf<Cache>();
      expectTypeOf(c.var.cacheTag).toEqualTypeOf<(...tags: string[]) => void>();
      return c.text("");
    });
    const typed = new Hono<CachedEnv & { Bindings: { KEY: string } }>();
    typed.use(cached({ cache }));
    typed.get("/", (c) => {
      expectTypeOf(c.var.cache).toEqualTypeOf<Cache>();
      expectTypeOf(c.env.KEY).toEqualTypeOf<string>();
      return c.text("");
    });
  });
});
