import { resolveSerializer, type Serializer } from "./codec.js";
import { checkJitter, checkTtl } from "./entries.js";
import { type EdgeCacheError, InvalidOptionError } from "./errors.js";
import { type ResolvedLocal, resolveLocal } from "./local.js";
import { consoleLogger, type Logger, silentLogger } from "./logger.js";
import { NAMESPACE_PATTERN, type Store } from "./store.js";
import { resolveSync, type SyncSettings } from "./sync/stamps.js";
import type { CacheOptions } from "./types.js";

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

function positiveInt(value: unknown, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidOptionError(`${name} must be a positive integer`);
  }
  return v;
}

/** Validates `createCache` options: configuration errors throw here, at setup. */
export function resolveOptions(options: CacheOptions): ResolvedOptions {
  if (typeof options !== "object" || options === null) {
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
  const namespace = options.namespace ?? "default";
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
  const clockResolution = options.clockResolution ?? 0;
  if (
    typeof clockResolution !== "number" ||
    !Number.isFinite(clockResolution) ||
    clockResolution < 0
  ) {
    throw new InvalidOptionError("clockResolution must be a finite number of ms >= 0");
  }
  const { instanceId } = options;
  if (
    instanceId !== undefined &&
    (typeof instanceId !== "string" || !INSTANCE_ID.test(instanceId))
  ) {
    throw new InvalidOptionError("instanceId must be 1-64 of letters, digits, _ . : -");
  }
  return {
    store,
    namespace,
    ttl: checkTtl(options.ttl ?? 60_000),
    local: resolveLocal(options.local),
    serializer: resolveSerializer(options.serializer),
    maxKeyBytes: positiveInt(options.maxKeyBytes, 1024, "maxKeyBytes"),
    maxValueBytes: positiveInt(options.maxValueBytes, 1 << 20, "maxValueBytes"),
    logger: options.logger === false ? silentLogger : (options.logger ?? consoleLogger("warn")),
    onError: options.onError,
    now: options.now ?? Date.now,
    clockResolution,
    sync: resolveSync(options.sync),
    instanceId,
    jitter: checkJitter(options.jitter ?? 0),
  };
}
