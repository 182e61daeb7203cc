/**
 * The `cached` Hono middleware, through `app.request`, over real caches: `upstashStore`
 * against the REST bridge (redis-server), or `memoryStore` where a test moves the clock.
 * Every rule is asserted by counting handler runs, so a rule that breaks fails its case.
 */
import { type Context, Hono } from "hono";
import { etag } from "hono/etag";
import { describe, expect, expectTypeOf, inject, it } from "vitest";
import { type CachedEnv, type CachedOptions, cached } from "../src/hono/cached/index.js";
import { baseKey, normalizeUrl, variantKey } from "../src/hono/cached/key.js";
import {
  type Cache,
  type CacheOptions,
  createCache,
  EdgeCacheError,
  InvalidOptionError,
  memoryStore,
  type Store,
} from "../src/index.js";
import { shardedStore } from "../src/stores/sharded.js";
import { upstashStore } from "../src/stores/upstash.js";
import { chaosStore, fakeClock, until } from "./helpers.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

const fresh = () => `hono.${crypto.randomUUID()}`;

/** A cache over the real bridge; two with the same namespace are two instances. */
function bridged(namespace = fresh(), extra: Partial<CacheOptions> = {}): Cache {
  return createCache({
    store: upstashStore({ url, token }),
    namespace,
    sync: { maxStaleness: 0 },
    logger: false,
    ...extra,
  });
}

