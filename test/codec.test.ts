/**
 * What the built-in serializers carry: every value they accept reads back the same through
 * the real serializer (and a real cache), and every value that would not is refused with
 * EC_SERIALIZE, naming its type and where it sits, never its contents.
 */
import SuperJSON from "superjson";
import { describe, expect, it } from "vitest";
import { jsonSerializer, superjsonSerializer, utf8Length } from "../src/codec.js";
import { createCache, isEdgeCacheError, memoryStore, type Serializer } from "../src/index.js";
import { rejection } from "./helpers.js";

const serializers = { superjson: superjsonSerializer, json: jsonSerializer } as const;

function refusal(serializer: Serializer, value: unknown): string {
  try {
    serializer.serialize(value);
  } catch (err) {
    expect(isEdgeCacheError(err, "EC_SERIALIZE")).toBe(true);
    return (err as Error).message;
  }
  throw new Error("expected a refusal");
}

const roundTrip = (serializer: Serializer, value: unknown): unknown =>
  serializer.deserialize(serializer.serialize(value));

class Point {
  constructor(
    public x: number,
    public y: number,
  ) {}
  get length() {
    return Math.hypot(this.x, this.y);
  }
}

class Stamped {
  at = new Date(0);
}

class SelfRef {
  self: SelfRef = this;
}

class Registered {
  born = new Date(0);
  tags = new Set(["a"]);
}
SuperJSON.registerClass(Registered, "edgecache-test-registered");

/** `[1, <hole>, 3]`. */
const holey = () => {
  const a: number[] = [];
  a[0] = 1;
  a[2] = 3;
  return a;
};

const cyclic = () => {
  const o: Record<string, unknown> = { name: "root" };
  o.self = o;
  return o;
};

