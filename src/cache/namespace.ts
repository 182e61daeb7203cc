import type { Breaker } from "../breaker.js";
import type { CacheOptions, NamespaceOptions } from "../cache-options.js";
import { InvalidOptionError } from "../errors.js";
import { NAMESPACE_PATTERN, type Store } from "../store/contract.js";
import { positiveInt } from "../util/check.js";

/** What a namespace inherits from the cache that made it. */
export interface Inherited {
  store: Store;
  breaker: Breaker | undefined;
  options: NamespaceOptions;
}

/** The full name of namespace `name` of the cache `parent`; refuses a bad name. */
export function namespaceName(parent: string, name: string): string {
  const full = `${parent}/${name}`;
  if (typeof name !== "string" || name.length === 0 || !NAMESPACE_PATTERN.test(full)) {
    throw new InvalidOptionError(
      "a namespace name is letters, digits and _ . : / -, and the full name (parent/name) at most 128 characters",
    );
  }
  return full;
}

/**
 * A namespace's options, checked, and the cache options it is made with: its parent's,
 * with its own name, TTL and L1 budget.
 */
export function namespaceOptions(
  parent: CacheOptions,
  full: string,
  options: NamespaceOptions | undefined,
): { o: NamespaceOptions; childOptions: CacheOptions } {
  const o = (options === undefined ? {} : options) as NamespaceOptions;
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new InvalidOptionError("namespace options must be an object");
  }
  if (o.loadMany !== undefined && typeof o.loadMany !== "function") {
    throw new InvalidOptionError("loadMany must be a function");
  }
  positiveInt("loadConcurrency", o.loadConcurrency, 8);
  const local = o.local !== undefined ? o.local : inheritedLocal(parent.local);
  const childOptions: CacheOptions = { ...parent, namespace: full };
  if (o.ttl !== undefined) childOptions.ttl = o.ttl;
  if (local === undefined) delete childOptions.local;
  else childOptions.local = local;
  return { o, childOptions };
}

/**
 * The L1 settings a namespace takes from its parent: the same bounds, but never the same
 * `LocalCache` instance (one serves one cache only: keys are not prefixed in L1, so two
 * namespaces sharing one would read each other's values).
 */
function inheritedLocal(local: CacheOptions["local"]): CacheOptions["local"] {
  if (typeof local !== "object" || local === null) return local;
  if ("get" in local) return undefined; // an instance: the child gets the built-in L1
  if (local.cache === undefined) return local;
  const { cache: _own, ...bounds } = local;
  return bounds;
}
