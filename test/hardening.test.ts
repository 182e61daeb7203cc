// Faults an attacker or a bad network produces, against the real redis-server behind the
// bridge: writes that fail must stay failed, junk under our keys stays one key's problem,
// TTLs past what Redis can hold change nothing, credentials never reach an error, and a
// getOrSet on a hung L2 answers within one store timeout plus its loader.
import { createServer, type IncomingMessage, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { inspect } from "node:util";
import { Redis } from "@upstash/redis";
import { Hono } from "hono";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { cached } from "../src/hono/cached/index.js";
import { createCache, type EdgeCacheError } from "../src/index.js";
import { freshNamespace } from "../src/store/suite-case.js";
import { RedisClock } from "../src/stores/redis-clock.js";
import { shardedStore } from "../src/stores/sharded.js";
import { upstashStore } from "../src/stores/upstash.js";
import { countRequests, hangingServer, rejection } from "./helpers.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");
const raw = new Redis({ url, token, automaticDeserialization: false, enableTelemetry: false });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a proxy does with one request. */
type Fault =
  /** Forward it after `ms` (the request reaches Redis late). */
  | { hold: number }
  /** Answer 502 at once, and still forward it after `ms` (a gateway that gave up early). */
  | { abandon: number };

/**
 * A real HTTP proxy in front of the bridge. Requests whose body contains a marker string
 * get the fault queued for that marker; every other request passes through.
 */
