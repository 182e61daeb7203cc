import type { SetOptions } from "./cache-options.js";
import type { Serializer } from "./codec.js";
import {
  InvalidKeyError,
  InvalidOptionError,
  SerializationError,
  ValueTooLargeError,
} from "./errors.js";
import type { Negative } from "./local.js";
import { MAX_TTL, type StoreWrite } from "./store/contract.js";
import { isWellFormed, utf8Length } from "./util/bytes.js";
import { duration } from "./util/check.js";

/** What `decode` answers for anything that is not a value this cache wrote. */
export const MISS: unique symbol = Symbol("miss");

/** A validated, encoded write. */
export interface Prepared {
  key: string;
  value: unknown;
  /** `write.ttl` is the L2 lifetime: the fresh TTL plus `tail`. */
  write: StoreWrite;
  /** Bytes L1 budgets for it: the encoded value plus the key. */
  size: number;
  /** Ms the entry outlives its freshness, for stale-while-revalidate and grace. */
  tail: number;
  negative: Negative | undefined;
  tags: readonly string[] | undefined;
}

/** Keys the cache keeps for itself start with this; users' keys may not. */
export const RESERVED = "\u0000";

/** The key of a tag's invalidation marker. */
export const tagKey = (tag: string): string => `${RESERVED}t:${tag}`;

/** Most tags on one entry, and longest tag. */
const MAX_TAGS = 64;
const MAX_TAG_LENGTH = 256;

/**
 * Validates tags: non-empty, well-formed strings of at most 256 characters, at most 64,
 * deduplicated. A tag names a Redis key, so a lone surrogate (which UTF-8 turns into
 * U+FFFD) is refused like any other bad tag, with `EC_INVALID_OPTION`.
 */
export function checkTags(tags: unknown, key?: string): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  const where = key === undefined ? {} : { key };
  if (!Array.isArray(tags)) throw new InvalidOptionError("tags must be an array of strings", where);
  if (tags.length > MAX_TAGS) {
    throw new InvalidOptionError(`at most ${MAX_TAGS} tags per entry`, where);
  }
  for (const tag of tags) {
    if (typeof tag !== "string" || tag.length === 0 || tag.length > MAX_TAG_LENGTH) {
      throw new InvalidOptionError(
        `tags must be non-empty strings of at most ${MAX_TAG_LENGTH} characters`,
        where,
      );
    }
    if (!isWellFormed(tag)) {
      throw new InvalidOptionError(
        "tags must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
        where,
      );
    }
  }
  return tags.length === 0 ? undefined : [...new Set(tags as string[])];
}

/** What `getOrSet` writes beyond a plain `set`. */
export interface WriteExtra {
  /** Ms the entry stays in L2 (as stale) after its TTL. */
  tail?: number;
  /** A remembered loader outcome instead of a value. */
  negative?: Negative;
  /** Tags besides `options.tags` (from the loader). */
  tags?: readonly string[];
  /** TTL instead of `options.ttl` (from the loader). */
  ttl?: number;
}

/** A payload decoded: the value and what the envelope says about it. */
export interface Decoded {
  /** The value; `undefined` for a negative entry. */
  value: unknown;
  /** Ms the entry outlives its freshness in L2 (0 for plain entries). */
  tail: number;
  negative: Negative | undefined;
  tags: readonly string[] | undefined;
}

/** Validates a jitter fraction, 0 <= j < 1. */
export function checkJitter(jitter: unknown, key?: string): number {
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter < 1)) {
    throw new InvalidOptionError("jitter must be a number from 0 up to (not including) 1", {
      ...(key ? { key } : {}),
    });
  }
  return jitter;
}

/** Validates a TTL in ms and rounds it up to whole ms (Redis PX takes integers; never 0). */
export function checkTtl(ttl: unknown, key?: string): number {
  // At most what L2 can hold (MAX_TTL, 2^52 ms).
  return Math.ceil(duration("ttl", ttl, { zero: false, max: MAX_TTL, key: key || undefined }));
}

/** Validates `staleFor`: whole ms, rounded up, at most 2^40 (as `staleWhileRevalidate`). */
function checkStaleFor(staleFor: unknown, key: string): number {
  return Math.ceil(duration("staleFor", staleFor, { max: 2 ** 40, key }));
}

