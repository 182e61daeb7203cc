import SuperJSON from "superjson";

/**
 * What the built-in serializers can carry: one walk over a value before it is encoded finds
 * the first part that would not come back the same, so that `set` refuses it instead of
 * storing something else (a `Blob` read back as `{}`, `NaN` as `null`).
 *
 * What each serializer keeps, and what the walk refuses, is listed on
 * {@link "./codec.js".SerializerOption}. Custom serializers are not walked.
 * @module
 */

/** The built-in serializers whose values are checked. */
export type Flavor = "superjson" | "json";

/** The first part of a value that a serializer cannot carry. */
interface Fault {
  /** Path segments from the part up to the root (reversed). */
  readonly segments: string[];
  /** What the part is: `Blob`, `NaN`, `circular reference`. */
  readonly type: string;
  /** What would happen to it, or what to do instead. */
  readonly why: string;
}

/** Longest path printed in a message; longer ones are cut in the middle. */
const MAX_PATH = 100;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The typed arrays superjson revives (it refuses others, e.g. Node's `Buffer`, on read). */
const SUPERJSON_TYPED_ARRAYS = new Set([
  "Int8Array",
  "Uint8Array",
  "Uint8ClampedArray",
  "Int16Array",
  "Uint16Array",
  "Int32Array",
  "Uint32Array",
  "Float32Array",
  "Float64Array",
]);

const BOXED = new Set(["String", "Number", "Boolean", "BigInt", "Symbol"]);

const REGISTER_HINT =
  "superjson encodes instances of unregistered classes as plain JSON: register the class with SuperJSON.registerClass, or store a plain object";

/**
 * A description of the first part of `value` that the `flavor` serializer would not give
 * back the same, e.g. `value.avatar: Blob cannot be encoded by the "superjson" serializer
 * (it would read back as {})`; `undefined` when the whole value survives.
 */
export function unencodable(value: unknown, flavor: Flavor): string | undefined {
  const walk: Walk = { flavor, seen: undefined, path: undefined };
  const fault = visit(value, walk, undefined);
  return fault === undefined ? undefined : describe(fault, flavor);
}

/** The message for a fault. */
function describe(fault: Fault, flavor: Flavor): string {
  let path = "value";
  for (let i = fault.segments.length - 1; i >= 0; i--) path += fault.segments[i];
  if (path.length > MAX_PATH) {
    const head = Math.floor((MAX_PATH - 1) / 2);
    path = `${path.slice(0, head)}…${path.slice(path.length - (MAX_PATH - 1 - head))}`;
  }
  return `${path}: ${fault.type} cannot be encoded by the "${flavor}" serializer (${fault.why})`;
}

interface Walk {
  readonly flavor: Flavor;
  /** Objects superjson has already been walked into: it keeps shared references and cycles. */
  seen: Set<object> | undefined;
  /** Objects on the current path where JSON rules apply: a second visit is a cycle. */
  path: Set<object> | undefined;
}

const fault = (type: string, why: string): Fault => ({ segments: [], type, why });

/** Adds a path segment on the way back up: no path is built unless something fails. */
function at(f: Fault, segment: string): Fault {
  f.segments.push(segment);
  return f;
}

const keySegment = (key: string): string =>
  IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;

/**
 * `owner` is set inside an instance of an unregistered class under superjson: superjson
 * hands such an instance to `JSON.stringify` as it is, so JSON's rules apply below it.
 */
function visit(v: unknown, walk: Walk, owner: string | undefined): Fault | undefined {
  switch (typeof v) {
    case "string":
    case "boolean":
    case "undefined":
      return undefined;
    case "number":
      if (v - v === 0 || (walk.flavor === "superjson" && owner === undefined)) return undefined;
      return owner === undefined
        ? fault(String(v), "JSON has no such number: it would read back as null")
        : fault(`${v} inside ${owner}`, REGISTER_HINT);
    case "bigint":
      if (walk.flavor === "superjson" && owner === undefined) return undefined;
      return owner === undefined
        ? fault("BigInt", "JSON has no BigInt")
        : fault(`BigInt inside ${owner}`, REGISTER_HINT);
    case "symbol":
      // superjson carries the symbols registered with SuperJSON.registerSymbol.
      if (walk.flavor === "superjson" && owner === undefined) {
        if (registries().symbols.getIdentifier(v) !== undefined) return undefined;
      }
      return fault("symbol", "symbols are not data");
    case "function":
      return fault("function", "functions are not data");
    default:
      return v === null ? undefined : visitObject(v as object, walk, owner);
  }
}

function visitObject(o: object, walk: Walk, owner: string | undefined): Fault | undefined {
  if (walk.flavor === "json" || owner !== undefined) return visitJson(o, walk, owner);
  // superjson's own rules: shared references and cycles are carried, so each object once.
  if (walk.seen === undefined) walk.seen = new Set();
  else if (walk.seen.has(o)) return undefined;
  walk.seen.add(o);
  if (Array.isArray(o)) return visitArray(o, walk, undefined);
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype || proto === null) return visitSuperjsonKeys(o, walk);
  if (o instanceof Date) {
    return Number.isNaN(o.getTime())
      ? fault("Invalid Date", "it would read back as null")
      : undefined;
  }
  if (o instanceof RegExp || o instanceof URL) return undefined;
  if (o instanceof Map) {
    let i = 0;
    for (const [key, value] of o) {
      const f = visit(key, walk, undefined);
      if (f !== undefined) return at(f, `<map key #${i}>`);
      const g = visit(value, walk, undefined);
      if (g !== undefined) return at(g, `<map value #${i}>`);
      i++;
    }
    return undefined;
  }
  if (o instanceof Set) {
    let i = 0;
    for (const value of o) {
      const f = visit(value, walk, undefined);
      if (f !== undefined) return at(f, `<set entry #${i}>`);
      i++;
    }
    return undefined;
  }
  if (o instanceof Error) {
    // superjson keeps name, message and cause.
    const f = "cause" in o ? visit(o.cause, walk, undefined) : undefined;
    return f === undefined ? undefined : at(f, ".cause");
  }
  const registry = registries();
  const ctor = (o as { constructor?: unknown }).constructor;
  if (typeof ctor === "function" && registry.classes.getIdentifier(ctor) !== undefined) {
    return visitSuperjsonKeys(o, walk, registry.classes.getAllowedProps(ctor));
  }
  if (registry.custom.findApplicable(o) !== undefined) return undefined;
  if (ArrayBuffer.isView(o) && !(o instanceof DataView)) return visitTypedArray(o);
  const builtin = builtinTag(o);
  if (builtin !== undefined) return fault(builtin, loss(builtin));
  // An unregistered class instance: superjson passes it to JSON.stringify as it is.
  return visitJson(o, walk, className(ctor));
}

