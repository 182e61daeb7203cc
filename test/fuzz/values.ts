/**
 * Values to cache, each judged for both built-in serializers as documented on
 * `SerializerOption` (src/codec.ts): what must round-trip, and what must be refused with
 * `EC_SERIALIZE` (or `EC_VALUE_TOO_LARGE`). Most carry {@link MARKER} somewhere (a string,
 * a function's name, a symbol's description, a getter's error), which must never show up
 * in an error, a report or a log line.
 * @module
 */
import fc from "fast-check";
import { type Verdict, worst } from "./verdict.js";

/** Planted in values; never allowed in an error message, `inspect(err)` or a log line. */
export const MARKER = "fuzz-s3cret-\u00b5-value";

/** Largest encoded value the fuzzed caches accept (small, so that "too large" is cheap). */
export const MAX_VALUE_BYTES = 64 * 1024;

/** A value and what each serializer must do with it. */
export interface ValueCase {
  readonly value: unknown;
  readonly sj: Verdict;
  readonly json: Verdict;
  readonly why: string;
  /** `undefined` itself: fine as a property, refused by JSON in an array, never top level. */
  readonly undef?: true;
}

const v = (value: unknown, sj: Verdict, json: Verdict, why: string): ValueCase => ({
  value,
  sj,
  json,
  why,
});

/** Cases built fresh for every run (objects are mutable; a shared one could be changed). */
const made = (make: () => ValueCase) => fc.constant(null).map(make);

const DANGEROUS = new Set(["__proto__", "constructor", "prototype"]);

/** Property names: dotted, escaped, numeric and envelope-looking ones (superjson paths). */
const propertyName = fc
  .oneof(
    fc.string({ maxLength: 6 }),
    fc.string({ unit: "binary", maxLength: 4 }),
    fc.constantFrom("a.b", "a\\.b", ".", "\\", "", "0", "1", "length", "json", "meta", "$ref"),
  )
  .filter((k) => !DANGEROUS.has(k));

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 12 }),
  fc.constant(MARKER),
  fc.string({ maxLength: 4 }).map((s) => `${s}${MARKER}${s}`),
  // Lone surrogates are fine inside values: JSON escapes them.
  fc.constantFrom("\uD800", `${MARKER}\uDC00`, "\u0000", "\uFFFD"),
);

class Point {
  constructor(
    public x: unknown,
    public y: unknown,
  ) {}
}

/** Leaves both serializers carry (json: as `JSON.parse(JSON.stringify(v))` gives back). */
const plainLeaf: fc.Arbitrary<ValueCase> = fc.oneof(
  text.map((s) => v(s, "ok", "ok", "string")),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => v(n, "ok", "ok", "number")),
  fc.integer().map((n) => v(n, "ok", "ok", "integer")),
  fc.boolean().map((b) => v(b, "ok", "ok", "boolean")),
  fc.constant(v(null, "ok", "ok", "null")),
);

/** Leaves superjson carries and JSON does not (or carries as its toJSON form). */
const richLeaf: fc.Arbitrary<ValueCase> = fc.oneof(
  fc
    .constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY)
    .map((n) => v(n, "ok", "bad", "NaN/Infinity")),
  fc.bigInt().map((n) => v(n, "ok", "bad", "BigInt")),
  fc.constant<ValueCase>({ value: undefined, sj: "ok", json: "ok", why: "undefined", undef: true }),
  fc.date({ noInvalidDate: true }).map((d) => v(d, "ok", "ok", "Date")),
  made(() => v(/fu+zz/gi, "ok", "bad", "RegExp")),
  made(() => v(new URL(`https://example.com/${encodeURIComponent(MARKER)}`), "ok", "ok", "URL")),
  // superjson gives back an Error with own `name` and `cause` (what it documents it keeps);
  // vitest's toEqual tells own from inherited, so the written one has them own too.
  fc
    .constantFrom(undefined, "why", MARKER)
    .map((cause) =>
      v(Object.assign(new Error(MARKER, { cause }), { name: "Error" }), "ok", "bad", "Error"),
    ),
  fc.uint8Array({ maxLength: 8 }).map((a) => v(a, "ok", "bad", "Uint8Array")),
  fc
    .array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 4 })
    // -0 in a typed array reads back as 0 (documented): keep to values that survive.
    .map((xs) =>
      v(
        Float64Array.from(xs, (x) => x + 0),
        "ok",
        "bad",
        "Float64Array",
      ),
    ),
  made(() => v(new Point(1, MARKER), "ok", "ok", "class instance (reads back plain)")),
  made(() => v({ toJSON: () => MARKER }, "bad", "ok", "object with a toJSON method")),
);