async function faultProxy(target: string) {
  const faults = new Map<string, Fault>();
  const landed: Array<{ marker: string; status: number; body: string; at: number }> = [];
  const forward = (req: IncomingMessage, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }>(
      (resolve, reject) => {
        const out = request(
          `${target}${req.url}`,
          { method: req.method, headers: { ...req.headers, host: new URL(target).host } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                body: Buffer.concat(chunks),
              }),
            );
          },
        );
        out.on("error", reject);
        out.end(body);
      },
    );
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const text = body.toString();
      const marker = [...faults.keys()].find((m) => text.includes(m));
      const fault = marker === undefined ? undefined : faults.get(marker);
      if (marker !== undefined) faults.delete(marker);
      try {
        if (fault && "abandon" in fault) {
          res.writeHead(502, { "content-type": "text/plain" }).end("Bad Gateway");
          await sleep(fault.abandon);
        } else if (fault) {
          await sleep(fault.hold);
        }
        const answer = await forward(req, body);
        if (marker !== undefined) {
          landed.push({
            marker,
            status: answer.status,
            body: answer.body.toString(),
            at: Date.now(),
          });
        }
        if (!res.headersSent && !res.destroyed) {
          res.writeHead(answer.status, answer.headers).end(answer.body);
        }
      } catch {
        if (!res.headersSent) res.writeHead(502).end();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Applies `fault` to the next request whose body contains `marker`. */
    fault(marker: string, fault: Fault) {
      faults.set(marker, fault);
    },
    /** Requests that carried a marker, once they reached the bridge and it answered. */
    landed,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The raw string Redis holds for a cache key (the entry's envelope), or null. */
const rawEntry = (ns: string, key: string) => raw.get<string>(`ec:{${ns}}:k:${key}`);

describe("a write reported as failed never lands later", () => {
  let proxy: Awaited<ReturnType<typeof faultProxy>>;
  beforeAll(async () => {
    proxy = await faultProxy(url);
  });
  afterAll(() => proxy.close());

  const T = 400;
  const cacheOn = (namespace: string, sharded = false) =>
    createCache({
      store: sharded
        ? shardedStore([
            upstashStore({ url: proxy.url, token }, { timeout: T }),
            upstashStore({ url: proxy.url, token }, { timeout: T, prefix: "ec2" }),
          ])
        : upstashStore({ url: proxy.url, token }, { timeout: T }),
      namespace,
      breaker: false,
    });

  it("set: the held write times out, a newer set wins, and the held one is refused when it arrives", async () => {
    const ns = freshNamespace("late-set");
    const cache = cacheOn(ns);
    await cache.set("warm", 1); // Redis' clock is known from here on
    proxy.fault("old-value-1", { hold: 2.5 * T });
    const err = await rejection(cache.set("k", "old-value-1"));
    expect(err.code).toBe("EC_STORE_TIMEOUT");
    await cache.set("k", "new-value-1");
    await sleep(2.5 * T);
    const arrival = proxy.landed.find((l) => l.marker === "old-value-1");
    expect(arrival?.status).toBe(200); // it reached Redis, which refused to run it
    expect(await rawEntry(ns, "k")).toMatch(/new-value-1/);
    const fresh = cacheOn(ns);
    expect(await fresh.get("k")).toBe("new-value-1");
    await cache.close();
    await fresh.close();
  });

  it("delete after an acknowledged set, and set after an acknowledged delete", async () => {
    const ns = freshNamespace("late-del");
    const cache = cacheOn(ns);
    await cache.set("a", "kept-a");
    // A failed delete must not remove a set acknowledged after it.
    proxy.fault(`k:gone-a"`, { hold: 2.5 * T });
    expect((await rejection(cache.delete("gone-a"))).code).toBe("EC_STORE_TIMEOUT");
    await cache.set("gone-a", "acked-after-delete");
    // A failed set must not bring back a key deleted after it.
    proxy.fault("revived-b", { hold: 2.5 * T });
    expect((await rejection(cache.set("b", "revived-b"))).code).toBe("EC_STORE_TIMEOUT");
    await cache.delete("b");
    await sleep(2.5 * T);
    expect(await rawEntry(ns, "gone-a")).toMatch(/acked-after-delete/);
    expect(await rawEntry(ns, "b")).toBeNull();
    await cache.close();
  });

  it("setMany, deleteMany, clear and invalidateTag, held past the timeout, change nothing", async () => {
    const ns = freshNamespace("late-many");
    const cache = cacheOn(ns);
    await cache.setMany([
      ["x", "x0"],
      ["y", "y0", { tags: ["t"] }],
    ]);
    const before = await raw.get(`ec:{${ns}}:v`);
    proxy.fault("many-1", { hold: 2.5 * T });
    expect(
      (
        await rejection(
          cache.setMany([
            ["x", "many-1"],
            ["z", "many-1"],
          ]),
        )
      ).code,
    ).toBe("EC_STORE_TIMEOUT");
    proxy.fault(`k:x"`, { hold: 2.5 * T });
    expect((await rejection(cache.deleteMany(["x", "y"]))).code).toBe("EC_STORE_TIMEOUT");
    proxy.fault(`:c"`, { hold: 2.5 * T });
    expect((await rejection(cache.clear())).code).toBe("EC_STORE_TIMEOUT");
    proxy.fault("\\u0000t:t", { hold: 2.5 * T });
    expect((await rejection(cache.invalidateTag("t"))).code).toBe("EC_STORE_TIMEOUT");
    await sleep(3 * T);
    // Every held request reached Redis and was refused: the counter never moved.
    expect(proxy.landed.filter((l) => l.at > 0).length).toBeGreaterThanOrEqual(4);
    expect(await raw.get(`ec:{${ns}}:v`)).toBe(before);
    const fresh = cacheOn(ns);
    expect(await fresh.getMany(["x", "y", "z"])).toEqual(["x0", "y0", undefined]);
    await cache.close();
    await fresh.close();
  });

  it("a gateway that answers 502 and still forwards: the write rejects only when it can no longer run", async () => {
    const ns = freshNamespace("late-502");
    const cache = cacheOn(ns);
    await cache.set("warm", 1);
    proxy.fault("gateway-1", { abandon: 1.5 * T });
    const started = Date.now();
    const err = await rejection(cache.set("k", "gateway-1"));
    const waited = Date.now() - started;
    expect(err.code).toBe("EC_STORE_UNAVAILABLE");
    expect(waited).toBeGreaterThanOrEqual(T - 5);
    await cache.set("k", "after-gateway");
    await sleep(1.5 * T);
    expect(await rawEntry(ns, "k")).toMatch(/after-gateway/);
    await cache.close();
  });

  it("the write of a getOrSet fill, held past the timeout, does not land", async () => {
    const ns = freshNamespace("late-fill");
    const cache = cacheOn(ns);
    await cache.set("warm", 1);
    proxy.fault("loaded-1", { hold: 2.5 * T });
    expect(await cache.getOrSet("k", async () => "loaded-1")).toBe("loaded-1");
    await cache.set("k", "set-after-fill");
    await sleep(2.5 * T);
    expect(await rawEntry(ns, "k")).toMatch(/set-after-fill/);
    await cache.close();
  });

  it("behind shardedStore too", async () => {
    const ns = freshNamespace("late-shard");
    const cache = cacheOn(ns, true);
    await cache.set("warm", 1);
    proxy.fault("shard-old", { hold: 2.5 * T });
    expect((await rejection(cache.set("k", "shard-old"))).code).toBe("EC_STORE_TIMEOUT");
    await cache.set("k", "shard-new");
    await sleep(2.5 * T);
    const fresh = cacheOn(ns, true);
    expect(await fresh.get("k")).toBe("shard-new");
    await cache.close();
    await fresh.close();
  });
});

describe("Redis' clock as a write deadline", () => {
  it("keeps a lower bound of the offset: deadlines err early, and a stepped clock is followed", () => {
    let local = 1_000;
    const clock = new RedisClock(() => local);
    expect(clock.known).toBe(false);
    expect(clock.deadline(2_000)).toBeUndefined();
    // Redis says 50_000 to a request sent at 1_000 and answered at 1_020: offset in [48_980, 49_000].
    clock.observe(50_000, 1_000, 1_020);
    const d = clock.deadline(2_000)!;
    expect(d).toBeLessThanOrEqual(2_000 + 48_980);
    expect(d).toBeGreaterThan(2_000 + 48_980 - 10);
    // A looser sample does not replace a tighter one.
    local = 1_100;
    clock.observe(50_050, 1_000, 1_100);
    expect(clock.deadline(2_000)).toBe(d);
    // A sample that contradicts the bound (Redis' clock stepped back 10 s) replaces it.
    clock.observe(40_200, 1_190, 1_200);
    expect(clock.deadline(2_000)!).toBeLessThanOrEqual(2_000 + 39_000);
    // The bound wears with time: an hour later the deadline is earlier by the drift allowance.
    expect(clock.deadline(3_600_000 + 2_000)!).toBeLessThan(3_600_000 + 2_000 + 39_000 - 3_000);
  });

  it("a process's first write asks Redis' time once; later writes cost one request", async () => {
    const requests = countRequests(url);
    try {
      // A client of its own: nothing has told it Redis' time yet.
      const client = new Redis({ url, token, enableTelemetry: false });
      const cache = createCache({ store: upstashStore(client), namespace: freshNamespace("time") });
      requests.reset();
      await cache.set("a", 1);
      expect(requests.count).toBe(2);
      requests.reset();
      await cache.set("b", 2);
      expect(requests.count).toBe(1);
      await cache.close();
    } finally {
      requests.restore();
    }
  });
});

describe("junk under our keys is that key's problem", () => {
  const make = (namespace: string, errors: EdgeCacheError[]) =>
    createCache({
      store: upstashStore({ url, token }),
      namespace,
      onError: (e) => errors.push(e),
    });

  it("a key of another type is a reported miss, never opens the breaker, and the next set replaces it", async () => {
    const ns = freshNamespace("junk-type");
    const errors: EdgeCacheError[] = [];
    const cache = make(ns, errors);
    await raw.hset(`ec:{${ns}}:k:bad`, { field: "secret-field-value" });
    for (let i = 0; i < 12; i++) {
      cache.delete("nothing-in-l1").catch(() => {});
      expect(await cache.get("bad")).toBeUndefined();
    }
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.every((e) => e.code === "EC_CORRUPT_ENTRY")).toBe(true);
    expect(errors.some((e) => inspect(e).includes("secret"))).toBe(false);
    expect(cache.stats().breaker?.state).toBe("closed");
    await cache.set("other", "fine");
    await cache.set("bad", "replaced");
    const fresh = make(ns, []);
    expect(await fresh.get("bad")).toBe("replaced");
    expect(await fresh.get("other")).toBe("fine");
    await cache.close();
    await fresh.close();
  });

  it("a clear marker past 2^53 is reported and reset; the namespace keeps working, also after the marker is deleted", async () => {
    const ns = freshNamespace("junk-marker");
    const errors: EdgeCacheError[] = [];
    const cache = make(ns, errors);
    await cache.set("k", "before");
    await raw.set(`ec:{${ns}}:c`, "99999999999999999999");
    const reader = make(ns, errors);
    expect(await reader.get("k")).toBeUndefined(); // a marker we did not write reads as a clear
    expect(errors.some((e) => e.code === "EC_CORRUPT_ENTRY")).toBe(true);
    await cache.set("k", "after");
    expect(await make(ns, []).get("k")).toBe("after");
    await raw.del(`ec:{${ns}}:c`);
    await cache.set("k2", "later");
    expect(await make(ns, []).getMany(["k", "k2"])).toEqual(["after", "later"]);
    const counter = Number(await raw.get(`ec:{${ns}}:v`));
    expect(Number.isSafeInteger(counter)).toBe(true);
    await cache.close();
    await reader.close();
  });

  it("a counter or a log that is not ours is reset, and readers drop what they knew", async () => {
    for (const [what, junk] of [
      ["v", async (ns: string) => raw.set(`ec:{${ns}}:v`, "not-a-number")],
      ["v", async (ns: string) => raw.set(`ec:{${ns}}:v`, "9007199254740993")],
      ["log", async (ns: string) => raw.set(`ec:{${ns}}:log`, "not-a-stream")],
    ] as const) {
      const ns = freshNamespace(`junk-${what}`);
      const errors: EdgeCacheError[] = [];
      const a = make(ns, errors);
      const b = createCache({
        store: upstashStore({ url, token }),
        namespace: ns,
        sync: { maxStaleness: 0 },
      });
      await a.set("k", "v1");
      expect(await b.get("k")).toBe("v1");
      await junk(ns);
      await a.set("k", "v2");
      expect(await b.get("k")).toBe("v2");
      expect(a.stats().breaker?.state).toBe("closed");
      await a.close();
      await b.close();
    }
  });

  it("a lease left without a TTL is reported and taken over at once", async () => {
    const ns = freshNamespace("junk-lease");
    const errors: EdgeCacheError[] = [];
    const cache = make(ns, errors);
    await raw.set(`ec:{${ns}}:l:k`, "stuck");
    const started = Date.now();
    expect(
      await cache.getOrSet("k", async () => "loaded", { lock: { ttl: 5_000, wait: 10_000 } }),
    ).toBe("loaded");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(errors.map((e) => e.code)).toContain("EC_CORRUPT_ENTRY");
    expect(await raw.pttl(`ec:{${ns}}:l:k`)).toBeLessThan(0); // released after the load
    await cache.close();
  });
});

describe("TTLs the store cannot hold", () => {
  async function snapshot(ns: string): Promise<Record<string, string | null>> {
    const keys = (await raw.keys(`ec:{${ns}}:*`)).sort();
    const out: Record<string, string | null> = {};
    for (const k of keys) {
      // DUMP through the bridge, base64 so the bytes survive JSON.
      const res = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "upstash-encoding": "base64" },
        body: JSON.stringify(["DUMP", k]),
      });
      out[k] = ((await res.json()) as { result: string | null }).result;
    }
    return out;
  }

  it("are refused before any I/O, at construction and per call, leaving Redis byte-identical", async () => {
    expect(() => createCache({ store: upstashStore({ url, token }), ttl: 1e300 })).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
    const ns = freshNamespace("ttl");
    const cache = createCache({ store: upstashStore({ url, token }), namespace: ns });
    await cache.set("x", 0);
    const before = await snapshot(ns);
    for (const ttl of [1e300, 1e19, 2 ** 53, Number.MAX_VALUE]) {
      const err = await rejection(
        cache.setMany([
          ["x", 1],
          ["y", 2, { ttl }],
        ]),
      );
      expect(err.code).toBe("EC_INVALID_OPTION");
      let called = false;
      const load = await rejection(
        cache.getOrSet(
          "z",
          async () => {
            called = true;
            return 1;
          },
          { ttl },
        ),
      );
      expect(load.code).toBe("EC_INVALID_OPTION");
      expect(called).toBe(false);
    }
    expect(await snapshot(ns)).toEqual(before);
    expect(cache.stats().breaker?.failures).toBe(0);
    // The largest one that is allowed works.
    await cache.set("far", 1, { ttl: 2 ** 52 });
    expect(await cache.get("far")).toBe(1);
    await cache.close();
  });
});

