/**
 * One scenario that every runtime (Node, Deno, Bun, workerd) runs against a real Upstash-REST
 * endpoint over `fetch`, through the BUILT package: `edgecache` and `edgecache/upstash` are
 * imported by name, so they resolve through package.json "exports" (self-reference) to
 * `dist/`, exactly as a user's install would.
 *
 * Plain JavaScript with no Node APIs, so that it runs unchanged everywhere: the entry points
 * (`run.mjs` for Node, Deno and Bun; `test/workers/runtime.test.ts` for workerd) read the
 * connection settings and compare the summary with {@link expectedSummary}.
 *
 * @module
 */

/**
 * Globals a Node-only library would reach for. workerd has them only with `nodejs_compat`,
 * which the vitest pool always turns on, so their absence cannot be left to the runtime to
 * prove: the scenario watches every read of them instead.
 */
const NODE_GLOBALS = ["process", "Buffer"];

/** Where this file lives, to tell its own stack frames apart from the code it watches. */
const SELF_PATH = decodeURIComponent(new URL(import.meta.url).pathname);

/**
 * The package root, two levels up. Frames under `dist/` (or `src/`, once a source map has
 * been applied, as Vite does in workerd) are edgecache's own code; `node_modules` is not.
 */
const ROOT = SELF_PATH.slice(0, SELF_PATH.lastIndexOf("/test/runtimes/") + 1);

/** `path:line:column` at the end of a V8 or JavaScriptCore stack line. */
const LOCATION = /\(?([^\s()]+:\d+:\d+)\)?\s*$/;

/**
 * Where the code that read a global is: the first stack frame that is not this file's.
 * @param {string | undefined} stack
 * @returns {string | undefined}
 */
function accessor(stack) {
  for (const line of (stack ?? "").split("\n").slice(1)) {
    const location = LOCATION.exec(line)?.[1];
    if (location !== undefined && !location.includes(SELF_PATH)) return location;
  }
  return undefined;
}

/**
 * The location relative to the package root if it is edgecache's own code, else undefined.
 * @param {string} location
 * @returns {string | undefined}
 */
function coreLocation(location) {
  if (location.includes("/node_modules/")) return undefined;
  for (const dir of ["dist/", "src/"]) {
    const at = location.indexOf(ROOT + dir);
    if (at !== -1) return location.slice(at + ROOT.length);
  }
  return undefined;
}

/**
 * Replaces each of {@link NODE_GLOBALS} with an accessor that still answers what the runtime
 * has (so dependencies that probe `typeof process` behave as usual) but records every read
 * made directly by edgecache's own code, including reads at import time.
 * @returns {{ readonly touches: string[], stop(): void }}
 */
function watchNodeGlobals() {
  /** @type {Set<string>} */
  const touches = new Set();
  /** @type {Array<() => void>} */
  const restores = [];
  // Capturing a stack may run `Error.prepareStackTrace` (source-map support), which may read
  // these very globals: answer such nested reads without recording them.
  let recording = false;
  for (const name of NODE_GLOBALS) {
    const original = Object.getOwnPropertyDescriptor(globalThis, name);
    if (original && !original.configurable) {
      throw new Error(`globalThis.${name} is not configurable here, so it cannot be watched`);
    }
    /** @type {{ value: unknown } | undefined} */
    let assigned;
    Object.defineProperty(globalThis, name, {
      configurable: true,
      enumerable: original?.enumerable ?? false,
      get() {
        if (!recording) {
          recording = true;
          try {
            const location = accessor(new Error().stack);
            const core = location === undefined ? undefined : coreLocation(location);
            if (core !== undefined) touches.add(`${name} read at ${core}`);
          } finally {
            recording = false;
          }
        }
        if (assigned) return assigned.value;
        if (original?.get) return original.get.call(globalThis);
        return original?.value;
      },
      set(value) {
        assigned = { value };
      },
    });
    restores.push(() => {
      if (original) Object.defineProperty(globalThis, name, original);
      else Reflect.deleteProperty(globalThis, name);
    });
  }
  return {
    get touches() {
      return [...touches];
    },
    stop() {
      for (const restore of restores.splice(0)) restore();
    },
  };
}

/**
 * A JSON-able, type-tagged rendering of a value, so that a summary shows both the value and
 * whether it came back as a real `Date`, `Map`, `Set` or `bigint` rather than a look-alike.
 * @param {unknown} value
 * @returns {unknown}
 */
export function render(value) {
  if (value === undefined) return "<miss>";
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Date) return { $date: value.toISOString() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [render(k), render(v)]) };
  if (value instanceof Set) return { $set: [...value].map(render) };
  if (Array.isArray(value)) return value.map(render);
  if (typeof value === "object" && value !== null) {
    if (Object.getPrototypeOf(value) !== Object.prototype) {
      return { $class: value.constructor?.name ?? "null-prototype" };
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v)]));
  }
  return value;
}

