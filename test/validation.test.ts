/**
 * Input that would change what the cache means: keys and tags that are not well-formed
 * UTF-16 (aliased by UTF-8 in Redis), options of the wrong shape (refused at setup or per
 * call, changing nothing), and the user's plug-ins (logger, onError, serializer), which must
 * not turn a read that fails open into a throw.
 */
import { describe, expect, inject, it } from "vitest";
import {
  type Cache,
  type CacheOptions,
  createCache,
  type EdgeCacheError,
  isEdgeCacheError,
  memoryStore,
  type Serializer,
} from "../src/index.js";
import { lruLocal } from "../src/local.js";
import { upstashStore } from "../src/stores/upstash.js";
import { chaosStore, fakeClock, rejection } from "./helpers.js";

/** Lone surrogates, alone, inside text, at the end, and a pair in the wrong order. */
const ILL_FORMED = ["\uD800", "\uDC00", "a\uD800b", "x\uDFFF", "\uDBFF", "\uDC00\uD800"];

function thrown(fn: () => unknown): EdgeCacheError {
  try {
    fn();
  } catch (err) {
    expect(isEdgeCacheError(err)).toBe(true);
    return err as EdgeCacheError;
  }
  throw new Error("expected a throw");
}

describe("keys that are not well-formed UTF-16", () => {
  const store = upstashStore({ url: inject("bridgeUrl"), token: inject("bridgeToken") });

  it("are refused with EC_INVALID_KEY at every entry point, so none aliases U+FFFD in Redis", async () => {
    const namespace = `keys.${crypto.randomUUID()}`;
    const cache = createCache({ store, namespace, logger: false });
    await cache.set("\uFFFD", "replacement");
    await cache.set("rocket \uD83D\uDE80", "pair"); // a surrogate pair is well-formed
    let loads = 0;
    const loader = () => {
      loads++;
      return "loaded";
    };
    const reader = cache.namespace("reader", { loader });
    const calls: Array<[string, (c: Cache, k: string) => Promise<unknown>]> = [
      ["get", (c, k) => c.get(k)],
      ["has", (c, k) => c.has(k)],
      ["inspect", (c, k) => c.inspect(k)],
      ["getMany", (c, k) => c.getMany(["\uFFFD", k])],
      ["getOrSet", (c, k) => c.getOrSet(k, loader)],
      ["set", (c, k) => c.set(k, "overwrite")],
      ["setWithInvalidate", (c, k) => c.setWithInvalidate(k, "overwrite")],
      [
        "setMany",
        (c, k) =>
          c.setMany([
            ["fine", 1],
            [k, "overwrite"],
          ]),
      ],
      ["delete", (c, k) => c.delete(k)],
      ["deleteMany", (c, k) => c.deleteMany(["fine", k])],
      ["read-through get", (_, k) => reader.get(k)],
    ];
    for (const k of ILL_FORMED) {
      for (const [name, call] of calls) {
        const error = await rejection(call(cache, k));
        expect(error.code, `${name}(${JSON.stringify(k)})`).toBe("EC_INVALID_KEY");
        expect(error.message).toBe(
          "keys must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
        );
      }
      expect(thrown(() => cache.peek(k)).code).toBe("EC_INVALID_KEY");
    }
    expect(loads).toBe(0);
    // Nothing was written or deleted: a fresh instance reads both entries from Redis.
    const fresh = createCache({ store, namespace, local: false, logger: false });
    expect(await fresh.getMany(["\uFFFD", "rocket \uD83D\uDE80", "fine"])).toEqual([
      "replacement",
      "pair",
      undefined,
    ]);
    await fresh.close();
    await cache.close();
  });

  it("refuses such tags with EC_INVALID_OPTION: a tag names a Redis key too", async () => {
    const cache = createCache({ store, namespace: `tags.${crypto.randomUUID()}`, logger: false });
    await cache.set("tagged", 1, { tags: ["\uFFFD"] });
    for (const tag of ILL_FORMED) {
      for (const p of [
        cache.set("k", 1, { tags: [tag] }),
        cache.setMany([["k", 1, { tags: ["ok", tag] }]]),
        cache.getOrSet("k", () => 1, { tags: [tag] }),
        cache.invalidateTag(tag),
        cache.invalidateTags(["ok", tag]),
      ]) {
        const error = await rejection(p);
        expect(error.code).toBe("EC_INVALID_OPTION");
        expect(error.message).toBe(
          "tags must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
        );
      }
    }
    // "\uD800" did not invalidate the "\uFFFD" tag, and "k" was never written.
    expect(await cache.getMany(["tagged", "k"])).toEqual([1, undefined]);
    await cache.close();
  });

  it("refuses them as namespace names (ASCII only)", () => {
    const cache = createCache({ store: memoryStore(), logger: false });
    for (const name of ILL_FORMED) {
      expect(thrown(() => cache.namespace(name)).code).toBe("EC_INVALID_OPTION");
      expect(thrown(() => createCache({ store: memoryStore(), namespace: name })).code).toBe(
        "EC_INVALID_OPTION",
      );
    }
  });
});

