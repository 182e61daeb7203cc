/**
 * The cache's side of tracing: what an operation that leaves L1 reports (its L2 requests,
 * hits, misses and loader calls), to whichever tracer is installed (`edgecache/otel`).
 * Nothing here is touched on an L1 hit, and nothing at all without a tracer.
 * @module
 */

/** How far an operation got: L1 answered, L2 answered, or a loader was called. */
export type Tier = "l1" | "l2" | "loader";

/** One operation that left L1, while it runs. */
export interface Op {
  /** L2 requests this operation sent (reads, syncs, writes, leases). */
  requests: number;
  /** Keys answered with a value. */
  hits: number;
  /** Keys nothing fresh was found for in L2. */
  misses: number;
  /** Loader calls it made (a batch loader call counts once). */
  loads: number;
  tier: Tier;
  /**
   * Runs one loader call for `keys` (inside a span of its own, where the tracer makes one);
   * `timedOut` tells a timeout from a failure once it threw.
   */
  load<T>(keys: readonly string[], call: () => Promise<T>, timedOut: () => boolean): Promise<T>;
}

/** What `edgecache/otel` installs on a cache: runs each operation that leaves L1. */
export interface Tracing {
  run<T>(
    operation: string,
    namespace: string,
    keys: readonly string[],
    work: (op: Op) => Promise<T>,
  ): Promise<T>;
}

/** The caches made so far, each with the function that installs (or removes) a tracer. */
const installers = new WeakMap<object, (tracing: Tracing | undefined) => void>();

/** Registers how `cache` takes a tracer (the cache calls this as it is made). */
export function traceable(cache: object, install: (tracing: Tracing | undefined) => void): void {
  installers.set(cache, install);
}

/** Installs `tracing` on `cache` and its namespaces; false when `cache` is not a cache. */
export function installTracing(cache: object, tracing: Tracing | undefined): boolean {
  const install = installers.get(cache);
  if (install === undefined) return false;
  install(tracing);
  return true;
}

/** Runs `work` as one traced operation when `tracing` is on, plainly otherwise. */
export function traced<T>(
  tracing: Tracing | undefined,
  operation: string,
  namespace: string,
  keys: readonly string[],
  work: (op: Op | undefined) => Promise<T>,
): Promise<T> {
  return tracing === undefined ? work(undefined) : tracing.run(operation, namespace, keys, work);
}

/** A loader call, through `op` when the operation is traced. */
export function loading<T>(
  op: Op | undefined,
  keys: readonly string[],
  call: () => Promise<T>,
  timedOut: () => boolean,
): Promise<T> {
  return op === undefined ? call() : op.load(keys, call, timedOut);
}

/** Raises `op`'s tier to `tier` (a loader call outranks L2, L2 outranks L1). */
export function reached(op: Op | undefined, tier: Tier): void {
  if (op === undefined) return;
  if (tier === "loader" || (tier === "l2" && op.tier === "l1")) op.tier = tier;
}
