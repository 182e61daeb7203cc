/**
 * `createCache` options and namespace options, each field judged by its documented rule
 * (src/cache-options.ts, src/local.ts, src/sync/state.ts, src/breaker.ts, src/codec.ts).
 * @module
 */
import fc from "fast-check";
import { memoryStore } from "../../src/index.js";
import { lruLocal } from "../../src/local.js";
import type { Store } from "../../src/store/contract.js";
import { fn, jitterCase, loadFields, notAFunction } from "./inputs.js";
import { type Case, cases, consts, record, type Verdict, worst } from "./verdict.js";

/** Built per run, never shared: one L1 serves one cache only. */
const fresh = <T>(make: () => T) => fc.constant(null).map(make);

const NOT_NUMBERS = ["5", "", null, true, [5], 5n, {}] as unknown[];

function positiveInt(why: string): fc.Arbitrary<Case> {
  return fc.oneof(
    cases("ok", why, fc.integer({ min: 1, max: 2 ** 31 })),
    consts("ok", why, 1, Number.MAX_SAFE_INTEGER),
    consts(
      "bad",
      `${why} not a positive integer`,
      0,
      -1,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ),
    consts("bad", `${why} past 2^53`, 2 ** 53, 1e300),
    consts("bad", `${why} not a number`, ...NOT_NUMBERS),
  );
}

/** A finite number >= 0 (`logInterval`, `clockResolution`, `sync.maxStaleness`). */
function nonNegative(why: string, integer = false): fc.Arbitrary<Case> {
  return fc.oneof(
    integer
      ? cases("ok", why, fc.integer({ min: 0, max: 2 ** 31 }))
      : cases("ok", why, fc.double({ min: 0, max: 1e9, noNaN: true })),
    consts("ok", why, 0),
    consts("bad", `${why} < 0`, -1, -Number.MIN_VALUE, Number.NEGATIVE_INFINITY),
    consts("bad", `${why} not finite`, Number.NaN, Number.POSITIVE_INFINITY),
    consts("bad", `${why} not a number`, ...NOT_NUMBERS),
    ...(integer ? [consts("bad", `${why} not an integer`, 0.5, 1.5)] : []),
  );
}

/** TTLs at construction: anything from 1 µs to 2^52 ms is valid. */
const constructionTtl = fc.oneof(
  cases("ok", "ttl", fc.double({ min: Number.MIN_VALUE, max: 2 ** 52, noNaN: true })),
  consts("ok", "ttl", 1, 2 ** 52),
  consts(
    "bad",
    "ttl out of range",
    0,
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 52 + 1,
    1e300,
  ),
  consts("bad", "ttl not a number", ...NOT_NUMBERS),
);

const localCache = () => {
  const map = new Map<string, unknown>();
  return {
    get: (k: string) => map.get(k),
    set: (k: string, e: unknown) => void map.set(k, e),
    delete: (k: string) => void map.delete(k),
    clear: () => map.clear(),
    get size() {
      return map.size;
    },
    bytes: 0,
  };
};