describe("bad keys on the L1-hit path", () => {
  it("are refused by get, peek and has even while L1 holds look-alike keys, counting nothing", async () => {
    const cache = createCache({ store: memoryStore(), logger: false });
    await cache.setMany([
      ["5", "five"],
      ["k", "v"],
      ["\uFFFD", "replacement"],
    ]);
    expect(await cache.get("5")).toBe("five");
    const before = cache.stats();
    const bad: unknown[] = [
      5,
      "",
      null,
      undefined,
      { toString: () => "k" },
      ["k"],
      "\uD800",
      "\u0000t:x",
    ];
    for (const key of bad) {
      expect((await rejection(cache.get(key as string))).code).toBe("EC_INVALID_KEY");
      expect(thrown(() => cache.peek(key as string)).code).toBe("EC_INVALID_KEY");
      expect((await rejection(cache.has(key as string))).code).toBe("EC_INVALID_KEY");
    }
    const after = cache.stats();
    expect([after.l1Hits, after.l1Misses, after.l2Hits, after.l2Misses]).toEqual([
      before.l1Hits,
      before.l1Misses,
      before.l2Hits,
      before.l2Misses,
    ]);
    await cache.close();
  });
});

describe("options of the wrong shape", () => {
  const store = memoryStore();
  const fn = () => {};
  const logger = { warn: fn, error: fn };
  const bad: Record<string, unknown> = {
    "options []": [],
    "options null": null,
    "store {}": { store: {} },
    "logger {}": { logger: {} },
    "logger 5": { logger: 5 },
    'logger "console"': { logger: "console" },
    "logger true": { logger: true },
    "logger null": { logger: null },
    "logger []": { logger: [] },
    "logger without error": { logger: { warn: fn } },
    "logger.debug 1": { logger: { ...logger, debug: 1 } },
    "logInterval -1": { logInterval: -1 },
    "logInterval NaN": { logInterval: Number.NaN },
    "logInterval Infinity": { logInterval: Number.POSITIVE_INFINITY },
    'logInterval "60s"': { logInterval: "60s" },
    "logInterval null": { logInterval: null },
    "ttl null": { ttl: null },
    "ttl NaN": { ttl: Number.NaN },
    "ttl Infinity": { ttl: Number.POSITIVE_INFINITY },
    "ttl -1": { ttl: -1 },
    "ttl 0": { ttl: 0 },
    'ttl "60"': { ttl: "60" },
    "namespace null": { namespace: null },
    "namespace empty": { namespace: "" },
    "local []": { local: [] },
    "local null": { local: null },
    "local 5": { local: 5 },
    "local true": { local: true },
    "local.maxItems null": { local: { maxItems: null } },
    "local.maxItems 1.5": { local: { maxItems: 1.5 } },
    "local.maxItems Infinity": { local: { maxItems: Number.POSITIVE_INFINITY } },
    "local.maxBytes 0": { local: { maxBytes: 0 } },
    "local.ttl Infinity": { local: { ttl: Number.POSITIVE_INFINITY } },
    "local.ttl NaN": { local: { ttl: Number.NaN } },
    "local.ttl -1": { local: { ttl: -1 } },
    "local.copyOnRead 'yes'": { local: { copyOnRead: "yes" } },
    "local.cache {}": { local: { cache: {} } },
    "local.maxItems 2^24 + 1": { local: { maxItems: 2 ** 24 + 1 } },
    "local.maxItems 2^32": { local: { maxItems: 2 ** 32 } },
    "local.cache with maxItems 0": { local: { cache: lruLocal(), maxItems: 0 } },
    "local.cache with maxBytes '5'": { local: { cache: lruLocal(), maxBytes: "5" } },
    'serializer "JSON"': { serializer: "JSON" },
    "serializer []": { serializer: [] },
    "serializer null": { serializer: null },
    "serializer without deserialize": { serializer: { name: "x", serialize: String } },
    "serializer name 'a b'": {
      serializer: { name: "a b", serialize: String, deserialize: String },
    },
    "maxKeyBytes null": { maxKeyBytes: null },
    "maxKeyBytes 0": { maxKeyBytes: 0 },
    "maxKeyBytes NaN": { maxKeyBytes: Number.NaN },
    "maxValueBytes Infinity": { maxValueBytes: Number.POSITIVE_INFINITY },
    "maxValueBytes -1": { maxValueBytes: -1 },
    'onError "log"': { onError: "log" },
    "onError null": { onError: null },
    "now 5": { now: 5 },
    "now null": { now: null },
    "clockResolution null": { clockResolution: null },
    "clockResolution NaN": { clockResolution: Number.NaN },
    "clockResolution Infinity": { clockResolution: Number.POSITIVE_INFINITY },
    "clockResolution -1": { clockResolution: -1 },
    "sync []": { sync: [] },
    "sync null": { sync: null },
    "sync true": { sync: true },
    "sync.maxStaleness null": { sync: { maxStaleness: null } },
    "sync.maxStaleness NaN": { sync: { maxStaleness: Number.NaN } },
    "sync.maxStaleness Infinity": { sync: { maxStaleness: Number.POSITIVE_INFINITY } },
    "sync.logLength 0": { sync: { logLength: 0 } },
    "sync.logLength 1.5": { sync: { logLength: 1.5 } },
    "sync.batch null": { sync: { batch: null } },
    "sync.propagateMaxBytes -1": { sync: { propagateMaxBytes: -1 } },
    "sync.refreshAhead 1": { sync: { refreshAhead: 1 } },
    "sync.refreshAhead null": { sync: { refreshAhead: null } },
    "sync.waitUntil 1": { sync: { waitUntil: 1 } },
    "sync.hub []": { sync: { hub: [] } },
    "sync.hub 1": { sync: { hub: 1 } },
    "instanceId null": { instanceId: null },
    "instanceId 'a b'": { instanceId: "a b" },
    "breaker []": { breaker: [] },
    "breaker null": { breaker: null },
    "breaker 5": { breaker: 5 },
    "breaker.threshold null": { breaker: { threshold: null } },
    "breaker.threshold 0": { breaker: { threshold: 0 } },
    "breaker.cooldown null": { breaker: { cooldown: null } },
    "breaker.cooldown NaN": { breaker: { cooldown: Number.NaN } },
    "jitter null": { jitter: null },
    "jitter 1": { jitter: 1 },
    "jitter NaN": { jitter: Number.NaN },
  };

  for (const [name, options] of Object.entries(bad)) {
    it(`createCache refuses ${name} with InvalidOptionError`, () => {
      const given = Array.isArray(options) || options === null ? options : { store, ...options };
      const error = thrown(() => createCache(given as CacheOptions));
      expect(error.code).toBe("EC_INVALID_OPTION");
      expect(error.name).toBe("InvalidOptionError");
    });
  }

  it("accepts a logger with only warn and error, and undefined for every option", async () => {
    const lines: string[] = [];
    const cache = createCache({
      store,
      logger: { warn: (m) => lines.push(m), error: (m) => lines.push(m) },
      ttl: undefined,
      local: undefined,
      sync: { maxStaleness: undefined, hub: undefined },
      breaker: { threshold: undefined },
      jitter: undefined,
      logInterval: 0,
    });
    await cache.set("k", 1);
    expect(await cache.get("k")).toBe(1);
  });

  it("refuses call options of the wrong shape per call, changing nothing", async () => {
    const cache = createCache({ store: memoryStore(), logger: false });
    await cache.set("k", "before");
    const setOptions: unknown[] = [
      [],
      null,
      5,
      "fast",
      { ttl: Number.NaN },
      { ttl: Number.POSITIVE_INFINITY },
      { ttl: null },
      { ttl: -5 },
      { jitter: null },
      { jitter: 1 },
      { tags: "a" },
      { tags: [1] },
      { tags: null },
      { propagate: "all" },
      { propagate: null },
    ];
    for (const options of setOptions) {
      const label = JSON.stringify(options) ?? String(options);
      const error = await rejection(cache.set("k", "after", options as never));
      expect(error.code, label).toBe("EC_INVALID_OPTION");
      const many = await rejection(cache.setMany([["k", "after", options as never]]));
      expect(many.code, label).toBe("EC_INVALID_OPTION");
    }
    let loads = 0;
    const loader = () => {
      loads++;
      return "loaded";
    };
    const loadOptions: unknown[] = [
      [],
      null,
      5,
      { ttl: Number.NaN },
      { ttl: null },
      { lock: [] },
      { lock: "yes" },
      { lock: { ttl: Number.NaN } },
      { timeout: -1 },
      { hardTimeout: Number.POSITIVE_INFINITY },
      { staleWhileRevalidate: Number.NaN },
      { grace: null },
      { graceBackoff: "5s" },
      { negativeTtl: 0 },
      { waitUntil: 5 },
      { propagate: 1 },
      { tags: [""] },
      { jitter: -0.5 },
    ];
    for (const options of loadOptions) {
      const label = JSON.stringify(options) ?? String(options);
      const error = await rejection(cache.getOrSet("absent", loader, options as never));
      expect(error.code, label).toBe("EC_INVALID_OPTION");
    }
    expect(loads).toBe(0);
    expect(await cache.getMany(["k", "absent"])).toEqual(["before", undefined]);
  });

  it("refuses namespace options of the wrong shape, creating no namespace", () => {
    const cache = createCache({ store: memoryStore(), logger: false });
    const cases: Array<[string, unknown]> = [
      ["array", []],
      ["5", 5],
      ["ttl null", { ttl: null }],
      ["ttl Infinity", { ttl: Number.POSITIVE_INFINITY }],
      ["local []", { local: [] }],
      ["local.ttl Infinity", { local: { ttl: Number.POSITIVE_INFINITY } }],
      ["lock []", { lock: [] }],
      ["loader 5", { loader: 5 }],
      ["grace NaN", { grace: Number.NaN }],
    ];
    for (const [i, [name, options]] of cases.entries()) {
      const error = thrown(() => cache.namespace(`n${i}`, options as never));
      expect(error.code, name).toBe("EC_INVALID_OPTION");
    }
    // None of them was kept: the names can be taken with good options.
    for (const i of cases.keys()) {
      expect(cache.namespace(`n${i}`, { ttl: 1000 }).name).toBe(`default/n${i}`);
    }
  });
});

