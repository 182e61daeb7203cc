/**
 * The `cached` Hono middleware: its own failures, several instances, middleware around it,
 * unreadable entries. Through `app.request`, over real caches (`upstashStore` on the REST
 * bridge, or `memoryStore` where a test moves the clock); every rule is asserted by counting
 * handler runs, so a rule that breaks fails its case.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type CachedEnv, cached } from "../../src/hono/cached/index.js";
import { baseKey, normalizeUrl, variantKey } from "../../src/hono/cached/key.js";
import { createCache, EdgeCacheError, InvalidOptionError, memoryStore } from "../../src/index.js";
import { chaosStore, until } from "../helpers.js";
import { bridged, cacheStatus, clocked, fresh, type Respond, site } from "./cached-helpers.js";

describe("cached: failures of its own", () => {
  it("serves the handler's response when L2 is down, and reports nothing it should not", async () => {
    const chaos = chaosStore(memoryStore());
    const errors: unknown[] = [];
    const cache = createCache({
      store: chaos.store,
      namespace: "down",
      logger: false,
      breaker: false,
      onError: (e) => errors.push(e),
    });
    chaos.mode = "fail";
    const s = site({ cache, onError: (e) => errors.push(e) }, (c, n) => c.text(`secret-body ${n}`));
    const res = await s.get("/x");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("secret-body 1");
    expect(errors.length).toBeGreaterThan(0);
    for (const error of errors) {
      expect(error).toBeInstanceOf(EdgeCacheError);
      expect(String((error as Error).message)).not.toContain("secret-body");
    }
  });

  it("a body stream that fails midway is not stored and ends in Hono's 500", async () => {
    let broken = true;
    const s = site({ cache: bridged() }, (c) => {
      if (!broken) return c.text("whole");
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new Uint8Array([1, 2, 3]));
          controller.error(new Error("upstream went away"));
        },
      });
      return c.body(stream);
    });
    expect((await s.get("/stream")).status).toBe(500);
    broken = false;
    expect(await (await s.get("/stream")).text()).toBe("whole");
    expect(s.calls).toBe(2);
  });

  it("a tags function that throws: the response passes through, the error is reported", async () => {
    const errors: unknown[] = [];
    const s = site({
      cache: bridged(),
      tags: () => {
        throw new Error("no tags today");
      },
      onError: (e) => errors.push(e),
    });
    const res = await s.get("/t");
    expect(await res.text()).toBe("body 1");
    expect(cacheStatus(res)).toBe("edgecache; fwd=miss; fwd-status=200; detail=tag-error");
    expect(errors).toHaveLength(1);
  });

  it("c.var.cacheTag with an invalid tag throws InvalidOptionError in the handler", async () => {
    let seen: unknown;
    const s = site({ cache: bridged() }, (c) => {
      try {
        c.var.cacheTag("");
      } catch (err) {
        seen = err;
      }
      return c.text("x");
    });
    await s.get("/bad-tag");
    expect(seen).toBeInstanceOf(InvalidOptionError);
  });
});

describe("cached: across instances", () => {
  it("with lock, concurrent misses on two instances run the handler once", async () => {
    const namespace = fresh();
    const a = bridged(namespace);
    const b = bridged(namespace);
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const handler: Respond = async (c) => {
      calls++;
      await gate;
      return c.text("once");
    };
    const siteA = site({ cache: a, lock: true }, handler);
    const siteB = site({ cache: b, lock: true }, handler);
    const all = Promise.all([
      ...Array.from({ length: 3 }, () => siteA.get("/slow")),
      ...Array.from({ length: 3 }, () => siteB.get("/slow")),
    ]);
    await until(() => calls === 1 && a.stats().lockWaits + b.stats().lockWaits === 1);
    release();
    const bodies = await Promise.all((await all).map((r) => r.text()));
    expect(bodies).toEqual(Array(6).fill("once"));
    expect(calls).toBe(1);
  });
});

describe("cached: headers of middleware before it", () => {
  it("a hit carries this request's headers from earlier middleware, not the stored ones", async () => {
    const app = new Hono<CachedEnv>();
    let id = 0;
    app.use(async (c, next) => {
      c.header("x-request-id", String(++id));
      await next();
    });
    app.get("/r", cached({ cache: bridged() }), (c) =>
      c.text("r", 200, { vary: "Accept-Language" }),
    );
    await app.request("/r");
    const hit = await app.request("/r");
    expect(cacheStatus(hit)).toMatch(/; hit;/);
    expect(hit.headers.get("x-request-id")).toBe("2");
    expect(hit.headers.get("vary")).toBe("Accept-Language");
  });

  it("appends its member to a Cache-Status the handler's response already has", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text("up", 200, { "cache-status": "origin-cdn; hit" }),
    );
    expect(cacheStatus(await s.get("/up"))).toBe(
      "origin-cdn; hit, edgecache; fwd=miss; fwd-status=200; stored; ttl=60",
    );
    // A replay did not go through the upstream cache: only this cache's member.
    expect(cacheStatus(await s.get("/up"))).toMatch(/^edgecache; hit; ttl=/);
  });
});

describe("cached: entries it cannot read (another release's)", () => {
  const foreign = { kind: "response", v: 2, body: "from a newer release" };
  const keyOf = async (path: string) =>
    variantKey(await baseKey("GET", normalizeUrl(`http://localhost${path}`)), [], new Headers());

  it("answers from the handler, drops the entry, and the next request stores afresh", async () => {
    const { clock, cache } = clocked();
    const s = site({ cache, ttl: 60_000, now: clock.now });
    await cache.set(await keyOf("/p"), foreign);
    const first = await s.get("/p");
    expect(await first.text()).toBe("body 1");
    expect(cacheStatus(first)).toContain("detail=unreadable");
    expect(await cache.get(await keyOf("/p"))).toBeUndefined();
    expect(cacheStatus(await s.get("/p"))).toContain("stored");
    expect(cacheStatus(await s.get("/p"))).toMatch(/; hit/);
    expect(s.calls).toBe(2);
  });

  it("does not hang when the unreadable entry is stale within staleWhileRevalidate", async () => {
    const { clock, cache } = clocked();
    const s = site({ cache, ttl: 1_000, staleWhileRevalidate: 60_000, now: clock.now });
    await cache.getOrSet(await keyOf("/q"), async () => foreign, {
      ttl: 1_000,
      staleWhileRevalidate: 60_000,
    });
    clock.advance(1_500);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hung = new Promise<"hung">((r) => {
      timer = setTimeout(() => r("hung"), 2_000);
    });
    const res = await Promise.race([s.get("/q"), hung]);
    clearTimeout(timer);
    expect(res).not.toBe("hung");
    expect(await (res as Response).text()).toBe("body 1");
    await until(() => cache.stats().loads >= 2);
    // The refresh found the handler already run for this request: it stored nothing, and
    // the next request loads normally.
    expect(cacheStatus(await s.get("/q"))).toContain("stored");
    expect(s.calls).toBe(2);
  });
});