describe("refused values name their type and path", () => {
  const sj = (why: string) => `cannot be encoded by the "superjson" serializer (${why})`;
  const js = (why: string) => `cannot be encoded by the "json" serializer (${why})`;
  const state = "it would read back as a plain object without its state";
  const cases: Array<[string, keyof typeof serializers, unknown, string]> = [
    ["Blob", "superjson", { avatar: new Blob(["secret"]) }, `value.avatar: Blob ${sj(state)}`],
    ["File", "superjson", [new File(["x"], "f.txt")], `value[0]: File ${sj(state)}`],
    ["WeakMap", "superjson", { w: new WeakMap() }, `value.w: WeakMap ${sj(state)}`],
    ["WeakSet", "superjson", new WeakSet(), `value: WeakSet ${sj(state)}`],
    ["Promise", "superjson", { p: Promise.resolve(1) }, `value.p: Promise ${sj(state)}`],
    ["ArrayBuffer", "superjson", new ArrayBuffer(4), `value: ArrayBuffer ${sj(state)}`],
    [
      "SharedArrayBuffer",
      "superjson",
      new SharedArrayBuffer(4),
      `value: SharedArrayBuffer ${sj(state)}`,
    ],
    ["DataView", "superjson", new DataView(new ArrayBuffer(2)), `value: DataView ${sj(state)}`],
    ["ReadableStream", "superjson", new ReadableStream(), `value: ReadableStream ${sj(state)}`],
    ["Request", "superjson", new Request("http://x/"), `value: Request ${sj(state)}`],
    ["Response", "superjson", new Response("x"), `value: Response ${sj(state)}`],
    ["Headers", "superjson", new Headers(), `value: Headers ${sj(state)}`],
    ["FormData", "superjson", new FormData(), `value: FormData ${sj(state)}`],
    ["URLSearchParams", "superjson", new URLSearchParams(), `value: URLSearchParams ${sj(state)}`],
    [
      "boxed string",
      "superjson",
      { s: new String("x") },
      `value.s: String object ${sj("it would read back as a primitive")}`,
    ],
    [
      "Invalid Date",
      "superjson",
      { at: new Date(Number.NaN) },
      `value.at: Invalid Date ${sj("it would read back as null")}`,
    ],
    [
      "BigInt64Array",
      "superjson",
      { ids: new BigInt64Array([1n]) },
      `value.ids: BigInt64Array ${sj("superjson carries only Int8 to Float64 typed arrays; use a Uint8Array")}`,
    ],
    [
      "Buffer",
      "superjson",
      { file: Buffer.from("x") },
      `value.file: Buffer ${sj("superjson carries only Int8 to Float64 typed arrays; use a Uint8Array")}`,
    ],
    [
      "NaN in a Float64Array",
      "superjson",
      { samples: new Float64Array([1, Number.NaN]) },
      `value.samples[1]: NaN in a Float64Array ${sj("it would read back as 0")}`,
    ],
    [
      "function",
      "superjson",
      { a: { onClick: () => 1 } },
      `value.a.onClick: function ${sj("functions are not data")}`,
    ],
    ["symbol", "superjson", [Symbol("s")], `value[0]: symbol ${sj("symbols are not data")}`],
    [
      "array hole",
      "superjson",
      holey(),
      `value[1]: array hole ${sj("it would read back as null")}`,
    ],
    [
      "constructor key",
      "superjson",
      { constructor: 1 },
      `value.constructor: property "constructor" ${sj("superjson refuses __proto__, constructor and prototype keys")}`,
    ],
    [
      "Map value",
      "superjson",
      { m: new Map([["k", new Blob([])]]) },
      `value.m<map value #0>: Blob ${sj(state)}`,
    ],
    [
      "Set entry",
      "superjson",
      new Set([1, new WeakSet()]),
      `value<set entry #1>: WeakSet ${sj(state)}`,
    ],
    [
      "Date in a class instance",
      "superjson",
      { s: new Stamped() },
      `value.s.at: Date inside an instance of Stamped ${sj("superjson encodes instances of unregistered classes as plain JSON: register the class with SuperJSON.registerClass, or store a plain object")}`,
    ],
    [
      "a cycle through a class instance",
      "superjson",
      { p: new SelfRef() },
      `value.p.self: circular reference inside an instance of SelfRef ${sj("superjson encodes instances of unregistered classes as plain JSON: register the class with SuperJSON.registerClass, or store a plain object")}`,
    ],
    [
      "keys that are not identifiers",
      "superjson",
      { "a b": { "c-d": [{ e: new WeakMap() }] } },
      `value["a b"]["c-d"][0].e: WeakMap ${sj(state)}`,
    ],
    [
      "NaN",
      "json",
      [1, 2, 3, Number.NaN],
      `value[3]: NaN ${js("JSON has no such number: it would read back as null")}`,
    ],
    [
      "Infinity",
      "json",
      { x: Number.POSITIVE_INFINITY },
      `value.x: Infinity ${js("JSON has no such number: it would read back as null")}`,
    ],
    [
      "-Infinity",
      "json",
      { x: Number.NEGATIVE_INFINITY },
      `value.x: -Infinity ${js("JSON has no such number: it would read back as null")}`,
    ],
    ["BigInt", "json", { n: 10n }, `value.n: BigInt ${js("JSON has no BigInt")}`],
    [
      "Map",
      "json",
      { m: new Map() },
      `value.m: Map ${js("it would read back as {}; use the superjson serializer")}`,
    ],
    [
      "Set",
      "json",
      { s: new Set() },
      `value.s: Set ${js("it would read back as {}; use the superjson serializer")}`,
    ],
    ["Error", "json", { e: new Error("boom") }, `value.e: Error ${js(state)}`],
    ["RegExp", "json", /x/, `value: RegExp ${js(state)}`],
    ["Uint8Array", "json", new Uint8Array([1]), `value: Uint8Array ${js(state)}`],
    ["Blob", "json", { avatar: new Blob([]) }, `value.avatar: Blob ${js(state)}`],
    [
      "Invalid Date",
      "json",
      [new Date(Number.NaN)],
      `value[0]: Invalid Date ${js("it would read back as null")}`,
    ],
    [
      "undefined in an array",
      "json",
      [undefined],
      `value[0]: undefined ${js("JSON turns it into null in an array")}`,
    ],
    [
      "cycle",
      "json",
      { list: [cyclic()] },
      `value.list[0].self: circular reference ${js("JSON cannot carry cycles; use the superjson serializer")}`,
    ],
    ["function", "json", { f() {} }, `value.f: function ${js("functions are not data")}`],
  ];
  for (const [name, flavor, value, message] of cases) {
    it(`${flavor}: ${name}`, () => {
      expect(refusal(serializers[flavor], value)).toBe(message);
    });
  }

  it("cuts long paths in the middle, at 100 characters", () => {
    let value: unknown = { leaf: new WeakSet() };
    for (let i = 0; i < 40; i++) value = { [`level${i}`]: value };
    const message = refusal(superjsonSerializer, value);
    const path = message.slice(0, message.indexOf(": WeakSet"));
    expect(path).toHaveLength(100);
    expect(path.startsWith("value.level39.level38.")).toBe(true);
    expect(path).toContain("…");
    expect(path.endsWith(".level0.leaf")).toBe(true);
  });

  it("never prints string values, only keys and types", () => {
    const message = refusal(jsonSerializer, { password: "hunter2", when: new Date(Number.NaN) });
    expect(message).toBe(
      'value.when: Invalid Date cannot be encoded by the "json" serializer (it would read back as null)',
    );
    expect(
      refusal(superjsonSerializer, { token: "s3cr3t", avatar: new Blob(["s3cr3t"]) }),
    ).not.toContain("s3cr3t");
  });

  it("refuses through the cache with the key, writing nothing", async () => {
    const cache = createCache({ store: memoryStore(), logger: false });
    await cache.set("user:1", { name: "Ada" });
    const error = await rejection(cache.set("user:1", { name: "Ada", avatar: new Blob(["x"]) }));
    expect(error.code).toBe("EC_SERIALIZE");
    expect(error.key).toBe("user:1");
    expect(error.message).toBe(
      `value.avatar: Blob cannot be encoded by the "superjson" serializer (${state})`,
    );
    expect(await cache.get("user:1")).toEqual({ name: "Ada" });
    const json = createCache({ store: memoryStore(), serializer: "json", logger: false });
    const big = await rejection(json.set("n", { n: 1n }));
    expect(big.message).toBe(
      'value.n: BigInt cannot be encoded by the "json" serializer (JSON has no BigInt)',
    );
  });

  it("leaves custom serializers alone: what they carry is theirs to say", async () => {
    const blobs: Serializer = {
      name: "blobs",
      serialize: (v) => (v instanceof Blob ? "blob" : JSON.stringify(v)),
      deserialize: (s) => (s === "blob" ? new Blob([]) : JSON.parse(s)),
    };
    const cache = createCache({ store: memoryStore(), serializer: blobs, local: false });
    await cache.set("b", new Blob(["x"]));
    expect(await cache.get("b")).toBeInstanceOf(Blob);
  });
});

