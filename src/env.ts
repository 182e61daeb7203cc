/**
 * `fromEnv()`: a cache configured by environment variables, the same way in a Worker (its
 * `env`), Node and Bun (`process.env`) and Deno (`Deno.env.toObject()`).
 *
 * @module
 */
import { createCache } from "./cache.js";
import { InvalidOptionError } from "./errors.js";
import type { HubBinding, HubOptions } from "./hub/options.js";
import type { LocalOptions } from "./local.js";
import { NAMESPACE_PATTERN } from "./store/contract.js";
import { type UpstashStoreOptions, upstashStore } from "./stores/upstash.js";
import type { SyncOptions } from "./sync/state.js";
import type { Cache, CacheOptions } from "./types.js";

/**
 * The variables {@link fromEnv} reads. Values are strings (numbers are accepted too, as
 * `wrangler.toml` `[vars]` may give them); an empty string counts as unset.
 *
 * Durations are ms, or a number with a unit: `250ms`, `1.5s`, `5m`, `1h`, `1d`. Sizes are
 * bytes, or a number with a unit: `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB`
 * (powers of 1000). Switches are `on`/`off` (also `true`/`false`, `1`/`0`, `yes`/`no`).
 *
 * | variable                      | sets                         | format                        |
 * | ----------------------------- | ---------------------------- | ----------------------------- |
 * | `UPSTASH_REDIS_REST_URL`      | the L2 (required)            | `http(s)://` URL              |
 * | `UPSTASH_REDIS_REST_TOKEN`    | the L2's token (required)    | string                        |
 * | `EDGECACHE_NAMESPACE`         | `namespace`                  | letters, digits, `_ . : / -`  |
 * | `EDGECACHE_TTL`               | `ttl`                        | duration, > 0                 |
 * | `EDGECACHE_SYNC`              | `sync: false` when `off`     | switch                        |
 * | `EDGECACHE_MAX_STALENESS`     | `sync.maxStaleness`          | duration                      |
 * | `EDGECACHE_L1`                | `local: false` when `off`    | switch                        |
 * | `EDGECACHE_L1_MAX_ITEMS`      | `local.maxItems`             | integer >= 1                  |
 * | `EDGECACHE_L1_MAX_BYTES`      | `local.maxBytes`             | size >= 1                     |
 * | `EDGECACHE_JITTER`            | `jitter`                     | number, 0 up to (not incl.) 1 |
 * | `EDGECACHE_BREAKER`           | `breaker: false` when `off`  | switch                        |
 * | `EDGECACHE_BREAKER_THRESHOLD` | `breaker.threshold`          | integer >= 1                  |
 * | `EDGECACHE_BREAKER_COOLDOWN`  | `breaker.cooldown`           | duration, > 0                 |
 * | `EDGECACHE_HUB`               | `sync.hub.binding` (Workers) | the `InvalidationHub` binding |
 * | `EDGECACHE_HUB_SHARDS`        | `sync.hub.shards`            | integer, 1 to 256             |
 * | `EDGECACHE_HUB_URL`           | `sync.hub.url` (elsewhere)   | `http(s)://` or `ws(s)://`    |
 * | `EDGECACHE_HUB_TOKEN`         | `sync.hub.token`             | a `mintHubToken` token        |
 * | `EDGECACHE_INSTANCE_ID`       | `instanceId`                 | 1-64 of `A-Z a-z 0-9 _ . : -` |
 * | `EDGECACHE_L2_TIMEOUT`        | the L2 request timeout       | duration (`0`: none)          |
 * | `EDGECACHE_L2_PREFIX`         | the L2 key prefix            | 1-32 of `A-Z a-z 0-9 _ - .`   |
 *
 * The hub is used only while sync is on: with `EDGECACHE_SYNC=off` the hub variables are
 * ignored (a Worker that hosts the hub has `EDGECACHE_HUB` bound either way).
 */
