// L1-hit throughput of the built package against a raw lru-cache on the same keys, in the
// same process and run. Rounds alternate between contenders so that JIT warm-up and
// machine noise hit all of them alike; the median round is reported.
//
// Fills the "L1-hit throughput" section of bench/RESULTS.md in `npm run bench`, with the
// hit-path target checked against this run's numbers (bench/results.mjs: alone, it prints only).
// Run: npm run bench   (builds first)
import { loadavg } from "node:os";
import { LRUCache } from "lru-cache";
import { createCache, memoryStore } from "../dist/index.js";
import { instrument } from "../dist/otel/index.js";
import { fillSection, mdTable, verdict } from "./results.mjs";

const KEYS = 1_000;
const OPS = 1_000_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);

const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
const value = (i) => ({ id: i, name: `user ${i}`, tags: ["a", "b"] });

// The baseline: lru-cache configured like edgecache's default L1 (items and bytes bounded).
const lru = new LRUCache({ max: 10_000, maxSize: 32 << 20, sizeCalculation: () => 64 });
for (let i = 0; i < KEYS; i++) lru.set(keys[i], value(i));

// Coherence stays on (its freshness check is part of every hit) with a window longer than
// the run, so that every read is an L1 hit.
const sync = { maxStaleness: 3_600_000 };
const cache = createCache({ store: memoryStore(), namespace: "bench", ttl: 3_600_000, sync });
await cache.setMany(keys.map((k, i) => [k, value(i)]));
// The same, reading the clock at most once per ms on the hit path (long-lived servers).
const coarse = createCache({
  store: memoryStore(),
  namespace: "bench",
  ttl: 3_600_000,
  clockResolution: 1,
  sync,
});
await coarse.setMany(keys.map((k, i) => [k, value(i)]));

// Traced through edgecache/otel (no provider registered: the API's no-op), and one with a
// `hit` listener: tracing touches only operations that leave L1, a listener every hit.
const traced = createCache({ store: memoryStore(), namespace: "bench", ttl: 3_600_000, sync });
await traced.setMany(keys.map((k, i) => [k, value(i)]));
instrument(traced);
const listened = createCache({ store: memoryStore(), namespace: "bench", ttl: 3_600_000, sync });
await listened.setMany(keys.map((k, i) => [k, value(i)]));
let heard = 0;
listened.on("hit", () => {
  heard++;
});

// BENCH_BASELINE=<dir of another build's dist/> adds that build's `get`, in the same rounds:
// an A/B of the hit path across commits.
const baseline = process.env.BENCH_BASELINE
  ? await import(`${process.env.BENCH_BASELINE.replace(/\/$/, "")}/index.js`)
  : undefined;
const before = baseline?.createCache({
  store: baseline.memoryStore(),
  namespace: "bench",
  ttl: 3_600_000,
  sync,
});
await before?.setMany(keys.map((k, i) => [k, value(i)]));

let sink = 0;
const contenders = {
  "lru-cache get (raw, sync)": () => {
    for (let i = 0; i < OPS; i++) if (lru.get(keys[i % KEYS]) !== undefined) sink++;
  },
  "await lru-cache get (async floor)": async () => {
    for (let i = 0; i < OPS; i++) if ((await lru.get(keys[i % KEYS])) !== undefined) sink++;
  },
  "edgecache await get (L1 hit)": async () => {
    for (let i = 0; i < OPS; i++) if ((await cache.get(keys[i % KEYS])) !== undefined) sink++;
  },
  "edgecache peek (L1 hit, sync)": () => {
    for (let i = 0; i < OPS; i++) if (cache.peek(keys[i % KEYS]) !== undefined) sink++;
  },
  "edgecache await get, clockResolution 1": async () => {
    for (let i = 0; i < OPS; i++) if ((await coarse.get(keys[i % KEYS])) !== undefined) sink++;
  },
  "edgecache peek, clockResolution 1": () => {
    for (let i = 0; i < OPS; i++) if (coarse.peek(keys[i % KEYS]) !== undefined) sink++;
  },
  "edgecache await get, otel instrumented": async () => {
    for (let i = 0; i < OPS; i++) if ((await traced.get(keys[i % KEYS])) !== undefined) sink++;
  },
  "edgecache await get, a hit listener": async () => {
    for (let i = 0; i < OPS; i++) if ((await listened.get(keys[i % KEYS])) !== undefined) sink++;
  },
  ...(before
    ? {
        "baseline build: await get": async () => {
          for (let i = 0; i < OPS; i++)
            if ((await before.get(keys[i % KEYS])) !== undefined) sink++;
        },
      }
    : {}),
};

