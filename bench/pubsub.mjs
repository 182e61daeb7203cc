// Redis pub/sub propagation (sync.pubsub) on loopback with the real pieces: redis-server and
// the Upstash-REST bridge, whose SSE subscribe carries the change records the write script
// publishes.
//
// Measures, like bench/hub.mjs does for the hub: from `await writer.set(k, v)` resolving to
// the new value being in the L1 of each of BENCH_SUBSCRIBERS caches (separate createCache
// instances in this process, each with its own stream), over BENCH_SETS sets per phase, with
// a pause before each set of BENCH_GAP_MS (one phase each: spaced, then back to back).
//
// In `npm run bench` it fills the "Pub/sub propagation" section of bench/RESULTS.md
// (bench/results.mjs: alone, it prints only).
// Run: node bench/pubsub.mjs (needs a current build in dist/; npm run bench builds first)
// Knobs (env): BENCH_SUBSCRIBERS=100 BENCH_SETS=200 BENCH_WARMUP_SETS=10 BENCH_GAP_MS=60,0
//   BENCH_SET_TIMEOUT=2000 (ms per set) BENCH_MAX_STALENESS=60000 (subscribers' window)
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { fillSection, mdTable } from "./results.mjs";

if (!existsSync(new URL("../dist/index.js", import.meta.url))) {
  console.error("bench/pubsub: dist/ is missing: run `npm run build` first");
  process.exit(1);
}
const { createCache } = await import("edgecache");
const { startRedisServer, startRestBridge } = await import("edgecache/node");
const { upstashStore } = await import("edgecache/upstash");

const int = (name, fallback, min = 1) => {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}`);
  return n;
};
const SUBSCRIBERS = int("BENCH_SUBSCRIBERS", 100);
const SETS = int("BENCH_SETS", 200);
const WARMUP_SETS = int("BENCH_WARMUP_SETS", 10, 0);
const GAPS = (process.env.BENCH_GAP_MS ?? "60,0").split(",").map(Number);
const SET_TIMEOUT = int("BENCH_SET_TIMEOUT", 2_000);
const MAX_STALENESS = int("BENCH_MAX_STALENESS", 60_000);
const TOKEN = "bench-pubsub-token";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise((resolve) => setImmediate(resolve));
const percentile = (sorted, q) =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
const summarize = (values) => {
  const s = Float64Array.from(values).sort();
  const r = (x) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    p50: r(percentile(s, 0.5)),
    p90: r(percentile(s, 0.9)),
    p99: r(percentile(s, 0.99)),
    max: r(s[s.length - 1]),
  };
};

const redis = await startRedisServer();
const bridge = await startRestBridge({ redisUrl: redis.url, token: TOKEN });
const caches = [];
try {
  const results = [];
  for (const gap of GAPS) {
    const namespace = `bench-pubsub-${gap}-${Date.now()}`;
    const make = (pubsub) => {
      const cache = createCache({
        store: upstashStore({ url: bridge.url, token: TOKEN }),
        namespace,
        logger: false,
        sync: { maxStaleness: MAX_STALENESS, pubsub },
      });
      caches.push(cache);
      return cache;
    };
    const writer = make({ subscribe: false });
    const subscribers = Array.from({ length: SUBSCRIBERS }, () => make(true));
    const key = "bench:hot";
    await writer.set(key, -1);
    const t0 = performance.now();
    while (!subscribers.every((c) => c.stats().pubsub?.healthy)) {
      if (performance.now() - t0 > 30_000) throw new Error("subscribers never became healthy");
      await sleep(10);
    }
    const connectMs = performance.now() - t0;
    const initial = await Promise.all(subscribers.map((c) => c.get(key)));
    if (initial.some((v) => v !== -1)) throw new Error("a subscriber missed the initial value");

    const samples = [];
    let timeouts = 0;
    for (let i = 0; i < WARMUP_SETS + SETS; i++) {
      if (gap > 0) await sleep(gap);
      const seenAt = new Float64Array(SUBSCRIBERS).fill(Number.NaN);
      let seen = 0;
      let resolvedAt = Number.NaN;
      // Watches every subscriber's L1 from before the write starts, one event-loop turn at a
      // time, so that a value arriving even before `set` resolves is caught.
      const watching = (async () => {
        const end = performance.now() + SET_TIMEOUT;
        while (seen < SUBSCRIBERS && performance.now() < end) {
          const now = performance.now();
          for (let j = 0; j < SUBSCRIBERS; j++) {
            if (Number.isNaN(seenAt[j]) && subscribers[j].peek(key) === i) {
              seenAt[j] = now;
              seen++;
            }
          }
          await turn();
        }
      })();
      await writer.set(key, i);
      resolvedAt = performance.now();
      await watching;
      if (seen < SUBSCRIBERS) timeouts++;
      if (i < WARMUP_SETS) continue;
      for (const at of seenAt) if (!Number.isNaN(at)) samples.push(Math.max(0, at - resolvedAt));
    }
    const errors = subscribers.reduce((n, c) => n + (c.stats().errors ?? 0), 0);
    results.push({
      gap,
      connectMs: Math.round(connectMs),
      timeouts,
      errors,
      ...summarize(samples),
    });
    await Promise.all([writer, ...subscribers].map((c) => c.close()));
    caches.length = 0;
  }
  console.log(
    `pub/sub propagation: ${SUBSCRIBERS} subscribers (SSE streams through the bridge), ${SETS} sets per phase, ` +
      `ms from set() resolving to the value in each L1; load ${loadavg()[0].toFixed(2)}, node ${process.version}`,
  );
  console.log(
    "phase                  samples   p50     p90     p99     max     timeouts  connect ms",
  );
  for (const r of results) {
    const name = r.gap > 0 ? `spaced (${r.gap} ms apart)` : "back to back";
    console.log(
      `${name.padEnd(23)}${String(r.n).padEnd(10)}${String(r.p50).padEnd(8)}${String(r.p90).padEnd(8)}${String(r.p99).padEnd(8)}${String(r.max).padEnd(8)}${String(r.timeouts).padEnd(10)}${r.connectMs}`,
    );
  }
  if (process.env.BENCH_JSON) console.log(JSON.stringify(results));
  const table = mdTable(
    ["writes", "samples", "p50", "p90", "p99", "max", "rounds timed out", "errors", "connect ms"],
    results.map((r) => [
      r.gap > 0 ? `spaced (${r.gap} ms apart)` : "back to back",
      `${r.n}/${SETS * SUBSCRIBERS}`,
      ...[r.p50, r.p90, r.p99, r.max].map((x) => x.toFixed(2)),
      r.timeouts,
      r.errors,
      r.connectMs,
    ]),
  );
  fillSection(
    "pubsub",
    `\`sync.pubsub\` with a real redis-server and the REST bridge on loopback, whose SSE subscribe
carries the change records the write script publishes; one writer and ${SUBSCRIBERS} subscriber caches in
one Node process, each with its own stream. Milliseconds from the writer's \`set()\` resolving to
the new value being in each subscriber's L1 (every subscriber's L1 watched each event-loop turn),
over ${SETS} sets per phase after ${WARMUP_SETS} unmeasured ones, spaced and then back to back; a round
gives up after ${SET_TIMEOUT} ms. \`bench/pubsub.mjs\`; load ${loadavg()[0].toFixed(2)} at its end.

${table}
`,
  );
} finally {
  await Promise.all(caches.map((c) => c.close()));
  await bridge.close();
  await redis.close();
}