export interface EdgecacheEnv {
  /** REST URL of the Redis database (Upstash, or the local bridge). Required. */
  UPSTASH_REDIS_REST_URL?: string;
  /** Its REST token. Required; never put into an error or a log. */
  UPSTASH_REDIS_REST_TOKEN?: string;
  /** `namespace`. @default "default" */
  EDGECACHE_NAMESPACE?: string;
  /** `ttl`, a duration. @default "60s" */
  EDGECACHE_TTL?: string | number;
  /** `off` turns coherence off (`sync: false`). @default "on" */
  EDGECACHE_SYNC?: string;
  /** `sync.maxStaleness`, a duration. @default "1s" */
  EDGECACHE_MAX_STALENESS?: string | number;
  /** `off` turns L1 off (`local: false`). @default "on" */
  EDGECACHE_L1?: string;
  /** `local.maxItems`. @default 10000 */
  EDGECACHE_L1_MAX_ITEMS?: string | number;
  /** `local.maxBytes`, a size. @default "32MiB" */
  EDGECACHE_L1_MAX_BYTES?: string | number;
  /** `jitter`, from 0 up to (not including) 1. @default 0 */
  EDGECACHE_JITTER?: string | number;
  /** `off` turns the L2 circuit breaker off. @default "on" */
  EDGECACHE_BREAKER?: string;
  /** `breaker.threshold`. @default 5 */
  EDGECACHE_BREAKER_THRESHOLD?: string | number;
  /** `breaker.cooldown`, a duration. @default "5s" */
  EDGECACHE_BREAKER_COOLDOWN?: string | number;
  /** The `InvalidationHub` Durable Object namespace binding (Workers): `sync.hub.binding`. */
  EDGECACHE_HUB?: HubBinding;
  /** `sync.hub.shards`: must match the hub Worker's. @default 1 */
  EDGECACHE_HUB_SHARDS?: string | number;
  /** `sync.hub.url`: the Worker hosting the hub (Node, Deno, Bun). */
  EDGECACHE_HUB_URL?: string;
  /** `sync.hub.token`, from `mintHubToken`; required with `EDGECACHE_HUB_URL`. */
  EDGECACHE_HUB_TOKEN?: string;
  /** `instanceId`. @default a random UUID */
  EDGECACHE_INSTANCE_ID?: string;
  /** The L2 request timeout (`upstashStore`'s `timeout`), a duration. @default "1500ms" */
  EDGECACHE_L2_TIMEOUT?: string | number;
  /** The L2 key prefix (`upstashStore`'s `prefix`). @default "ec" */
  EDGECACHE_L2_PREFIX?: string;
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};
const INSTANCE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
const L2_PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

/** Reads typed variables; every error names the variable, never its value. */
class Reader {
  readonly #env: Record<string, unknown>;
  constructor(env: object) {
    this.#env = env as Record<string, unknown>;
  }

  raw(name: string): unknown {
    const v = this.#env[name];
    return v === "" || v === null ? undefined : v;
  }

  string(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new InvalidOptionError(`${name} must be a string`);
    return v.trim();
  }

  /** A number given as a number or a string with one of `units` (or none: `unit` 1). */
  #number(name: string, units: Record<string, number>, what: string): number | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new InvalidOptionError(`${name} must be ${what}`);
      return v;
    }
    const match = typeof v === "string" ? /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(v.trim()) : null;
    const unit = match?.[2]?.toLowerCase() ?? "";
    const factor = unit === "" ? 1 : units[unit];
    if (match === null || factor === undefined) {
      throw new InvalidOptionError(`${name} must be ${what}`);
    }
    return Number(match[1]) * factor;
  }

  duration(name: string, { positive = false } = {}): number | undefined {
    const what = `a duration in ms, or with a unit (ms, s, m, h, d)${positive ? ", above 0" : ""}`;
    const v = this.#number(name, DURATION_UNITS, what);
    if (v !== undefined && (v < 0 || (positive && v === 0)))
      throw new InvalidOptionError(`${name} must be ${what}`);
    return v;
  }

  size(name: string): number | undefined {
    const what = "a whole number of bytes >= 1, or with a unit (KiB, MiB, GiB, KB, MB, GB)";
    const v = this.#number(name, SIZE_UNITS, what);
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 1)) {
      throw new InvalidOptionError(`${name} must be ${what}`);
    }
    return v;
  }

  integer(name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const what = `an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : " up"}`;
    const v = this.#number(name, {}, what);
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= min && v <= max)) {
      throw new InvalidOptionError(`${name} must be ${what}`);
    }
    return v;
  }

  fraction(name: string): number | undefined {
    const what = "a number from 0 up to (not including) 1";
    const v = this.#number(name, {}, what);
    if (v !== undefined && !(v >= 0 && v < 1))
      throw new InvalidOptionError(`${name} must be ${what}`);
    return v;
  }

  /** `true` for on, `false` for off, `undefined` when unset. */
  switch(name: string): boolean | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v === "boolean") return v;
    const text = typeof v === "string" ? v.trim().toLowerCase() : String(v);
    if (["on", "true", "1", "yes"].includes(text)) return true;
    if (["off", "false", "0", "no"].includes(text)) return false;
    throw new InvalidOptionError(`${name} must be on or off`);
  }
}