/** superjson refuses these keys (prototype pollution) on the objects it walks. */
function visitSuperjsonKeys(
  o: object,
  walk: Walk,
  keys: readonly string[] = Object.keys(o),
): Fault | undefined {
  for (const key of ["__proto__", "constructor", "prototype"]) {
    if (Object.hasOwn(o, key)) {
      return at(
        fault(`property "${key}"`, "superjson refuses __proto__, constructor and prototype keys"),
        keySegment(key),
      );
    }
  }
  const record = o as Record<string, unknown>;
  for (const key of keys) {
    const value = record[key];
    if (value === null || (typeof value !== "object" && typeof value !== "function")) {
      if (typeof value !== "symbol") continue;
    }
    const f = visit(value, walk, undefined);
    if (f !== undefined) return at(f, keySegment(key));
  }
  return undefined;
}

function visitTypedArray(o: ArrayBufferView): Fault | undefined {
  const name = (o.constructor as { name?: string } | undefined)?.name ?? "typed array";
  if (!SUPERJSON_TYPED_ARRAYS.has(name)) {
    return fault(name, "superjson carries only Int8 to Float64 typed arrays; use a Uint8Array");
  }
  if (o instanceof Float32Array || o instanceof Float64Array) {
    for (let i = 0; i < o.length; i++) {
      const x = o[i]!;
      if (x - x !== 0) {
        return at(fault(`${x} in a ${name}`, "it would read back as 0"), `[${i}]`);
      }
    }
  }
  return undefined;
}

function visitArray(a: unknown[], walk: Walk, owner: string | undefined): Fault | undefined {
  const json = walk.flavor === "json" || owner !== undefined;
  for (let i = 0; i < a.length; i++) {
    const item = a[i];
    if (item === undefined) {
      if (!(i in a)) return at(fault("array hole", "it would read back as null"), `[${i}]`);
      if (owner !== undefined) {
        return at(fault(`undefined inside ${owner}`, REGISTER_HINT), `[${i}]`);
      }
      if (json) {
        return at(fault("undefined", "JSON turns it into null in an array"), `[${i}]`);
      }
      continue;
    }
    if (item === null || (typeof item !== "object" && typeof item !== "function")) {
      if (typeof item === "string" || typeof item === "boolean") continue;
      if (typeof item === "number" && (item - item === 0 || !json)) continue;
    }
    const f = visit(item, walk, owner);
    if (f !== undefined) return at(f, `[${i}]`);
  }
  return undefined;
}

