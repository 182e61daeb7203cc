// L1 hit ratio of `local: { policy: "tinylfu" }` against the default LRU, on synthetic traces
// from a seeded PRNG (the same traces every run), and the speed of an L1 hit under each.
// The L1s are driven the way the cache drives them: `get`, and on a miss `set`.
//
// Fills the "L1 admission: TinyLFU vs LRU" section of bench/RESULTS.md in `npm run bench`, with
// the policy's goals checked against this run's numbers (bench/results.mjs: alone, it prints only).
// Run: npm run bench   (builds first)
import { loadavg } from "node:os";
import { resolveLocal } from "../dist/local.js";
import { rng } from "../test/rng.mjs";
import { fillSection, mdTable, verdict } from "./results.mjs";

const CAPACITY = 10_000;
const KEYS = 1_000_000;
const ACCESSES = Number(process.env.BENCH_ACCESSES ?? 2_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);

/** Draws ranks 0..n-1 with P(rank r) proportional to 1 / (r + 1)^s. */
function zipf(n, s, random) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let r = 0; r < n; r++) cdf[r] = sum += 1 / (r + 1) ** s;
  for (let r = 0; r < n; r++) cdf[r] /= sum;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

function zipfTrace(s, seed) {
  const next = zipf(KEYS, s, rng(seed));
  const trace = new Int32Array(ACCESSES);
  for (let i = 0; i < ACCESSES; i++) trace[i] = next();
  return trace;
}

/** The zipf 1.0 trace with a scan of 50,000 keys never seen before every 200,000 accesses. */
function scanTrace(seed) {
  const SCAN = 50_000;
  const EVERY = 200_000;
  const base = zipfTrace(1.0, seed);
  const trace = new Int32Array(ACCESSES + Math.floor(ACCESSES / EVERY) * SCAN);
  let fresh = KEYS;
  let j = 0;
  for (let i = 0; i < ACCESSES; i++) {
    trace[j++] = base[i];
    if ((i + 1) % EVERY === 0) for (let k = 0; k < SCAN; k++) trace[j++] = fresh++;
  }
  return trace;
}

/**
 * Recency rules: reads fall uniformly on a working set of `size` keys (below the L1's
 * capacity) that slides forward by one new key every `every` reads. LRU keeps the whole
 * working set and misses only each key's first read: about as well as any policy can.
 */
function slidingTrace(size, every, seed) {
  const random = rng(seed);
  const trace = new Int32Array(ACCESSES);
  for (let i = 0; i < ACCESSES; i++) {
    trace[i] = Math.floor(i / every) + Math.floor(random() * size);
  }
  return trace;
}

// Key strings are made once per trace, so that both policies read the same strings.
let names = [];
function name(id) {
  let key = names[id];
  if (key === undefined) {
    key = `key:${id}`;
    names[id] = key;
  }
  return key;
}

function entry(id) {
  return { value: id, version: 1, expiresAt: Number.POSITIVE_INFINITY, size: 64 };
}

function l1(policy) {
  return resolveLocal({ maxItems: CAPACITY, policy }).cache;
}

function hitRatio(policy, trace) {
  const cache = l1(policy);
  let hits = 0;
  for (let i = 0; i < trace.length; i++) {
    const key = name(trace[i]);
    if (cache.get(key) !== undefined) hits++;
    else cache.set(key, entry(trace[i]));
  }
  if (cache.size > CAPACITY) throw new Error(`${policy} held ${cache.size} entries`);
  return hits / trace.length;
}

// What each trace tests: frequency (and scans) should favour tinylfu, recency the LRU.
const traces = {
  "zipf 0.8, 1M keys": { kind: "frequency", make: () => zipfTrace(0.8, 1) },
  "zipf 1.0, 1M keys": { kind: "frequency", make: () => zipfTrace(1.0, 2) },
  "zipf 1.0 + 50k-key scan every 200k": { kind: "scan", make: () => scanTrace(3) },
  "sliding working set 5k (1 new key / 10 reads)": {
    kind: "recency",
    make: () => slidingTrace(5_000, 10, 4),
  },
  "sliding working set 9k (1 new key / 20 reads)": {
    kind: "recency",
    make: () => slidingTrace(9_000, 20, 5),
  },
};

console.log(
  `L1 hit ratio, capacity ${CAPACITY} entries, ${ACCESSES} accesses per trace, node ${process.version}`,
);
console.log("trace".padEnd(48), "lru".padStart(8), "tinylfu".padStart(8), "diff".padStart(8));
const ratios = [];
for (const [label, { kind, make }] of Object.entries(traces)) {
  const trace = make();
  const lru = hitRatio("lru", trace);
  const lfu = hitRatio("tinylfu", trace);
  ratios.push({ label, kind, lru, lfu });
  const pct = (x) => (x * 100).toFixed(2).padStart(8);
  const diff = ((lfu - lru) * 100).toFixed(2);
  console.log(label.padEnd(48), pct(lru), pct(lfu), `${lfu >= lru ? "+" : ""}${diff}`.padStart(8));
  names = [];
}