/**
 * Keys and values as the cache stores them: key rules, and values encoded once, tagged with
 * the serializer's name (an entry written with another serializer decodes as a miss).
 *
 * Payloads: `<name>:<text>` for a plain value; `<name>~<tail>#<tags>:<text>` (either part
 * optional) for a value that stays in L2 `tail` ms past its freshness (its TTL counts the
 * tail, so freshness is measured by Redis' clock alone, with no clock skew between
 * instances) and carries tags (URI-encoded, comma-separated); `<name>!e` and `<name>!u` for
 * remembered loader failures and empty loads.
 */
export class Envelope {
  readonly #serializer: Serializer;
  readonly #name: string;
  readonly #tag: string;
  readonly #negativeTag: string;
  readonly #ttl: number;
  readonly #jitter: number;
  readonly #maxKeyBytes: number;
  readonly #maxValueBytes: number;
  readonly #propagateMaxBytes: number;

  /** `propagateMaxBytes` below 0: coherence is off, nothing is propagated. */
  constructor(options: {
    serializer: Serializer;
    ttl: number;
    jitter: number;
    maxKeyBytes: number;
    maxValueBytes: number;
    propagateMaxBytes: number;
    /** The store orders versions across keys (`Store.orderedVersions`): tags work. */
    tags: boolean;
  }) {
    this.#serializer = options.serializer;
    this.#name = options.serializer.name;
    this.#tag = options.serializer.name + ":";
    this.#negativeTag = options.serializer.name + "!";
    this.#ttl = options.ttl;
    this.#jitter = options.jitter;
    this.#maxKeyBytes = options.maxKeyBytes;
    this.#maxValueBytes = options.maxValueBytes;
    this.#propagateMaxBytes = options.propagateMaxBytes;
    this.#tagsAllowed = options.tags;
  }

  readonly #tagsAllowed: boolean;

