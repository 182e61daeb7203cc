// Stampede protection, measured, against a local redis-server (behind the REST bridge for the
// REST clients). Two parts:
//
// 1. edgecache alone: N Node processes (each one cache) ask for one cold key M times each at
//    the same moment, with a 200 ms origin behind the loader. Prints how often the loader
//    ran, with and without `lock: true` (test/stampede/run.mjs).
// 2. edgecache beside the caches users would pick instead, in the same shape: N processes,
//    each firing M concurrent read-through calls of one cold key, a loader that sleeps
//    BENCH_STAMPEDE_LOAD_MS (100 ms) and prints a line the parent counts. Every contender
//    runs on a flushed redis-server with a new key, in its own processes, through its
//    library's documented read-through call with its defaults (bench/stampede-instance.mjs).
//
// Both parts fill the "Cross-process stampede" section that bench/peers.mjs leaves in
// bench/RESULTS.md earlier in the same `npm run bench` (and part 2 writes bench/stampede.svg);
// run alone, it only prints, unless BENCH_STAMPEDE_WRITE=1 (see bench/results.mjs).
// Usage: node bench/stampede.mjs [instances=5] [perInstance=200] [rounds=3]
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { startRedisServer, startRestBridge } from "edgecache/node";
import { RespConnection } from "../dist/node/resp.js";
import { fleet } from "../test/stampede/fleet.mjs";
import { runStampede } from "../test/stampede/run.mjs";
import { barChart } from "./chart.mjs";
import { fillSection } from "./results.mjs";

const instances = Number(process.argv[2] ?? 5);
const perInstance = Number(process.argv[3] ?? 200);
const rounds = Number(process.argv[4] ?? 3);
const loadMs = Number(process.env.BENCH_STAMPEDE_LOAD_MS ?? 100);

const INSTANCE = new URL("./stampede-instance.mjs", import.meta.url);

// What each library does against a stampede, read from its code in node_modules.
const CONTENDERS = [
  {
    id: "edgecache-lock",
    name: "edgecache getOrSet, `lock: true`",
    coordination: "lease in Redis, across processes",
  },
  {
    id: "edgecache",
    name: "edgecache getOrSet (no lock)",
    coordination: "in-process coalescing only",
  },
  {
    id: "bentocache",
    name: "bentocache getOrSet (memory L1 + Redis L2)",
    coordination: "in-process mutex per key only",
  },
  {
    id: "cache-manager",
    name: "cache-manager 7 wrap (Keyv memory + @keyv/redis)",
    coordination: "in-process coalescing only",
  },
  {
    id: "unkey",
    name: "@unkey/cache swr (memory + Upstash store)",
    coordination: "in-process dedupe only",
  },
  {
    id: "cachified",
    name: "cachified (ioredis cache)",
    coordination: "in-process pending values only",
  },
];

/** One run of one contender: `instances` processes, `perInstance` concurrent calls each. */
async function runContender(contender, env) {
  const config = {
    contender: contender.id,
    key: `stampede:${randomUUID()}`,
    loadMs,
    perInstance,
    redisUrl: env.redisUrl,
    restUrl: env.restUrl,
    token: env.token,
  };
  let loaderCalls = 0;
  const instancesOf = await fleet(INSTANCE.pathname, config, instances, (line) => {
    if (line === "load") loaderCalls++;
  });
  try {
    const { results, started, lastResult } = await instancesOf.go();
    const counted = results.reduce((n, r) => n + r.loads, 0);
    if (counted !== loaderCalls) {
      throw new Error(`${contender.id}: ${loaderCalls} load lines but ${counted} loads reported`);
    }
    return {
      loaderCalls,
      // Until the last process had all its answers (not until it had disconnected).
      ms: Math.round(lastResult - started),
      rejected: results.reduce((n, r) => n + r.rejected, 0),
      errors: [...new Set(results.flatMap((r) => r.errors))],
      distinct: new Set(results.flatMap((r) => r.distinct)).size,
    };
  } finally {
    instancesOf.kill();
  }
}