describe("what users plug in cannot make a failing read throw", () => {
  function failing(options: Partial<CacheOptions>) {
    const clock = fakeClock();
    const chaos = chaosStore(memoryStore({ now: clock.now }));
    const cache = createCache({
      store: chaos.store,
      namespace: "app",
      now: clock.now,
      breaker: false,
      ...options,
    });
    chaos.mode = "fail";
    return cache;
  }

  it("a logger whose methods throw", async () => {
    const cache = failing({
      logger: {
        warn: () => {
          throw new Error("log sink down");
        },
        error: () => {
          throw new Error("log sink down");
        },
      },
    });
    expect(await cache.get("k")).toBeUndefined();
    expect(await cache.getMany(["a", "b"])).toEqual([undefined, undefined]);
    expect(await cache.getOrSet("k", () => "loaded")).toBe("loaded");
  });

  it("an async logger that rejects", async () => {
    const cache = failing({
      logger: {
        warn: async () => {
          throw new Error("log sink down");
        },
        error: async () => {
          throw new Error("log sink down");
        },
      },
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      expect(await cache.get("k")).toBeUndefined();
      await new Promise((r) => setTimeout(r, 10));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("an onError that throws, with a logger that throws too", async () => {
    const cache = failing({
      onError: () => {
        throw new Error("hook bug");
      },
      logger: {
        warn: () => {
          throw new Error("log sink down");
        },
        error: () => {
          throw new Error("log sink down");
        },
      },
    });
    expect(await cache.get("k")).toBeUndefined();
  });

  it("an async onError that rejects is logged, not left unhandled", async () => {
    const lines: Array<[string, unknown]> = [];
    const cache = failing({
      onError: async () => {
        throw new TypeError("hook bug");
      },
      logger: {
        warn: (m, meta) => lines.push([m, meta]),
        error: (m, meta) => lines.push([m, meta]),
      },
    });
    expect(await cache.get("k")).toBeUndefined();
    await new Promise((r) => setTimeout(r, 10));
    expect(lines).toEqual([["onError threw", { name: "TypeError" }]]);
  });

  it("a serializer whose deserialize throws reads as a miss; one whose serialize fails is EC_SERIALIZE", async () => {
    const errors: EdgeCacheError[] = [];
    const store = memoryStore();
    const broken: Serializer = {
      name: "broken",
      serialize: (v) => (v === "not a string" ? (42 as unknown as string) : JSON.stringify(v)),
      deserialize: () => {
        throw new Error("cannot read");
      },
    };
    const cache = createCache({
      store,
      local: false,
      serializer: broken,
      onError: (e) => errors.push(e),
    });
    await cache.set("k", 1);
    expect(await cache.get("k")).toBeUndefined();
    expect(errors.map((e) => e.code)).toEqual(["EC_CORRUPT_ENTRY"]);
    const thrower = createCache({
      store,
      serializer: {
        ...broken,
        serialize: () => {
          throw new Error("secret-value");
        },
      },
    });
    const error = await rejection(thrower.set("k", 1));
    expect(error.code).toBe("EC_SERIALIZE");
    expect(error.message).toBe('serializer "broken" could not encode the value');
    const wrongType = await rejection(cache.set("k", "not a string"));
    expect(wrongType.code).toBe("EC_SERIALIZE");
    expect(wrongType.message).toBe('serializer "broken" did not return a string');
  });
});