describe("accepted values read back the same", () => {
  it("superjson: rich values, typed arrays, special numbers, errors, registered classes", () => {
    const typed = [
      new Int8Array([-1, 2]),
      new Uint8Array([1, 255]),
      new Uint8ClampedArray([0, 255]),
      new Int16Array([-300]),
      new Uint16Array([65535]),
      new Int32Array([-70000]),
      new Uint32Array([4e9]),
      new Float32Array([1.5, -0.25]),
      new Float64Array([Math.PI, -1e300]),
    ];
    for (const array of typed) {
      const back = roundTrip(superjsonSerializer, { array }) as { array: unknown };
      expect(back.array).toBeInstanceOf(array.constructor);
      expect(back.array).toEqual(array);
    }
    const value = {
      date: new Date(1815, 11, 10),
      map: new Map<unknown, unknown>([
        [{ id: 1 }, new Set([1n])],
        ["k", [undefined, null]],
      ]),
      set: new Set(["a"]),
      big: 2n ** 70n,
      re: /a+b/gi,
      url: new URL("https://example.com/a?b=1"),
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      undef: undefined,
      list: [1, undefined, "x"],
      nullProto: Object.assign(Object.create(null), { a: 1 }),
    };
    expect(roundTrip(superjsonSerializer, value)).toEqual(value);
    const negZero = roundTrip(superjsonSerializer, { z: -0 }) as { z: number };
    expect(Object.is(negZero.z, -0)).toBe(true);
    const error = roundTrip(superjsonSerializer, new TypeError("boom", { cause: new Map() }));
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: "TypeError", message: "boom", cause: new Map() });
    const registered = roundTrip(superjsonSerializer, { r: new Registered() }) as {
      r: Registered;
    };
    expect(registered.r).toBeInstanceOf(Registered);
    expect(registered.r.born).toEqual(new Date(0));
    expect(registered.r.tags).toEqual(new Set(["a"]));
  });

  it("superjson: cycles and shared references keep their identity", () => {
    const back = roundTrip(superjsonSerializer, { root: cyclic() }) as {
      root: Record<string, unknown>;
    };
    expect(back.root.self).toBe(back.root);
    const shared = { n: 1 };
    const pair = roundTrip(superjsonSerializer, {
      a: shared,
      b: shared,
      m: new Map([[1, shared]]),
    });
    const p = pair as { a: unknown; b: unknown; m: Map<number, unknown> };
    expect(p.a).toBe(p.b);
    expect(p.m.get(1)).toBe(p.a);
  });

  it("both: an instance of an unregistered class reads back as a plain object of its own properties", () => {
    for (const serializer of [superjsonSerializer, jsonSerializer]) {
      const back = roundTrip(serializer, { p: new Point(3, 4) }) as { p: unknown };
      expect(back.p).toEqual({ x: 3, y: 4 });
      expect(back.p).not.toBeInstanceOf(Point);
      expect(Object.getPrototypeOf(back.p)).toBe(Object.prototype);
    }
  });

  it("json: plain data, Dates and URLs as what toJSON returns, undefined properties left out", () => {
    const value = {
      s: "é 🚀",
      n: -1.5e-7,
      b: false,
      z: null,
      list: [1, [2, {}]],
      nested: { a: "" },
    };
    expect(roundTrip(jsonSerializer, value)).toEqual(value);
    expect(
      roundTrip(jsonSerializer, {
        at: new Date(0),
        url: new URL("https://example.com/"),
        gone: undefined,
      }),
    ).toEqual({ at: "1970-01-01T00:00:00.000Z", url: "https://example.com/" });
    const shared = { n: 1 };
    expect(roundTrip(jsonSerializer, [shared, shared])).toEqual([{ n: 1 }, { n: 1 }]);
  });

  it("through a cache and L2, read by another instance", async () => {
    const store = memoryStore();
    const writer = createCache({ store, namespace: "app" });
    const reader = createCache({ store, namespace: "app", local: false });
    const value = {
      at: new Date(0),
      pixels: new Uint8Array([1, 2, 3]),
      samples: new Float32Array([0.5]),
      tags: new Set(["x"]),
      point: new Point(1, 2),
      error: new Error("kept"),
    };
    await writer.set("v", value);
    const back = (await reader.get("v")) as typeof value;
    expect(back.at).toEqual(value.at);
    expect(back.pixels).toEqual(value.pixels);
    expect(back.samples).toEqual(value.samples);
    expect(back.tags).toEqual(value.tags);
    expect(back.point).toEqual({ x: 1, y: 2 });
    expect(back.error).toMatchObject({ message: "kept" });
  });
});

describe("utf8Length", () => {
  it("agrees with TextEncoder, lone surrogates counting as U+FFFD (3 bytes)", () => {
    const encoder = new TextEncoder();
    for (const text of [
      "",
      "ascii",
      "é",
      "€",
      "🚀",
      "a🚀b",
      "\uD800",
      "\uDC00",
      "\uDBFF\uDBFF",
      "\uDC00\uD800",
      "x\uD800",
      "\uD800x",
      "\uFFFD",
      "\u07FF\u0800",
    ]) {
      expect(utf8Length(text), JSON.stringify(text)).toBe(encoder.encode(text).byteLength);
    }
  });
});
