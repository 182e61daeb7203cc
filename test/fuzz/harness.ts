/**
 * Runs one fuzzed call against a cache on the real Redis behind the bridge and checks its
 * outcome: a refusal is a typed input error that changed nothing (Redis byte-identical,
 * stats unchanged, no value in the error); an acceptance is checked by the caller.
 * @module
 */
import { inspect } from "node:util";
import fc from "fast-check";
import { inject } from "vitest";
import { type Cache, type CacheStats, createCache, EdgeCacheError } from "../../src/index.js";
import type { Store } from "../../src/store/contract.js";
import { freshNamespace } from "../../src/store/suite-case.js";
import { upstashStore } from "../../src/stores/upstash.js";
import { named } from "./config.js";
import { CACHE_TTL } from "./inputs.js";
import { MARKER, MAX_VALUE_BYTES } from "./values.js";
import type { Verdict } from "./verdict.js";

export const url = inject("bridgeUrl");
export const token = inject("bridgeToken");
export const store: Store = named(upstashStore({ url, token }), "upstashStore(bridge)");

/**
 * Runs per property: `EDGECACHE_FUZZ_RUNS` (default 150). A failure prints its seed and
 * path; `EDGECACHE_FUZZ_SEED` (and `EDGECACHE_FUZZ_PATH`, to go straight to the shrunk
 * case) replays it.
 */
export function fuzzParameters(): { numRuns: number; seed?: number; path?: string } {
  const runs = Number(process.env.EDGECACHE_FUZZ_RUNS ?? DEFAULT_RUNS);
  const seed = process.env.EDGECACHE_FUZZ_SEED;
  const path = process.env.EDGECACHE_FUZZ_PATH;
  return {
    numRuns: Number.isSafeInteger(runs) && runs > 0 ? runs : DEFAULT_RUNS,
    ...(seed ? { seed: Number(seed) } : {}),
    ...(seed && path ? { path } : {}),
  };
}

const DEFAULT_RUNS = 150;

/** A test's time budget for `numRuns` runs of about `perRun` ms each. */
export const budget = (perRun: number) => Math.max(60_000, fuzzParameters().numRuns * perRun * 3);

/** The codes of "your input is wrong": nothing else may come out of a refused call. */
export const INPUT_CODES = [
  "EC_INVALID_KEY",
  "EC_INVALID_OPTION",
  "EC_SERIALIZE",
  "EC_VALUE_TOO_LARGE",
];

export type SerializerName = "superjson" | "json";
export const serializerName = fc.constantFrom<SerializerName>("superjson", "json");

// ---- Redis snapshots ----------------------------------------------------------------------

/** Every key of a namespace, a digest of its DUMP, and its PTTL (DUMP leaves the TTL out). */
const SNAPSHOT = `
local keys = redis.call('KEYS', ARGV[1])
table.sort(keys)
local out = {}
for _, k in ipairs(keys) do
  out[#out + 1] = k
  out[#out + 1] = redis.sha1hex(redis.call('DUMP', k))
  out[#out + 1] = redis.call('PTTL', k)
end
return out`;

interface Snapshot {
  keys: string[];
  dumps: Map<string, string>;
  pttls: Map<string, number>;
}

/** DUMPs every Redis key of `ns` in one script, through the bridge, base64 on the wire. */
export async function snapshot(ns: string): Promise<Snapshot> {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "upstash-encoding": "base64" },
    body: JSON.stringify(["EVAL", SNAPSHOT, 0, `ec:{${ns}}:*`]),
  });
  const body = (await res.json()) as { result?: Array<string | number>; error?: string };
  if (!Array.isArray(body.result)) throw new Error(`snapshot failed: ${body.error}`);
  const text = (b64: unknown) => Buffer.from(String(b64), "base64").toString("utf8");
  const snap: Snapshot = { keys: [], dumps: new Map(), pttls: new Map() };
  for (let i = 0; i < body.result.length; i += 3) {
    const key = text(body.result[i]);
    snap.keys.push(key);
    snap.dumps.set(key, text(body.result[i + 1]));
    snap.pttls.set(key, Number(body.result[i + 2]));
  }
  return snap;
}

/** What changed between two snapshots; a TTL may only have counted down. */
export function changes(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  const show = (k: string) => JSON.stringify(k);
  for (const k of after.keys) if (!before.dumps.has(k)) out.push(`added ${show(k)}`);
  for (const k of before.keys) {
    if (!after.dumps.has(k)) out.push(`removed ${show(k)}`);
    else if (after.dumps.get(k) !== before.dumps.get(k)) out.push(`DUMP changed: ${show(k)}`);
    else {
      const was = before.pttls.get(k)!;
      const now = after.pttls.get(k)!;
      if (was < 0 !== now < 0 || now > was) out.push(`PTTL ${was} -> ${now}: ${show(k)}`);
    }
  }
  return out;
}

// ---- namespaces ---------------------------------------------------------------------------

/**
 * A namespace per property, renewed every 250 runs so that long runs do not snapshot ever
 * more keys. A first write creates its version counter and change log, which reads expect.
 */
export function namespaces(label: string) {
  let ns = "";
  let used = 0;
  let admin: Cache | undefined;
  return {
    async next(): Promise<{ ns: string; admin: Cache }> {
      if (admin === undefined || used++ >= 250) {
        await admin?.close();
        used = 1;
        ns = freshNamespace(`fuzz-${label}`);
        admin = createCache({ store, namespace: ns, ttl: CACHE_TTL, logger: false });
        await admin.set("warm-up", 1);
      }
      return { ns, admin };
    },
    async close(): Promise<void> {
      await admin?.close();
    },
  };
}