describe("credentials never reach an error", () => {
  it("a URL with user:password@ is refused without echoing it", () => {
    let error: unknown;
    try {
      upstashStore({ url: "http://user:PASS-s3cret@127.0.0.1:1", token: "tok-s3cret" });
    } catch (e) {
      error = e;
    }
    expect((error as EdgeCacheError).code).toBe("EC_INVALID_OPTION");
    expect(inspect(error, { depth: 10 })).not.toMatch(/s3cret/);
  });

  it("a caller's client with credentials in its URL fails without them in the error or its causes", async () => {
    const client = new Redis({
      url: "http://user:PASS-s3cret@127.0.0.1:1",
      token: "tok-s3cret",
      enableTelemetry: false,
      retry: false,
    });
    const store = upstashStore(client, { timeout: 1_000 });
    const err = await rejection(store.get("ns", ["k"]));
    expect(err.code).toBe("EC_STORE_UNAVAILABLE");
    expect(inspect(err, { depth: 10 })).not.toMatch(/s3cret/);
    const bad = [null, 5, "http://x", []];
    for (const b of bad) {
      expect(() => upstashStore(b as never)).toThrow(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
  });
});

describe("getOrSet on a hung L2", () => {
  let hanging: Awaited<ReturnType<typeof hangingServer>>;
  beforeAll(async () => {
    hanging = await hangingServer();
  });
  afterAll(() => hanging.close());

  const T = 800;
  /** A cache whose L2 accepts every request and never answers. */
  const hungCache = (label: string) =>
    createCache({
      store: upstashStore({ url: hanging.url, token: "t" }, { timeout: T }),
      namespace: freshNamespace(label),
      onError: () => {},
    });

  it("answers within one store timeout plus the loader's time; the fill finishes in the background", async () => {
    const cache = hungCache("hung");
    // Redis' clock is unknown to this client, so the fill's write first asks for it.
    const started = Date.now();
    expect(await cache.getOrSet("k", async () => "v")).toBe("v");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(T - 5);
    expect(took).toBeLessThan(T + 400); // two timeouts would be 1600
    await cache.close(); // waits for the background fill
  });

  it("with lock: true too: a lease L2 cannot grant in time is not waited for", async () => {
    const cache = hungCache("hung-lock");
    const started = Date.now();
    expect(await cache.getOrSet("k", async () => "v", { lock: true })).toBe("v");
    expect(Date.now() - started).toBeLessThan(T + 400); // read, lease and write: 2400
    await cache.close();
  });
});

describe("options of the wrong shape at the last entry points", () => {
  it("setWithInvalidate and namespace refuse null and arrays as options", async () => {
    const cache = createCache({
      store: upstashStore({ url, token }),
      namespace: freshNamespace("shape"),
    });
    for (const bad of [[], null, 5]) {
      expect((await rejection(cache.setWithInvalidate("k", 1, bad as never))).code).toBe(
        "EC_INVALID_OPTION",
      );
      expect(() => cache.namespace("n", bad as never)).toThrow(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
    expect(await cache.get("k")).toBeUndefined();
    await cache.close();
  });
});

describe("logs while L2 is down", () => {
  it("a Hono server with L2 down writes a few lines in all, not one or two per request", async () => {
    const lines: unknown[][] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      lines.push(args);
    };
    try {
      // The default logger and cached()'s default onError, as a user gets them.
      const cache = createCache({
        // Nothing listens on port 1: every L2 call fails at once.
        store: upstashStore({ url: "http://127.0.0.1:1", token: "t" }, { timeout: 500 }),
        namespace: freshNamespace("logs"),
        breaker: false,
      });
      const app = new Hono();
      app.get("/p", cached({ cache, ttl: 60_000 }), (c) => c.text("hello"));
      app.delete("/p", cached({ cache, ttl: 60_000 }), (c) => c.text("gone"));
      for (let i = 0; i < 20; i++) {
        expect((await app.request("http://x/p")).status).toBe(200);
        expect((await app.request("http://x/p", { method: "DELETE" })).status).toBe(200);
      }
      const kinds = new Set(lines.map((l) => `${(l[1] as { code?: string })?.code}|${l[0]}`));
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.length).toBe(kinds.size); // each kind of line once
      expect(lines.length).toBeLessThanOrEqual(4);
      await cache.close();
    } finally {
      console.warn = warn;
    }
  });
});

describe("delays a timer cannot wait", () => {
  it("are refused: past 2^31 - 1 ms a timer fires at once, so hardTimeout would abort every load", async () => {
    const store = upstashStore({ url, token });
    expect(() => upstashStore({ url, token }, { timeout: 2 ** 31 })).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
    expect(() => createCache({ store, clockResolution: 2 ** 31 })).toThrow(
      expect.objectContaining({ code: "EC_INVALID_OPTION" }),
    );
    const cache = createCache({ store, namespace: freshNamespace("timers") });
    for (const o of [{ hardTimeout: 2 ** 31 }, { timeout: 2 ** 31 }]) {
      expect((await rejection(cache.getOrSet("k", async () => 1, o))).code).toBe(
        "EC_INVALID_OPTION",
      );
    }
    const slow = async () => {
      await sleep(20);
      return "loaded";
    };
    expect(await cache.getOrSet("k", slow, { hardTimeout: 2 ** 31 - 1 })).toBe("loaded");
    await cache.close();
  });
});
