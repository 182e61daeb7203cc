/**
 * The `cached` Hono middleware inside workerd: the core of the Node matrix
 * (test/hono/cached-*.test.ts) against the real REST bridge over fetch, and stale-while-
 * revalidate through the runtime's own ExecutionContext (`c.executionCtx.waitUntil`).
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { type Context, Hono } from "hono";
import { describe, expect, inject, it } from "vitest";
import { type CachedEnv, type CachedOptions, cached } from "../../src/hono/cached/index.js";
import { type Cache, createCache, memoryStore } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

const fresh = () => `hono.workerd.${crypto.randomUUID()}`;

function bridged(namespace = fresh()): Cache {
  return createCache({
    store: upstashStore({ url, token }),
    namespace,
    sync: { maxStaleness: 0 },
    logger: false,
  });
}

type Respond = (c: Context<CachedEnv>, n: number) => Response | Promise<Response>;

function site(options: CachedOptions, respond: Respond = (c, n) => c.text(`body ${n}`)) {
  let calls = 0;
  const app = new Hono<CachedEnv>();
  app.onError((_err, c) => c.text("Internal Server Error", 500));
  app.all("*", cached(options), (c) => respond(c, ++calls));
  return {
    app,
    get calls() {
      return calls;
    },
    /** A request with a real ExecutionContext, waited on like the runtime would. */
    async get(path: string, init?: RequestInit) {
      const ctx = createExecutionContext();
      const res = await app.request(path, init, {}, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    },
  };
}

const cacheStatus = (res: Response) => res.headers.get("cache-status");

