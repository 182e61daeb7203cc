/**
 * `edgecache/otel`: spans and metrics through `@opentelemetry/api` (an optional peer
 * dependency). Whatever provider the application registers (the Node SDK, a Workers
 * exporter) receives them; with none registered, the API's no-op costs next to nothing.
 *
 * @example
 * ```ts
 * import { instrument } from "edgecache/otel";
 * instrument(cache); // spans from trace.getTracer("edgecache"), metrics from metrics.getMeter("edgecache")
 * ```
 * @see docs/observability.md (shipped in the package)
 * @module
 */
import {
  type Attributes,
  context,
  type Meter,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { installTracing, type Op, type Tier, type Tracing } from "../cache/trace.js";
import { InvalidOptionError, isEdgeCacheError } from "../errors.js";
import type { Cache } from "../types.js";

/** Options of {@link instrument}. */
export interface InstrumentOptions {
  /**
   * Where spans go.
   * @default trace.getTracer("edgecache")
   */
  tracer?: Tracer;
  /**
   * Where metrics go; `false` for none.
   * @default metrics.getMeter("edgecache")
   */
  meter?: Meter | false;
  /**
   * Put key names on spans (`edgecache.key`, or `edgecache.keys` for up to 20 keys). Keys
   * can carry personal data (`user:ada@example.com`), so they are left out unless asked
   * for. Values never appear, nor do the messages of loader errors.
   * @default false
   */
  recordKeys?: boolean;
}

/** The instrumentation of each cache, so that instrumenting it again replaces it. */
const active = new WeakMap<Cache, () => void>();

/** The most key names one span carries with `recordKeys`. */
const MAX_KEY_NAMES = 20;

/** The attributes of an operation's span once it ended. */
function ended(op: Op, single: boolean): Attributes {
  const out: Attributes = {
    "edgecache.tier": op.tier,
    "edgecache.requests": op.requests,
    "edgecache.loader.calls": op.loads,
    "edgecache.hits": op.hits,
    "edgecache.misses": op.misses,
  };
  // One key: whether it was found without a load.
  if (single) out["edgecache.hit"] = op.loads === 0 && op.hits > 0;
  return out;
}

/** What an error is called on a span: its code or class, never its message. */
function errorType(error: unknown): string {
  if (isEdgeCacheError(error)) return error.code;
  return error instanceof Error ? error.name : typeof error;
}

function failed(span: Span, error: unknown): void {
  const type = errorType(error);
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/**
 * Traces every operation of `cache` (and of its namespaces, now and later) that goes to L2
 * or to a loader: one span each, named `edgecache.<operation>` (`get`, `getMany`,
 * `getOrSet`, `getOrSetMany`, `set`, `delete`, `clear`, `invalidateTags`, `inspect`,
 * `keys`, and `refresh` for background refreshes), with `edgecache.namespace`,
 * `edgecache.operation`, `edgecache.keys.count`, `edgecache.tier` (`l1`, `l2` or `loader`),
 * `edgecache.hits`, `edgecache.misses`, `edgecache.hit` (one key), `edgecache.requests` (L2
 * requests) and `edgecache.loader.calls`; a child span `edgecache.load` per loader call. L1
 * hits make no span. Metrics: the histogram `edgecache.operation.duration` (ms), the counters
 * `edgecache.requests` and `edgecache.loads`, and the cache's own counters from `stats()`
 * as observable counters (`edgecache.l1.hits`, `edgecache.l1.misses`, `edgecache.l2.hits`,
 * `edgecache.l2.misses`, `edgecache.stale.served`, `edgecache.errors`). Calling it again
 * replaces the previous instrumentation. Returns a function that removes it.
 * @throws InvalidOptionError when `cache` was not made by `createCache`.
 * @example
 * ```ts
 * import { instrument } from "edgecache/otel";
 * const stop = instrument(cache, { recordKeys: true });
 * ```
 */
export function instrument(cache: Cache, options: InstrumentOptions = {}): () => void {
  if (typeof options !== "object" || options === null) {
    throw new InvalidOptionError("instrument options must be an object");
  }
  active.get(cache)?.();
  const tracer = options.tracer ?? trace.getTracer("edgecache");
  const meter =
    options.meter === false ? undefined : (options.meter ?? metrics.getMeter("edgecache"));
  const recordKeys = options.recordKeys === true;
  const duration = meter?.createHistogram("edgecache.operation.duration", {
    description: "Duration of cache operations that went to L2 or a loader",
    unit: "ms",
  });
  const requests = meter?.createCounter("edgecache.requests", {
    description: "L2 requests sent by cache operations",
  });
  const loads = meter?.createCounter("edgecache.loads", { description: "Loader calls" });

  const tracing: Tracing = {
    start(operation, namespace, keys) {
      const attributes: Attributes = {
        "edgecache.namespace": namespace,
        "edgecache.operation": operation,
        "edgecache.keys.count": keys.length,
      };
      if (recordKeys && keys.length === 1) attributes["edgecache.key"] = keys[0];
      else if (recordKeys && keys.length > 0) {
        attributes["edgecache.keys"] = keys.slice(0, MAX_KEY_NAMES);
      }
      const span = tracer.startSpan(`edgecache.${operation}`, {
        kind: SpanKind.INTERNAL,
        attributes,
      });
      const began = performance.now();
      const parent = trace.setSpan(context.active(), span);
      const op: Op = {
        requests: 0,
        hits: 0,
        misses: 0,
        loads: 0,
        tier: "l1" as Tier,
        loaded(loadedKeys, ms, outcome) {
          const end = Date.now();
          const load = tracer.startSpan(
            "edgecache.load",
            {
              kind: SpanKind.INTERNAL,
              startTime: end - ms,
              attributes: {
                "edgecache.namespace": namespace,
                "edgecache.keys.count": loadedKeys.length,
                "edgecache.load.outcome": outcome,
              },
            },
            parent,
          );
          if (outcome !== "ok") {
            load.setAttribute("error.type", outcome);
            load.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
          }
          load.end(end);
          loads?.add(1, { "edgecache.namespace": namespace, "edgecache.load.outcome": outcome });
        },
        end(error) {
          span.setAttributes(ended(op, keys.length === 1));
          if (error !== undefined) failed(span, error);
          span.end();
          const common = { "edgecache.namespace": namespace, "edgecache.operation": operation };
          duration?.record(performance.now() - began, {
            ...common,
            "edgecache.tier": op.tier,
            "edgecache.outcome": error === undefined ? "ok" : "error",
          });
          if (op.requests > 0) requests?.add(op.requests, common);
        },
      };
      return op;
    },
  };
  if (!installTracing(cache, tracing)) {
    throw new InvalidOptionError("instrument needs a cache made by createCache");
  }

  // The cache's counters as they stand, read when the metrics are collected: nothing is
  // added to the hit path.
  let observe: (() => void) | undefined;
  if (meter !== undefined) {
    const names = {
      l1Hits: "edgecache.l1.hits",
      l1Misses: "edgecache.l1.misses",
      l2Hits: "edgecache.l2.hits",
      l2Misses: "edgecache.l2.misses",
      staleHits: "edgecache.stale.served",
      errors: "edgecache.errors",
    } as const;
    const counters = Object.entries(names).map(
      ([field, name]) =>
        [field as keyof typeof names, meter.createObservableCounter(name)] as const,
    );
    const attributes = { "edgecache.namespace": cache.name };
    const callback = (result: {
      observe(counter: (typeof counters)[number][1], value: number, attributes: Attributes): void;
    }) => {
      let stats: ReturnType<Cache["stats"]>;
      try {
        stats = cache.stats();
      } catch {
        return; // closed: nothing to report
      }
      for (const [field, counter] of counters) result.observe(counter, stats[field], attributes);
    };
    meter.addBatchObservableCallback(
      callback,
      counters.map(([, counter]) => counter),
    );
    observe = () =>
      meter.removeBatchObservableCallback(
        callback,
        counters.map(([, counter]) => counter),
      );
  }
  const stop = () => {
    if (active.get(cache) !== stop) return;
    active.delete(cache);
    installTracing(cache, undefined);
    observe?.();
  };
  active.set(cache, stop);
  return stop;
}