/** The counters of `stats()` that a user would reason about; byte budgets are left out. */
const COUNTERS = [
  "l1Hits",
  "l1Misses",
  "l2Hits",
  "l2Misses",
  "sets",
  "deletes",
  "clears",
  "errors",
  "corrupt",
  "l1Items",
  "l1Evictions",
];

/**
 * @param {{ stats(): Record<string, number> }} cache
 * @returns {Record<string, number>}
 */
function counters(cache) {
  const stats = cache.stats();
  return Object.fromEntries(COUNTERS.map((name) => [name, stats[name]]));
}

/**
 * A value superjson must carry: plain JSON would turn the Date into a string and drop the
 * Map, the Set and the BigInt (beyond 2^53, so a Number would lose digits).
 */
function richValue() {
  return {
    at: new Date(Date.UTC(2024, 1, 29, 12, 34, 56, 789)),
    tags: new Map([
      ["a", 1],
      ["b", [2, 3]],
    ]),
    ids: new Set(["x", "y"]),
    big: 2n ** 70n + 1n,
    text: "héllo ✓ 🐢",
    nothing: null,
  };
}

/**
 * Runs every public operation of the built package against the store at `url`, from
 * three caches over that one namespace: a `writer`, a `reader` (a second instance, as
 * another isolate would be) and a `probe` without L1 that always sees what L2 holds.
 *
 * @param {{ url: string, token: string, namespace: string }} options `namespace` must be
 *   unused by other runs: the scenario clears it.
 * @returns {Promise<Record<string, unknown>>} observations, JSON-able; compare them with
 *   {@link expectedSummary}.
 * @throws when edgecache's own code read `process` or `Buffer`.
 */