/** Values neither serializer can carry; superjson-only refusals are marked as such. */
const badLeaf: fc.Arbitrary<ValueCase> = fc.oneof(
  made(() => {
    const fn = () => MARKER;
    Object.defineProperty(fn, "name", { value: MARKER });
    return v(fn, "bad", "bad", "function named with the marker");
  }),
  made(() => v(class Secret {}, "bad", "bad", "class")),
  made(() => v(Symbol(MARKER), "bad", "bad", "symbol")),
  made(() => v(Symbol.for(MARKER), "bad", "bad", "registered symbol (Symbol.for)")),
  made(() => v(new WeakMap([[{}, MARKER]]), "bad", "bad", "WeakMap")),
  made(() => v(new WeakSet([{}]), "bad", "bad", "WeakSet")),
  made(() => v(Promise.resolve(MARKER), "bad", "bad", "Promise")),
  made(() => v(new TextEncoder().encode(MARKER).buffer, "bad", "bad", "ArrayBuffer")),
  made(() => v(new DataView(new ArrayBuffer(4)), "bad", "bad", "DataView")),
  made(() => v(new Blob([MARKER]), "bad", "bad", "Blob")),
  made(() => v(new Date(Number.NaN), "bad", "bad", "Invalid Date")),
  made(() => v(new BigInt64Array([1n, -1n]), "bad", "bad", "BigInt64Array")),
  made(() => v(Float64Array.of(1, Number.NaN), "bad", "bad", "NaN in a Float64Array")),
  made(() =>
    v(Float32Array.of(Number.POSITIVE_INFINITY), "bad", "bad", "Infinity in a Float32Array"),
  ),
  // Node's Buffer: superjson would not read it back; JSON stores its toJSON form.
  made(() => v(Buffer.from(MARKER), "bad", "ok", "Buffer")),
  made(() => v(new String(MARKER), "bad", "bad", "boxed String")),
  made(() => v(new Number(7), "bad", "bad", "boxed Number")),
  made(() => {
    const holes: unknown[] = [MARKER];
    holes[2] = 3; // index 1 is a hole
    return v(holes, "bad", "bad", "array hole");
  }),
  made(() => {
    const o = {
      get boom(): string {
        throw new Error(MARKER);
      },
    };
    return v(o, "bad", "bad", "getter that throws an Error quoting the marker");
  }),
  made(() => {
    const o = {
      get boom(): string {
        throw MARKER;
      },
    };
    return v(o, "bad", "bad", "getter that throws the marker string");
  }),
  made(() => v(JSON.parse(`{"__proto__":"${MARKER}"}`), "bad", "ok", "own __proto__ key")),
  made(() => v({ constructor: MARKER }, "bad", "ok", "own constructor key")),
  made(() => v({ prototype: MARKER }, "bad", "ok", "own prototype key")),
  made(() => v(new Point(new Date(0), MARKER), "bad", "ok", "Date inside a class instance")),
  made(() => v(MARKER + "x".repeat(MAX_VALUE_BYTES), "bad", "bad", "over maxValueBytes")),
);

/** Containers of other cases, judged from their parts. */
function containers(item: fc.Arbitrary<ValueCase>): fc.Arbitrary<ValueCase> {
  const small = { maxLength: 4 };
  return fc.oneof(
    fc.array(item, small).map((items) =>
      v(
        items.map((i) => i.value),
        worst(...items.map((i) => i.sj)),
        worst(...items.map((i) => (i.undef ? "bad" : i.json))),
        `array [${items.map((i) => i.why).join(", ")}]`,
      ),
    ),
    fc
      .uniqueArray(fc.tuple(propertyName, item), { ...small, selector: ([k]) => k })
      .map((ps) =>
        v(
          Object.fromEntries(ps.map(([k, i]) => [k, i.value])),
          worst(...ps.map(([, i]) => i.sj)),
          worst(...ps.map(([, i]) => i.json)),
          `object {${ps.map(([k, i]) => `${JSON.stringify(k)}: ${i.why}`).join(", ")}}`,
        ),
      ),
    // Distinct keys: a later entry would replace an earlier one (and its verdict).
    fc
      .uniqueArray(fc.tuple(item, item), {
        ...small,
        selector: ([k]) => k.value,
        comparator: "SameValueZero",
      })
      .map((es) =>
        v(
          new Map(es.map(([k, x]) => [k.value, x.value])),
          worst(...es.flatMap(([k, x]) => [k.sj, x.sj])),
          "bad",
          `Map of ${es.length}`,
        ),
      ),
    fc
      .array(item, small)
      .map((items) =>
        v(
          new Set(items.map((i) => i.value)),
          worst(...items.map((i) => i.sj)),
          "bad",
          `Set of ${items.length}`,
        ),
      ),
  );
}

/** A value the fuzz may hand to `set`, with its verdicts; any depth up to about 3. */
export const valueCase: fc.Arbitrary<ValueCase> = fc.letrec<{ value: ValueCase }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 3, arbitrary: plainLeaf },
    { weight: 2, arbitrary: richLeaf },
    { weight: 1, arbitrary: badLeaf },
    { weight: 2, arbitrary: containers(tie("value")) },
  ),
})).value;

/** Shapes the walk must get right as a whole: cycles, shared references, deep nesting. */
export const structureCase: fc.Arbitrary<ValueCase> = fc.oneof(
  made(() => {
    const o: Record<string, unknown> = { name: MARKER };
    o.self = o;
    return v(o, "ok", "bad", "cycle");
  }),
  made(() => {
    const a: unknown[] = [MARKER];
    a.push({ back: a });
    return v(a, "ok", "bad", "cycle through an array");
  }),
  made(() => {
    const shared = { s: MARKER, at: new Date(0) };
    return v({ a: shared, b: [shared] }, "ok", "ok", "shared reference");
  }),
  fc.constantFrom(50, 5_000, 100_000).map((depth) => {
    let o: unknown = MARKER;
    for (let i = 0; i < depth; i++) o = [o];
    return v(o, depth < 100 ? "ok" : "either", depth < 100 ? "ok" : "either", `nested ${depth}`);
  }),
);

/** Any value case, the top level included: `undefined` there is never cacheable. */
export const topValueCase: fc.Arbitrary<ValueCase> = fc
  .oneof({ weight: 6, arbitrary: valueCase }, { weight: 1, arbitrary: structureCase })
  .map((c) => (c.undef ? { ...c, sj: "bad", json: "bad", why: "undefined at top level" } : c));

/** What a cache with this serializer must read back for an accepted value. */
export function expected(value: unknown, serializer: "superjson" | "json"): unknown {
  return serializer === "json" ? JSON.parse(JSON.stringify(value)) : value;
}