/** A cache over an in-process store, with a clock the test moves. */
function clocked(store?: Store) {
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

type Respond = (c: Context<CachedEnv>, n: number) => Response | Promise<Response>;

/** An app with `cached` in front of one handler for every method and path; counts runs. */
function site(options: CachedOptions, respond: Respond = (c, n) => c.text(`body ${n}`)) {
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

const cacheStatus = (res: Response) => res.headers.get("cache-status");

/** Byte-for-byte equality (toEqual walks typed arrays element by element: slow). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** An ExecutionContext whose waitUntil promises the test can wait for. */
function executionContext() {
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
function recording(inner: Store) {
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

describe("cached: storing and replaying", () => {
  it("stores a miss and replays it: status, headers and body, with Age and Cache-Status", async () => {
    const s = site({ cache: bridged(), ttl: 60_000 }, (c, n) =>
      c.json({ n }, 200, { "x-custom": "yes", etag: '"v1"' }),
    );
    const miss = await s.get("/products/1");
    expect(miss.status).toBe(200);
    expect(cacheStatus(miss)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await miss.json()).toEqual({ n: 1 });
    expect(miss.headers.get("age")).toBeNull();

    const hit = await s.get("/products/1");
    expect(s.calls).toBe(1);
    expect(hit.status).toBe(200);
    expect(await hit.json()).toEqual({ n: 1 });
    expect(hit.headers.get("content-type")).toMatch(/^application\/json/);
    expect(hit.headers.get("x-custom")).toBe("yes");
    expect(hit.headers.get("etag")).toBe('"v1"');
    expect(hit.headers.get("age")).toBe("0");
    expect(cacheStatus(hit)).toMatch(/^edgecache; hit; ttl=(59|60)$/);
  });

  it("runs the handler once for concurrent misses; the others are collapsed onto it", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const s = site({ cache: bridged() }, async (c, n) => {
      await gate;
      return c.text(`body ${n}`);
    });
    const all = Promise.all(Array.from({ length: 8 }, () => s.get("/hot")));
    await until(() => s.calls === 1);
    release();
    const responses = await all;
    expect(s.calls).toBe(1);
    expect(await Promise.all(responses.map((r) => r.text()))).toEqual(Array(8).fill("body 1"));
    const statuses = responses.map(cacheStatus);
    expect(statuses.filter((v) => v?.includes("stored"))).toHaveLength(1);
    expect(statuses.filter((v) => v?.startsWith("edgecache; fwd=miss; collapsed"))).toHaveLength(7);
  });

  it("round-trips binary bodies byte for byte", async () => {
    const bytes = new Uint8Array(70_001);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + (i >> 8)) & 0xff;
    for (let i = 0; i < 256; i++) bytes[i] = i; // every byte value
    const s = site({ cache: bridged() }, (c) =>
      c.body(bytes.slice(), 200, { "content-type": "application/octet-stream" }),
    );
    const miss = new Uint8Array(await (await s.get("/blob")).arrayBuffer());
    const hit = await s.get("/blob");
    expect(cacheStatus(hit)).toMatch(/; hit;/);
    expect(hit.headers.get("content-type")).toBe("application/octet-stream");
    const replayed = new Uint8Array(await hit.arrayBuffer());
    expect(s.calls).toBe(1);
    expect(replayed.length).toBe(bytes.length);
    expect(sameBytes(replayed, bytes)).toBe(true);
    expect(sameBytes(miss, bytes)).toBe(true);
  });

  it("answers HEAD from the GET entry without a body, and never stores from a HEAD", async () => {
    const s = site({ cache: bridged() }, (c, n) => c.text(`body ${n}`));
    const headFirst = await s.get("/page", { method: "HEAD" });
    expect(headFirst.status).toBe(200);
    expect(await headFirst.text()).toBe("");
    expect(cacheStatus(headFirst)).toBe("edgecache; fwd=miss; fwd-status=200");
    expect(s.calls).toBe(1);

    const get = await s.get("/page");
    expect(await get.text()).toBe("body 2");
    expect(cacheStatus(get)).toMatch(/fwd=miss; fwd-status=200; stored/);

    const head = await s.get("/page", { method: "HEAD" });
    expect(s.calls).toBe(2);
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    expect(cacheStatus(head)).toMatch(/^edgecache; hit; ttl=/);
  });

  it("replays 404s and 204s (cacheable statuses), not 201s or 500s", async () => {
    const s = site({ cache: bridged() }, (c) => {
      const status = Number(c.req.query("status"));
      return status === 204 ? c.body(null, 204) : c.text("x", status as 201);
    });
    for (const status of [404, 204]) {
      await s.get(`/s?status=${status}`);
      const again = await s.get(`/s?status=${status}`);
      expect(again.status).toBe(status);
      expect(cacheStatus(again)).toMatch(/; hit;/);
    }
    expect(s.calls).toBe(2);
    for (const status of [201, 500]) {
      await s.get(`/s?status=${status}`);
      const again = await s.get(`/s?status=${status}`);
      expect(again.status).toBe(status);
      expect(cacheStatus(again)).toBe(`edgecache; fwd=miss; fwd-status=${status}; detail=status`);
    }
    expect(s.calls).toBe(6);
  });

  it("stores only the statuses of the `statuses` option", async () => {
    const s = site({ cache: bridged(), statuses: [200] }, (c) => c.text("gone", 404));
    await s.get("/x");
    await s.get("/x");
    expect(s.calls).toBe(2);
  });

  it("works on a namespace and takes its TTL as the default", async () => {
    const http = bridged().namespace("http", { ttl: 5_000 });
    const s = site({ cache: http });
    expect(cacheStatus(await s.get("/n"))).toBe(
      "edgecache; fwd=miss; fwd-status=200; stored; ttl=5",
    );
    expect(cacheStatus(await s.get("/n"))).toMatch(/^edgecache; hit; ttl=[45]$/);
    expect(s.calls).toBe(1);
  });
});

describe("cached: what is never stored", () => {
  const never: Array<[string, Record<string, string>, string]> = [
    ["Cache-Control: no-store", { "cache-control": "no-store" }, "no-store"],
    ["Cache-Control: private", { "cache-control": "private, max-age=60" }, "private"],
    ["Cache-Control: no-cache", { "cache-control": "no-cache" }, "no-cache"],
    ["Set-Cookie", { "set-cookie": "session=abc; HttpOnly" }, "set-cookie"],
    ["Vary: *", { vary: "*" }, "vary-star"],
    ["max-age=0", { "cache-control": "max-age=0" }, "expired"],
  ];
  for (const [what, headers, detail] of never) {
    it(`a response with ${what}`, async () => {
      const cache = bridged();
      const s = site({ cache }, (c, n) => c.text(`private ${n}`, 200, headers));
      const first = await s.get("/me");
      const second = await s.get("/me");
      expect(s.calls).toBe(2);
      // Nothing was written at all (not even a placeholder).
      expect(cache.stats().sets).toBe(0);
      expect(await second.text()).toBe("private 2");
      expect(cacheStatus(first)).toBe(`edgecache; fwd=miss; fwd-status=200; detail=${detail}`);
      if (headers["set-cookie"])
        expect(second.headers.get("set-cookie")).toBe(headers["set-cookie"]);
    });
  }

  it("a response that turned out private is not handed to requests that joined its load", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const s = site({ cache: bridged() }, async (c, n) => {
      await gate;
      return c.text(`for caller ${n}`, 200, { "cache-control": "private" });
    });
    const all = Promise.all(Array.from({ length: 4 }, () => s.get("/account")));
    await until(() => s.calls === 1);
    release();
    const bodies = await Promise.all((await all).map((r) => r.text()));
    expect(s.calls).toBe(4);
    expect(new Set(bodies).size).toBe(4);
  });

  it("a handler that throws: the 500 passes through and is not stored", async () => {
    let fail = true;
    const s = site({ cache: bridged() }, (c) => {
      if (fail) throw new Error("boom");
      return c.text("ok");
    });
    const failed = await s.get("/flaky");
    expect(failed.status).toBe(500);
    expect(cacheStatus(failed)).toBe("edgecache; fwd=miss; fwd-status=500; detail=error");
    fail = false;
    expect(await (await s.get("/flaky")).text()).toBe("ok");
    expect(s.calls).toBe(2);
  });

  it("a body over maxBodyBytes passes through whole, streamed, and is not stored", async () => {
    const chunk = new Uint8Array(1000).fill(42);
    const s = site({ cache: bridged(), maxBodyBytes: 2500 }, (c) => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(chunk.slice());
          controller.close();
        },
      });
      return c.body(stream, 200, { "content-type": "application/octet-stream" });
    });
    const first = await s.get("/big");
    expect(
      sameBytes(new Uint8Array(await first.arrayBuffer()), new Uint8Array(4000).fill(42)),
    ).toBe(true);
    expect(cacheStatus(first)).toBe("edgecache; fwd=miss; fwd-status=200; detail=too-large");
    await s.get("/big");
    expect(s.calls).toBe(2);
    // With a declared Content-Length over the limit, the body is not even read.
    const declared = site({ cache: bridged(), maxBodyBytes: 10 }, (c) =>
      c.body("0123456789abcdef", 200, { "content-length": "16" }),
    );
    expect(await (await declared.get("/d")).text()).toBe("0123456789abcdef");
    await declared.get("/d");
    expect(declared.calls).toBe(2);
  });

  it("a must-revalidate response, when stale responses may be served", async () => {
    const headers = { "cache-control": "max-age=60, must-revalidate" };
    const s = site({ cache: bridged(), staleWhileRevalidate: 1_000 }, (c) =>
      c.text("x", 200, headers),
    );
    await s.get("/m");
    expect(cacheStatus(await s.get("/m"))).toMatch(/detail=must-revalidate/);
    const plain = site({ cache: bridged() }, (c) => c.text("x", 200, headers));
    await plain.get("/m");
    await plain.get("/m");
    expect([s.calls, plain.calls]).toEqual([2, 1]);
  });
});