/** The `local` option (of a cache, or of a namespace). */
export const localCase: fc.Arbitrary<Case> = fc.oneof(
  consts("ok", "local", false),
  record({
    // lru-cache allocates `max` slots up front: 1e7 takes seconds, 2^31 exhausts the heap.
    // So good counts stay small here; past the documented 2^24 is refused.
    maxItems: fc.oneof(
      cases("ok", "local.maxItems", fc.integer({ min: 1, max: 100_000 })),
      consts("bad", "local.maxItems past 2^24", 2 ** 24 + 1, 2 ** 32, Number.MAX_SAFE_INTEGER),
      consts("bad", "local.maxItems", 0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53),
      consts("bad", "local.maxItems not a number", ...NOT_NUMBERS),
    ),
    maxBytes: positiveInt("local.maxBytes"),
    policy: fc.oneof(
      consts("ok", "local.policy", "lru", "tinylfu"),
      consts("bad", "local.policy", "lfu", "", "TinyLFU", 1, null, {}),
    ),
    ttl: fc.oneof(
      cases("ok", "local.ttl", fc.double({ min: Number.MIN_VALUE, max: 1e12, noNaN: true })),
      consts("bad", "local.ttl", 0, -1, Number.NaN, Number.POSITIVE_INFINITY, "5", null),
    ),
    copyOnRead: fc.oneof(
      consts("ok", "copyOnRead", true, false),
      fn("copyOnRead function"),
      consts("bad", "copyOnRead", "yes", 1, null, {}),
    ),
    cache: fc.oneof(
      cases("ok", "local.cache", fresh(localCache)),
      consts("bad", "local.cache", {}, { get() {} }, 5, null),
    ),
  }),
  cases(
    "ok",
    "lruLocal()",
    fresh(() => lruLocal()),
  ),
  cases("ok", "a LocalCache", fresh(localCache)),
  consts("bad", "local of the wrong shape", null, true, 5, "lru", []),
);

const validSerializer = () => ({
  name: "custom-1.0",
  serialize: (v: unknown) => JSON.stringify(v),
  deserialize: (t: string) => JSON.parse(t) as unknown,
});

const serializerCase = fc.oneof(
  consts("ok", "serializer", "superjson", "json"),
  cases("ok", "custom serializer", fresh(validSerializer)),
  consts("bad", "serializer name", "yaml", "", "JSON", 5, null, true, [], {}),
  cases(
    "bad",
    "custom serializer of the wrong shape",
    fc
      .constantFrom<Record<string, unknown>>(
        { name: "bad name" },
        { name: "x".repeat(33) },
        { name: "" },
        { name: 5 },
        { name: undefined },
        { serialize: 5 },
        { deserialize: "JSON.parse" },
      )
      .map((patch) => ({ ...validSerializer(), ...patch })),
  ),
);

const loggerCase = fc.oneof(
  consts("ok", "logger", false),
  cases(
    "ok",
    "logger",
    fresh(() => ({ warn() {}, error() {} })),
  ),
  cases(
    "ok",
    "logger",
    fresh(() => ({ warn() {}, error() {}, debug() {}, info() {} })),
  ),
  consts("bad", "logger of the wrong shape", true, null, 5, "console", [], {}),
  cases(
    "bad",
    "logger without its methods",
    fc
      .constantFrom<Record<string, unknown>>(
        { error: undefined },
        { warn: 1 },
        { debug: 5 },
        { info: "info" },
        { error: null },
      )
      .map((patch) => ({ warn() {}, error() {}, ...patch })),
  ),
);

const syncCase = fc.oneof(
  consts("ok", "sync", false),
  record({
    maxStaleness: nonNegative("sync.maxStaleness"),
    logLength: positiveInt("sync.logLength"),
    propagateMaxBytes: nonNegative("sync.propagateMaxBytes", true),
    batch: positiveInt("sync.batch"),
    refreshAhead: fc.oneof(
      cases("ok", "refreshAhead", fc.double({ min: 0, max: 0.99, noNaN: true })),
      consts("bad", "refreshAhead", 1, 1.5, -0.1, Number.NaN, "0.5", null),
    ),
    waitUntil: fc.oneof(fn("sync.waitUntil"), notAFunction("sync.waitUntil")),
    hub: fc.oneof(
      consts("ok", "sync.hub unset", undefined),
      consts("bad", "sync.hub of the wrong shape", 5, "wss://x", null, [], {}),
    ),
  }),
  consts("bad", "sync of the wrong shape", null, true, 5, "on", []),
);

const breakerCase = fc.oneof(
  consts("ok", "breaker", false),
  record({
    threshold: positiveInt("breaker.threshold"),
    cooldown: fc.oneof(
      cases("ok", "cooldown", fc.double({ min: Number.MIN_VALUE, max: 1e9, noNaN: true })),
      consts("bad", "cooldown", 0, -1, Number.NaN, Number.POSITIVE_INFINITY, "5", null),
    ),
  }),
  consts("bad", "breaker of the wrong shape", null, true, 5, "off", []),
);