describe("cached in workerd", () => {
  it("runs in workerd", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it("stores a miss and replays it, with Age and Cache-Status", async () => {
    const s = site({ cache: bridged() }, (c, n) => c.json({ n }, 200, { "x-custom": "yes" }));
    const miss = await s.get("/products/1");
    expect(cacheStatus(miss)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await miss.json()).toEqual({ n: 1 });
    const hit = await s.get("/products/1");
    expect(await hit.json()).toEqual({ n: 1 });
    expect(hit.headers.get("x-custom")).toBe("yes");
    expect(hit.headers.get("age")).toBe("0");
    expect(cacheStatus(hit)).toMatch(/^edgecache; hit; ttl=(59|60)$/);
    expect(s.calls).toBe(1);
  });

  it("takes cache as a function of the context: made from env on the first request, once", async () => {
    // Registered before any env exists, as at a Worker's module scope.
    let made: Cache | undefined;
    let builds = 0;
    let runs = 0;
    const namespace = fresh();
    const app = new Hono<{ Bindings: Cloudflare.Env }>();
    app.get(
      "/lazy",
      cached({
        cache: (c: Context<{ Bindings: Cloudflare.Env }>) => {
          if (made === undefined) {
            builds++;
            made = createCache({
              store: upstashStore({
                url: c.env.UPSTASH_REDIS_REST_URL,
                token: c.env.UPSTASH_REDIS_REST_TOKEN,
              }),
              namespace,
              sync: { maxStaleness: 0 },
              logger: false,
            });
          }
          return made;
        },
      }),
      (c) => c.text(`run ${++runs}`),
    );
    const get = async () => {
      const ctx = createExecutionContext();
      const res = await app.request("/lazy", {}, env, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    };
    expect(await (await get()).text()).toBe("run 1");
    const hit = await get();
    expect(await hit.text()).toBe("run 1");
    expect(cacheStatus(hit)).toMatch(/^edgecache; hit;/);
    expect(builds).toBe(1);
  });

  it("runs the handler once for concurrent misses", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const s = site({ cache: bridged() }, async (c, n) => {
      await gate;
      return c.text(`body ${n}`);
    });
    const all = Promise.all(Array.from({ length: 5 }, () => s.get("/hot")));
    while (s.calls === 0) await new Promise((r) => setTimeout(r, 1));
    release();
    const bodies = await Promise.all((await all).map((r) => r.text()));
    expect(bodies).toEqual(Array(5).fill("body 1"));
    expect(s.calls).toBe(1);
  });

  it("round-trips binary bodies byte for byte", async () => {
    const bytes = new Uint8Array(40_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 7)) & 0xff;
    const s = site({ cache: bridged() }, (c) =>
      c.body(bytes.slice(), 200, { "content-type": "application/octet-stream" }),
    );
    await (await s.get("/blob")).arrayBuffer();
    const hit = await s.get("/blob");
    expect(cacheStatus(hit)).toMatch(/; hit;/);
    const replayed = new Uint8Array(await hit.arrayBuffer());
    expect(replayed.length).toBe(bytes.length);
    expect(replayed.every((b, i) => b === bytes[i])).toBe(true);
    expect(s.calls).toBe(1);
  });

  it("answers HEAD from the GET entry without a body", async () => {
    const s = site({ cache: bridged() });
    await s.get("/page");
    const head = await s.get("/page", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect(cacheStatus(head)).toMatch(/^edgecache; hit;/);
    expect(s.calls).toBe(1);
  });

  for (const [what, headers] of [
    ["no-store", { "cache-control": "no-store" }],
    ["private", { "cache-control": "private" }],
    ["set-cookie", { "set-cookie": "a=b" }],
  ] as const) {
    it(`never stores a response with ${what}`, async () => {
      const s = site({ cache: bridged() }, (c, n) => c.text(`${n}`, 200, headers));
      await s.get("/p");
      const second = await s.get("/p");
      expect(await second.text()).toBe("2");
      expect(cacheStatus(second)).toBe(`edgecache; fwd=miss; fwd-status=200; detail=${what}`);
    });
  }

  for (const header of ["authorization", "cookie"]) {
    it(`bypasses the cache for a request with ${header}`, async () => {
      const s = site({ cache: bridged() }, (c, n) =>
        c.text(c.req.header(header) ? `personal ${n}` : `public ${n}`),
      );
      expect(await (await s.get("/home", { headers: { [header]: "x" } })).text()).toBe(
        "personal 1",
      );
      expect(await (await s.get("/home")).text()).toBe("public 2");
      expect(await (await s.get("/home")).text()).toBe("public 2");
      expect(s.calls).toBe(2);
    });
  }

  it("passes POST, PUT and DELETE through to the handler every time, storing nothing", async () => {
    const cache = bridged();
    const s = site({ cache });
    for (const method of ["POST", "PUT", "DELETE", "POST"]) {
      const res = await s.get("/items", { method });
      expect(cacheStatus(res), method).toBe("edgecache; fwd=method; fwd-status=200");
      expect(await res.text()).toBe(`body ${s.calls}`);
    }
    expect(s.calls).toBe(4);
    expect(cache.stats().sets).toBe(0);
    // None of them left an entry a GET could read; the GET's own miss is what gets stored.
    const get = await s.get("/items");
    expect(await get.text()).toBe("body 5");
    expect(cacheStatus(get)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(cache.stats().sets).toBeGreaterThan(0);
  });

  it("vary: ['Authorization'] caches per credential; two credentials never share an entry", async () => {
    const s = site({ cache: bridged(), vary: ["Authorization"] }, (c, n) =>
      c.text(`for ${c.req.header("authorization") ?? "nobody"} ${n}`),
    );
    const as = (who: string) => ({ headers: { authorization: `Bearer token-of-${who}` } });
    const a = await s.get("/me", as("a"));
    expect(cacheStatus(a)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await a.text()).toBe("for Bearer token-of-a 1");
    const b = await s.get("/me", as("b"));
    expect(cacheStatus(b)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await b.text()).toBe("for Bearer token-of-b 2");
    const againA = await s.get("/me", as("a"));
    expect(cacheStatus(againA)).toMatch(/^edgecache; hit;/);
    expect(await againA.text()).toBe("for Bearer token-of-a 1");
    expect(await (await s.get("/me", as("b"))).text()).toBe("for Bearer token-of-b 2");
    // Without a credential: an entry of its own, not one of theirs.
    expect(await (await s.get("/me")).text()).toBe("for nobody 3");
    expect(s.calls).toBe(3);
    // Listing Authorization does not let a request with a Cookie in.
    const cookie = await s.get("/me", { headers: { cookie: "session=a" } });
    expect(cacheStatus(cookie)).toBe("edgecache; fwd=bypass; fwd-status=200; detail=credentials");
    expect(s.calls).toBe(4);
  });

  it("keys on the response's Vary headers", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(`${c.req.header("accept-language")} ${n}`, 200, { vary: "Accept-Language" }),
    );
    const fr = { headers: { "accept-language": "fr" } };
    const en = { headers: { "accept-language": "en" } };
    await s.get("/v", fr);
    await s.get("/v", en);
    expect(await (await s.get("/v", fr)).text()).toBe("fr 1");
    expect(await (await s.get("/v", en)).text()).toBe("en 2");
    expect(s.calls).toBe(2);
  });

  it("normalizes the query, and keeps paths differing in encoding or case apart", async () => {
    const s = site({ cache: bridged() }, (c, n) => c.text(`${new URL(c.req.url).pathname} ${n}`));
    await s.get("/q?b=2&a=1");
    expect(cacheStatus(await s.get("/q?a=%31&b=2"))).toMatch(/; hit;/);
    for (const path of ["/a/b", "/a%2Fb", "/A/b"]) await s.get(path);
    expect(s.calls).toBe(4);
  });

  it("repeated query parameters keep their order, which c.req.query depends on", async () => {
    const s = site({ cache: bridged() }, (c) => c.text(c.req.query("a") ?? ""));
    expect(await (await s.get("/q?a=1&a=2")).text()).toBe("1");
    expect(await (await s.get("/q?a=2&a=1")).text()).toBe("2");
    expect(await (await s.get("/q?a=1&a=2")).text()).toBe("1");
    expect(await (await s.get("/q?a=2&a=1")).text()).toBe("2");
    expect(s.calls).toBe(2);
  });

  it("a forged host fills only its own entry, and X-Forwarded-Host only with Vary", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text(`<link href="//${new URL(c.req.url).host}/">`),
    );
    await s.get("http://evil.example/page");
    const good = await s.get("http://shop.example/page");
    expect(await good.text()).toBe('<link href="//shop.example/">');
    expect(cacheStatus(good)).toMatch(/fwd=miss; fwd-status=200; stored/);
    expect(await (await s.get("http://shop.example/page")).text()).toBe(
      '<link href="//shop.example/">',
    );
    expect(s.calls).toBe(2);

    // A response built from X-Forwarded-Host says so in its Vary: a forged value gets a
    // variant of its own, never the one other requests read.
    const reflect = site({ cache: bridged() }, (c, n) =>
      c.text(`${c.req.header("x-forwarded-host") ?? "-"} ${n}`, 200, {
        vary: "X-Forwarded-Host",
      }),
    );
    const forged = { headers: { "x-forwarded-host": "evil.example" } };
    expect(await (await reflect.get("http://shop.example/r", forged)).text()).toBe(
      "evil.example 1",
    );
    expect(await (await reflect.get("http://shop.example/r")).text()).toBe("- 2");
    expect(await (await reflect.get("http://shop.example/r")).text()).toBe("- 2");
    expect(await (await reflect.get("http://shop.example/r", forged)).text()).toBe(
      "evil.example 1",
    );
    expect(reflect.calls).toBe(2);
  });

  it("revalidates on Cache-Control: no-cache", async () => {
    const s = site({ cache: bridged() });
    await s.get("/r");
    const revalidated = await s.get("/r", { headers: { "cache-control": "no-cache" } });
    expect(cacheStatus(revalidated)).toBe("edgecache; fwd=request; fwd-status=200; stored; ttl=60");
    expect(await (await s.get("/r")).text()).toBe("body 2");
    expect(s.calls).toBe(2);
  });

  it("passes a body over maxBodyBytes through, streamed, without storing it", async () => {
    const s = site({ cache: bridged(), maxBodyBytes: 100 }, (c) => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 3; i++) controller.enqueue(new Uint8Array(60).fill(i));
          controller.close();
        },
      });
      return c.body(stream);
    });
    const first = new Uint8Array(await (await s.get("/big")).arrayBuffer());
    expect(first.length).toBe(180);
    expect([first[0], first[60], first[179]]).toEqual([0, 1, 2]);
    await s.get("/big");
    expect(s.calls).toBe(2);
  });

  it("tag invalidation on one instance is a miss on the other", async () => {
    const namespace = fresh();
    const a = bridged(namespace);
    const b = bridged(namespace);
    const body = (who: string) => (c: Context<CachedEnv>, n: number) => {
      c.var.cacheTag("product:42");
      return c.text(`${who} ${n}`);
    };
    const siteA = site({ cache: a, tags: () => ["products"] }, body("a"));
    const siteB = site({ cache: b, tags: () => ["products"] }, body("b"));
    await siteA.get("/products/42");
    expect(await (await siteB.get("/products/42")).text()).toBe("a 1");
    await a.invalidateTag("product:42");
    expect(await (await siteB.get("/products/42")).text()).toBe("b 1");
    await b.invalidateTag("products");
    expect(await (await siteA.get("/products/42")).text()).toBe("a 2");
    expect([siteA.calls, siteB.calls]).toEqual([2, 1]);
  });

  it("serves stale and refreshes through the runtime's waitUntil", async () => {
    let t = 1_700_000_000_000;
    const now = () => t;
    const cache = createCache({
      store: memoryStore({ now }),
      namespace: "swr",
      now,
      sync: { maxStaleness: 0 },
      logger: false,
    });
    let version = 1;
    const s = site({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now }, (c) =>
      c.text(`v${version}`),
    );
    await s.get("/feed");
    version = 2;
    t += 1_500;
    const ctx = createExecutionContext();
    const stale = await s.app.request("/feed", {}, {}, ctx);
    expect(cacheStatus(stale)).toBe("edgecache; hit; ttl=-1; detail=stale-while-revalidate");
    expect(await stale.text()).toBe("v1");
    await waitOnExecutionContext(ctx);
    expect(s.calls).toBe(2);
    const refreshed = await s.get("/feed");
    expect(await refreshed.text()).toBe("v2");
    expect(cacheStatus(refreshed)).toBe("edgecache; hit; ttl=1");
  });

  it("serves the stale response within grace when the handler fails (stale-if-error)", async () => {
    let t = 1_700_000_000_000;
    const now = () => t;
    const cache = createCache({
      store: memoryStore({ now }),
      namespace: "grace",
      now,
      sync: { maxStaleness: 0 },
      logger: false,
    });
    let mode: "ok" | "500" | "throw" = "ok";
    const s = site({ cache, ttl: 1_000, grace: 60_000, now }, (c, n) => {
      if (mode === "throw") throw new Error("down");
      return mode === "500" ? c.text("oops", 500) : c.text(`good ${n}`);
    });
    await s.get("/g");
    t += 2_000;
    mode = "500";
    const graced = await s.get("/g");
    expect(graced.status).toBe(200);
    expect(await graced.text()).toBe("good 1");
    expect(cacheStatus(graced)).toBe(
      "edgecache; fwd=stale; fwd-status=500; ttl=-1; detail=stale-if-error",
    );
    expect(s.calls).toBe(2);
    t += 10_000; // past the grace backoff
    mode = "throw";
    const thrown = await s.get("/g");
    expect(thrown.status).toBe(200);
    expect(await thrown.text()).toBe("good 1");
    expect(cacheStatus(thrown)).toMatch(/; fwd=stale; fwd-status=500; .*detail=stale-if-error$/);
    expect(s.calls).toBe(3);
    t += 60_000; // past grace: the failure shows
    const failed = await s.get("/g");
    expect(failed.status).toBe(500);
    expect(s.calls).toBe(4);
  });
});
