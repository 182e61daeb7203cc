import { RESERVED } from "../envelope.js";
import { InvalidOptionError } from "../errors.js";
import type { Core } from "./core.js";
import { type Op, reached } from "./trace.js";

/** Most keys one `keys()` call asks the store for. */
export const MAX_KEYS_LIMIT = 1000;

/**
 * One page of the namespace's keys from the store (`Cache.keys`): options checked, the
 * cache's own keys (tag markers) left out. A failed store call rejects with its typed error.
 */
export async function listKeys(
  core: Core,
  options: { prefix?: string; cursor?: string; limit?: number } = {},
  trace?: Op,
): Promise<{ keys: string[]; cursor: string }> {
  if (typeof options !== "object" || options === null) {
    throw new InvalidOptionError("keys options must be an object");
  }
  const { prefix = "", cursor = "", limit = 100 } = options;
  if (typeof prefix !== "string" || typeof cursor !== "string") {
    throw new InvalidOptionError("keys: prefix and cursor must be strings");
  }
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_KEYS_LIMIT) {
    throw new InvalidOptionError(`keys: limit must be a whole number from 1 to ${MAX_KEYS_LIMIT}`);
  }
  const store = core.store;
  if (store.keys === undefined) {
    throw new InvalidOptionError(`keys: the ${store.name} store cannot list keys`);
  }
  let page: Awaited<ReturnType<NonNullable<typeof store.keys>>>;
  if (trace !== undefined) {
    trace.requests++;
    reached(trace, "l2");
  }
  try {
    page = await store.keys(core.name, { prefix, cursor, limit });
  } catch (err) {
    // A cursor the store refused is the caller's mistake, not a store failure.
    if (err instanceof InvalidOptionError) throw err;
    throw core.failed(err, "keys", []);
  }
  return { keys: page.keys.filter((key) => !key.startsWith(RESERVED)), cursor: page.cursor };
}