describe("cached: requests that bypass the cache", () => {
  it("methods other than GET and HEAD go to the handler (fwd=method)", async () => {
    const s = site({ cache: bridged() });
    for (const method of ["POST", "PUT", "DELETE", "POST"]) {
      const res = await s.get("/items", { method });
      expect(cacheStatus(res)).toBe("edgecache; fwd=method; fwd-status=200");
    }
    expect(s.calls).toBe(4);
    const getOnly = site({ cache: bridged(), methods: ["GET"] });
    await getOnly.get("/items");
    expect(cacheStatus(await getOnly.get("/items", { method: "HEAD" }))).toMatch(/fwd=method/);
    expect(getOnly.calls).toBe(2);
  });

  it("other methods are cached when listed with a key function", async () => {
    const s = site({
      cache: bridged(),
      methods: ["GET", "POST"],
      key: async (c) => `${c.req.path}#${await c.req.raw.clone().text()}`,
    });
    await s.get("/search", { method: "POST", body: "q=1" });
    const again = await s.get("/search", { method: "POST", body: "q=1" });
    expect(cacheStatus(again)).toMatch(/; hit;/);
    await s.get("/search", { method: "POST", body: "q=2" });
    await s.get("/search");
    expect(s.calls).toBe(3);
  });

  for (const [header, value] of [
    ["authorization", "Bearer secret-token"],
    ["cookie", "session=alice"],
  ] as const) {
    it(`a request with ${header} neither reads nor populates the shared entry`, async () => {
      const s = site({ cache: bridged() }, (c, n) =>
        c.text(c.req.header(header) ? `personal ${n}` : `public ${n}`),
      );
      // It comes first: its personalized response must not become the shared one.
      const personal = await s.get("/home", { headers: { [header]: value } });
      expect(await personal.text()).toBe("personal 1");
      expect(cacheStatus(personal)).toBe(
        "edgecache; fwd=bypass; fwd-status=200; detail=credentials",
      );
      expect(await (await s.get("/home")).text()).toBe("public 2");
      // And it does not read the shared one either.
      expect(await (await s.get("/home", { headers: { [header]: value } })).text()).toBe(
        "personal 3",
      );
      expect(await (await s.get("/home")).text()).toBe("public 2");
      expect(s.calls).toBe(3);
    });
  }

  it("vary: ['Authorization'] caches per credential, and keys hold only its hash", async () => {
    const { store, written } = recording(upstashStore({ url, token }));
    const cache = createCache({ store, namespace: fresh(), logger: false });
    const s = site({ cache, vary: ["Authorization"] }, (c, n) =>
      c.text(`for ${c.req.header("authorization")?.slice(-1)} ${n}`),
    );
    const as = (who: string) => ({ headers: { authorization: `Bearer token-of-${who}` } });
    expect(await (await s.get("/me", as("a"))).text()).toBe("for a 1");
    expect(await (await s.get("/me", as("b"))).text()).toBe("for b 2");
    expect(await (await s.get("/me", as("a"))).text()).toBe("for a 1");
    expect(await (await s.get("/me", as("b"))).text()).toBe("for b 2");
    expect(s.calls).toBe(2);
    expect(written.length).toBeGreaterThan(0);
    expect(written.join("\n")).not.toContain("token-of");
  });

  it("a request with Cache-Control: no-store goes to the handler and is not stored", async () => {
    const s = site({ cache: bridged() });
    const res = await s.get("/x", { headers: { "cache-control": "no-store" } });
    expect(cacheStatus(res)).toBe("edgecache; fwd=request; fwd-status=200; detail=no-store");
    await s.get("/x");
    expect(s.calls).toBe(2);
  });

  for (const [what, headers] of [
    ["Cache-Control: no-cache", { "cache-control": "no-cache" }],
    ["Cache-Control: max-age=0", { "cache-control": "max-age=0" }],
    ["Pragma: no-cache", { pragma: "no-cache" }],
  ] as const) {
    it(`${what} revalidates: the handler runs and its response replaces the stored one`, async () => {
      const s = site({ cache: bridged() });
      expect(await (await s.get("/r")).text()).toBe("body 1");
      const revalidated = await s.get("/r", { headers });
      expect(await revalidated.text()).toBe("body 2");
      expect(cacheStatus(revalidated)).toBe(
        "edgecache; fwd=request; fwd-status=200; stored; ttl=60",
      );
      const after = await s.get("/r");
      expect(await after.text()).toBe("body 2");
      expect(cacheStatus(after)).toMatch(/; hit;/);
      expect(s.calls).toBe(2);
    });
  }

  it("no-cache revalidates a URL whose responses vary, replacing that variant", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(`${c.req.header("accept-language")} ${n}`, 200, { vary: "Accept-Language" }),
    );
    const fr = { "accept-language": "fr" };
    await s.get("/rv", { headers: fr });
    await s.get("/rv", { headers: { "accept-language": "en" } });
    const revalidated = await s.get("/rv", { headers: { ...fr, "cache-control": "no-cache" } });
    expect(await revalidated.text()).toBe("fr 3");
    expect(await (await s.get("/rv", { headers: fr })).text()).toBe("fr 3");
    expect(await (await s.get("/rv", { headers: { "accept-language": "en" } })).text()).toBe(
      "en 2",
    );
    expect(s.calls).toBe(3);
  });

  it("only-if-cached answers from the cache, or 504 without running the handler", async () => {
    const s = site({ cache: bridged() });
    const miss = await s.get("/o", { headers: { "cache-control": "only-if-cached" } });
    expect(miss.status).toBe(504);
    expect(s.calls).toBe(0);
    await s.get("/o");
    const hit = await s.get("/o", { headers: { "cache-control": "only-if-cached" } });
    expect(await hit.text()).toBe("body 1");
    expect(s.calls).toBe(1);
  });
});