/** JSON's rules: `toJSON` decides, built-ins lose their state, cycles throw. */
function visitJson(o: object, walk: Walk, owner: string | undefined): Fault | undefined {
  if (typeof (o as { toJSON?: unknown }).toJSON === "function") {
    if (o instanceof Date) {
      if (Number.isNaN(o.getTime())) return fault("Invalid Date", "it would read back as null");
      // JSON's Date is a string; superjson users expect a Date.
      return owner === undefined ? undefined : fault(`Date inside ${owner}`, REGISTER_HINT);
    }
    if (owner !== undefined && o instanceof URL) return fault(`URL inside ${owner}`, REGISTER_HINT);
    // Encoded as what its toJSON returns: the object's own declaration of its JSON form.
    return undefined;
  }
  const isArray = Array.isArray(o);
  if (!isArray) {
    const proto = Object.getPrototypeOf(o) as object | null;
    if (proto !== Object.prototype && proto !== null) {
      const builtin = builtinTag(o);
      if (builtin !== undefined) {
        return fault(
          owner === undefined ? builtin : `${builtin} inside ${owner}`,
          owner === undefined ? loss(builtin, "json") : REGISTER_HINT,
        );
      }
    }
  }
  if (walk.path === undefined) walk.path = new Set();
  else if (walk.path.has(o)) {
    return owner === undefined
      ? fault("circular reference", "JSON cannot carry cycles; use the superjson serializer")
      : fault(`circular reference inside ${owner}`, REGISTER_HINT);
  }
  walk.path.add(o);
  const f = isArray ? visitArray(o as unknown[], walk, owner) : visitJsonKeys(o, walk, owner);
  walk.path.delete(o);
  return f;
}

function visitJsonKeys(o: object, walk: Walk, owner: string | undefined): Fault | undefined {
  const record = o as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    const value = record[key];
    if (value === null || (typeof value !== "object" && typeof value !== "function")) {
      // `undefined` properties are left out, as JSON.stringify leaves them out.
      if (typeof value === "string" || typeof value === "boolean" || value === undefined) continue;
      if (typeof value === "number" && value - value === 0) continue;
      if (value === null) continue;
    }
    const f = visit(value, walk, owner);
    if (f !== undefined) return at(f, keySegment(key));
  }
  return undefined;
}

/** What a serializer makes of a built-in it does not know. */
function loss(builtin: string, flavor?: Flavor): string {
  if (flavor === "json" && (builtin === "Map" || builtin === "Set")) {
    return "it would read back as {}; use the superjson serializer";
  }
  if (builtin.endsWith(" object")) return "it would read back as a primitive";
  return "it would read back as a plain object without its state";
}

/**
 * The tag of an object whose state lives outside its own properties (a built-in: `Blob`,
 * `WeakMap`, `Promise`, `Headers`, a boxed primitive...), or `undefined` for a plain object
 * or an instance of a class of one's own (its tag is `Object`).
 */
function builtinTag(o: object): string | undefined {
  const tag = Object.prototype.toString.call(o).slice(8, -1);
  if (tag === "Object") return undefined;
  return BOXED.has(tag) ? `${tag} object` : tag;
}

function className(ctor: unknown): string {
  const name = typeof ctor === "function" ? (ctor as { name?: unknown }).name : undefined;
  return typeof name === "string" && name !== "" && name !== "Object"
    ? `an instance of ${name}`
    : "an object with a prototype";
}

interface Registries {
  classes: {
    getIdentifier(ctor: unknown): string | undefined;
    getAllowedProps(ctor: unknown): string[] | undefined;
  };
  symbols: { getIdentifier(symbol: unknown): string | undefined };
  custom: { findApplicable(value: unknown): unknown };
}

let known: Registries | undefined;

/**
 * The registries of superjson's default instance, which `SuperJSON.registerClass`,
 * `registerSymbol` and `registerCustom` fill, and which the "superjson" serializer uses.
 */
function registries(): Registries {
  if (known === undefined) {
    const instance = (SuperJSON as unknown as { defaultInstance: SuperJSON }).defaultInstance;
    known = {
      classes: instance.classRegistry as unknown as Registries["classes"],
      symbols: instance.symbolRegistry as unknown as Registries["symbols"],
      custom: instance.customTransformerRegistry as unknown as Registries["custom"],
    };
  }
  return known;
}
