import SuperJSON from "superjson";
import { type Flavor, unencodable } from "./encodable.js";
import { InvalidOptionError, SerializationError } from "./errors.js";

// Its home is src/util/bytes.ts; re-exported for the modules that import it from here.
export { utf8Length } from "./util/bytes.js";

/**
 * Turns values into strings and back. Serialization happens once, in the cache: stores only
 * ever see the strings this produces.
 *
 * @example
 * ```ts
 * const upper: Serializer = {
 *   name: "upper-json",
 *   serialize: (v) => JSON.stringify(v),
 *   deserialize: (s) => JSON.parse(s),
 * };
 * ```
 */
export interface Serializer {
  /**
   * Short identifier stored with every entry (letters, digits, `-`, `_`, `.`; at most 32
   * characters). An entry written with another serializer reads as a miss instead of being
   * misparsed, so changing serializers is safe.
   */
  readonly name: string;
  /** Encode a value; throw for values that cannot be encoded. */
  serialize(value: unknown): string;
  /** Decode what {@link Serializer.serialize} produced; throw for anything else. */
  deserialize(text: string): unknown;
}

/**
 * Built-in serializer names, or your own {@link Serializer}.
 *
 * The built-in ones check a value before encoding it and refuse, with `SerializationError`
 * (`EC_SERIALIZE`), anything that would not read back the same, naming its type and where
 * it sits: `value.avatar: Blob`, `value[3]: NaN`, `value.m: Map` (object keys are printed;
 * values never are). Custom serializers are not checked: what they carry is up to them.
 *
 * `"superjson"` carries JSON plus `undefined`, `NaN`, `±Infinity`, `-0`, BigInts, Dates,
 * RegExps, URLs, Maps, Sets, Errors (as an `Error` with `name`, `message` and `cause`),
 * the typed arrays Int8Array to Float64Array (float ones without `NaN`/`±Infinity`, which
 * would read back as 0), symbols and classes registered with `SuperJSON.registerSymbol` /
 * `registerClass`, values with a `registerCustom` transformer, shared references and
 * cycles. It refuses Invalid Dates, functions, other symbols, array holes, Node's `Buffer`
 * and 64-bit typed arrays, keys `__proto__`, `constructor` and `prototype`, and every other
 * built-in object (`ArrayBuffer`, `DataView`, `Blob`, `File`, `ReadableStream`, `Request`,
 * `Response`, `Headers`, `FormData`, `URLSearchParams`, `WeakMap`, `WeakSet`, `Promise`,
 * boxed primitives...; any object whose `Object.prototype.toString` tag is not `Object`).
 *
 * `"json"` carries what `JSON.parse(JSON.stringify(v))` gives back unchanged, and Dates:
 * an object with a `toJSON` method is stored as what `toJSON` returns, so a Date reads back
 * as its ISO string (and a URL as its href). Properties set to `undefined` are left out.
 * It refuses `NaN`, `±Infinity`, BigInts, `undefined` in arrays, array holes, functions,
 * symbols, Invalid Dates, cycles, and built-in objects without `toJSON` (Maps, Sets,
 * Errors, RegExps, typed arrays, Blobs...). A shared object is written once per reference
 * and reads back as separate copies.
 *
 * Class instances: under either serializer, an instance of a class of your own (not
 * registered with superjson) reads back as a plain object with its own enumerable
 * properties; its prototype (methods, getters) and `#private` fields are lost. superjson
 * hands such an instance to `JSON.stringify` as it is, so a Date, URL, Map, Set, BigInt or
 * `NaN` inside it is refused too: register the class (`SuperJSON.registerClass(User)`,
 * from the `superjson` package) to read it back as a `User` (its constructor is not run),
 * or store a plain object. Under both, symbol-keyed and non-enumerable properties, and
 * extra properties of arrays, are left out, and `-0` inside a typed array or under `"json"`
 * reads back as `0`.
 */
export type SerializerOption = "superjson" | "json" | Serializer;

/** Refuses a value the serializer would not give back the same (see {@link unencodable}). */
function refuse(value: unknown, flavor: Flavor): void {
  const problem = unencodable(value, flavor);
  if (problem !== undefined) throw new SerializationError(problem);
}

function wrap(flavor: Flavor, fn: () => string): string {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SerializationError) throw err;
    // The native message may quote part of the value; keep only its kind. What the walk lets
    // through and the encoder still refuses: a getter that throws, a value too deep or too big.
    const kind = err instanceof Error ? err.name : "error";
    throw new SerializationError(
      `the value cannot be encoded by the "${flavor}" serializer (${kind}${kind === "RangeError" ? ": nested too deeply or too large" : ""})`,
    );
  }
}

/**
 * superjson: Dates, Maps, Sets, BigInts, RegExps, URLs, Errors, typed arrays, `NaN`,
 * `Infinity`, `-0`, `undefined`, shared references and cycles survive. Values it would not
 * give back the same are refused (see {@link SerializerOption}).
 */
export const superjsonSerializer: Serializer = {
  name: "sj",
  serialize(value) {
    refuse(value, "superjson");
    return wrap("superjson", () => {
      const { json, meta } = SuperJSON.serialize(value);
      return JSON.stringify(meta === undefined ? { json } : { json, meta });
    });
  },
  deserialize(text) {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || !("json" in parsed)) {
      throw new SyntaxError("not a superjson document");
    }
    return SuperJSON.deserialize(parsed as Parameters<typeof SuperJSON.deserialize>[0]);
  },
};

/**
 * Plain JSON: fastest; Dates (and other objects with `toJSON`) become what `toJSON` returns.
 * Values JSON would not give back the same are refused (see {@link SerializerOption}).
 */
export const jsonSerializer: Serializer = {
  name: "json",
  serialize(value) {
    refuse(value, "json");
    return wrap("json", () => {
      const text = JSON.stringify(value) as string | undefined;
      if (text === undefined) throw new SerializationError("the value cannot be encoded as JSON");
      return text;
    });
  },
  deserialize(text) {
    return JSON.parse(text);
  },
};

const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

/** Resolves the `serializer` option to a {@link Serializer}, validating custom ones. */
export function resolveSerializer(option: SerializerOption | undefined): Serializer {
  if (option === undefined || option === "superjson") return superjsonSerializer;
  if (option === "json") return jsonSerializer;
  if (
    typeof option !== "object" ||
    option === null ||
    typeof option.serialize !== "function" ||
    typeof option.deserialize !== "function"
  ) {
    throw new InvalidOptionError(
      'serializer must be "superjson", "json" or { name, serialize, deserialize }',
    );
  }
  if (typeof option.name !== "string" || !NAME.test(option.name)) {
    throw new InvalidOptionError(
      "serializer.name must be 1-32 characters of letters, digits, '-', '_' or '.'",
    );
  }
  return option;
}
