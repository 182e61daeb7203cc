/** edgecache/otel inside workerd, with the SDK's in-memory exporter (see test/otel/cases.ts). */
import { env, tracing } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/cache.js";
import { instrument } from "../../src/otel/index.js";
import { memoryStore } from "../../src/stores/memory.js";
import { upstashStore } from "../../src/stores/upstash.js";
import { otelCases } from "../otel/cases.js";

otelCases(() =>
  upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
);

describe("edgecache/otel with the Workers runtime's own tracing", () => {
  it("runs each operation and each loader call inside enterSpan, with the same attributes", async () => {
    const seen: string[] = [];
    const attributes = new Map<string, Record<string, unknown>>();
    // The runtime's tracing, watched: each span's entry, its attributes, and when it settles.
    const watched = {
      enterSpan<T>(name: string, callback: (span: Span) => T): T {
        return tracing.enterSpan(name, (span: Span) => {
          seen.push(`enter ${name}`);
          const own: Record<string, unknown> = {};
          attributes.set(name, own);
          const result = callback({
            isTraced: span.isTraced,
            setAttribute(key: string, value?: boolean | number | string) {
              own[key] = value;
              span.setAttribute(key, value);
            },
          } as Span);
          return Promise.resolve(result).finally(() => seen.push(`exit ${name}`)) as T;
        });
      },
    };
    const cache = createCache({
      store: upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
      namespace: `otel.workers.${crypto.randomUUID()}`,
    });
    instrument(cache, { tracer: watched, recordKeys: true });
    expect(await cache.getOrSet("k", async () => "v")).toBe("v");
    expect(await cache.get("k")).toBe("v"); // an L1 hit: no span
    expect(seen).toEqual([
      "enter edgecache.getOrSet",
      "enter edgecache.load",
      "exit edgecache.load",
      "exit edgecache.getOrSet",
    ]);
    expect(attributes.get("edgecache.getOrSet")).toMatchObject({
      "edgecache.namespace": cache.name,
      "edgecache.key": "k",
      "edgecache.tier": "loader",
      "edgecache.requests": 2,
      "edgecache.loader.calls": 1,
      "edgecache.hit": false,
    });
    expect(attributes.get("edgecache.load")).toMatchObject({ "edgecache.load.outcome": "ok" });
    await cache.close();
  });

  it("takes the runtime's tracing as it is typed", () => {
    const cache = createCache({ store: memoryStore(), namespace: "typed" });
    // `tracing` from cloudflare:workers is accepted as the tracer, no cast needed.
    const stop = instrument(cache, { tracer: tracing });
    stop();
  });
});
