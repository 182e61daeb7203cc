/**
 * The built package inside workerd (through @cloudflare/vitest-pool-workers): the same
 * scenario as Node, Deno and Bun run in `test/runtimes.test.ts`, against the real REST bridge
 * over fetch, then the Worker of `worker/index.ts` through its `fetch` handler, whose raw
 * routes (`/cache/*`, `/stats`) need the admin token that vitest.config.ts binds.
 *
 * Nothing here imports `edgecache` statically: the scenario must be the first to load it, so
 * that its watch on `process`/`Buffer` also covers what the package does at import time.
 */
import { env, exports } from "cloudflare:workers";
import type { Cache } from "edgecache";
import type { Store } from "edgecache/store";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { expectedSummary, runScenario } from "../runtimes/scenario.mjs";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

describe("workerd", () => {
  it("is the runtime these tests run in", () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
  });

  it("runs the scenario on the built package and produces the expected summary", async () => {
    const summary = await runScenario({
      url,
      token,
      namespace: `runtimes.workerd.${crypto.randomUUID()}`,
    });
    expect({ runtime: "workerd", ...summary }).toEqual(expectedSummary("workerd"));
  });
});

describe("sync.pubsub in workerd", () => {
  it("refuses to subscribe, pointing to the hub, and publishes with subscribe: false", async () => {
    const { createCache } = await import("edgecache");
    const { upstashStore } = await import("edgecache/upstash");
    const namespace = `pubsub.workerd.${crypto.randomUUID()}`;
    const make = (pubsub: unknown) =>
      createCache({
        store: upstashStore({ url, token }),
        namespace,
        sync: { pubsub: pubsub as true },
      });
    let refusal: unknown;
    try {
      make(true);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toMatchObject({ code: "EC_INVALID_OPTION" });
    expect(String(refusal)).toMatch(/sync\.hub/);
    // A Worker publishes from its write scripts (what subscribers then receive is tested in
    // Node: test/pubsub.test.ts).
    const publisher = make({ subscribe: false });
    await publisher.set("k", "v");
    expect(await publisher.get("k")).toBe("v");
    expect(publisher.stats().pubsub).toBeUndefined();
    await publisher.close();
  });
});

describe("the Worker (worker/index.ts)", () => {
  const namespace = env.EDGECACHE_NAMESPACE;
  const adminToken = env.EDGECACHE_ADMIN_TOKEN;
  const bearer = { authorization: `Bearer ${adminToken}` };
  /** A request to the Worker, as a client that holds the admin token. */
  const call = (path: string, init?: RequestInit) =>
    exports.default.fetch(
      new Request(`http://edgecache.test${path}`, { ...init, headers: { ...bearer } }),
    );
  /** A request to the Worker with exactly the headers given (none by default). */
  const callAs = (headers: Record<string, string>, path: string, init?: RequestInit) =>
    exports.default.fetch(new Request(`http://edgecache.test${path}`, { ...init, headers }));
  const put = (path: string, body: string) => call(path, { method: "PUT", body });
  /** The store the Worker uses, read directly. */
  let store: Store;
  /** A cache without L1: sees what the Worker really wrote to L2. */
  let l2: Cache;

  beforeAll(async () => {
    const { createCache } = await import("edgecache");
    const { upstashStore } = await import("edgecache/upstash");
    store = upstashStore({ url, token });
    l2 = createCache({ store, namespace, local: false });
  });

  it("has an admin token to test with (vitest.config.ts binds a random one)", () => {
    expect(typeof adminToken).toBe("string");
    expect(adminToken.length).toBeGreaterThanOrEqual(16);
  });

  /** Every method of every raw route, as a client would try them. */
  const rawRequests = (key: string): { path: string; init: RequestInit }[] => [
    { path: `/cache/${key}`, init: { method: "GET" } },
    { path: `/cache/${key}`, init: { method: "HEAD" } },
    { path: `/cache/${key}`, init: { method: "PUT", body: '"overwritten"' } },
    { path: `/cache/${key}?ttl=1000`, init: { method: "PUT", body: '"overwritten"' } },
    { path: `/cache/${key}`, init: { method: "DELETE" } },
    { path: `/cache/${key}`, init: { method: "POST", body: '"overwritten"' } },
    { path: "/stats", init: { method: "GET" } },
    { path: "/stats", init: { method: "DELETE" } },
  ];

  async function expectRefused(res: Response, what: string): Promise<void> {
    expect(res.status, what).toBe(401);
    expect(res.headers.get("www-authenticate"), what).toBe("Bearer");
    if (res.body !== null) {
      const text = await res.text();
      if (text !== "") expect(JSON.parse(text), what).toEqual({ error: "unauthorized" });
    }
  }

  it("refuses the raw routes without a token: 401 with WWW-Authenticate: Bearer, nothing read or changed", async () => {
    await l2.set("guarded:none", "secret-value");
    for (const { path, init } of rawRequests("guarded%3Anone")) {
      await expectRefused(await callAs({}, path, init), `${init.method} ${path}`);
    }
    // Neither overwritten nor deleted, and a PUT of a new key wrote nothing.
    expect(await l2.get("guarded:none")).toBe("secret-value");
    await expectRefused(
      await callAs({}, "/cache/guarded%3Anew", { method: "PUT", body: '"x"' }),
      "PUT of a new key",
    );
    expect(await l2.has("guarded:new")).toBe(false);
  });

  it("refuses the raw routes with a wrong or malformed token: 401, nothing read or changed", async () => {
    await l2.set("guarded:wrong", "secret-value");
    const last = adminToken.at(-1);
    const flipped = `${adminToken.slice(0, -1)}${last === "A" ? "B" : "A"}`;
    const wrong = [
      "Bearer wrong-token-0123456789abcdef",
      `Bearer ${adminToken}x`, // the token as a prefix
      `Bearer ${adminToken.slice(0, -1)}`, // a prefix of the token
      `Bearer ${flipped}`, // one character off
      `Bearer ${adminToken} ${adminToken}`,
      `Basic ${adminToken}`, // the token under another scheme
      adminToken, // no scheme
      `Bearer${adminToken}`,
      "Bearer ",
      "Bearer",
      "",
    ];
    for (const authorization of wrong) {
      for (const { path, init } of rawRequests("guarded%3Awrong")) {
        await expectRefused(
          await callAs({ authorization }, path, init),
          `${init.method} ${path} with "${authorization}"`,
        );
      }
    }
    expect(await l2.get("guarded:wrong")).toBe("secret-value");
  });

  it("serves the raw routes with the right token", async () => {
    await l2.set("guarded:right", "secret-value");
    const read = await callAs(bearer, "/cache/guarded%3Aright");
    expect(read.status).toBe(200);
    expect(read.headers.get("www-authenticate")).toBeNull();
    expect(await read.json()).toBe("secret-value");
    // The scheme is case-insensitive, as in the admin API.
    const lower = await callAs({ authorization: `bearer ${adminToken}` }, "/cache/guarded%3Aright");
    expect(lower.status).toBe(200);
    const write = await callAs(bearer, "/cache/guarded%3Aright", { method: "PUT", body: '"new"' });
    expect(write.status).toBe(204);
    expect(await l2.get("guarded:right")).toBe("new");
    const stats = await callAs(bearer, "/stats");
    expect(stats.status).toBe(200);
    expect(await stats.json()).toMatchObject({ sets: expect.any(Number) });
    expect((await callAs(bearer, "/cache/guarded%3Aright", { method: "DELETE" })).status).toBe(204);
    expect(await l2.has("guarded:right")).toBe(false);
  });

  it("leaves /health and the product routes open", async () => {
    expect((await callAs({}, "/health")).status).toBe(200);
    expect((await callAs({}, "/origin/products/3")).status).toBe(200);
  });

  it("stores JSON values in the shared L2 and serves them back", async () => {
    const value = { user: "ada", roles: ["admin"], n: 1.5, nested: { ok: true } };
    expect((await put("/cache/user%3A1", JSON.stringify(value))).status).toBe(204);

    const read = await call("/cache/user%3A1");
    expect(read.status).toBe(200);
    expect(read.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await read.json()).toEqual(value);
    expect(await l2.get("user:1")).toEqual(value);
  });

  it("answers 404 for a key nobody wrote", async () => {
    const res = await call("/cache/never-written");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "not found" });
  });

  it("sees entries written by another instance (its L1 is only a front for L2)", async () => {
    await l2.set("from-elsewhere", ["written", "outside"]);
    const res = await call("/cache/from-elsewhere");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(["written", "outside"]);
  });

  it("applies ?ttl= to the L2 entry and the default TTL otherwise", async () => {
    expect((await put("/cache/short?ttl=30000", '"s"')).status).toBe(204);
    expect((await put("/cache/default", '"d"')).status).toBe(204);
    const { entries } = await store.get(namespace, ["short", "default"]);
    const [short, fallback] = entries.map((entry) => entry?.ttl ?? 0);
    expect(short).toBeGreaterThan(0);
    expect(short).toBeLessThanOrEqual(30_000);
    // The cache's default TTL is 60 s.
    expect(fallback).toBeGreaterThan(30_000);
    expect(fallback).toBeLessThanOrEqual(60_000);
  });

  it("refuses a bad TTL, a body that is not JSON and an unknown method", async () => {
    const badTtl = await put("/cache/k?ttl=soon", "1");
    expect(badTtl.status).toBe(400);
    expect(await badTtl.json()).toMatchObject({
      error: expect.stringMatching(/^EC_INVALID_OPTION/),
    });
    const badJson = await put("/cache/k", "{not json");
    expect(badJson.status).toBe(400);
    expect((await call("/cache/k", { method: "POST", body: "1" })).status).toBe(405);
    expect(await l2.has("k")).toBe(false);
  });

  it("deletes from L2 and from its own L1", async () => {
    await put("/cache/doomed", "42");
    expect((await call("/cache/doomed")).status).toBe(200);
    expect((await call("/cache/doomed", { method: "DELETE" })).status).toBe(204);
    expect((await call("/cache/doomed")).status).toBe(404);
    expect(await l2.has("doomed")).toBe(false);
  });

  it("reports the isolate's cache counters on /stats", async () => {
    const before = (await (await call("/stats")).json()) as Record<string, number>;
    await put("/cache/counted", "1");
    await call("/cache/counted"); // L1 hit: the PUT filled this isolate's L1
    await call("/cache/nothing-here"); // L1 miss, then L2 miss
    const after = (await (await call("/stats")).json()) as Record<string, number>;
    expect(after.sets! - before.sets!).toBe(1);
    expect(after.l1Hits! - before.l1Hits!).toBe(1);
    expect(after.l1Misses! - before.l1Misses!).toBe(1);
    expect(after.l2Misses! - before.l2Misses!).toBe(1);
    expect(after.errors).toBe(0);
  });
});
