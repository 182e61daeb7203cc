import { type Serializer, utf8Length } from "./codec.js";
import {
  InvalidKeyError,
  InvalidOptionError,
  SerializationError,
  ValueTooLargeError,
} from "./errors.js";
import type { StoreWrite } from "./store.js";
import type { SetOptions } from "./types.js";

/** What `decode` answers for anything that is not a value this cache wrote. */
export const MISS: unique symbol = Symbol("miss");

/** A validated, encoded write. */
export interface Prepared {
  key: string;
  value: unknown;
  write: StoreWrite;
  /** Bytes L1 budgets for it: the encoded value plus the key. */
  size: number;
}

/** Validates a TTL in ms and rounds it up to whole ms (Redis PX takes integers; never 0). */
export function checkTtl(ttl: unknown, key?: string): number {
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new InvalidOptionError(
      "ttl must be a finite number of ms greater than 0",
      key ? { key } : {},
    );
  }
  return Math.ceil(ttl);
}

/**
 * Keys and values as the cache stores them: key rules, and values encoded once, tagged with
 * the serializer's name (an entry written with another serializer decodes as a miss).
 */
export class Entries {
  readonly #serializer: Serializer;
  readonly #tag: string;
  readonly #ttl: number;
  readonly #maxKeyBytes: number;
  readonly #maxValueBytes: number;
  readonly #propagateMaxBytes: number;

  /** `propagateMaxBytes` below 0: coherence is off, nothing is propagated. */
  constructor(options: {
    serializer: Serializer;
    ttl: number;
    maxKeyBytes: number;
    maxValueBytes: number;
    propagateMaxBytes: number;
  }) {
    this.#serializer = options.serializer;
    this.#tag = options.serializer.name + ":";
    this.#ttl = options.ttl;
    this.#maxKeyBytes = options.maxKeyBytes;
    this.#maxValueBytes = options.maxValueBytes;
    this.#propagateMaxBytes = options.propagateMaxBytes;
  }

  checkKey(key: unknown): asserts key is string {
    if (typeof key !== "string") throw new InvalidKeyError("keys must be strings");
    if (key.length === 0) throw new InvalidKeyError("keys must not be empty");
    // UTF-8 needs at most 3 bytes per UTF-16 unit; only long keys need counting.
    if (key.length * 3 > this.#maxKeyBytes && utf8Length(key) > this.#maxKeyBytes) {
      throw new InvalidKeyError(`keys must be at most ${this.#maxKeyBytes} UTF-8 bytes`);
    }
  }

  /** Validates and encodes one write; throws a typed error, having changed nothing. */
  prepare(key: unknown, value: unknown, options: SetOptions | undefined): Prepared {
    this.checkKey(key);
    let ttl = this.#ttl;
    let propagate = true;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null) {
        throw new InvalidOptionError("set options must be an object", { key });
      }
      if (options.ttl !== undefined) ttl = checkTtl(options.ttl, key);
      if (options.propagate !== undefined) {
        if (options.propagate !== "value" && options.propagate !== "invalidate") {
          throw new InvalidOptionError('propagate must be "value" or "invalidate"', { key });
        }
        propagate = options.propagate === "value";
      }
    }
    if (value === undefined) {
      throw new SerializationError("undefined cannot be cached (a miss reads as undefined)", {
        key,
      });
    }
    const name = this.#serializer.name;
    let text: string;
    try {
      text = this.#serializer.serialize(value);
    } catch (err) {
      if (err instanceof SerializationError) throw new SerializationError(err.message, { key });
      throw new SerializationError(`serializer "${name}" could not encode the value`, { key });
    }
    if (typeof text !== "string") {
      throw new SerializationError(`serializer "${name}" did not return a string`, { key });
    }
    const payload = this.#tag + text;
    const bytes = utf8Length(payload);
    if (bytes > this.#maxValueBytes) {
      throw new ValueTooLargeError(bytes, this.#maxValueBytes, { key });
    }
    return {
      key,
      value,
      write: { key, value: payload, ttl, propagate: propagate && bytes <= this.#propagateMaxBytes },
      size: bytes + key.length,
    };
  }

  /** The value in `payload`, or {@link MISS} for anything this cache did not write. */
  decode(payload: string): unknown {
    if (typeof payload !== "string" || !payload.startsWith(this.#tag)) return MISS;
    try {
      const value = this.#serializer.deserialize(payload.slice(this.#tag.length));
      return value === undefined ? MISS : value;
    } catch {
      return MISS;
    }
  }
}
