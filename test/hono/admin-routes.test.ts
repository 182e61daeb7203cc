/**
 * The admin API (src/hono/admin) mounted in a Hono app, over real caches on the REST bridge:
 * the routes: inspect, delete and invalidate (one or many), namespaces (`?ns=`), stats as JSON
 * and as Prometheus text 0.0.4.
 */

import { Hono } from "hono";
import { deserialize } from "superjson";
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/cache.js";
import { cacheAdmin } from "../../src/hono/admin/index.js";
import { escapeLabelValue, prometheusMetrics } from "../../src/hono/admin/metrics.js";
import type { Cache, CacheStats } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";
import {
  bearer,
  bridgeToken,
  cache,
  call,
  jsonBody,
  key,
  namespace,
  other,
  scores,
  store,
  TOKEN,
  url,
  useAdminApp,
  withBearer,
} from "./admin-helpers.js";

useAdminApp();

describe("inspect", () => {
  it("shows value, version, TTL left, tier and tags; Dates, Maps and BigInts survive as JSON", async () => {
    const value = {
      born: new Date(Date.UTC(1815, 11, 10)),
      roles: new Map([["admin", true]]),
      big: 12345678901234567890n,
      tags: new Set(["a"]),
    };
    await cache.set("user:1", value, { ttl: 30_000, tags: ["users", "team/α"] });
    const res = await call(key("user:1"), withBearer());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const body = await res.json();
    expect(body).toMatchObject({
      key: "user:1",
      tier: "l1",
      stale: false,
      negative: null,
      tags: ["users", "team/α"],
    });
    expect(body.version).toBeGreaterThan(0);
    expect(body.ttl).toBeGreaterThan(25_000);
    expect(body.ttl).toBeLessThanOrEqual(30_000);
    expect(body.value.born).toBe("1815-12-10T00:00:00.000Z");
    expect(body.value.big).toBe("12345678901234567890");
    expect(deserialize({ json: body.value, meta: body.valueMeta })).toEqual(value);
  });

  it("reports L2 when this instance's L1 does not hold the key", async () => {
    const writer = createCache({ store, namespace });
    await writer.set("from-elsewhere", [1, 2, 3]);
    await writer.close();
    const body = await (await call(key("from-elsewhere"), withBearer())).json();
    expect(body).toMatchObject({ key: "from-elsewhere", tier: "l2", value: [1, 2, 3] });
  });

  it("answers 404 for an absent key", async () => {
    const res = await call(key("never-written"), withBearer());
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: "not_found" });
  });

  it("decodes keys exactly once: /, %, unicode, ?, #, and escapes that look like escapes", async () => {
    const keys = ["a/b", "a%2Fb", "100%", "%25", "é ü 🚀", "q?x=1#frag", "a+b", "~!*()'", "..."];
    await cache.setMany(keys.map((k, i) => [k, i] as const));
    for (const [i, k] of keys.entries()) {
      const res = await call(key(k), withBearer());
      expect(res.status, k).toBe(200);
      expect(await res.json(), k).toMatchObject({ key: k, value: i });
    }
    const res = await call(`/_cache/keys/${encodeURIComponent("a/b")}`, {
      method: "DELETE",
      headers: bearer(),
    });
    expect(res.status).toBe(204);
    expect(await cache.get("a/b")).toBeUndefined();
    expect(await cache.get("a%2Fb")).toBe(1);
  });

  it("refuses bad percent-encoding and invalid keys with 400 and a code", async () => {
    const bad = await call("/_cache/keys/%E0%A4%A", withBearer());
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: "invalid_encoding" });
    const reserved = await call(key("\u0000tag"), withBearer());
    expect(reserved.status).toBe(400);
    expect(await reserved.json()).toMatchObject({ error: "EC_INVALID_KEY" });
    const long = await call(key("k".repeat(2000)), withBearer());
    expect(long.status).toBe(400);
    expect(await long.json()).toMatchObject({ error: "EC_INVALID_KEY" });
  });

  it("answers 400, never 500, for keys and tags with lone surrogates, which would alias U+FFFD", async () => {
    await cache.set("\uFFFD", "replacement", { tags: ["\uFFFD"] });
    // A lone surrogate percent-encoded as if it were UTF-8 is not UTF-8: bad encoding.
    for (const [method, path] of [
      ["GET", "/_cache/keys/%ED%A0%80"],
      ["DELETE", "/_cache/keys/%ED%A0%80"],
      ["DELETE", "/_cache/keys/a%ED%B0%80b"],
      ["DELETE", "/_cache/tags/%ED%A0%80"],
    ] as const) {
      const res = await call(path, withBearer({ method }));
      expect(res.status, `${method} ${path}`).toBe(400);
      expect(await res.json()).toMatchObject({ error: "invalid_encoding" });
    }
    // JSON bodies can carry them (`"\ud800"`): the cache refuses them with a typed error.
    const keys = await call(
      "/_cache/keys",
      withBearer({ method: "DELETE", ...jsonBody({ keys: ["ok", "\uD800"] }) }),
    );
    expect(keys.status).toBe(400);
    expect(await keys.json()).toEqual({
      error: "EC_INVALID_KEY",
      message: "keys must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
    });
    const tags = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: ["\uDC00"] }) }),
    );
    expect(tags.status).toBe(400);
    expect(await tags.json()).toMatchObject({ error: "EC_INVALID_OPTION" });
    const ns = await call("/_cache/keys/k?ns=%ED%A0%80", withBearer());
    expect(ns.status).toBe(404);
    expect(await ns.json()).toMatchObject({ error: "unknown_namespace" });
    // The U+FFFD entry and its tag are untouched.
    const res = await call(key("\uFFFD"), withBearer());
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ key: "\uFFFD", value: "replacement" });
  });
});