export async function runScenario({ url, token, namespace }) {
  const watch = watchNodeGlobals();
  /** @type {Array<{ close(): Promise<void> }>} */
  const caches = [];
  try {
    // Imported only now, so that reads at import time are watched too.
    const { createCache } = await import("edgecache");
    const { upstashStore } = await import("edgecache/upstash");
    /** @param {Record<string, unknown>} options */
    const open = (options) => {
      // One store per cache, as separate isolates would have; a generous timeout because
      // three runtimes share two CI cores.
      const cache = createCache({
        store: upstashStore({ url, token }, { timeout: 10_000 }),
        namespace,
        ttl: 60_000,
        ...options,
      });
      caches.push(cache);
      return cache;
    };
    const writer = open({ local: { maxItems: 100 } });
    const reader = open({ local: { maxItems: 100 } });
    const probe = open({ local: false });
    const neighbour = open({ namespace: `${namespace}.other`, local: false });

    await writer.set("rich", richValue());
    await neighbour.set("rich", "not cleared with the other namespace");
    const fromL2 = await reader.get("rich");
    const fromL1 = await reader.get("rich");
    const many = await reader.getMany(["rich", "absent", "rich"]);

    await writer.setMany([
      ["one", 1],
      ["two", { n: 2 }, { ttl: 30_000 }],
      ["three", [3, "3", 3n]],
    ]);
    const afterSetMany = await reader.getMany(["one", "two", "three"]);

    await writer.delete("one");
    const afterDelete = {
      writerHas: await writer.has("one"),
      probeHas: await probe.has("one"),
    };
    await writer.deleteMany(["two", "three", "never-set"]);
    const afterDeleteMany = await probe.getMany(["two", "three", "never-set"]);

    const hasBeforeClear = {
      writer: await writer.has("rich"),
      probe: await probe.has("rich"),
      missing: await probe.has("absent"),
    };
    await writer.clear();
    const afterClear = {
      writerHas: await writer.has("rich"),
      probe: render(await probe.get("rich")),
      otherNamespace: render(await neighbour.get("rich")),
    };

    // Coherence between instances. With maxStaleness 0 every read checks the change log,
    // so the outcome is exact; `lazy` may serve its L1 copy for an hour.
    const shared = { namespace: `${namespace}.sync`, local: { maxItems: 100 } };
    const a = open({ ...shared, sync: { maxStaleness: 0 } });
    const b = open({ ...shared, sync: { maxStaleness: 0 } });
    const lazy = open({ ...shared, sync: { maxStaleness: 3_600_000 } });
    await a.set("k", "v1");
    const first = { b: await b.get("k"), lazy: await lazy.get("k") };
    await a.set("k", "v2"); // the value itself travels through the log
    const propagated = { b: await b.get("k"), lazy: await lazy.get("k") };
    await a.setWithInvalidate("k", "v3");
    const invalidated = await b.get("k");
    await a.delete("k");
    const deleted = render(await b.get("k"));
    await a.set("j", 1);
    const beforeClear = await b.get("j");
    await a.clear();
    const cleared = render(await b.get("j"));
    const bStats = b.stats();
    const coherence = {
      first,
      propagated,
      invalidated,
      deleted,
      beforeClear,
      cleared,
      b: { changesApplied: bStats.changesApplied, flushes: bStats.flushes },
    };

    // Read-through: a namespace with a loader, coalescing, the lease lock, a sharded store.
    const { shardedStore } = await import("edgecache");
    const loads = [];
    const group = open({ namespace: `${namespace}.rt`, local: { maxItems: 100 } }).namespace(
      "scores",
      {
        loader: async (key, ctx) => {
          loads.push(key);
          await new Promise((r) => setTimeout(r, 20));
          return { key, score: key.length, signal: ctx.signal.aborted };
        },
        ttl: 30_000,
        lock: true,
      },
    );
    const coalesced = await Promise.all([group.get("Tom"), group.get("Tom"), group.get("Tom")]);
    const other = open({ namespace: `${namespace}.rt`, local: false }).namespace("scores");
    const shards = shardedStore([
      upstashStore({ url, token }, { prefix: "rt0", timeout: 10_000 }),
      upstashStore({ url, token }, { prefix: "rt1", timeout: 10_000 }),
    ]);
    const sharded = createCache({ store: shards, namespace: `${namespace}.sh`, local: false });
    caches.push(sharded);
    await sharded.setMany(Array.from({ length: 8 }, (_, i) => [`k${i}`, i]));
    const readThrough = {
      name: group.name.slice(namespace.length),
      coalesced: render(coalesced),
      fromOtherInstance: render(await other.get("Tom")),
      loads,
      stats: { loads: group.stats().loads, coalesced: group.stats().coalesced },
      shards: [...new Set(Array.from({ length: 8 }, (_, i) => shards.shardFor(`k${i}`)))].sort(),
      sharded: render(await sharded.getMany(Array.from({ length: 8 }, (_, i) => `k${i}`))),
      staleWhileRevalidate: await sharded.getOrSet("swr", async () => "loaded", {
        staleWhileRevalidate: 1000,
        lock: true,
      }),
    };

    // Events: a miss, its load and its write, a hit; a listener that throws breaks nothing.
    const watched = open({ namespace: `${namespace}.ev`, logger: false });
    const seen = [];
    for (const event of ["hit", "miss", "set", "load"]) {
      watched.on(event, (p) =>
        seen.push(
          event === "load"
            ? `load:${p.key}:${p.outcome}`
            : `${event}:${p.key ?? p.keys.join(",")}${p.tier ? `:${p.tier}` : ""}`,
        ),
      );
    }
    watched.on("set", () => {
      throw new Error("a listener bug");
    });
    await watched.getOrSet("e", async () => "loaded", { ttl: 30_000 });
    await watched.get("e");
    const events = { seen, value: await watched.get("e") };

    // Batch read-through: 10 keys, 4 of them in L2 = one read, one loader call, one write.
    const seed = open({ namespace: `${namespace}.batch`, local: false });
    await seed.setMany([0, 1, 2, 3].map((i) => [`p${i}`, `stored p${i}`]));
    const bat = open({ namespace: `${namespace}.batch` });
    const batchCalls = [];
    const realFetch = globalThis.fetch;
    let requests = 0;
    globalThis.fetch = (...args) => {
      requests++;
      return realFetch.apply(globalThis, args);
    };
    let values;
    try {
      values = await bat.getOrSetMany(
        Array.from({ length: 10 }, (_, i) => `p${i}`),
        async (missing) => {
          batchCalls.push([...missing]);
          return missing.map((k) => `loaded ${k}`);
        },
        { ttl: 30_000 },
      );
    } finally {
      globalThis.fetch = realFetch;
    }
    const products = bat.namespace("products", {
      loadMany: async (ids) => new Map(ids.map((id) => [id, { id }])),
    });

    // Tracing through edgecache/otel and @opentelemetry/api into the SDK's in-memory exporter.
    const { instrument } = await import("edgecache/otel");
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import(
      "@opentelemetry/sdk-trace-base"
    );
    const exporter = new InMemorySpanExporter();
    const tracer = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    }).getTracer("scenario");
    const traced = open({ namespace: `${namespace}.otel` });
    instrument(traced, { tracer, meter: false });
    await traced.getOrSetMany(["x", "y"], async (keys) => keys);
    await traced.get("x"); // an L1 hit: no span
    const batch = {
      values,
      calls: batchCalls,
      requests,
      group: render(await products.getMany(["a", "b"])),
      spans: exporter
        .getFinishedSpans()
        .map((span) => [
          span.name,
          span.attributes["edgecache.requests"] ?? null,
          span.attributes["edgecache.loader.calls"] ?? null,
          span.parentSpanContext?.spanId === undefined ? "root" : "child",
        ]),
    };

    watch.stop();
    if (watch.touches.length > 0) {
      throw new Error(
        `edgecache's core read Node-only globals (it must run without them): ${watch.touches.join("; ")}`,
      );
    }
    return {
      fromL2: render(fromL2),
      fromL1: render(fromL1),
      // No copyOnRead: the L1 hands back the very object it decoded from L2.
      l1ServesSameObject: fromL1 === fromL2,
      getMany: render(many),
      afterSetMany: render(afterSetMany),
      afterDelete,
      afterDeleteMany: render(afterDeleteMany),
      hasBeforeClear,
      afterClear,
      coherence,
      readThrough,
      events,
      batch,
      stats: {
        writer: counters(writer),
        reader: counters(reader),
        probe: counters(probe),
      },
    };
  } finally {
    watch.stop();
    for (const cache of caches) await cache.close();
  }
}