describe("cached: keys and poisoning attempts", () => {
  it("query parameters in any order, or spelled differently, share an entry", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(`${JSON.stringify(c.req.queries())} ${n}`),
    );
    const first = await (await s.get("/q?b=2&a=1&c=x%20y")).text();
    for (const spelling of ["/q?a=1&b=2&c=x+y", "/q?c=x%20y&a=%31&b=2", "/q?a=1&&b=2&c=x y"]) {
      expect(await (await s.get(spelling)).text()).toBe(first);
    }
    expect(s.calls).toBe(1);
  });

  it("spellings a handler can tell apart never share an entry: %FF vs %25FF, %26 vs &", async () => {
    // c.req.query() reads %FF (not UTF-8, left as is) and %25FF both as "%FF";
    // URLSearchParams reads "\uFFFD" and "%FF". A handler may use either.
    const s = site({ cache: bridged() }, (c) =>
      c.text(JSON.stringify([new URL(c.req.url).searchParams.get("q"), c.req.queries()])),
    );
    const raw = await (await s.get("/q?q=%FF")).text();
    const escaped = await (await s.get("/q?q=%25FF")).text();
    expect(raw).not.toBe(escaped);
    expect(JSON.parse(escaped)[0]).toBe("%FF");
    // Undecodable runs next to text that encodes to escapes: c.req.query() tells these
    // apart ("%FF/" and "%FF%2F"; "%E2%82 " and "%E2%82%20").
    for (const [a, b] of [
      ["/q?q=%FF/", "/q?q=%FF%2F"],
      ["/q?q=%E2%82+", "/q?q=%E2%82%20"],
      ["/q?q=/%FF", "/q?q=%2F%FF"],
      ["/q?q=%FF%", "/q?q=%FF%25"],
    ] as const) {
      const one = JSON.parse(await (await s.get(a)).text())[1];
      const other = JSON.parse(await (await s.get(b)).text())[1];
      expect(one).not.toEqual(other);
    }
    // An encoded separator is part of the value, not a second parameter.
    const one = await (await s.get("/q?a=1%26b%3D2")).text();
    const two = await (await s.get("/q?a=1&b=2")).text();
    expect(JSON.parse(one)[1]).toEqual({ a: ["1&b=2"] });
    expect(JSON.parse(two)[1]).toEqual({ a: ["1"], b: ["2"] });
    expect(s.calls).toBe(12);
    // Each spelling is still a hit for itself.
    expect(await (await s.get("/q?q=%FF")).text()).toBe(raw);
    expect(await (await s.get("/q?q=%25FF")).text()).toBe(escaped);
    expect(s.calls).toBe(12);
  });

  it("repeated parameters keep their order, which c.req.query depends on", async () => {
    const s = site({ cache: bridged() }, (c) => c.text(c.req.query("a") ?? ""));
    expect(await (await s.get("/q?a=1&a=2")).text()).toBe("1");
    expect(await (await s.get("/q?a=2&a=1")).text()).toBe("2");
    expect(s.calls).toBe(2);
  });

  it("paths differing in case or encoding (%2F, %2f, /) never share an entry", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text(`${c.req.path} ${new URL(c.req.url).pathname}`),
    );
    const paths = ["/a/b", "/a%2Fb", "/a%2fb", "/A/b"];
    const first = await Promise.all(paths.map(async (p) => (await s.get(p)).text()));
    expect(new Set(first).size).toBe(4);
    const again = await Promise.all(paths.map(async (p) => (await s.get(p)).text()));
    expect(again).toEqual(first);
    expect(s.calls).toBe(4);
  });

  it("the host is part of the key: a forged host fills only its own entry", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text(`<link href="//${new URL(c.req.url).host}/">`),
    );
    await s.get("http://evil.example/page");
    const good = await s.get("http://shop.example/page");
    expect(await good.text()).toBe('<link href="//shop.example/">');
    expect(await (await s.get("http://shop.example/page")).text()).toBe(
      '<link href="//shop.example/">',
    );
    expect(s.calls).toBe(2);
  });

  it("unkeyed request headers do not split the cache", async () => {
    const s = site({ cache: bridged() });
    await s.get("/u", { headers: { "x-forwarded-host": "evil.example", "user-agent": "a" } });
    const other = await s.get("/u", {
      headers: { "x-forwarded-host": "shop.example", "user-agent": "b" },
    });
    expect(cacheStatus(other)).toMatch(/; hit;/);
    expect(s.calls).toBe(1);
  });

  it("a response's Vary keys it on those request headers: one variant never serves another", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(
        `${c.req.header("x-forwarded-host") ?? "-"}/${c.req.header("accept-language") ?? "-"} ${n}`,
        200,
        {
          vary: "Accept-Language, X-Forwarded-Host",
        },
      ),
    );
    const evil = { "x-forwarded-host": "evil.example", "accept-language": "fr" };
    const fr = { "accept-language": "fr" };
    const en = { "accept-language": "en" };
    const a = await s.get("/v", { headers: evil });
    expect(cacheStatus(a)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    const b = await s.get("/v", { headers: fr });
    expect(await b.text()).toBe("-/fr 2");
    expect(cacheStatus(b)).toBe("edgecache; fwd=vary-miss; fwd-status=200; stored; ttl=60");
    expect(await (await s.get("/v", { headers: en })).text()).toBe("-/en 3");
    expect(await (await s.get("/v", { headers: fr })).text()).toBe("-/fr 2");
    expect(await (await s.get("/v", { headers: en })).text()).toBe("-/en 3");
    expect(await (await s.get("/v", { headers: evil })).text()).toBe("evil.example/fr 1");
    expect(await (await s.get("/v")).text()).toBe("-/- 4");
    expect(s.calls).toBe(4);
  });

  it("when a URL's Vary changes, no response is served to a request it does not match", async () => {
    let vary: string | undefined = "Accept-Language";
    const s = site({ cache: bridged(), ttl: 60_000 }, (c, n) =>
      c.text(`${c.req.header("accept-language") ?? "-"} ${n}`, 200, vary ? { vary } : {}),
    );
    await s.get("/c", { headers: { "accept-language": "fr" } });
    vary = "Accept-Language, Accept-Encoding";
    // A variant key made with one header, answered by a response varying on two.
    const en = await s.get("/c", {
      headers: { "accept-language": "en", "accept-encoding": "gzip" },
    });
    expect(await en.text()).toBe("en 2");
    const enBr = await s.get("/c", {
      headers: { "accept-language": "en", "accept-encoding": "br" },
    });
    expect(await enBr.text()).toBe("en 3");
    expect(
      await (
        await s.get("/c", { headers: { "accept-language": "en", "accept-encoding": "gzip" } })
      ).text(),
    ).toBe("en 2");
    vary = undefined;
    // No Vary any more: the response goes under the URL's own key, for every request.
    await s.get("/c", { headers: { "accept-language": "de", "accept-encoding": "x" } });
    const plain = await s.get("/c", { headers: { "accept-language": "it" } });
    expect(await plain.text()).toBe("de 4");
    expect(cacheStatus(plain)).toMatch(/; hit;/);
    expect(s.calls).toBe(4);
  });

  it("the key option replaces the URL in the key", async () => {
    const s = site({ cache: bridged(), key: (c) => c.req.path });
    await s.get("/k?utm_source=a");
    expect(cacheStatus(await s.get("/k?utm_source=b"))).toMatch(/; hit;/);
    expect(s.calls).toBe(1);
  });
});