describe("delete and invalidate", () => {
  it("deletes one key, here and in L2", async () => {
    await cache.set("doomed", "x");
    const res = await call(key("doomed"), withBearer({ method: "DELETE" }));
    expect(res.status).toBe(204);
    expect(await cache.get("doomed")).toBeUndefined();
    const fresh = createCache({ store, namespace, local: false });
    expect(await fresh.get("doomed")).toBeUndefined();
    await fresh.close();
  });

  it("deletes several keys from a JSON body", async () => {
    await cache.setMany([
      ["m1", 1],
      ["m/2", 2],
      ["m3", 3],
    ]);
    const res = await call(
      "/_cache/keys",
      withBearer({ method: "DELETE", ...jsonBody({ keys: ["m1", "m/2"] }) }),
    );
    expect(res.status).toBe(204);
    expect(await cache.getMany(["m1", "m/2", "m3"])).toEqual([undefined, undefined, 3]);
  });

  it("refuses malformed bodies with 400 (or 413) and a code, changing nothing", async () => {
    await cache.set("survivor", true);
    const cases: Array<[RequestInit, number, string]> = [
      [{ body: "not json" }, 400, "invalid_body"],
      [jsonBody({ keys: "survivor" }), 400, "invalid_body"],
      [jsonBody({ keys: ["survivor", 1] }), 400, "invalid_body"],
      [jsonBody(["survivor"]), 400, "invalid_body"],
      [jsonBody(null), 400, "invalid_body"],
      [jsonBody({ keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }), 400, "too_many"],
      [{ body: `{"keys":["${"x".repeat(1 << 20)}"]}` }, 413, "body_too_large"],
      [jsonBody({ keys: ["survivor", ""] }), 400, "EC_INVALID_KEY"],
    ];
    for (const [init, status, error] of cases) {
      const res = await call("/_cache/keys", withBearer({ method: "DELETE", ...init }));
      expect(res.status, error).toBe(status);
      expect(await res.json()).toMatchObject({ error });
    }
    expect(await cache.get("survivor")).toBe(true);
  });

  it("invalidates one tag: its entries go, others stay", async () => {
    await cache.set("t1", 1, { tags: ["team/α"] });
    await cache.set("t2", 2, { tags: ["other"] });
    const res = await call(
      `/_cache/tags/${encodeURIComponent("team/α")}`,
      withBearer({ method: "DELETE" }),
    );
    expect(res.status).toBe(204);
    expect(await cache.get("t1")).toBeUndefined();
    expect(await cache.get("t2")).toBe(2);
    expect((await call(key("t1"), withBearer())).status).toBe(404);
  });

  it("invalidates several tags from a JSON body", async () => {
    await cache.set("u1", 1, { tags: ["x"] });
    await cache.set("u2", 2, { tags: ["y"] });
    await cache.set("u3", 3, { tags: ["z"] });
    const res = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: ["x", "y"] }) }),
    );
    expect(res.status).toBe(204);
    expect(await cache.getMany(["u1", "u2", "u3"])).toEqual([undefined, undefined, 3]);
    const bad = await call(
      "/_cache/tags",
      withBearer({ method: "DELETE", ...jsonBody({ tags: [""] }) }),
    );
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/^EC_INVALID/);
  });

  it("answers 503 with the store's code when L2 refuses, without secrets", async () => {
    const broken = createCache({
      store: upstashStore({ url, token: "wrong-bridge-token" }),
      namespace,
      logger: false,
    });
    const admin = new Hono().route("/_cache", cacheAdmin({ cache: broken, token: TOKEN }));
    const res = await call(key("k"), withBearer({ method: "DELETE" }), admin);
    expect(res.status).toBe(503);
    const text = await res.text();
    expect(JSON.parse(text)).toMatchObject({ error: "EC_STORE_AUTH" });
    expect(text).not.toContain("wrong-bridge-token");
    expect(text).not.toContain(bridgeToken);
    await broken.close();
  });
});