const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
const entries = Object.entries(contenders);
for (let round = 0; round < ROUNDS; round++) {
  // Each round starts one contender later, so every contender runs at every place in a
  // round as often as the others: the place in a round is worth a few percent.
  const turn = [
    ...entries.slice(round % entries.length),
    ...entries.slice(0, round % entries.length),
  ];
  for (const [name, run] of turn) {
    const t0 = performance.now();
    await run();
    const ms = performance.now() - t0;
    samples[name].push(OPS / (ms / 1000));
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const raw = median(samples["lru-cache get (raw, sync)"]);
const floor = median(samples["await lru-cache get (async floor)"]);
console.log(
  `L1-hit throughput, ${KEYS} keys, ${OPS} ops x ${ROUNDS} rounds (median), node ${process.version}`,
);
console.log(
  "contender".padEnd(42),
  "ops/s".padStart(14),
  "vs raw".padStart(8),
  "vs await floor".padStart(15),
);
for (const name of Object.keys(contenders)) {
  const m = median(samples[name]);
  console.log(
    name.padEnd(42),
    Math.round(m).toLocaleString("en-US").padStart(14),
    (m / raw).toFixed(2).padStart(8),
    (m / floor).toFixed(2).padStart(15),
  );
}
if (heard === 0) throw new Error("the hit listener never ran");
for (const c of [cache, coarse, traced, listened, ...(before ? [before] : [])]) {
  const { l1Misses } = c.stats();
  if (l1Misses !== 0) throw new Error(`expected only L1 hits, saw ${l1Misses} misses`);
}
if (sink === 0) throw new Error("nothing was read");

// ---- RESULTS.md ------------------------------------------------------------------------------

// The hit-path target: with default settings, `await get` at least 0.8 of the async floor,
// and `peek` at least as fast as it.
const GET_TARGET = 0.8;
const PEEK_TARGET = 1.0;
const getRatio = median(samples["edgecache await get (L1 hit)"]) / floor;
const peekRatio = median(samples["edgecache peek (L1 hit, sync)"]) / floor;
const table = mdTable(
  ["contender", "M ops/s", "vs raw `lru.get`", "vs `async (k) => lru.get(k)`"],
  Object.keys(contenders).map((name) => {
    const m = median(samples[name]);
    return [name, (m / 1e6).toFixed(2), (m / raw).toFixed(2), (m / floor).toFixed(2)];
  }),
);
fillSection(
  "l1",
  `${KEYS.toLocaleString("en-US")} keys, ${OPS.toLocaleString("en-US")} reads per round, every read a hit in L1; ${ROUNDS} rounds, the
each round starting one contender later than the last, medians (\`bench/l1.mjs\`; load ${loadavg()[0].toFixed(2)} at the end).
The baseline is lru-cache bounded like edgecache's default L1. The edgecache caches have default
settings apart from a sync window longer than the run, so that every read is an L1 hit (coherence
stays on and its freshness check is part of every hit), and what the row names: \`clockResolution: 1\`,
\`instrument(cache)\` from edgecache/otel (no provider registered), or one \`hit\` listener.

${table}

Hit-path target, default settings (the rows without \`clockResolution\`, otel or a listener):
- \`await get\` at least ${GET_TARGET} of \`async (k) => lru.get(k)\`: ${getRatio.toFixed(2)}, ${verdict(getRatio >= GET_TARGET)};
- \`peek\` at least as fast as \`async (k) => lru.get(k)\`: ${peekRatio.toFixed(2)}, ${verdict(peekRatio >= PEEK_TARGET)}.
`,
);
