/**
 * Every error edgecache throws or reports is an {@link EdgeCacheError} with a stable
 * {@link EdgeCacheErrorCode}. Messages never contain cached values, tokens or URLs with
 * credentials, so they are safe to log.
 *
 * @example
 * ```ts
 * try {
 *   await cache.set("k", value);
 * } catch (err) {
 *   if (err instanceof EdgeCacheError && err.code === "EC_VALUE_TOO_LARGE") shrink(value);
 *   else throw err;
 * }
 * ```
 * @module
 */

/** Stable, machine-readable error codes. */
export type EdgeCacheErrorCode =
  /**
   * A key is not a non-empty, well-formed string (no lone surrogates, which UTF-8 would turn
   * into U+FFFD) within `maxKeyBytes`.
   */
  | "EC_INVALID_KEY"
  /** A call or constructor option is out of range or of the wrong type. */
  | "EC_INVALID_OPTION"
  /**
   * The value cannot be encoded by the configured serializer, or would not read back the
   * same (a `Blob`, a `WeakMap`, `NaN` under `"json"`, `undefined`...). The message names the
   * type and its path, e.g. `value.avatar: Blob`, never the value.
   */
  | "EC_SERIALIZE"
  /** The encoded value is larger than `maxValueBytes`. */
  | "EC_VALUE_TOO_LARGE"
  /** The L2 store could not be reached (network failure, DNS, connection reset). */
  | "EC_STORE_UNAVAILABLE"
  /** The L2 store did not answer within the configured timeout. */
  | "EC_STORE_TIMEOUT"
  /** The L2 store refused the credentials. */
  | "EC_STORE_AUTH"
  /** The L2 store answered with an error (a Redis error reply) or an answer of the wrong shape. */
  | "EC_STORE_ERROR"
  /** L2 calls are paused by the circuit breaker after repeated failures. */
  | "EC_CIRCUIT_OPEN"
  /** A loader failed; or, with `negativeTtl`, failed recently and is not called again yet. */
  | "EC_LOADER_FAILED"
  /** A loader did not finish within `hardTimeout`. */
  | "EC_LOADER_TIMEOUT"
  /** Data under edgecache's prefix in L2 could not be decoded; it is treated as a miss. */
  | "EC_CORRUPT_ENTRY"
  /** The cache was used after `close()`. */
  | "EC_CLOSED"
  /**
   * The invalidation hub could not be reached or refused a publish. Reported, never thrown:
   * the change log still carries every change, so only propagation speed suffers.
   */
  | "EC_HUB_UNAVAILABLE"
  /**
   * The Redis pub/sub stream (`sync.pubsub`) could not be opened or dropped. Reported, never
   * thrown: the instance polls the change log until the stream is back.
   */
  | "EC_PUBSUB_UNAVAILABLE";

/** Where an error happened: the in-process tier or the shared store. */
export type Tier = "l1" | "l2";

/** Extra context attached to an {@link EdgeCacheError}. */
export interface EdgeCacheErrorOptions {
  /** The underlying error, already stripped of values and secrets. */
  cause?: unknown;
  /** The cache key concerned, when there is exactly one. Keys are identifiers, never values. */
  key?: string;
  /** The tier concerned. */
  tier?: Tier;
}

/** Base class of every error edgecache throws or passes to `onError`. */
export class EdgeCacheError extends Error {
  /** Stable code; switch on this rather than on the message. */
  readonly code: EdgeCacheErrorCode;
  /** The key concerned, if any. */
  readonly key: string | undefined;
  /** The tier concerned, if any. */
  readonly tier: Tier | undefined;

  constructor(code: EdgeCacheErrorCode, message: string, options: EdgeCacheErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EdgeCacheError";
    this.code = code;
    this.key = options.key;
    this.tier = options.tier;
  }
}

/**
 * A key was empty, not a string, not well-formed (a lone surrogate), or longer than
 * `maxKeyBytes`. Nothing was read or written.
 */