describe("namespaces", () => {
  it("addresses the extra caches with ?ns=", async () => {
    await scores.set("Tom", 630);
    await other.set("Tom", "other");
    const inScores = await (await call(`${key("Tom")}?ns=scores`, withBearer())).json();
    expect(inScores).toMatchObject({ key: "Tom", value: 630 });
    const inOther = await (await call(`${key("Tom")}?ns=other`, withBearer())).json();
    expect(inOther).toMatchObject({ key: "Tom", value: "other" });
    expect((await call(key("Tom"), withBearer())).status).toBe(404);

    const del = await call(`${key("Tom")}?ns=scores`, withBearer({ method: "DELETE" }));
    expect(del.status).toBe(204);
    expect(await scores.get("Tom")).toBeUndefined();
    expect(await other.get("Tom")).toBe("other");
  });

  it("answers 404 for an unknown ns", async () => {
    for (const ns of ["nope", "__proto__", "constructor"]) {
      const res = await call(`/_cache/stats?ns=${ns}`, withBearer());
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ error: "unknown_namespace" });
    }
  });
});

describe("stats", () => {
  it("is stats() as JSON, with the namespaces the admin knows", async () => {
    await cache.get("user:1");
    const res = await call("/_cache/stats", withBearer());
    const body = await res.json();
    expect(body.stats).toEqual(JSON.parse(JSON.stringify(cache.stats())));
    expect(body).toMatchObject({ ns: "", namespace });
    expect(typeof body.time).toBe("number");
    // Each with its traffic: lookups and writes so far, for the page to open on a busy one.
    const traffic = (c: Cache) => {
      const s = c.stats();
      return s.l1Hits + s.l1Misses + s.sets + s.deletes;
    };
    expect(body.namespaces).toEqual([
      { id: "", name: namespace, traffic: traffic(cache) },
      { id: "scores", name: `${namespace}/scores`, traffic: traffic(scores) },
      { id: "other", name: `${namespace}.other`, traffic: traffic(other) },
    ]);
    expect(body.namespaces[0].traffic).toBeGreaterThan(0);
    const scoped = await (await call("/_cache/stats?ns=other", withBearer())).json();
    expect(scoped).toMatchObject({ ns: "other", namespace: `${namespace}.other` });
    expect(scoped.stats).toEqual(JSON.parse(JSON.stringify(other.stats())));
  });
});

/** Parses Prometheus text 0.0.4 strictly enough to catch format slips. */
function parseExposition(text: string) {
  const families = new Map<string, { help?: string; type?: string; samples: number }>();
  const samples: Array<{ name: string; labels: Record<string, string>; value: number }> = [];
  expect(text.endsWith("\n")).toBe(true);
  let current: string | undefined;
  for (const line of text.slice(0, -1).split("\n")) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, what, name, rest] = meta as unknown as [string, string, string, string];
      const family = families.get(name) ?? { samples: 0 };
      if (what === "HELP") {
        expect(family.help, `one HELP for ${name}`).toBeUndefined();
        expect(family.samples).toBe(0);
        family.help = rest;
      } else {
        expect(family.type, `one TYPE for ${name}`).toBeUndefined();
        expect(["counter", "gauge"]).toContain(rest);
        family.type = rest;
      }
      families.set(name, family);
      current = name;
      continue;
    }
    const sample =
      /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\} (\S+)$/.exec(
        line,
      );
    expect(sample, `a sample line: ${line}`).not.toBeNull();
    const [, name, labelText, value] = sample as unknown as [string, string, string, string];
    expect(name, "samples follow their family's HELP and TYPE").toBe(current);
    const family = families.get(name)!;
    expect(family.help).toBeDefined();
    expect(family.type).toBeDefined();
    if (family.type === "counter") expect(name.endsWith("_total")).toBe(true);
    family.samples++;
    const labels: Record<string, string> = {};
    for (const m of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    samples.push({ name, labels, value: Number(value) });
  }
  return { families, samples };
}

