/**
 * `edgecache/otel` against the OpenTelemetry SDK's in-memory exporter: the same cases run
 * in Node (test/otel/otel.test.ts) and inside workerd (test/workers/otel.test.ts), each on
 * an upstash store through the project's REST bridge.
 */
import { AggregationTemporality, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/cache.js";
import { instrument } from "../../src/otel/index.js";
import type { Store } from "../../src/store/contract.js";
import type { CacheOptions } from "../../src/types.js";

/** A reader that exports only when asked (`collect`). */
class OnDemandReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function telemetry() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new OnDemandReader();
  const meters = new MeterProvider({ readers: [reader] });
  return {
    tracer: provider.getTracer("test"),
    meter: meters.getMeter("test"),
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    /** Every data point's value by metric name (summed over attribute sets). */
    async metrics(): Promise<Map<string, number>> {
      const { resourceMetrics } = await reader.collect();
      const out = new Map<string, number>();
      for (const scope of resourceMetrics.scopeMetrics) {
        for (const metric of scope.metrics) {
          let total = 0;
          for (const point of metric.dataPoints) {
            const v = point.value as number | { count: number };
            total += typeof v === "number" ? v : v.count;
          }
          out.set(metric.descriptor.name, total);
        }
      }
      return out;
    },
  };
}

const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

/** No attribute of any span holds `text`. */
function nowhere(spans: ReadableSpan[], text: string): void {
  for (const span of spans) {
    for (const value of Object.values(span.attributes)) {
      expect(JSON.stringify(value)).not.toContain(text);
    }
    expect(span.status.message ?? "").not.toContain(text);
    expect(JSON.stringify(span.events)).not.toContain(text);
  }
}

