import SuperJSON from "superjson";
import { InvalidOptionError, SerializationError } from "./errors.js";

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

/** Built-in serializer names, or your own {@link Serializer}. */
export type SerializerOption = "superjson" | "json" | Serializer;

// JSON.stringify drops functions and symbols without a word; a cache that silently stores
// `{}` for them would hand back a different value than it was given, so refuse instead.
function rejectUnencodable(this: unknown, _key: string, value: unknown): unknown {
  const t = typeof value;
  if (t === "function" || t === "symbol") {
    throw new SerializationError(`values of type ${t} cannot be cached`);
  }
  return value;
}

function wrap(fn: () => string): string {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SerializationError) throw err;
    // The native message may quote part of the value (e.g. a BigInt); keep only its kind.
    const kind = err instanceof Error ? err.name : "error";
    throw new SerializationError(`the value cannot be encoded (${kind})`);
  }
}

/** superjson: Dates, Maps, Sets, BigInts, RegExps, typed arrays, `undefined` and cycles survive. */
export const superjsonSerializer: Serializer = {
  name: "sj",
  serialize(value) {
    return wrap(() => {
      const { json, meta } = SuperJSON.serialize(value);
      return JSON.stringify(meta === undefined ? { json } : { json, meta }, rejectUnencodable);
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

/** Plain JSON: fastest, but Dates become strings and Maps/Sets/BigInts are not supported. */
export const jsonSerializer: Serializer = {
  name: "json",
  serialize(value) {
    return wrap(() => {
      const text = JSON.stringify(value, rejectUnencodable) as string | undefined;
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

/**
 * UTF-8 length of a string without allocating; the size that L1 budgets and `maxValueBytes`
 * count, and what crosses the wire.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      // A valid surrogate pair is 4 bytes for 2 UTF-16 units.
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2;
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}