describe("cached: key construction", () => {
  it("no base, however crafted, produces another base's key", async () => {
    const fr = new Headers({ "accept-language": "fr" });
    const victim = await variantKey("GET http://shop.example/a", ["accept-language"], fr);
    const suffix = victim.slice(victim.lastIndexOf("|") + 1);
    expect(suffix).toMatch(/^[0-9a-f]{64}$/);
    // A path ending in "|<that hash>" is still followed by a hash of its own.
    const forged = await variantKey(`GET http://shop.example/a|${suffix}`, [], new Headers());
    expect(forged).not.toBe(victim);
    expect(forged.startsWith(victim)).toBe(true);
  });

  it("normalizes scheme, host and default port, and sorts the query; leaves the path alone", () => {
    expect(normalizeUrl("HTTP://Shop.EXAMPLE:80/A/%7e/b%2f?z=1&a=%7E&a=x+y&b")).toBe(
      "http://shop.example/A/%7e/b%2f?a=~&a=x%20y&b=&z=1",
    );
    expect(normalizeUrl("https://shop.example:8443/?%ZZ=%E2%82&c=%E2%82%AC")).toBe(
      "https://shop.example:8443/?%25ZZ=[%E2%82]&c=%E2%82%AC",
    );
  });

  it("hashes a base too long for a key, so long URLs are cached too", async () => {
    const s = site({ cache: bridged() });
    const long = `/search?q=${"x".repeat(3_000)}`;
    await s.get(long);
    expect(cacheStatus(await s.get(long))).toMatch(/; hit;/);
    expect(cacheStatus(await s.get(`${long}y`))).toMatch(/fwd=miss/);
    expect(s.calls).toBe(2);
  });
});