/**
 * The summary every runtime must produce, exactly.
 * @param {string} runtime added as `runtime`, so a mix-up of binaries shows in the diff.
 * @returns {Record<string, unknown>}
 */
export function expectedSummary(runtime) {
  const rich = render(richValue());
  return {
    runtime,
    fromL2: rich,
    fromL1: rich,
    l1ServesSameObject: true,
    getMany: [rich, "<miss>", rich],
    afterSetMany: [1, { n: 2 }, [3, "3", { $bigint: "3" }]],
    afterDelete: { writerHas: false, probeHas: false },
    afterDeleteMany: ["<miss>", "<miss>", "<miss>"],
    hasBeforeClear: { writer: true, probe: true, missing: false },
    afterClear: {
      writerHas: false,
      probe: "<miss>",
      otherNamespace: "not cleared with the other namespace",
    },
    coherence: {
      first: { b: "v1", lazy: "v1" },
      propagated: { b: "v2", lazy: "v1" },
      invalidated: "v3",
      deleted: "<miss>",
      beforeClear: 1,
      cleared: "<miss>",
      // v2, v3, the delete, j and the clear; the clear dropped b's L1.
      b: { changesApplied: 5, flushes: 1 },
    },
    readThrough: {
      name: ".rt/scores",
      coalesced: Array(3).fill({ key: "Tom", score: 3, signal: false }),
      fromOtherInstance: { key: "Tom", score: 3, signal: false },
      loads: ["Tom"],
      stats: { loads: 1, coalesced: 2 },
      shards: ["0", "1"],
      sharded: [0, 1, 2, 3, 4, 5, 6, 7],
      staleWhileRevalidate: "loaded",
    },
    events: {
      seen: ["miss:e", "load:e:ok", "set:e", "hit:e:l1", "hit:e:l1"],
      value: "loaded",
    },
    batch: {
      values: Array.from({ length: 10 }, (_, i) => (i < 4 ? `stored p${i}` : `loaded p${i}`)),
      calls: [["p4", "p5", "p6", "p7", "p8", "p9"]],
      requests: 2,
      group: [{ id: "a" }, { id: "b" }],
      spans: [
        ["edgecache.load", null, null, "child"],
        ["edgecache.getOrSetMany", 2, 1, "root"],
      ],
    },
    stats: {
      // set/setMany fill the writer's L1, so only reads after a delete or clear miss it.
      writer: {
        l1Hits: 1,
        l1Misses: 2,
        l2Hits: 0,
        l2Misses: 2,
        sets: 4,
        deletes: 4,
        clears: 1,
        errors: 0,
        corrupt: 0,
        l1Items: 0,
        l1Evictions: 0,
      },
      // First read from L2, then L1; "absent" misses both tiers.
      reader: {
        l1Hits: 3,
        l1Misses: 5,
        l2Hits: 4,
        l2Misses: 1,
        sets: 0,
        deletes: 0,
        clears: 0,
        errors: 0,
        corrupt: 0,
        l1Items: 4,
        l1Evictions: 0,
      },
      probe: {
        l1Hits: 0,
        l1Misses: 7,
        l2Hits: 1,
        l2Misses: 6,
        sets: 0,
        deletes: 0,
        clears: 0,
        errors: 0,
        corrupt: 0,
        l1Items: 0,
        l1Evictions: 0,
      },
    },
  };
}