// ---- one call -----------------------------------------------------------------------------

/** A cache under test with what it reported. */
export interface Probe {
  cache: Cache;
  reported: EdgeCacheError[];
  logged: unknown[][];
}

/** The cache a fuzzed call runs on: fresh per run, so each run starts cold. */
export function openProbe(ns: string, serializer: SerializerName): Probe {
  const reported: EdgeCacheError[] = [];
  const logged: unknown[][] = [];
  const log = (...line: unknown[]) => void logged.push(line);
  const cache = createCache({
    store,
    namespace: ns,
    serializer,
    ttl: CACHE_TTL,
    maxValueBytes: MAX_VALUE_BYTES,
    onError: (e) => void reported.push(e),
    logger: { warn: log, error: log, info: log, debug: log },
    logInterval: 0,
  });
  return { cache, reported, logged };
}

/** Reads `keys` back through a cache that never saw them (nothing from L1). */
export async function readBack(ns: string, serializer: SerializerName, keys: string[]) {
  const reported: EdgeCacheError[] = [];
  const reader = createCache({
    store,
    namespace: ns,
    serializer,
    local: false,
    logger: false,
    onError: (e) => void reported.push(e),
  });
  try {
    const values = await reader.getMany(keys);
    if (reported.length > 0) {
      throw new Error(`reading back reported ${reported.map((e) => e.code).join(", ")}`);
    }
    return values;
  } finally {
    await reader.close();
  }
}

/** Throws unless the marker (a cached value) is absent from `what` as `inspect` prints it. */
export function noMarker(what: unknown, where: string): void {
  const text = typeof what === "string" ? what : inspect(what, { depth: 10 });
  if (text.includes(MARKER)) throw new Error(`the value leaked into ${where}: ${text}`);
  if (text.includes(token)) throw new Error(`the bridge token leaked into ${where}`);
}

/** Throws unless `error` is a typed input error that does not quote the value. */
export function checkRefusal(error: unknown, what: string): EdgeCacheError {
  if (!(error instanceof EdgeCacheError)) {
    const kind = error instanceof Error ? error.constructor.name : typeof error;
    throw new Error(`${what}: threw a ${kind}, not an EdgeCacheError: ${inspect(error)}`);
  }
  if (!INPUT_CODES.includes(error.code)) {
    throw new Error(`${what}: threw ${error.code} (${error.message}), not an input error`);
  }
  noMarker(error.message, "the error message");
  noMarker(error, "inspect(error)");
  return error;
}

const settled = async (call: () => unknown) => {
  try {
    return { ok: true as const, value: await call() };
  } catch (error) {
    return { ok: false as const, error };
  }
};

/** Counters a refused call must leave alone (all of them: it did nothing). */
function statsChanges(before: CacheStats, after: CacheStats): string[] {
  const out: string[] = [];
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  for (const field of Object.keys(a)) {
    if (JSON.stringify(a[field]) !== JSON.stringify(b[field])) {
      out.push(`${field}: ${JSON.stringify(a[field])} -> ${JSON.stringify(b[field])}`);
    }
  }
  return out;
}

/** One fuzzed call. */
export interface Call {
  ns: string;
  serializer: SerializerName;
  verdict: Verdict;
  /** What the call is, for the report. */
  what: string;
  run(cache: Cache): unknown;
  /** Before the snapshot: put what the call reads or deletes in place. */
  setup?(): Promise<void>;
  /** After an accepted call: its effect. */
  accepted?(result: unknown, probe: Probe): Promise<void> | void;
  /** After a refused call: what else must not have happened (a loader call). */
  refused?(): void;
}

/** Outcomes per verdict (`ok accepted`, `bad EC_INVALID_KEY`...), for `EDGECACHE_FUZZ_STATS=1`. */
export const tally = new Map<string, number>();
const count = (what: string) => tally.set(what, (tally.get(what) ?? 0) + 1);

/** Runs `call` and checks the outcome against its verdict (see the module comment). */
export async function check(call: Call): Promise<void> {
  const probe = openProbe(call.ns, call.serializer);
  try {
    await call.setup?.();
    const before = await snapshot(call.ns);
    const stats = probe.cache.stats();
    const outcome = await settled(() => call.run(probe.cache));
    const op = call.what.slice(0, call.what.indexOf("("));
    count(
      `${op} ${call.verdict} ${outcome.ok ? "accepted" : (outcome.error as EdgeCacheError).code}`,
    );
    if (!outcome.ok) {
      const error = checkRefusal(outcome.error, call.what);
      if (call.verdict === "ok") {
        throw new Error(`${call.what}: good input refused with ${error.code}: ${error.message}`);
      }
      const changed = changes(before, await snapshot(call.ns));
      if (changed.length > 0) {
        throw new Error(`${call.what}: refused (${error.code}) but Redis changed: ${changed}`);
      }
      const failures = probe.cache.stats().breaker?.failures;
      if (failures !== 0) {
        throw new Error(`${call.what}: refused, yet counted as ${failures} breaker failures`);
      }
      const counters = statsChanges(stats, probe.cache.stats());
      if (counters.length > 0) {
        throw new Error(`${call.what}: refused (${error.code}) but stats changed: ${counters}`);
      }
      if (probe.reported.length > 0) {
        throw new Error(`${call.what}: refused, and also reported ${probe.reported[0]!.code}`);
      }
      call.refused?.();
    } else {
      if (call.verdict === "bad") throw new Error(`${call.what}: bad input accepted`);
      await call.accepted?.(outcome.value, probe);
    }
  } finally {
    await probe.cache.close();
  }
  noMarker(probe.reported, "an error passed to onError");
  noMarker(probe.logged, "a log line");
}