describe("cached: freshness, stale-while-revalidate and grace", () => {
  it("takes the response's s-maxage, else max-age less Age, else Expires as the TTL", async () => {
    const { clock, cache } = clocked();
    let headers: Record<string, string> = { "cache-control": "max-age=30, s-maxage=5" };
    const s = site({ cache, ttl: 60_000, now: clock.now }, (c, n) => c.text(`${n}`, 200, headers));
    expect(cacheStatus(await s.get("/f"))).toMatch(/stored; ttl=5$/);
    clock.advance(5_001);
    expect(await (await s.get("/f")).text()).toBe("2");
    headers = { "cache-control": "max-age=30", age: "10" };
    expect(cacheStatus(await s.get("/g"))).toMatch(/stored; ttl=20$/);
    clock.advance(15_000);
    const aged = await s.get("/g");
    expect(aged.headers.get("age")).toBe("25");
    expect(cacheStatus(aged)).toBe("edgecache; hit; ttl=5");
    headers = { date: new Date(0).toUTCString(), expires: new Date(42_000).toUTCString() };
    expect(cacheStatus(await s.get("/h"))).toMatch(/stored; ttl=42$/);
    expect(s.calls).toBe(4);
  });

  it("with honorMaxAge: false, the ttl option decides", async () => {
    const s = site({ cache: bridged(), ttl: 7_000, honorMaxAge: false }, (c) =>
      c.text("x", 200, { "cache-control": "max-age=300" }),
    );
    expect(cacheStatus(await s.get("/t"))).toMatch(/stored; ttl=7$/);
  });

  it("serves a stale response at once and refreshes it in the background (waitUntil)", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    let calls = 0;
    const app = new Hono<CachedEnv>();
    // A middleware before cached that sets a per-request header before and after next().
    let request = 0;
    app.use(async (c, next) => {
      c.header("x-request", String(++request));
      await next();
      c.header("x-after", "yes");
    });
    app.get(
      "/feed",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      (c) => {
        calls++;
        return c.text(`v${version}`, 200, { "x-version": String(version) });
      },
    );
    expect(await (await app.request("/feed")).text()).toBe("v1");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/feed", {}, undefined, ec.ctx);
    expect(cacheStatus(stale)).toBe("edgecache; hit; ttl=-1; detail=stale-while-revalidate");
    expect(stale.headers.get("x-version")).toBe("1");
    expect(stale.headers.get("x-request")).toBe("2");
    expect(stale.headers.get("x-after")).toBe("yes");
    expect(await stale.text()).toBe("v1");
    await ec.settle();
    expect(calls).toBe(2);
    const refreshed = await app.request("/feed");
    expect(await refreshed.text()).toBe("v2");
    expect(refreshed.headers.get("x-version")).toBe("2");
    // Nothing of the stale replay leaked into the refreshed entry.
    expect(cacheStatus(refreshed)).toBe("edgecache; hit; ttl=1");
    expect(refreshed.headers.get("age")).toBe("0");
    expect(refreshed.headers.get("x-request")).toBe("3");
    expect(calls).toBe(2);
  });

  it("refreshes only after middleware before it is done with the stale response", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    const app = new Hono<CachedEnv>();
    // Middleware that works on the response after an asynchronous step, and a handler that
    // takes one too: the refresh must not run the handler on the context in between.
    const tick = () => new Promise((r) => setTimeout(r, 0));
    app.use(async (c, next) => {
      await next();
      await tick();
      c.header("x-after", "yes");
    });
    app.get(
      "/slow",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      async (c) => {
        const v = version;
        await tick();
        return c.text(`v${v}`, 200, { "x-version": String(v) });
      },
    );
    await app.request("/slow");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/slow", {}, undefined, ec.ctx);
    expect(stale.status).toBe(200);
    expect(stale.headers.get("x-after")).toBe("yes");
    expect(stale.headers.get("x-version")).toBe("1");
    expect(await stale.text()).toBe("v1");
    await ec.settle();
    expect(await (await app.request("/slow")).text()).toBe("v2");
  });

  it("refreshes in-process where there is no executionCtx (Node, Bun)", async () => {
    const { clock, cache } = clocked();
    const s = site({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now });
    await s.get("/feed");
    clock.advance(2_000);
    expect(await (await s.get("/feed")).text()).toBe("body 1");
    await until(() => s.calls === 2);
    await until(async () => (await (await s.get("/feed")).text()) === "body 2");
    expect(s.calls).toBe(2);
  });

  it("a stale response survives an upstream etag middleware during the refresh", async () => {
    const { clock, cache } = clocked();
    let version = 1;
    const app = new Hono<CachedEnv>();
    app.use(etag());
    app.get(
      "/e",
      cached({ cache, ttl: 1_000, staleWhileRevalidate: 10_000, now: clock.now }),
      (c) => c.text(`version ${version}`),
    );
    const first = await app.request("/e");
    const tag1 = first.headers.get("etag");
    version = 2;
    clock.advance(1_500);
    const ec = executionContext();
    const stale = await app.request("/e", {}, undefined, ec.ctx);
    expect(await stale.text()).toBe("version 1");
    expect(stale.headers.get("etag")).toBe(tag1);
    await ec.settle();
    const fresh2 = await app.request("/e");
    expect(await fresh2.text()).toBe("version 2");
    expect(fresh2.headers.get("etag")).not.toBe(tag1);
  });

  it("serves the stale response within grace when the handler fails (stale-if-error)", async () => {
    const { clock, cache } = clocked();
    let mode: "ok" | "500" | "throw" = "ok";
    const s = site({ cache, ttl: 1_000, grace: 60_000, now: clock.now }, (c, n) => {
      if (mode === "throw") throw new Error("down");
      return mode === "500" ? c.text("oops", 500) : c.text(`good ${n}`);
    });
    await s.get("/g");
    clock.advance(2_000);
    mode = "500";
    const graced = await s.get("/g");
    expect(graced.status).toBe(200);
    expect(await graced.text()).toBe("good 1");
    expect(cacheStatus(graced)).toBe(
      "edgecache; fwd=stale; fwd-status=500; ttl=-1; detail=stale-if-error",
    );
    expect(s.calls).toBe(2);
    clock.advance(10_000); // past the grace backoff
    mode = "throw";
    const thrown = await s.get("/g");
    expect(await thrown.text()).toBe("good 1");
    expect(thrown.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(s.calls).toBe(3);
    clock.advance(60_000); // past grace: the failure shows
    expect((await s.get("/g")).status).toBe(500);
  });

  it("answers a matching conditional request with 304 from the stored response", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text("doc", 200, { etag: 'W/"abc"', "last-modified": new Date(1_000_000).toUTCString() }),
    );
    await s.get("/doc");
    const inm = await s.get("/doc", { headers: { "if-none-match": '"x", "abc"' } });
    expect(inm.status).toBe(304);
    expect(await inm.text()).toBe("");
    expect(inm.headers.get("etag")).toBe('W/"abc"');
    expect(cacheStatus(inm)).toMatch(/; hit;/);
    expect((await s.get("/doc", { headers: { "if-none-match": '"other"' } })).status).toBe(200);
    const ims = { "if-modified-since": new Date(2_000_000).toUTCString() };
    expect((await s.get("/doc", { headers: ims })).status).toBe(304);
    expect(s.calls).toBe(1);
  });
});

