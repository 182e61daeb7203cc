import type { Op } from "../cache/trace.js";
import { isEdgeCacheError } from "../errors.js";

/** The most key names one span carries with `recordKeys`. */
const MAX_KEY_NAMES = 20;

/** A span attribute's value, as both OpenTelemetry and the Workers runtime take them. */
export type Value = string | number | boolean | string[];

/** The attributes an operation's span starts with. */
export function opening(
  operation: string,
  namespace: string,
  keys: readonly string[],
  recordKeys: boolean,
): Record<string, Value> {
  const out: Record<string, Value> = {
    "edgecache.namespace": namespace,
    "edgecache.operation": operation,
    "edgecache.keys.count": keys.length,
  };
  if (recordKeys && keys.length === 1) out["edgecache.key"] = keys[0]!;
  else if (recordKeys && keys.length > 0) out["edgecache.keys"] = keys.slice(0, MAX_KEY_NAMES);
  return out;
}

/** The attributes of an operation's span once it ended. */
export function closing(op: Op, keys: number): Record<string, Value> {
  const out: Record<string, Value> = {
    "edgecache.tier": op.tier,
    "edgecache.requests": op.requests,
    "edgecache.loader.calls": op.loads,
    "edgecache.hits": op.hits,
    "edgecache.misses": op.misses,
  };
  // One key: whether it was found without a load.
  if (keys === 1) out["edgecache.hit"] = op.loads === 0 && op.hits > 0;
  return out;
}

/** What an error is called on a span: its code or class, never its message. */
export function errorType(error: unknown): string {
  if (isEdgeCacheError(error)) return error.code;
  return error instanceof Error ? error.name : typeof error;
}

/** An operation's counters, before it has done anything. */
export function counters(): Pick<Op, "requests" | "hits" | "misses" | "loads" | "tier"> {
  return { requests: 0, hits: 0, misses: 0, loads: 0, tier: "l1" };
}
