/**
 * Keys, TTLs, jitters, tags and call options, each judged by the documented rule (see
 * src/cache-options.ts): the judges here are the spec, written independently of src/.
 * @module
 */
import fc from "fast-check";
import { MARKER } from "./values.js";
import { type Case, cases, consts, judged, record, type Verdict, wellFormed } from "./verdict.js";

/** The longest key the fuzzed caches take (the default). */
export const MAX_KEY_BYTES = 1024;
/** The longest TTL L2 can hold, in ms. */
export const MAX_TTL = 2 ** 52;
/** The fuzzed caches' default TTL: long, so nothing expires between two snapshots. */
export const CACHE_TTL = 600_000;
/** Node's setTimeout cannot wait longer than this (it fires after 1 ms instead). */
export const MAX_TIMER = 2 ** 31 - 1;

// ---- keys -------------------------------------------------------------------------------

/** A key's verdict: a non-empty, well-formed string, not starting with U+0000, within 1 KiB. */
export function judgeKey(key: unknown): Verdict {
  if (typeof key !== "string" || key.length === 0 || key.charCodeAt(0) === 0) return "bad";
  if (!wellFormed(key)) return "bad";
  return Buffer.byteLength(key, "utf8") <= MAX_KEY_BYTES ? "ok" : "bad";
}

const textKey = fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 });
const LONE = ["\uD800", "\uDC00", "\uDBFF", "\uDFFF", "\uDC00\uD800", "\uD800\uD800"];

const stringKey = fc.oneof(
  { weight: 4, arbitrary: textKey },
  fc.string({ unit: "binary", minLength: 1, maxLength: 8 }),
  fc.constantFrom("\uFFFD", "rocket \uD83D\uDE80", "a\u0000b", "{x}", "*", "?", "[a-z]", "%FF"),
  fc.constantFrom("ec:{x}:k:y", " ", "k:1", "\\", "__proto__", "constructor"),
  // At the byte limit, and one unit past it, in 1-, 2-, 3- and 4-byte characters.
  fc.constantFrom("a".repeat(1024), "é".repeat(512), "€".repeat(341) + "a", "😀".repeat(256)),
  fc.constantFrom("a".repeat(1025), "é".repeat(513), "€".repeat(342), "😀".repeat(257)),
  fc.constant("k".repeat(100_000)),
  // Lone surrogates, alone or inside text; "\uFFFD" is what UTF-8 would alias them to.
  fc.constantFrom(...LONE),
  fc
    .tuple(textKey, fc.constantFrom(...LONE), fc.nat())
    .map(([k, s, i]) => k.slice(0, i % (k.length + 1)) + s + k.slice(i % (k.length + 1))),
  // U+0000 first is reserved for the cache's own keys (tag markers are "\u0000t:<tag>").
  textKey.map((k) => `\u0000${k}`),
  fc.constantFrom("\u0000", "\u0000t:tag", ""),
);

const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.bigInt(),
  fc.boolean(),
  fc.constantFrom(null, undefined),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.constant(null).map(() => ({ toString: () => "a", secret: MARKER })),
  fc.constant(null).map(() => new String("a")),
  fc.constant(null).map(() => Symbol(MARKER)),
  fc.constant(null).map(() => () => MARKER),
  fc.date(),
);

/** Keys that are accepted. */
export const goodKeyCase: fc.Arbitrary<Case> = judged(stringKey, judgeKey, "string key").filter(
  (c) => c.verdict === "ok",
);

/** Any key, judged: half of them good, so that whole calls are often good. */
export const keyCase: fc.Arbitrary<Case> = fc.oneof(
  { weight: 3, arbitrary: goodKeyCase },
  { weight: 2, arbitrary: judged(stringKey, judgeKey, "string key") },
  { weight: 1, arbitrary: judged(notAString as fc.Arbitrary<unknown>, judgeKey, "non-string key") },
);

// ---- numbers ----------------------------------------------------------------------------

const NOT_NUMBERS = ["60000", "", null, true, [600_000], 600_000n, {}] as unknown[];

/** TTLs; the good ones are long (nothing may expire during a run). */
export const ttlCase: fc.Arbitrary<Case> = fc.oneof(
  cases("ok", "ttl", fc.integer({ min: CACHE_TTL, max: 2 ** 31 })),
  cases("ok", "ttl", fc.double({ min: CACHE_TTL, max: MAX_TTL, noNaN: true })),
  consts("ok", "ttl at the limit", MAX_TTL, MAX_TTL - 0.5, CACHE_TTL + 0.5),
  consts("bad", "ttl <= 0", 0, -0, -1, -1e-9, Number.NEGATIVE_INFINITY),
  consts("bad", "ttl not finite", Number.NaN, Number.POSITIVE_INFINITY),
  consts("bad", "ttl past 2^52", MAX_TTL + 1, 2 ** 53, 1e19, 1e300, Number.MAX_VALUE),
  consts("bad", "ttl not a number", ...NOT_NUMBERS, new Number(600_000)),
);