describe("cached: tags", () => {
  it("the tags option and c.var.cacheTag tag the entry; invalidateTag makes it a miss", async () => {
    const cache = bridged();
    const s = site({ cache, tags: (c) => [`path:${c.req.path}`, "products"] }, (c, n) => {
      c.var.cacheTag(`product:${c.req.path.slice(-1)}`);
      return c.text(`${c.req.path} ${n}`);
    });
    await s.get("/p/1");
    await s.get("/p/2");
    await cache.invalidateTag("product:1");
    expect(await (await s.get("/p/1")).text()).toBe("/p/1 3");
    expect(await (await s.get("/p/2")).text()).toBe("/p/2 2");
    await cache.invalidateTag("products");
    expect(await (await s.get("/p/2")).text()).toBe("/p/2 4");
    await cache.invalidateTag("path:/p/1");
    expect(await (await s.get("/p/1")).text()).toBe("/p/1 5");
  });

  it("invalidateTag on one instance is a miss on the other (two caches over the bridge)", async () => {
    const namespace = fresh();
    const a = bridged(namespace);
    const b = bridged(namespace);
    const body = (who: string) => (c: Context<CachedEnv>, n: number) => {
      c.var.cacheTag("product:42");
      return c.text(`${who} ${n}`);
    };
    const siteA = site({ cache: a, tags: ["products"] }, body("a"));
    const siteB = site({ cache: b, tags: ["products"] }, body("b"));
    expect(await (await siteA.get("/products/42")).text()).toBe("a 1");
    expect(await (await siteB.get("/products/42")).text()).toBe("a 1");
    expect(siteB.calls).toBe(0);
    await a.invalidateTag("products");
    const afterA = await siteB.get("/products/42");
    expect(await afterA.text()).toBe("b 1");
    expect(cacheStatus(afterA)).toMatch(/fwd=miss; fwd-status=200; stored/);
    expect(await (await siteA.get("/products/42")).text()).toBe("b 1");
    await b.invalidateTag("product:42");
    expect(await (await siteA.get("/products/42")).text()).toBe("a 2");
    expect([siteA.calls, siteB.calls]).toEqual([2, 1]);
  });
});

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