// Hit speed: both L1s hold the same 10,000 keys; every read is a hit, keys skewed (zipf 1.0).
const OPS = 1_000_000;
const hot = Array.from({ length: CAPACITY }, (_, i) => `user:${i}`);
const pick = zipf(CAPACITY, 1.0, rng(6));
const order = Array.from({ length: OPS }, () => hot[pick()]);
const contenders = { lru: l1("lru"), tinylfu: l1("tinylfu") };
for (const cache of Object.values(contenders)) {
  for (let i = 0; i < CAPACITY; i++) cache.set(hot[i], entry(i));
  for (const k of hot) if (cache.get(k) === undefined) throw new Error("not all keys held");
}
let sink = 0;
const samples = { lru: [], tinylfu: [] };
for (let round = 0; round < ROUNDS; round++) {
  // Which one runs first turns every round: the place in a round is worth a few percent.
  const turn = Object.entries(contenders);
  if (round % 2 === 1) turn.reverse();
  for (const [label, cache] of turn) {
    const t0 = performance.now();
    for (let i = 0; i < OPS; i++) if (cache.get(order[i]) !== undefined) sink++;
    samples[label].push(OPS / ((performance.now() - t0) / 1000));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const lruSpeed = median(samples.lru);
const lfuSpeed = median(samples.tinylfu);
console.log(`\nL1 get on hits, ${OPS} ops x ${ROUNDS} rounds (median, alternating)`);
console.log("lru".padEnd(10), `${(lruSpeed / 1e6).toFixed(1)} M ops/s`);
console.log(
  "tinylfu".padEnd(10),
  `${(lfuSpeed / 1e6).toFixed(1)} M ops/s`,
  `(${(lfuSpeed / lruSpeed).toFixed(2)} of lru)`,
);
if (sink !== 2 * ROUNDS * OPS) throw new Error("a read missed");

// ---- RESULTS.md ------------------------------------------------------------------------------

// The goals: clearly above the LRU where frequency matters and where scans pollute (by at
// least CLEAR points), within NEAR points of it where recency rules, and a hit no more than
// SLOWER below the LRU's speed.
const CLEAR = 1;
const NEAR = 1;
const SLOWER = 0.1;
const points = (x) => x * 100;
const signed = (x) => `${x >= 0 ? "+" : "-"}${Math.abs(x).toFixed(2)}`;
const goal = (r) => {
  const diff = points(r.lfu - r.lru);
  return r.kind === "recency"
    ? { text: `within ${NEAR} point of lru`, ok: diff >= -NEAR }
    : { text: `at least ${CLEAR} point above lru`, ok: diff >= CLEAR };
};
const ratioTable = mdTable(
  ["trace", "what rules", "`lru`", "`tinylfu`", "difference (points)", "goal"],
  ratios.map((r) => {
    const g = goal(r);
    return [
      r.label,
      r.kind === "scan" ? "frequency, scans" : r.kind,
      `${points(r.lru).toFixed(2)}%`,
      `${points(r.lfu).toFixed(2)}%`,
      signed(points(r.lfu - r.lru)),
      `${g.text}: ${verdict(g.ok)}`,
    ];
  }),
);
const speedRatio = lfuSpeed / lruSpeed;
const speedTable = mdTable(
  ["policy", "M ops/s", "vs lru"],
  [
    ["lru", (lruSpeed / 1e6).toFixed(1), "1.00"],
    ["tinylfu", (lfuSpeed / 1e6).toFixed(1), speedRatio.toFixed(2)],
  ],
);
const margins = (kinds) =>
  ratios
    .filter((r) => kinds.includes(r.kind))
    .map((r) => signed(points(r.lfu - r.lru)))
    .join(", ");
const gaining = ratios.filter((r) => r.kind !== "recency");
const recency = ratios.filter((r) => r.kind === "recency");
fillSection(
  "hit-ratio",
  `\`local: { policy: "tinylfu" }\` against the default LRU on seeded synthetic traces (the same
every run), the L1 driven as the cache drives it (\`get\`, and \`set\` on a miss): capacity
${CAPACITY.toLocaleString("en-US")} entries, ${ACCESSES.toLocaleString("en-US")} accesses per trace (the scan trace adds its scans), hit ratios
(\`bench/hit-ratio.mjs\`; load ${loadavg()[0].toFixed(2)} at the end).

${ratioTable}

L1 get on hits: both L1s hold the same ${CAPACITY.toLocaleString("en-US")} keys, ${OPS.toLocaleString("en-US")} skewed reads (zipf 1.0) per
round, ${ROUNDS} rounds alternating between the two, medians.

${speedTable}

Goals, from the numbers above:
- clearly above the LRU where frequency matters and scans pollute (at least ${CLEAR} point): ${margins(["frequency", "scan"])} points, ${verdict(gaining.every((r) => goal(r).ok))};
- within ${NEAR} point of the LRU where recency rules: ${margins(["recency"])} points, ${verdict(recency.every((r) => goal(r).ok))};
- a hit no more than ${SLOWER * 100}% below the LRU's speed: ${speedRatio.toFixed(2)} of it, ${verdict(speedRatio >= 1 - SLOWER)}.
`,
);