const stringField = (why: string, good: RegExp, bad: unknown[]) =>
  fc.oneof(
    cases("ok", why, fc.stringMatching(good)),
    consts("bad", why, "", "a b", "é", "\uD800", 5, null, ...bad),
  );

/** `value`, printed as `name` in fast-check's reports. */
export function named<T extends object>(value: T, name: string): T {
  Object.defineProperty(value, fc.toStringMethod, { value: () => name });
  return value;
}

/** The store: ours, or something that is not one. */
function storeCase(store: Store): fc.Arbitrary<Case> {
  return fc.oneof(
    { weight: 6, arbitrary: consts("ok", "store", store) },
    cases(
      "ok",
      "memoryStore()",
      fresh(() => named(memoryStore(), "memoryStore()")),
    ),
    consts("bad", "not a store", null, undefined, 5, "redis://localhost", [], {}),
    consts("bad", "half a store", { get() {}, set() {} }, { get: store.get, sync: 5 }),
  );
}

/** `createCache` options, or something that is not an options object. */
export function cacheOptionsCase(store: Store): fc.Arbitrary<Case> {
  const fields = record({
    namespace: stringField("namespace", /^[A-Za-z0-9_.:/-]{1,128}$/, ["x".repeat(129), "{x}"]),
    ttl: constructionTtl,
    local: localCase,
    serializer: serializerCase,
    maxKeyBytes: positiveInt("maxKeyBytes"),
    maxValueBytes: positiveInt("maxValueBytes"),
    logger: loggerCase,
    logInterval: nonNegative("logInterval"),
    onError: fc.oneof(fn("onError"), notAFunction("onError")),
    now: fc.oneof(fn("now"), notAFunction("now")),
    clockResolution: nonNegative("clockResolution"),
    sync: syncCase,
    instanceId: stringField("instanceId", /^[A-Za-z0-9_.:-]{1,64}$/, ["x".repeat(65), "a/b"]),
    breaker: breakerCase,
    jitter: jitterCase,
  });
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.tuple(storeCase(store), fields).map(([s, f]) => ({
        input: { ...f.input, store: s.input },
        verdict: worst(s.verdict, f.verdict),
        why: s.verdict === "ok" ? f.why : `${s.why}; ${f.why}`,
      })),
    },
    consts("bad", "options of the wrong shape", undefined, null, [], 5, "redis://x", true),
  );
}

/** A namespace name's verdict under `parent`: the full name must be a valid namespace. */
export function judgeNamespaceName(parent: string, name: unknown): Verdict {
  if (typeof name !== "string" || name.length === 0) return "bad";
  return /^[A-Za-z0-9_.:/-]{1,128}$/.test(`${parent}/${name}`) ? "ok" : "bad";
}

/** A namespace's name (judged against its parent by the caller). */
export const namespaceName = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9_.:/-]{1,20}$/) as fc.Arbitrary<unknown> },
  fc.constantFrom<unknown>("", "a b", "é", "{x}", "\uD800", "x".repeat(128), 5, null, undefined),
);

/**
 * A namespace's options: `getOrSet`'s defaults plus its loader and L1. Their lifetime rule
 * (`judgeLifetime`) depends on the parent's TTL, so the caller applies it.
 */
export const namespaceOptionsCase: fc.Arbitrary<Case> = fc.oneof(
  consts("ok", "no options", undefined),
  {
    weight: 5,
    arbitrary: record({
      ...loadFields,
      ttl: constructionTtl,
      loader: fc.oneof(fn("loader"), consts("bad", "loader", 5, "load", null, {})),
      local: localCase,
    }),
  },
  consts("bad", "namespace options of the wrong shape", null, [], 5, "opts", true),
);