async function comparePeers(env, redis) {
  const rows = [];
  for (const contender of CONTENDERS) {
    const runs = [];
    for (let round = 1; round <= rounds; round++) {
      await redis.command(["FLUSHALL"]);
      const r = await runContender(contender, env);
      // The value reached the shared Redis (the warm-up reads write nothing).
      if (Number(await redis.command(["DBSIZE"])) === 0) {
        throw new Error(`${contender.id} wrote nothing to Redis`);
      }
      if (r.rejected > 0) {
        console.warn(`${contender.id}: ${r.rejected} calls failed: ${r.errors.join("; ")}`);
      }
      console.log(
        `${contender.name.padEnd(52)}${String(round).padEnd(7)}${String(r.loaderCalls).padEnd(14)}${String(r.distinct).padEnd(17)}${String(r.rejected).padEnd(8)}${r.ms}`,
      );
      runs.push(r);
    }
    rows.push({ ...contender, runs });
  }
  return rows;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const redis = await startRedisServer();
const token = randomUUID();
const bridge = await startRestBridge({ redisUrl: redis.url, token });
const resp = new RespConnection(redis.url);
const edgeRounds = [];
let peers;
try {
  console.log(
    `stampede: ${instances} processes x ${perInstance} concurrent getOrSet of one cold key, 200 ms loader`,
  );
  console.log("lock    round  loader calls  lease waits  distinct values  wall ms");
  for (const lock of [true, false]) {
    for (let round = 1; round <= rounds; round++) {
      const r = await runStampede({ url: bridge.url, token, instances, perInstance, lock });
      if (r.rejected > 0) throw new Error(`${r.rejected} gets failed`);
      console.log(
        `${String(lock).padEnd(8)}${String(round).padEnd(7)}${String(r.loaderCalls).padEnd(14)}${String(r.lockWaits).padEnd(13)}${String(r.distinct.length).padEnd(17)}${r.ms}`,
      );
      edgeRounds.push({ lock, round, ...r });
    }
  }

  console.log(
    `\ncross-process stampede, every cache: ${instances} processes x ${perInstance} concurrent read-through calls of one cold key, ${loadMs} ms loader, flushed redis-server per run`,
  );
  console.log(`${"contender".padEnd(52)}round  loader calls  distinct values  failed  wall ms`);
  peers = await comparePeers({ redisUrl: redis.url, restUrl: bridge.url, token }, resp);
} finally {
  await resp.close();
  await bridge.close();
  await redis.close();
}

// ---- report -----------------------------------------------------------------------------------

const table = [
  "| contender | protection across processes | loader calls (each round) | distinct values served | failed calls | wall ms (median) |",
  "|---|---|---|---|---|---|",
  ...peers.map(
    (p) =>
      `| ${p.name} | ${p.coordination} | ${p.runs.map((r) => r.loaderCalls).join(", ")} | ${p.runs.map((r) => r.distinct).join(", ")} | ${p.runs.reduce((n, r) => n + r.rejected, 0)} | ${median(p.runs.map((r) => r.ms))} |`,
  ),
].join("\n");
const edgeTable = [
  "| `lock` | round | loader calls | lease waits | distinct values | wall ms |",
  "|---|---|---|---|---|---|",
  ...edgeRounds.map(
    (r) =>
      `| ${r.lock} | ${r.round} | ${r.loaderCalls} | ${r.lockWaits} | ${r.distinct.length} | ${r.ms} |`,
  ),
].join("\n");
console.log(`\n${table}`);

const section = `${instances} Node processes, each one cache, all on one redis-server; each process fires ${perInstance}
concurrent read-through calls of one cold key at the same moment (${instances * perInstance} calls in all). The loader
sleeps ${loadMs} ms and each call of it is counted. Every contender runs on a flushed redis-server with a new
key, in processes of its own, through its library's documented read-through call with its defaults:
edgecache \`getOrSet\` (REST bridge), bentocache \`getOrSet\` (memory L1, Redis L2 over ioredis, no
bus), cache-manager 7 \`wrap\` (an in-memory Keyv, then Keyv with \`@keyv/redis\`), @unkey/cache \`swr\`
(memory store, then its Upstash store on the REST bridge), cachified (a Redis cache over ioredis
written in the bench, in the shape cachified documents). ${rounds} rounds each; wall time is from "go" until
the last process has all its answers. The second column is what each library's code (in
node_modules) does against a stampede: of these, only edgecache with \`lock: true\` coordinates
across processes; bentocache, cache-manager, @unkey/cache and cachified have no distributed lock
to turn on, so at best they load once per process.

${table}

![Loader calls for a cross-process stampede](stampede.svg)

edgecache alone, the same shape with a 200 ms origin that, with the lock, holds its answer until
every process has loaded or waits on the lease (\`test/stampede/run.mjs\`), so that a process the
machine starts late still finds the load in flight:

${edgeTable}
`;

if (fillSection("stampede", section)) {
  writeFileSync(
    new URL("./stampede.svg", import.meta.url),
    barChart(
      peers.map((p) => ({
        label: p.name.replaceAll("`", ""),
        value: median(p.runs.map((r) => r.loaderCalls)),
      })),
      {
        title: `Loader calls, ${instances} processes x ${perInstance} calls of one cold key (median of ${rounds})`,
        digits: 0,
        labelWidth: 360,
      },
    ),
  );
  console.log("wrote bench/stampede.svg");
}