/** Short TTLs: valid, but gone before anything could read them back. */
export const shortTtl = fc.oneof(
  fc.double({ min: Number.MIN_VALUE, max: 1000, noNaN: true }),
  fc.constantFrom(Number.MIN_VALUE, 1e-9, 0.5, 1, 1.5),
);

/** Jitters; the good ones keep at least half the TTL. */
export const jitterCase: fc.Arbitrary<Case> = fc.oneof(
  cases("ok", "jitter", fc.double({ min: 0, max: 0.5, noNaN: true })),
  consts("ok", "jitter", 0, -0),
  consts("bad", "jitter >= 1", 1, 1.0000001, 2, Number.POSITIVE_INFINITY),
  consts("bad", "jitter < 0", -1e-9, -1, Number.NEGATIVE_INFINITY),
  consts("bad", "jitter NaN", Number.NaN),
  consts("bad", "jitter not a number", "0.5", null, {}, true, [0.1]),
);

/**
 * A duration in ms. `min` "zero" allows 0 (staleWhileRevalidate, grace, graceBackoff),
 * "positive" does not; `good` bounds what is generated as good. Past Node's timer limit is
 * `either`: refusing is fine, accepting means it must work (not fire after 1 ms).
 */
function msCase(min: "zero" | "positive", good: [number, number]): fc.Arbitrary<Case> {
  return fc.oneof(
    cases("ok", "ms", fc.integer({ min: Math.ceil(good[0]), max: Math.min(good[1], 2 ** 31 - 1) })),
    cases("ok", "ms", fc.double({ min: good[0], max: good[1], noNaN: true })),
    ...(min === "zero" ? [consts("ok", "ms 0", 0, -0)] : [consts("bad", "ms 0", 0, -0)]),
    consts("either", "ms past the timer limit", MAX_TIMER + 1, 2 ** 35, 2 ** 40),
    consts("either", "ms past 2^40", 2 ** 40 + 1, 2 ** 48),
    consts("bad", "ms < 0", -1, -1e-9, Number.NEGATIVE_INFINITY),
    consts("bad", "ms not finite", Number.NaN, Number.POSITIVE_INFINITY),
    consts("bad", "ms not a number", ...NOT_NUMBERS),
  );
}

// ---- tags and the rest ------------------------------------------------------------------

/**
 * Tags' verdict: an array of at most 64 non-empty, well-formed strings of <= 256 units.
 * `tooMany` is the verdict past 64 (documented for a write's tags only).
 */
export function judgeTags(tags: unknown, tooMany: Verdict = "bad"): Verdict {
  if (!Array.isArray(tags)) return "bad";
  for (const tag of tags) {
    if (typeof tag !== "string" || tag.length === 0 || tag.length > 256) return "bad";
    if (!wellFormed(tag)) return "bad";
  }
  return tags.length > 64 ? tooMany : "ok";
}

const tagText = fc.oneof(
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 10 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 6 }),
  fc.constantFrom("a,b", "a:b", "%", "#", "\u0000", " ", "a".repeat(256), "😀".repeat(128)),
);

const tagsInput = fc.oneof(
  { weight: 4, arbitrary: fc.array(tagText, { maxLength: 4 }) },
  fc.constant(null).map(() => Array.from({ length: 64 }, (_, i) => `t${i}`)),
  fc.constant(null).map(() => Array.from({ length: 65 }, (_, i) => `t${i}`)),
  fc.constantFrom<unknown[]>(["a".repeat(257)], [""], [5], [null], [undefined], ["\uD800"]),
  fc.constantFrom<unknown[]>(["ok", "x\uDC00"], ["ok", ["nested"]]),
  fc.constantFrom<unknown>("tag", 5, null, {}, true),
  fc.constant(null).map(() => new Set(["a"])),
  fc.constant(null).map(() => ({ length: 1, 0: "a" })),
);

/** Tags of a write (`set`, `getOrSet`). */
export const tagsCase: fc.Arbitrary<Case> = judged(
  tagsInput as fc.Arbitrary<unknown>,
  judgeTags,
  "tags",
);