export class InvalidKeyError extends EdgeCacheError {
  constructor(message: string, options?: EdgeCacheErrorOptions) {
    super("EC_INVALID_KEY", message, options);
    this.name = "InvalidKeyError";
  }
}

/** An option was invalid. Thrown at construction for cache options, per call for call options. */
export class InvalidOptionError extends EdgeCacheError {
  constructor(message: string, options?: EdgeCacheErrorOptions) {
    super("EC_INVALID_OPTION", message, options);
    this.name = "InvalidOptionError";
  }
}

/**
 * The value could not be encoded, or would not read back the same through the serializer.
 * Nothing was written to L1 or L2.
 */
export class SerializationError extends EdgeCacheError {
  constructor(message: string, options?: EdgeCacheErrorOptions) {
    super("EC_SERIALIZE", message, options);
    this.name = "SerializationError";
  }
}

/** The encoded value exceeds `maxValueBytes`. Nothing was written to L1 or L2. */
export class ValueTooLargeError extends EdgeCacheError {
  /** Encoded size in bytes. */
  readonly bytes: number;
  /** The configured limit in bytes. */
  readonly limit: number;
  constructor(bytes: number, limit: number, options?: EdgeCacheErrorOptions) {
    super(
      "EC_VALUE_TOO_LARGE",
      `encoded value is ${bytes} bytes, over the limit of ${limit}`,
      options,
    );
    this.name = "ValueTooLargeError";
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** The L2 store failed. `code` says how: unavailable, timeout, auth or a Redis error reply. */
export class StoreError extends EdgeCacheError {
  constructor(
    code: Extract<
      EdgeCacheErrorCode,
      | "EC_STORE_UNAVAILABLE"
      | "EC_STORE_TIMEOUT"
      | "EC_STORE_AUTH"
      | "EC_STORE_ERROR"
      | "EC_CIRCUIT_OPEN"
    >,
    message: string,
    options?: EdgeCacheErrorOptions,
  ) {
    super(code, message, { tier: "l2", ...options });
    this.name = "StoreError";
  }
}

/** An entry in L2 under edgecache's prefix could not be decoded. Reported, never thrown at readers. */
export class CorruptEntryError extends EdgeCacheError {
  constructor(message: string, options?: EdgeCacheErrorOptions) {
    super("EC_CORRUPT_ENTRY", message, { tier: "l2", ...options });
    this.name = "CorruptEntryError";
  }
}

/** A publish to the invalidation hub failed; reported to `onError`, never thrown. */
export class HubError extends EdgeCacheError {
  constructor(message: string, options?: EdgeCacheErrorOptions) {
    super("EC_HUB_UNAVAILABLE", message, options);
    this.name = "HubError";
  }
}

/**
 * A `getOrSet` loader failed (`EC_LOADER_FAILED`: reported to `onError` when a stale value
 * was served instead, or thrown when a failure remembered by `negativeTtl` short-circuits
 * the loader) or ran past `hardTimeout` (`EC_LOADER_TIMEOUT`, thrown). The loader's own
 * error, when there is one, is the `cause`.
 */
export class LoaderError extends EdgeCacheError {
  constructor(
    code: Extract<EdgeCacheErrorCode, "EC_LOADER_FAILED" | "EC_LOADER_TIMEOUT">,
    message: string,
    options?: EdgeCacheErrorOptions,
  ) {
    super(code, message, options);
    this.name = "LoaderError";
  }
}

/** The cache or store was used after `close()`. */
export class ClosedError extends EdgeCacheError {
  constructor(message = "the cache is closed") {
    super("EC_CLOSED", message);
    this.name = "ClosedError";
  }
}

/** True when `err` is an {@link EdgeCacheError}, optionally with the given code. */
export function isEdgeCacheError(err: unknown, code?: EdgeCacheErrorCode): err is EdgeCacheError {
  return err instanceof EdgeCacheError && (code === undefined || err.code === code);
}
