import type { CacheOptions } from "./cache-options.js";
import { resolveSerializer, type Serializer } from "./codec.js";
import { checkJitter, checkTtl } from "./envelope.js";
import { type EdgeCacheError, InvalidOptionError } from "./errors.js";
import { type ResolvedLocal, resolveLocal } from "./local.js";
import { consoleLogger, GuardedLogger, isLogger, type Logger, silentLogger } from "./logger.js";
import { NAMESPACE_PATTERN, type Store } from "./store/contract.js";
import { resolveSync, type SyncSettings } from "./sync/state.js";
import { duration, isRecord, MAX_TIMER, nonNegative, positiveInt } from "./util/check.js";

/** {@link CacheOptions}, validated and with their defaults. */
export interface ResolvedOptions {
  store: Store;
  namespace: string;
  ttl: number;
  local: ResolvedLocal | undefined;
  serializer: Serializer;
  maxKeyBytes: number;
  maxValueBytes: number;
  logger: Logger;
  onError: ((error: EdgeCacheError) => void) | undefined;
  now: () => number;
  clockResolution: number;
  sync: SyncSettings | undefined;
  instanceId: string | undefined;
  jitter: number;
}

const INSTANCE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Default of `logInterval`: one line per level and code per minute. */
const LOG_INTERVAL = 60_000;

/**
 * The `logger` option as the cache writes through it: validated, then guarded so that it
 * never throws and repeats are rate-limited (see {@link GuardedLogger}).
 */
function resolveLogger(option: unknown, now: () => number, interval: number): Logger {
  if (option === false) return silentLogger;
  if (option !== undefined && !isLogger(option)) {
    throw new InvalidOptionError(
      "logger must be false or an object with warn and error methods (debug and info optional)",
    );
  }
  return new GuardedLogger(option ?? consoleLogger("warn"), now, interval);
}

/**
 * The `onError` hook as the cache calls it. A hook that throws is caught by the cache; one
 * that returns a rejected promise is caught here, so it cannot become an unhandled
 * rejection (which ends a Node process).
 */
function resolveOnError(
  hook: ((error: EdgeCacheError) => void) | undefined,
  logger: Logger,
): ((error: EdgeCacheError) => void) | undefined {
  if (hook === undefined) return undefined;
  return (error) => {
    const result: unknown = hook(error);
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
      (result as Promise<unknown>).then(undefined, (hookError: unknown) => {
        logger.error("onError threw", { name: (hookError as Error | undefined)?.name });
      });
    }
  };
}

/** The `breaker` option's shape; its values are checked by `resolveBreaker`. */
function checkBreaker(option: unknown): void {
  if (option === undefined || option === false) return;
  const o = option as { threshold?: unknown; cooldown?: unknown };
  if (!isRecord(o) || o.threshold === null || o.cooldown === null) {
    throw new InvalidOptionError("breaker must be false or { threshold, cooldown }");
  }
}

/** Validates `createCache` options: configuration errors throw here, at setup. */
export function resolveOptions(options: CacheOptions): ResolvedOptions {
  if (!isRecord(options)) {
    throw new InvalidOptionError("createCache needs an options object with a store");
  }
  const { store } = options;
  if (
    typeof store !== "object" ||
    store === null ||
    typeof store.get !== "function" ||
    typeof store.sync !== "function" ||
    typeof store.set !== "function" ||
    typeof store.delete !== "function" ||
    typeof store.clear !== "function"
  ) {
    throw new InvalidOptionError(
      "store must implement the Store interface (get, sync, set, delete, clear)",
    );
  }
  const namespace = options.namespace === undefined ? "default" : options.namespace;
  if (typeof namespace !== "string" || !NAMESPACE_PATTERN.test(namespace)) {
    throw new InvalidOptionError(
      "namespace must be 1-128 characters of letters, digits and _ . : / -",
    );
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new InvalidOptionError("onError must be a function");
  }
  if (options.now !== undefined && typeof options.now !== "function") {
    throw new InvalidOptionError("now must be a function returning ms");
  }
  // A timer waits for it: past 2^31 - 1 ms it would fire at once.
  const clockResolution = duration("clockResolution", options.clockResolution, {
    fallback: 0,
    max: MAX_TIMER,
  });
  const { instanceId } = options;
  if (
    instanceId !== undefined &&
    (typeof instanceId !== "string" || !INSTANCE_ID.test(instanceId))
  ) {
    throw new InvalidOptionError("instanceId must be 1-64 of letters, digits, _ . : -");
  }
  checkBreaker(options.breaker);
  const now = options.now ?? Date.now;
  const logger = resolveLogger(
    options.logger,
    now,
    nonNegative("logInterval", options.logInterval, LOG_INTERVAL),
  );
  return {
    store,
    namespace,
    ttl: options.ttl === undefined ? 60_000 : checkTtl(options.ttl),
    local: resolveLocal(options.local),
    serializer: resolveSerializer(options.serializer),
    maxKeyBytes: positiveInt("maxKeyBytes", options.maxKeyBytes, 1024),
    maxValueBytes: positiveInt("maxValueBytes", options.maxValueBytes, 1 << 20),
    logger,
    onError: resolveOnError(options.onError, logger),
    now,
    clockResolution,
    sync: resolveSync(options.sync),
    instanceId,
    jitter: checkJitter(options.jitter === undefined ? 0 : options.jitter),
  };
}