/** Tags to invalidate: past 64 is not documented as refused there. */
export const invalidateTagsCase: fc.Arbitrary<Case> = judged(
  tagsInput as fc.Arbitrary<unknown>,
  (t) => judgeTags(t, "either"),
  "tags",
);

/** One tag for `invalidateTag`. */
export const tagCase: fc.Arbitrary<Case> = judged(
  fc.oneof(
    tagText as fc.Arbitrary<unknown>,
    fc.constantFrom("", "a".repeat(257), "\uDC00", 5, null),
  ),
  (tag) => judgeTags([tag]),
  "tag",
);

const propagateCase = fc.oneof(
  consts("ok", "propagate", "value", "invalidate"),
  consts("bad", "propagate", "Value", "", "none", "invalidate ", true, 1, null, ["value"]),
);

/** Option objects of the wrong shape altogether. */
const notAnObject = consts("bad", "options of the wrong shape", null, [], [{}], 5, "ttl", true);

/** `set` options; `setWithInvalidate` takes them without `propagate`. */
function setOptions(propagate: boolean): fc.Arbitrary<Case> {
  const fields = { ttl: ttlCase, jitter: jitterCase, tags: tagsCase };
  return fc.oneof(
    consts("ok", "no options", undefined),
    { weight: 4, arbitrary: record(propagate ? { ...fields, propagate: propagateCase } : fields) },
    notAnObject,
    cases(
      "bad",
      "options that are a function",
      fc.constant(null).map(() => () => ({})),
    ),
    cases(
      "either",
      "options that are a Map",
      fc.constant(null).map(() => new Map([["ttl", 0]])),
    ),
  );
}

/** `set` options. */
export const setOptionsCase = setOptions(true);
/** `setWithInvalidate` options. */
export const invalidateOptionsCase = setOptions(false);

/** A finite number, or 0 for anything else (what a refused field would not add). */
const num = (x: unknown): number => (typeof x === "number" && Number.isFinite(x) && x > 0 ? x : 0);

/**
 * `ttl` plus the stale tail (max of staleWhileRevalidate and grace) is the L2 lifetime: past
 * 2^52 L2 cannot hold it, which `set` refuses too ("ttl plus staleWhileRevalidate or grace").
 */
export function judgeLifetime(o: Record<string, unknown>, ttl = CACHE_TTL): Verdict {
  const fresh = o.ttl === undefined ? ttl : num(o.ttl);
  const tail = Math.max(num(o.staleWhileRevalidate), num(o.grace));
  return Math.ceil(fresh) + Math.ceil(tail) > MAX_TTL ? "bad" : "ok";
}

const lockCase = fc.oneof(
  consts("ok", "lock", true, false),
  record({ ttl: msCase("positive", [1, 120_000]), wait: msCase("positive", [1, 120_000]) }),
  consts("bad", "lock of the wrong shape", null, 1, "yes", [], [true]),
);

/** A function, built per run. */
export const fn = (why: string) =>
  cases(
    "ok",
    why,
    fc.constant(null).map(() => () => {}),
  );
/** Things that are not functions. */
export const notAFunction = (why: string) => consts("bad", why, 5, "fn", {}, null, true);

/** The fields of `getOrSet` options (and of a namespace's defaults). */
export const loadFields = {
  ttl: ttlCase,
  jitter: jitterCase,
  staleWhileRevalidate: msCase("zero", [0, 2 ** 40]),
  grace: msCase("zero", [0, 2 ** 40]),
  graceBackoff: msCase("zero", [0, 2 ** 40]),
  timeout: msCase("positive", [Number.MIN_VALUE, 2 ** 31 - 1]),
  // Short hard timeouts are valid but would time out for real: not generated as good.
  hardTimeout: msCase("positive", [60_000, 2 ** 31 - 1]),
  lock: lockCase,
  negativeTtl: msCase("positive", [1, 2 ** 40]),
  waitUntil: fc.oneof(fn("waitUntil"), notAFunction("waitUntil not a function")),
  propagate: propagateCase,
  tags: tagsCase,
};

/** `getOrSet` options. */
export const loadOptionsCase: fc.Arbitrary<Case> = fc.oneof(
  consts("ok", "no options", undefined),
  { weight: 5, arbitrary: record(loadFields, (o) => judgeLifetime(o)) },
  notAnObject,
  cases(
    "bad",
    "options that are a function",
    fc.constant(null).map(() => () => ({})),
  ),
);

/** A loader: a function, or not. */
export const loaderShapeCase = fc.oneof(
  { weight: 5, arbitrary: consts("ok", "loader", "function") },
  consts("bad", "loader not a function", 5, "loader", null, undefined, {}),
);