  /** Throws unless the store can carry tags (see `Store.orderedVersions`). */
  allowTags(tags: readonly string[] | undefined, key?: string): void {
    if (tags === undefined || tags.length === 0 || this.#tagsAllowed) return;
    throw new InvalidOptionError(
      "tags need a store whose versions order writes across keys; a sharded store keeps a counter per shard, so tags are not available on it",
      key === undefined ? {} : { key },
    );
  }

  /**
   * Throws `InvalidKeyError` unless `key` is a non-empty, well-formed string within
   * `maxKeyBytes`. Every key a caller hands in passes here first.
   */
  checkKey(key: unknown, internal = false): asserts key is string {
    if (typeof key !== "string") throw new InvalidKeyError("keys must be strings");
    if (key.length === 0) throw new InvalidKeyError("keys must not be empty");
    // U+0000 first: reserved (RESERVED); a char code test keeps the hot path cheap.
    if (key.charCodeAt(0) === 0 && !internal) {
      throw new InvalidKeyError("keys must not start with U+0000 (reserved by edgecache)");
    }
    // UTF-8 writes a lone surrogate as U+FFFD: "\uD800", "\uDC00" and "\uFFFD" would be one key.
    if (!isWellFormed(key)) {
      throw new InvalidKeyError(
        "keys must be well-formed Unicode: no lone surrogates (U+D800 to U+DFFF)",
      );
    }
    // UTF-8 needs at most 3 bytes per UTF-16 unit; only long keys need counting.
    if (key.length * 3 > this.#maxKeyBytes && utf8Length(key) > this.#maxKeyBytes) {
      throw new InvalidKeyError(`keys must be at most ${this.#maxKeyBytes} UTF-8 bytes`);
    }
  }

  /** Validates and encodes one write; throws a typed error, having changed nothing. */
  prepare(
    key: unknown,
    value: unknown,
    options: SetOptions | undefined,
    extra: WriteExtra = {},
    internal = false,
  ): Prepared {
    this.checkKey(key, internal);
    let ttl = this.#ttl;
    let jitter = this.#jitter;
    let tags: readonly string[] | undefined;
    let propagate = true;
    let staleFor = 0;
    if (options !== undefined) {
      if (typeof options !== "object" || options === null || Array.isArray(options)) {
        throw new InvalidOptionError("set options must be an object", { key });
      }
      if (options.ttl !== undefined) ttl = checkTtl(options.ttl, key);
      if (options.jitter !== undefined) jitter = checkJitter(options.jitter, key);
      if (options.tags !== undefined) tags = checkTags(options.tags, key);
      if (options.staleFor !== undefined) staleFor = checkStaleFor(options.staleFor, key);
      if (options.propagate !== undefined) {
        if (options.propagate !== "value" && options.propagate !== "invalidate") {
          throw new InvalidOptionError('propagate must be "value" or "invalidate"', { key });
        }
        propagate = options.propagate === "value";
      }
    }
    if (extra.ttl !== undefined) ttl = checkTtl(extra.ttl, key);
    if (extra.tags !== undefined) {
      tags = checkTags([...(tags ?? []), ...extra.tags], key);
    }
    this.allowTags(tags, key);
    // Shortened by up to `jitter`, never lengthened: entries written together expire apart.
    if (jitter > 0) ttl = Math.max(1, Math.ceil(ttl * (1 - jitter * Math.random())));
    const tail = extra.tail ?? staleFor;
    if (ttl + tail > MAX_TTL) {
      throw new InvalidOptionError(
        "ttl plus staleWhileRevalidate, grace or staleFor must be at most 2^52 ms (what L2 can hold)",
        { key },
      );
    }
    if (extra.negative !== undefined) {
      const payload = this.#negativeTag + (extra.negative === "error" ? "e" : "u");
      return {
        key,
        value: undefined,
        write: { key, value: payload, ttl, propagate },
        size: payload.length + key.length,
        tail: 0,
        negative: extra.negative,
        tags: undefined,
      };
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
    let header = this.#tag;
    if (tail > 0 || tags !== undefined) {
      header = this.#name;
      if (tail > 0) header += `~${tail}`;
      if (tags !== undefined) header += `#${tags.map(encodeURIComponent).join(",")}`;
      header += ":";
    }
    const payload = header + text;
    const bytes = utf8Length(payload);
    if (bytes > this.#maxValueBytes) {
      throw new ValueTooLargeError(bytes, this.#maxValueBytes, { key });
    }
    return {
      key,
      value,
      write: {
        key,
        value: payload,
        ttl: ttl + tail,
        propagate: propagate && bytes <= this.#propagateMaxBytes,
      },
      size: bytes + key.length,
      tail,
      negative: undefined,
      tags,
    };
  }

  /** The value in `payload`, or {@link MISS} for anything this cache did not write. */
  decode(payload: string): Decoded | typeof MISS {
    if (typeof payload !== "string") return MISS;
    let tail = 0;
    let tags: readonly string[] | undefined;
    let start: number;
    if (payload.startsWith(this.#tag)) start = this.#tag.length;
    else if (payload.startsWith(this.#negativeTag)) {
      const rest = payload.slice(this.#negativeTag.length);
      if (rest === "e") return { value: undefined, tail: 0, negative: "error", tags: undefined };
      if (rest === "u") return { value: undefined, tail: 0, negative: "absent", tags: undefined };
      return MISS;
    } else if (payload.startsWith(this.#name)) {
      // `~<tail>` and/or `#<tags>`, then `:`.
      const colon = payload.indexOf(":", this.#name.length);
      if (colon < 0) return MISS;
      const header = /^(?:~([1-9][0-9]{0,12}))?(?:#([^:]+))?$/.exec(
        payload.slice(this.#name.length, colon),
      );
      if (header === null || (header[1] === undefined && header[2] === undefined)) return MISS;
      if (header[1] !== undefined) tail = Number(header[1]);
      if (header[2] !== undefined) {
        try {
          tags = header[2].split(",").map(decodeURIComponent);
        } catch {
          return MISS;
        }
      }
      start = colon + 1;
    } else return MISS;
    try {
      const value = this.#serializer.deserialize(payload.slice(start));
      return value === undefined ? MISS : { value, tail, negative: undefined, tags };
    } catch {
      return MISS;
    }
  }
}
