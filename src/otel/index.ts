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
  type Counter,
  context,
  type Histogram,
  type Meter,
  metrics,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { installTracing, type Op, type Tracing } from "../cache/trace.js";
import { InvalidOptionError } from "../errors.js";
import type { Cache } from "../types.js";
import { closing, counters, errorType, opening } from "./attributes.js";
import { isWorkersTracing, type WorkersTracing, workersTracing } from "./workers.js";

/** Options of {@link instrument}. */
export interface InstrumentOptions {
  /**
   * Where spans go: an OpenTelemetry tracer, or in Cloudflare Workers the runtime's own
   * tracing (`tracing` from `cloudflare:workers`, or `ctx.tracing`), whose spans join the
   * platform's automatic ones (turn on `observability.traces` in the Wrangler config).
   * @default trace.getTracer("edgecache")
   */
  tracer?: Tracer | WorkersTracing;
  /**
   * Where metrics go; `false` for none.
   * @default metrics.getMeter("edgecache"); none with the Workers runtime's tracing
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

/** Metrics instruments, when a meter is given. */
interface Instruments {
  duration: Histogram;
  requests: Counter;
  loads: Counter;
}

function failed(span: Span, error: unknown): void {
  const type = errorType(error);
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, message: type });
}

/** Operations traced with an OpenTelemetry tracer, and measured with its meter. */
function apiTracing(tracer: Tracer, m: Instruments | undefined, recordKeys: boolean): Tracing {
  return {
    async run(operation, namespace, keys, work) {
      const span = tracer.startSpan(`edgecache.${operation}`, {
        kind: SpanKind.INTERNAL,
        attributes: opening(operation, namespace, keys, recordKeys),
      });
      const began = performance.now();
      const parent = trace.setSpan(context.active(), span);
      const op: Op = {
        ...counters(),
        async load(loaded, call, timedOut) {
          const child = tracer.startSpan(
            "edgecache.load",
            {
              kind: SpanKind.INTERNAL,
              attributes: {
                "edgecache.namespace": namespace,
                "edgecache.keys.count": loaded.length,
              },
            },
            parent,
          );
          let outcome: "ok" | "error" | "timeout" = "ok";
          try {
            return await context.with(trace.setSpan(parent, child), call);
          } catch (error) {
            outcome = timedOut() ? "timeout" : "error";
            child.setAttribute("error.type", outcome);
            child.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
            throw error;
          } finally {
            child.setAttribute("edgecache.load.outcome", outcome);
            child.end();
            m?.loads.add(1, {
              "edgecache.namespace": namespace,
              "edgecache.load.outcome": outcome,
            });
          }
        },
      };
      let error: unknown;
      let threw = false;
      try {
        return await context.with(parent, () => work(op));
      } catch (err) {
        threw = true;
        error = err;
        throw err;
      } finally {
        span.setAttributes(closing(op, keys.length));
        if (threw) failed(span, error);
        span.end();
        const common = { "edgecache.namespace": namespace, "edgecache.operation": operation };
        m?.duration.record(performance.now() - began, {
          ...common,
          "edgecache.tier": op.tier,
          "edgecache.outcome": threw ? "error" : "ok",
        });
        if (op.requests > 0) m?.requests.add(op.requests, common);
      }
    },
  };
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
  const recordKeys = options.recordKeys === true;
  const given = options.tracer;
  let meter: Meter | undefined;
  let tracing: Tracing;
  if (isWorkersTracing(given)) {
    // The runtime's spans carry what a meter would; metrics need a meter given explicitly.
    meter = options.meter === false || options.meter === undefined ? undefined : options.meter;
    tracing = workersTracing(given, recordKeys);
  } else {
    meter = options.meter === false ? undefined : (options.meter ?? metrics.getMeter("edgecache"));
    const instruments = meter && {
      duration: meter.createHistogram("edgecache.operation.duration", {
        description: "Duration of cache operations that went to L2 or a loader",
        unit: "ms",
      }),
      requests: meter.createCounter("edgecache.requests", {
        description: "L2 requests sent by cache operations",
      }),
      loads: meter.createCounter("edgecache.loads", { description: "Loader calls" }),
    };
    tracing = apiTracing(given ?? trace.getTracer("edgecache"), instruments, recordKeys);
  }
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
