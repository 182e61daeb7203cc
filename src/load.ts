import type { GetOrSetOptions, Loader, NamespaceOptions } from "./cache-options.js";
import { checkJitter, checkTags, checkTtl } from "./envelope.js";
import { InvalidOptionError } from "./errors.js";
import { MAX_TTL } from "./store/contract.js";
import { duration, isRecord, MAX_TIMER } from "./util/check.js";

/** {@link GetOrSetOptions} resolved against a namespace's defaults. */
export interface LoadSettings {
  loader: Loader | undefined;
  ttl: number;
  jitter: number | undefined;
  staleWhileRevalidate: number;
  grace: number;
  graceBackoff: number;
  /** How long entries stay in L2 past their TTL: max(staleWhileRevalidate, grace). */
  tail: number;
  timeout: number | undefined;
  hardTimeout: number | undefined;
  lock: { ttl: number; wait: number } | undefined;
  negativeTtl: number | undefined;
  waitUntil: ((promise: Promise<unknown>) => void) | undefined;
  propagate: "value" | "invalidate" | undefined;
  tags: readonly string[] | undefined;
}

const LOCK_TTL = 10_000;

/** A load option in whole ms, rounded up; at most 2^40 unless `max` says less. */
function ms(name: string, value: unknown, key: string | undefined, zero = true, max = 2 ** 40) {
  return Math.ceil(duration(name, value, { zero, max, key }));
}

/** An optional load option, above 0 when given; `undefined` when not. */
function optionalMs(name: string, value: unknown, key?: string, max?: number): number | undefined {
  return value === undefined ? undefined : ms(name, value, key, false, max);
}

/**
 * Validates load options: a namespace's at creation (`key` undefined), a call's against
 * them. Anything not given falls back to `base`.
 */
export function resolveLoad(
  options: GetOrSetOptions | NamespaceOptions,
  ttl: number,
  base?: LoadSettings,
  key?: string,
): LoadSettings {
  if (!isRecord(options)) {
    throw new InvalidOptionError(
      key === undefined
        ? "namespace options must be an object"
        : "getOrSet options must be an object",
      key === undefined ? {} : { key },
    );
  }
  const loader = "loader" in options ? options.loader : base?.loader;
  if (loader !== undefined && typeof loader !== "function") {
    throw new InvalidOptionError("loader must be a function");
  }
  const swr =
    options.staleWhileRevalidate === undefined
      ? (base?.staleWhileRevalidate ?? 0)
      : ms("staleWhileRevalidate", options.staleWhileRevalidate, key);
  const grace = options.grace === undefined ? (base?.grace ?? 0) : ms("grace", options.grace, key);
  let lock = base?.lock;
  if (options.lock !== undefined) {
    if (options.lock === false) lock = undefined;
    else if (options.lock === true) lock = { ttl: LOCK_TTL, wait: LOCK_TTL };
    else if (isRecord(options.lock)) {
      const lockTtl = optionalMs("lock.ttl", options.lock.ttl, key) ?? LOCK_TTL;
      lock = { ttl: lockTtl, wait: optionalMs("lock.wait", options.lock.wait, key) ?? lockTtl };
    } else {
      throw new InvalidOptionError("lock must be a boolean or { ttl, wait }", key ? { key } : {});
    }
  }
  if (options.waitUntil !== undefined && typeof options.waitUntil !== "function") {
    throw new InvalidOptionError("waitUntil must be a function", key ? { key } : {});
  }
  const { propagate } = options;
  if (propagate !== undefined && propagate !== "value" && propagate !== "invalidate") {
    throw new InvalidOptionError('propagate must be "value" or "invalidate"', key ? { key } : {});
  }
  // Timers wait for these: past MAX_TIMER they would fire at once.
  const timeout = optionalMs("timeout", options.timeout, key, MAX_TIMER) ?? base?.timeout;
  const hardTimeout =
    optionalMs("hardTimeout", options.hardTimeout, key, MAX_TIMER) ?? base?.hardTimeout;
  const resolvedTtl = options.ttl === undefined ? (base?.ttl ?? ttl) : checkTtl(options.ttl, key);
  if (resolvedTtl + Math.max(swr, grace) > MAX_TTL) {
    throw new InvalidOptionError(
      "ttl plus staleWhileRevalidate or grace must be at most 2^52 ms (what L2 can hold)",
      key === undefined ? {} : { key },
    );
  }
  return {
    loader,
    ttl: resolvedTtl,
    jitter: options.jitter === undefined ? base?.jitter : checkJitter(options.jitter, key),
    staleWhileRevalidate: swr,
    grace,
    graceBackoff:
      options.graceBackoff === undefined
        ? (base?.graceBackoff ?? 5000)
        : ms("graceBackoff", options.graceBackoff, key),
    tail: Math.max(swr, grace),
    timeout,
    hardTimeout,
    lock,
    negativeTtl: optionalMs("negativeTtl", options.negativeTtl, key) ?? base?.negativeTtl,
    waitUntil: options.waitUntil ?? base?.waitUntil,
    propagate: propagate ?? base?.propagate,
    tags: options.tags === undefined ? base?.tags : checkTags(options.tags, key),
  };
}
