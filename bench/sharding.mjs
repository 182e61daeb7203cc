// How evenly shardedStore's consistent-hash ring spreads keys, and how many move when a
// shard is added: exact counts over the keys `key:0`, `key:1`, ... (no timing involved).
//
// For each n: the most and least loaded shard against the mean with n shards, and the
// fraction of keys that move when shard n+1 is appended, against the ideal 1/(n+1). Every
// moved key must land on the new shard ("elsewhere" counts those that do not).
//
// Run: npm run build && node bench/sharding.mjs [replicas ...]
//   with no arguments the default `replicas` is measured; pass numbers to compare others.
//   KEYS=1000000 node bench/sharding.mjs   to count more keys.
import { memoryStore } from "../dist/stores/memory.js";
import { shardedStore } from "../dist/stores/sharded.js";

const KEYS = Number(process.env.KEYS ?? 100_000);
const MAX_N = 10;
const settings = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [undefined];

const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`);
const owners = (n, replicas) => {
  const store = shardedStore(
    Array.from({ length: n }, () => memoryStore()),
    replicas === undefined ? {} : { replicas },
  );
  return keys.map((k) => store.shardFor(k));
};

const rows = [];
let worst = 0;
let worstMove = 0;
let strays = 0;
for (const replicas of settings) {
  let current = owners(2, replicas);
  for (let n = 2; n <= MAX_N; n++) {
    const counts = new Map();
    for (const o of current) counts.set(o, (counts.get(o) ?? 0) + 1);
    const mean = KEYS / n;
    const next = owners(n + 1, replicas);
    let moved = 0;
    let elsewhere = 0;
    for (let i = 0; i < KEYS; i++) {
      if (next[i] === current[i]) continue;
      moved++;
      if (next[i] !== String(n)) elsewhere++;
    }
    const max = Math.max(...counts.values()) / mean;
    const ideal = 1 / (n + 1);
    worst = Math.max(worst, max);
    worstMove = Math.max(worstMove, Math.abs(moved / KEYS / ideal - 1));
    strays += elsewhere;
    rows.push({
      n,
      replicas: replicas ?? "default",
      "max/mean": max.toFixed(3),
      "min/mean": (Math.min(...counts.values()) / mean).toFixed(3),
      "moved (n→n+1)": (moved / KEYS).toFixed(4),
      "1/(n+1)": ideal.toFixed(4),
      "moved/ideal": (moved / KEYS / ideal).toFixed(3),
      elsewhere,
    });
    current = next;
  }
}
console.log(`${KEYS} keys`);
console.table(rows);
console.log(
  `worst max/mean ${worst.toFixed(3)} (goal <= 1.1); worst |moved/ideal - 1| ${worstMove.toFixed(3)}; keys moved to an old shard: ${strays}`,
);