export function otelCases(store: () => Store): void {
  const make = (extra: Partial<CacheOptions> = {}) =>
    createCache({
      store: store(),
      namespace: `otel.${crypto.randomUUID()}`,
      ttl: 60_000,
      ...extra,
    });

  describe("edgecache/otel", () => {
    it("a span per operation that leaves L1, none for an L1 hit", async () => {
      const t = telemetry();
      const cache = make();
      instrument(cache, { tracer: t.tracer, meter: t.meter });
      await cache.set("user:1", { name: "Ada" });
      const other = make({ namespace: cache.name });
      instrument(other, { tracer: t.tracer, meter: t.meter });
      t.reset();
      expect(await other.get("user:1")).toEqual({ name: "Ada" });
      expect(await other.get("user:1")).toEqual({ name: "Ada" }); // L1 hit: no span
      expect(await other.get("user:2")).toBeUndefined();
      const gets = named(t.spans(), "edgecache.get");
      expect(gets).toHaveLength(2);
      expect(gets[0]!.attributes).toMatchObject({
        "edgecache.namespace": cache.name,
        "edgecache.operation": "get",
        "edgecache.keys.count": 1,
        "edgecache.tier": "l2",
        "edgecache.requests": 1,
        "edgecache.hit": true,
        "edgecache.hits": 1,
        "edgecache.misses": 0,
        "edgecache.loader.calls": 0,
      });
      expect(gets[1]!.attributes).toMatchObject({ "edgecache.hit": false, "edgecache.misses": 1 });
      // Keys only when asked for.
      expect(gets[0]!.attributes["edgecache.key"]).toBeUndefined();
      await other.close();
      await cache.close();
    });

    it("getOrSet: the loader's tier, 2 requests, and a child span per loader call", async () => {
      const t = telemetry();
      const cache = make();
      instrument(cache, { tracer: t.tracer, meter: t.meter, recordKeys: true });
      expect(await cache.getOrSet("product:1", async () => ({ price: 3 }))).toEqual({ price: 3 });
      const [op] = named(t.spans(), "edgecache.getOrSet");
      expect(op!.attributes).toMatchObject({
        "edgecache.tier": "loader",
        "edgecache.requests": 2,
        "edgecache.loader.calls": 1,
        "edgecache.hit": false,
        "edgecache.key": "product:1",
      });
      const [load] = named(t.spans(), "edgecache.load");
      expect(load!.attributes).toMatchObject({
        "edgecache.load.outcome": "ok",
        "edgecache.keys.count": 1,
      });
      expect(load!.parentSpanContext?.spanId).toBe(op!.spanContext().spanId);
      expect(load!.spanContext().traceId).toBe(op!.spanContext().traceId);
      await cache.close();
    });

    it("getOrSetMany of 10 keys with 6 misses: one span, 2 requests, 1 loader call", async () => {
      const t = telemetry();
      const cache = make();
      const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
      const writer = make({ namespace: cache.name });
      await writer.setMany(keys.slice(0, 4).map((k) => [k, k]));
      instrument(cache, { tracer: t.tracer, meter: t.meter });
      await cache.getOrSetMany(keys, async (missing) => missing.map((k) => `loaded ${k}`));
      const [op] = named(t.spans(), "edgecache.getOrSetMany");
      expect(op!.attributes).toMatchObject({
        "edgecache.keys.count": 10,
        "edgecache.requests": 2,
        "edgecache.loader.calls": 1,
        "edgecache.hits": 4,
        "edgecache.misses": 6,
        "edgecache.tier": "loader",
      });
      expect(named(t.spans(), "edgecache.load")[0]!.attributes["edgecache.keys.count"]).toBe(6);
      await writer.close();
      await cache.close();
    });

    it("errors mark the span with their type, never a message, a key or a value", async () => {
      const t = telemetry();
      const cache = make();
      instrument(cache, { tracer: t.tracer, meter: t.meter });
      await cache.set("secret:key-7f3a", "value-d41d8cd9");
      const other = make({ namespace: cache.name });
      instrument(other, { tracer: t.tracer, meter: t.meter });
      expect(await other.get("secret:key-7f3a")).toBe("value-d41d8cd9");
      await expect(
        cache.getOrSet("fails", async () => {
          throw new TypeError("db said: password=hunter2");
        }),
      ).rejects.toThrow(TypeError);
      const [failed] = named(t.spans(), "edgecache.getOrSet");
      expect(failed!.status.code).toBe(2); // SpanStatusCode.ERROR
      expect(failed!.attributes["error.type"]).toBe("TypeError");
      const [load] = named(t.spans(), "edgecache.load");
      expect(load!.attributes["edgecache.load.outcome"]).toBe("error");
      const spans = t.spans();
      nowhere(spans, "hunter2");
      nowhere(spans, "value-d41d8cd9");
      nowhere(spans, "key-7f3a");
      await other.close();
      await cache.close();
    });

    it("namespaces are traced too, made before or after; stop() ends it all", async () => {
      const t = telemetry();
      const cache = make();
      const before = cache.namespace("before");
      const stop = instrument(cache, { tracer: t.tracer, meter: t.meter });
      const after = cache.namespace("after", { loader: async (k) => k.toUpperCase() });
      await before.set("a", 1);
      expect(await after.get("b")).toBe("B");
      const names = t.spans().map((s) => [s.name, s.attributes["edgecache.namespace"]]);
      expect(names).toContainEqual(["edgecache.set", `${cache.name}/before`]);
      expect(names).toContainEqual(["edgecache.getOrSet", `${cache.name}/after`]);
      stop();
      t.reset();
      await before.set("c", 3);
      await cache.set("d", 4);
      expect(t.spans()).toEqual([]);
      await cache.close();
    });

    it("metrics: operation durations, requests, loads, and the cache's counters", async () => {
      const t = telemetry();
      const cache = make();
      instrument(cache, { tracer: t.tracer, meter: t.meter });
      await cache.getOrSet("m", async () => 1);
      await cache.get("m");
      await cache.get("m");
      const m = await t.metrics();
      expect(m.get("edgecache.operation.duration")).toBe(1);
      expect(m.get("edgecache.requests")).toBe(2);
      expect(m.get("edgecache.loads")).toBe(1);
      expect(m.get("edgecache.l1.hits")).toBe(cache.stats().l1Hits);
      expect(m.get("edgecache.l1.hits")).toBe(2);
      expect(m.get("edgecache.l2.misses")).toBe(cache.stats().l2Misses);
      await cache.close();
    });

    it("refuses what is not a cache", () => {
      const t = telemetry();
      expect(() => instrument({} as never, { tracer: t.tracer, meter: false })).toThrow(
        /createCache/,
      );
    });
  });
}