const isPlain = (v: unknown): v is Record<string, unknown> => {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

/** Without the keys whose value is `undefined`: an override left undefined changes nothing. */
const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

/**
 * Merges two option objects one level deep. An options object does not turn on what the
 * environment turned off (`false`); anything else but two plain objects: `b` wins.
 */
function mergeObject<T>(a: T | undefined, b: T | undefined): T | undefined {
  if (b === undefined) return a;
  if (a === false && isPlain(b)) return a;
  if (isPlain(a) && isPlain(b) && typeof (b as { get?: unknown }).get !== "function") {
    return { ...a, ...defined(b) } as T;
  }
  return b;
}

/**
 * Overrides over options from the environment: `local`, `breaker`, `sync` and `sync.hub`
 * are merged key by key when both sides are option objects; any other value replaces. A
 * `sync.hub` override with neither `binding` nor `url` only adds settings (such as
 * `WebSocket`) to a hub the environment configured, and is dropped when there is none.
 */
function merge(base: CacheOptions, overrides: Partial<CacheOptions> | undefined): CacheOptions {
  if (overrides === undefined) return base;
  if (typeof overrides !== "object" || overrides === null) {
    throw new InvalidOptionError("fromEnv overrides must be an options object");
  }
  const o = defined(overrides);
  const out: CacheOptions = { ...base, ...o } as CacheOptions;
  if ("local" in o) out.local = mergeObject(base.local, o.local);
  if ("breaker" in o) out.breaker = mergeObject(base.breaker, o.breaker);
  if ("sync" in o) {
    const sync = mergeObject<SyncOptions | false>(base.sync, o.sync);
    const given: HubOptions | undefined = o.sync === false ? undefined : o.sync?.hub;
    if (sync !== undefined && sync !== false && given !== undefined) {
      const own = base.sync === undefined || base.sync === false ? undefined : base.sync.hub;
      const settingsOnly = given.binding === undefined && given.url === undefined;
      const hub = own === undefined && settingsOnly ? undefined : mergeObject(own, given);
      const { hub: _, ...rest } = sync;
      out.sync = hub === undefined ? rest : { ...rest, hub };
    } else out.sync = sync;
  }
  return out;
}

/**
 * The {@link CacheOptions} that {@link fromEnv} builds its cache from: the variables of
 * {@link EdgecacheEnv}, then `overrides` merged over them. Without an `overrides.store`,
 * the store is `upstashStore` over `UPSTASH_REDIS_REST_URL` and `UPSTASH_REDIS_REST_TOKEN`.
 *
 * @throws InvalidOptionError naming the variable (never its value) when a required one is
 *   missing or one is malformed.
 */
export function optionsFromEnv(env: object, overrides?: Partial<CacheOptions>): CacheOptions {
  if (typeof env !== "object" || env === null) {
    throw new InvalidOptionError("fromEnv needs an environment record (env, process.env, ...)");
  }
  const r = new Reader(env);

  const namespace = r.string("EDGECACHE_NAMESPACE");
  if (namespace !== undefined && !NAMESPACE_PATTERN.test(namespace)) {
    throw new InvalidOptionError(
      "EDGECACHE_NAMESPACE must be 1-128 of letters, digits and _ . : / -",
    );
  }
  const instanceId = r.string("EDGECACHE_INSTANCE_ID");
  if (instanceId !== undefined && !INSTANCE_ID.test(instanceId)) {
    throw new InvalidOptionError("EDGECACHE_INSTANCE_ID must be 1-64 of letters, digits, _ . : -");
  }
  const options: CacheOptions = { store: undefined as unknown as CacheOptions["store"] };
  if (namespace !== undefined) options.namespace = namespace;
  if (instanceId !== undefined) options.instanceId = instanceId;
  const ttl = r.duration("EDGECACHE_TTL", { positive: true });
  if (ttl !== undefined) options.ttl = ttl;
  const jitter = r.fraction("EDGECACHE_JITTER");
  if (jitter !== undefined) options.jitter = jitter;

  if (r.switch("EDGECACHE_L1") === false) options.local = false;
  else {
    const local: LocalOptions = {};
    const maxItems = r.integer("EDGECACHE_L1_MAX_ITEMS", 1);
    const maxBytes = r.size("EDGECACHE_L1_MAX_BYTES");
    if (maxItems !== undefined) local.maxItems = maxItems;
    if (maxBytes !== undefined) local.maxBytes = maxBytes;
    if (Object.keys(local).length > 0) options.local = local;
  }

  if (r.switch("EDGECACHE_BREAKER") === false) options.breaker = false;
  else {
    const threshold = r.integer("EDGECACHE_BREAKER_THRESHOLD", 1);
    const cooldown = r.duration("EDGECACHE_BREAKER_COOLDOWN", { positive: true });
    if (threshold !== undefined || cooldown !== undefined) {
      options.breaker = {
        ...(threshold === undefined ? {} : { threshold }),
        ...(cooldown === undefined ? {} : { cooldown }),
      };
    }
  }

  if (r.switch("EDGECACHE_SYNC") === false) options.sync = false;
  else {
    const sync: SyncOptions = {};
    const maxStaleness = r.duration("EDGECACHE_MAX_STALENESS");
    if (maxStaleness !== undefined) sync.maxStaleness = maxStaleness;
    const hub = hubFromEnv(r);
    if (hub !== undefined) sync.hub = hub;
    if (Object.keys(sync).length > 0) options.sync = sync;
  }

  const merged = merge(options, overrides);
  if (merged.store === undefined) merged.store = storeFromEnv(r);
  return merged;
}

function hubFromEnv(r: Reader): HubOptions | undefined {
  const binding = r.raw("EDGECACHE_HUB");
  const url = r.string("EDGECACHE_HUB_URL");
  const token = r.string("EDGECACHE_HUB_TOKEN");
  if (binding === undefined && url === undefined) {
    if (token !== undefined) {
      throw new InvalidOptionError("EDGECACHE_HUB_TOKEN is set but EDGECACHE_HUB_URL is not");
    }
    return undefined;
  }
  const hub: HubOptions = {};
  if (binding !== undefined) {
    if (typeof (binding as Partial<HubBinding>)?.getByName !== "function") {
      throw new InvalidOptionError(
        "EDGECACHE_HUB must be the InvalidationHub Durable Object binding (for a URL, use EDGECACHE_HUB_URL)",
      );
    }
    hub.binding = binding as HubBinding;
  }
  if (url !== undefined) {
    if (!/^(https?|wss?):\/\/[^\s/]+/.test(url)) {
      throw new InvalidOptionError("EDGECACHE_HUB_URL must be an http(s) or ws(s) URL");
    }
    if (token === undefined) {
      throw new InvalidOptionError("EDGECACHE_HUB_TOKEN is required with EDGECACHE_HUB_URL");
    }
    hub.url = url;
    hub.token = token;
  }
  const shards = r.integer("EDGECACHE_HUB_SHARDS", 1, 256);
  if (shards !== undefined) hub.shards = shards;
  return hub;
}

function storeFromEnv(r: Reader): CacheOptions["store"] {
  const url = r.string("UPSTASH_REDIS_REST_URL");
  if (url === undefined) {
    throw new InvalidOptionError("UPSTASH_REDIS_REST_URL is required (the Redis REST URL)");
  }
  if (!/^https?:\/\/[^\s/]+/.test(url)) {
    throw new InvalidOptionError("UPSTASH_REDIS_REST_URL must be an http(s) URL");
  }
  const token = r.string("UPSTASH_REDIS_REST_TOKEN");
  if (token === undefined) {
    throw new InvalidOptionError("UPSTASH_REDIS_REST_TOKEN is required (the Redis REST token)");
  }
  const storeOptions: UpstashStoreOptions = {};
  const timeout = r.duration("EDGECACHE_L2_TIMEOUT");
  if (timeout !== undefined) storeOptions.timeout = timeout;
  const prefix = r.string("EDGECACHE_L2_PREFIX");
  if (prefix !== undefined) {
    if (!L2_PREFIX.test(prefix)) {
      throw new InvalidOptionError("EDGECACHE_L2_PREFIX must be 1-32 of letters, digits, _ - .");
    }
    storeOptions.prefix = prefix;
  }
  return upstashStore({ url, token }, storeOptions);
}

/**
 * A cache configured by environment variables (see {@link EdgecacheEnv} for the table):
 * `createCache` over `upstashStore`, with `overrides` merged last (`local`, `breaker`,
 * `sync` and `sync.hub` key by key, anything else replacing). `env` is any record: a
 * Worker's `env`, `process.env`, `Deno.env.toObject()`.
 *
 * @throws InvalidOptionError naming the variable (never its value) when
 *   `UPSTASH_REDIS_REST_URL` or `UPSTASH_REDIS_REST_TOKEN` is missing or a variable is
 *   malformed.
 * @example
 * ```ts
 * // A Worker: EDGECACHE_HUB (the Durable Object binding) turns the hub on.
 * let cache: Cache | undefined;
 * export default {
 *   fetch(request: Request, env: Env) {
 *     cache ??= fromEnv(env, { logger: false }); // ...
 *   },
 * };
 * // Node 20, subscribing to the hub: no global WebSocket, so pass one.
 * import WebSocket from "ws";
 * const cache = fromEnv(process.env, { sync: { hub: { WebSocket } } });
 * ```
 * @see docs/environment.md (every variable; shipped in the package).
 */
export function fromEnv(env: object, overrides?: Partial<CacheOptions>): Cache {
  return createCache(optionsFromEnv(env, overrides));
}