describe("metrics", () => {
  it("is Prometheus text 0.0.4 whose values are stats()", async () => {
    await cache.get("user:1");
    await cache.get("never-written");
    await scores.get("nobody");
    const res = await call("/_cache/metrics", withBearer());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const { families, samples } = parseExposition(await res.text());
    const value = (name: string, ns: string, extra: Record<string, string> = {}) => {
      const found = samples.filter(
        (s) =>
          s.name === name &&
          s.labels.namespace === ns &&
          Object.entries(extra).every(([k, v]) => s.labels[k] === v),
      );
      expect(found, `${name}{namespace="${ns}"}`).toHaveLength(1);
      return found[0]!.value;
    };
    for (const [c, name] of [
      [cache, namespace],
      [scores, `${namespace}/scores`],
      [other, `${namespace}.other`],
    ] as const) {
      const s: CacheStats = c.stats();
      const expected: Record<string, number> = {
        edgecache_l1_hits_total: s.l1Hits,
        edgecache_l1_misses_total: s.l1Misses,
        edgecache_l2_hits_total: s.l2Hits,
        edgecache_l2_misses_total: s.l2Misses,
        edgecache_sets_total: s.sets,
        edgecache_deletes_total: s.deletes,
        edgecache_clears_total: s.clears,
        edgecache_errors_total: s.errors,
        edgecache_corrupt_total: s.corrupt,
        edgecache_l1_evictions_total: s.l1Evictions,
        edgecache_syncs_total: s.syncs,
        edgecache_changes_applied_total: s.changesApplied,
        edgecache_flushes_total: s.flushes,
        edgecache_loads_total: s.loads,
        edgecache_load_errors_total: s.loadErrors,
        edgecache_coalesced_total: s.coalesced,
        edgecache_lock_waits_total: s.lockWaits,
        edgecache_stale_hits_total: s.staleHits,
        edgecache_grace_hits_total: s.graceHits,
        edgecache_l1_items: s.l1Items,
        edgecache_l1_bytes: s.l1Bytes,
        edgecache_sync_lag: s.syncLag,
        edgecache_cursor: s.cursor,
      };
      for (const [metric, v] of Object.entries(expected))
        expect(value(metric, name), metric).toBe(v);
      // A breaker is reported once, under the namespace that owns it: a namespace shares
      // its parent's, so summing over the label must not count it twice.
      const owner = s.breaker!.owner;
      expect(owner).toBe(c === scores ? namespace : name);
      const breaker: Record<string, number> = {
        edgecache_breaker_failures: s.breaker!.failures,
        edgecache_breaker_opens_total: s.breaker!.opens,
        edgecache_breaker_rejected_total: s.breaker!.rejected,
      };
      for (const [metric, v] of Object.entries(breaker))
        expect(value(metric, owner), metric).toBe(v);
      expect(value("edgecache_breaker_state", owner, { state: s.breaker!.state })).toBe(1);
      expect(
        samples
          .filter((x) => x.name === "edgecache_breaker_state" && x.labels.namespace === owner)
          .map((x) => x.value)
          .sort(),
      ).toEqual([0, 0, 1]);
    }
    expect(
      samples.filter(
        (x) =>
          x.name.startsWith("edgecache_breaker_") && x.labels.namespace === `${namespace}/scores`,
      ),
    ).toEqual([]);
    expect(value("edgecache_l1_hits_total", namespace)).toBeGreaterThan(0);
    expect(families.get("edgecache_l1_items")!.type).toBe("gauge");
    expect(families.get("edgecache_l1_hits_total")!.type).toBe("counter");
    // No cache here has a hub: its families are left out rather than faked.
    expect([...families.keys()].some((n) => n.startsWith("edgecache_hub_"))).toBe(false);
  });

  it("escapes label values and reports the hub when there is one", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const stats: CacheStats = {
      ...cache.stats(),
      hub: {
        healthy: true,
        subscribed: true,
        connected: 2,
        reconnects: 1,
        framesReceived: 7,
        framesDropped: 0,
        published: 3,
        publishErrors: 0,
      },
      breaker: undefined,
    };
    const text = prometheusMetrics([{ namespace: 'we"ird\\ns\n', stats }]);
    const { samples, families } = parseExposition(text);
    const healthy = samples.find((s) => s.name === "edgecache_hub_healthy")!;
    expect(healthy.labels.namespace).toBe('we"ird\\ns\n');
    expect(healthy.value).toBe(1);
    expect(samples.find((s) => s.name === "edgecache_hub_frames_received_total")!.value).toBe(7);
    expect(samples.find((s) => s.name === "edgecache_hub_subscribed")!.value).toBe(1);
    expect(families.get("edgecache_hub_subscribed")!.type).toBe("gauge");
    expect(families.has("edgecache_breaker_state")).toBe(false);
    expect(text).toContain('namespace="we\\"ird\\\\ns\\n"');
  });
});