describe("cached: options", () => {
  const cache = createCache({ store: memoryStore(), logger: false });
  const bad: Array<[string, Partial<CachedOptions>]> = [
    ["no cache", { cache: undefined as unknown as Cache }],
    ["a cache that is not one", { cache: {} as Cache }],
    ["ttl 0", { ttl: 0 }],
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
    ["key not a function", { key: "path" as unknown as () => string }],
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

describe("cached: the Cookie opt-in and event streams", () => {
  it("vary: ['Cookie'] caches per cookie; two sessions never share an entry, keys hold only its hash", async () => {
    const { store, written } = recording(upstashStore({ url, token }));
    const cache = createCache({ store, namespace: fresh(), logger: false });
    const s = site({ cache, vary: ["Cookie"] }, (c, n) =>
      c.text(`for ${c.req.header("cookie") ?? "nobody"} ${n}`),
    );
    const as = (who: string) => ({ headers: { cookie: `session=cookie-of-${who}` } });
    const alice = await s.get("/me", as("alice"));
    expect(cacheStatus(alice)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await alice.text()).toBe("for session=cookie-of-alice 1");
    expect(await (await s.get("/me", as("bob"))).text()).toBe("for session=cookie-of-bob 2");
    const again = await s.get("/me", as("alice"));
    expect(cacheStatus(again)).toMatch(/^edgecache; hit;/);
    expect(await again.text()).toBe("for session=cookie-of-alice 1");
    expect(await (await s.get("/me", as("bob"))).text()).toBe("for session=cookie-of-bob 2");
    // Without a cookie: an entry of its own, not one of theirs.
    expect(await (await s.get("/me")).text()).toBe("for nobody 3");
    expect(s.calls).toBe(3);
    expect(written.length).toBeGreaterThan(0);
    expect(written.join("\n")).not.toContain("cookie-of");
    // Listing Cookie does not let a request with Authorization in.
    const bearer = await s.get("/me", { headers: { authorization: "Bearer x" } });
    expect(cacheStatus(bearer)).toBe("edgecache; fwd=bypass; fwd-status=200; detail=credentials");
    expect(s.calls).toBe(4);
  });

  for (const type of ["text/event-stream", "Text/Event-Stream; charset=utf-8"]) {
    it(`never stores a ${type} response`, async () => {
      const cache = bridged();
      const s = site({ cache }, (c, n) =>
        c.body(`data: ${n}\n\n`, 200, { "content-type": type, "cache-control": "max-age=60" }),
      );
      const first = await s.get("/events");
      expect(cacheStatus(first)).toBe("edgecache; fwd=miss; fwd-status=200; detail=event-stream");
      expect(await first.text()).toBe("data: 1\n\n");
      const second = await s.get("/events");
      expect(cacheStatus(second)).toBe("edgecache; fwd=miss; fwd-status=200; detail=event-stream");
      expect(await second.text()).toBe("data: 2\n\n");
      expect(s.calls).toBe(2);
      expect(cache.stats().sets).toBe(0);
    });
  }
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

describe("cached: tags on a cache that cannot carry them (a sharded store)", () => {
  it("serves the response unstored, says so, and reports the refusal", async () => {
    const store = shardedStore([memoryStore(), memoryStore()]);
    const cache = createCache({ store, namespace: "hono", logger: false });
    const reported: string[] = [];
    const s = site({
      cache,
      tags: ["products"],
      onError: (e) => reported.push((e as { code?: string }).code ?? "?"),
    });
    const first = await s.get("/p");
    expect(await first.text()).toBe("body 1");
    expect(cacheStatus(first)).toContain("detail=tag-error");
    expect(cacheStatus(first)).not.toContain("stored");
    expect(await (await s.get("/p")).text()).toBe("body 2");
    expect(reported).toEqual(["EC_INVALID_OPTION", "EC_INVALID_OPTION"]);
    expect(cache.stats().sets).toBe(0);
  });
});
