// edgecache against the caches users would pick instead, in one process and one run:
//
// 1. L1-hit reads: 10,000 keys, a skewed access pattern, every read a hit in each cache's
//    in-process tier; rounds alternate between contenders (and their order turns every
//    round), medians reported. The floor of any async API over lru-cache is
//    `async (k) => lru.get(k)`.
// 2. Requests to Redis per operation for a mixed workload (reads of warm and cold keys,
//    writes, deletes) from two instances on one redis-server: HTTP requests for the REST
//    clients (edgecache, @unkey/cache through the bridge), commands sent for the TCP one
//    (bentocache with ioredis); and the commands redis-server ran for them (INFO
//    commandstats, which counts a script's inner calls too), so that REST and TCP compare.
//
// Runs first in `npm run bench` and writes bench/RESULTS.md afresh (its header, these two
// sections, and a placeholder for each section the later benches fill in the same run: see
// bench/results.mjs) and bench/results.svg.
// Run: node bench/peers.mjs (after a build; npm run bench builds first).
// Knobs: BENCH_PEER_ROUNDS=9 BENCH_PEER_OPS=500000 BENCH_MIXED_OPS=2000 BENCH_NO_WRITE=1 (print only)
import { readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { cachified } from "@epic-web/cachified";
import { DefaultStatefulContext, Namespace, createCache as unkeyCache } from "@unkey/cache";
import { MemoryStore, UpstashRedisStore } from "@unkey/cache/stores";
import { Redis } from "@upstash/redis";
import { BentoCache, bentostore } from "bentocache";
import { memoryDriver } from "bentocache/drivers/memory";
import { redisDriver } from "bentocache/drivers/redis";
import { createCache as cacheManager } from "cache-manager";
import IORedis from "ioredis";
import { LRUCache } from "lru-cache";
import { createCache, memoryStore } from "../dist/index.js";
import { startRedisServer, startRestBridge } from "../dist/node/index.js";
import { RespConnection } from "../dist/node/resp.js";
import { upstashStore } from "../dist/stores/upstash.js";
import { rng } from "../test/rng.mjs";
import { barChart } from "./chart.mjs";
import { placeholders } from "./results.mjs";

const ROUNDS = Number(process.env.BENCH_PEER_ROUNDS ?? 9);
const OPS = Number(process.env.BENCH_PEER_OPS ?? 500_000);
const MIXED = Number(process.env.BENCH_MIXED_OPS ?? 2_000);
const KEYS = 10_000;

const random = rng(42);
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`);
// Skewed: the low indices are read far more often (about 10% of the keys take half the reads).
const trace = Array.from({ length: OPS }, () => keys[Math.floor(KEYS * random() ** 3)]);
const value = (k) => ({ id: k, name: `user ${k}`, tags: ["a", "b"] });

// Read from node_modules: most of these packages do not export their package.json.
const versions = {};
for (const name of [
  "bentocache",
  "cache-manager",
  "keyv",
  "@keyv/redis",
  "@unkey/cache",
  "@epic-web/cachified",
  "ioredis",
  "lru-cache",
  "@upstash/redis",
]) {
  try {
    const file = new URL(`../node_modules/${name}/package.json`, import.meta.url);
    versions[name] = JSON.parse(readFileSync(file, "utf8")).version;
  } catch {
    versions[name] = "?";
  }
}

// ---- 1. L1-hit reads -----------------------------------------------------------------------

async function hitContenders() {
  const lru = new LRUCache({ max: 20_000 });
  for (const k of keys) lru.set(k, value(k));

  const edge = createCache({
    store: memoryStore(),
    namespace: "bench",
    ttl: 3_600_000,
    logger: false,
  });
  await edge.setMany(keys.map((k) => [k, value(k)]));

  const bento = new BentoCache({
    default: "memory",
    stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 20_000 })) },
  });
  for (const k of keys) await bento.set({ key: k, value: value(k), ttl: "1h" });

  const manager = cacheManager();
  for (const k of keys) await manager.set(k, value(k), 3_600_000);

  const ctx = new DefaultStatefulContext();
  const unkey = unkeyCache({
    user: new Namespace(ctx, {
      stores: [new MemoryStore({ persistentMap: new Map() })],
      fresh: 3_600_000,
      stale: 3_600_000,
    }),
  });
  for (const k of keys) await unkey.user.set(k, value(k));

  const cfLru = new LRUCache({ max: 20_000 });
  for (const k of keys) {
    await cachified({ key: k, cache: cfLru, ttl: 3_600_000, getFreshValue: () => value(k) });
  }

  const check = (v, k) => {
    if (v === undefined || v === null || v.id !== k) throw new Error(`a contender missed ${k}`);
  };
  let sink = 0;
  const loop = async (get) => {
    for (let i = 0; i < OPS; i++) {
      const v = await get(trace[i]);
      if (v !== undefined) sink++;
    }
  };
  // Every contender must answer with the value (a hit) before it is timed.
  for (const k of keys.slice(0, 100)) {
    check(await edge.get(k), k);
    check(await bento.get({ key: k }), k);
    check(await manager.get(k), k);
    check((await unkey.user.get(k)).val, k);
    check(
      await cachified({ key: k, cache: cfLru, ttl: 3_600_000, getFreshValue: () => undefined }),
      k,
    );
  }
  return {
    contenders: {
      "await lru.get (async floor)": () => loop(async (k) => lru.get(k)),
      "edgecache await get": () => loop((k) => edge.get(k)),
      "edgecache peek (sync)": async () => {
        for (let i = 0; i < OPS; i++) if (edge.peek(trace[i]) !== undefined) sink++;
      },
      "cache-manager 7 get": () => loop((k) => manager.get(k)),
      "@unkey/cache get": () => loop(async (k) => (await unkey.user.get(k)).val),
      cachified: () =>
        loop((k) =>
          cachified({ key: k, cache: cfLru, ttl: 3_600_000, getFreshValue: () => value(k) }),
        ),
      "bentocache get (memory L1)": () => loop((k) => bento.get({ key: k })),
    },
    after: async () => {
      const s = edge.stats();
      if (s.l2Hits + s.l2Misses > 0) throw new Error(`edgecache read L2: ${JSON.stringify(s)}`);
      await edge.close();
      await bento.disconnect();
      if (sink === 0) throw new Error("nothing was read");
    },
  };
}

async function measureHits() {
  const { contenders, after } = await hitContenders();
  const names = Object.keys(contenders);
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // The order turns every round, so that no contender always runs first or last.
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const t0 = performance.now();
      await contenders[name]();
      samples[name].push(OPS / ((performance.now() - t0) / 1000));
    }
  }
  await after();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const floor = median(samples[names[0]]);
  return names.map((name) => ({
    name,
    opsPerSec: median(samples[name]),
    vsFloor: median(samples[name]) / floor,
  }));
}

// ---- 2. Redis commands per operation ------------------------------------------------------------

/** Total commands redis-server has run, from INFO commandstats. */
async function commandsRun(redis) {
  const info = String(await redis.command(["INFO", "commandstats"]));
  let total = 0;
  for (const m of info.matchAll(/calls=(\d+)/g)) total += Number(m[1]);
  return total;
}

/** The mixed workload: per op, a read of a warm key (80%), a cold read (10%), a write (8%), a delete (2%). */
function mixedOps(n, seed) {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    const x = r();
    const key = keys[Math.floor(200 * r() ** 2)];
    if (x < 0.8) return { op: "get", key };
    if (x < 0.9) return { op: "get", key: `cold:${Math.floor(r() * 1e9)}` };
    if (x < 0.98) return { op: "set", key };
    return { op: "delete", key };
  });
}

async function measureCommands() {
  const server = await startRedisServer();
  const token = "bench-peers-token";
  const bridge = await startRestBridge({ redisUrl: server.url, token });
  const redis = new RespConnection(server.url);
  const port = Number(new URL(server.url).port);
  const ops = mixedOps(MIXED, 7);
  const results = [];
  // Requests the clients send: HTTP requests to the bridge, commands written by ioredis.
  let requests = 0;
  const fetch0 = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith(bridge.url)) requests++;
    return fetch0(input, init);
  };
  const counted = () => {
    const client = new IORedis({ host: "127.0.0.1", port, lazyConnect: false });
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command, stream) => {
      requests++;
      return send(command, stream);
    };
    return client;
  };
  try {
    const run = async (name, instances, exec) => {
      // Two instances sharing one Redis: every op alternates between them.
      for (const k of keys.slice(0, 200)) await exec(instances[0], { op: "set", key: k });
      const before = await commandsRun(redis);
      requests = 0;
      for (let i = 0; i < ops.length; i++) await exec(instances[i % 2], ops[i]);
      const sent = requests;
      const after = await commandsRun(redis);
      // INFO itself counts once per call.
      results.push({
        name,
        requestsPerOp: sent / ops.length,
        commandsPerOp: (after - before - 1) / ops.length,
      });
    };

    const edges = [0, 1].map(() =>
      createCache({
        store: upstashStore({ url: bridge.url, token }),
        namespace: "mixed",
        ttl: 60_000,
        logger: false,
      }),
    );
    await run("edgecache (REST, coherent L1)", edges, async (c, o) => {
      if (o.op === "get") await c.get(o.key);
      else if (o.op === "set") await c.set(o.key, value(o.key));
      else await c.delete(o.key);
    });
    await Promise.all(edges.map((c) => c.close()));

    const unkeys = [0, 1].map(() => {
      const ctx = new DefaultStatefulContext();
      const rest = new Redis({ url: bridge.url, token, enableTelemetry: false });
      return unkeyCache({
        user: new Namespace(ctx, {
          stores: [
            new MemoryStore({ persistentMap: new Map() }),
            new UpstashRedisStore({ redis: rest }),
          ],
          fresh: 60_000,
          stale: 120_000,
        }),
      });
    });
    await run("@unkey/cache (REST, memory + Upstash store)", unkeys, async (c, o) => {
      if (o.op === "get") await c.user.get(o.key);
      else if (o.op === "set") await c.user.set(o.key, value(o.key));
      else await c.user.remove(o.key);
    });

    const bentos = [0, 1].map(
      () =>
        new BentoCache({
          default: "two",
          stores: {
            two: bentostore()
              .useL1Layer(memoryDriver({ maxItems: 20_000 }))
              .useL2Layer(redisDriver({ connection: counted() })),
          },
        }),
    );
    await run("bentocache (TCP, memory L1 + Redis L2, no bus)", bentos, async (c, o) => {
      if (o.op === "get") await c.get({ key: o.key });
      else if (o.op === "set") await c.set({ key: o.key, value: value(o.key), ttl: "1m" });
      else await c.delete({ key: o.key });
    });
    await Promise.all(bentos.map((b) => b.disconnect()));
  } finally {
    globalThis.fetch = fetch0;
    await redis.close();
    await bridge.close();
    await server.close();
  }
  return results;
}

// ---- report -----------------------------------------------------------------------------------

const hits = await measureHits();
const commands = await measureCommands();
const date = new Date().toISOString().slice(0, 10);
const machine = `${cpus()[0]?.model?.trim() ?? "?"}, ${availableParallelism()} cores, load ${loadavg()[0].toFixed(2)}, node ${process.version}`;
const fmt = (x) => (x / 1e6).toFixed(2);
const table = [
  "| contender | M ops/s | vs `async (k) => lru.get(k)` |",
  "|---|---|---|",
  ...hits.map((h) => `| ${h.name} | ${fmt(h.opsPerSec)} | ${h.vsFloor.toFixed(2)} |`),
].join("\n");
const cmdTable = [
  "| cache | requests per operation | commands Redis ran per operation |",
  "|---|---|---|",
  ...commands.map(
    (c) => `| ${c.name} | ${c.requestsPerOp.toFixed(2)} | ${c.commandsPerOp.toFixed(2)} |`,
  ),
].join("\n");
console.log(
  `L1-hit reads: ${KEYS} keys, ${OPS} skewed reads x ${ROUNDS} rounds (medians)\n${table}\n`,
);
console.log(
  `Mixed workload, ${MIXED} ops over two instances (80% warm reads, 10% cold reads, 8% writes, 2% deletes)\n${cmdTable}`,
);

if (!process.env.BENCH_NO_WRITE) {
  const md = `# Benchmark results

Written by one \`npm run bench\` on ${date}; ${machine}. This header and the first two sections
come from \`bench/peers.mjs\`, which runs first; each later section from the bench it names, in
the same run.
Versions: ${Object.entries(versions)
    .map(([n, v]) => `${n} ${v}`)
    .join(", ")}. These machines are noisy: compare ratios within one run, not across runs.

## L1-hit reads

${KEYS} keys, ${OPS.toLocaleString("en-US")} reads with a skewed pattern (about 10% of the keys take half
the reads), every read a hit in the in-process tier; ${ROUNDS} rounds, the contenders' order turning
every round, medians.

${table}

![L1-hit reads, M ops/s](results.svg)

## Requests to Redis per operation

${MIXED} operations from two instances on one redis-server: 80% reads of 200 warm keys, 10% reads of
cold keys, 8% writes, 2% deletes. Requests are what the client sends: HTTP requests for the REST
clients, commands written to the socket for ioredis. Commands are what redis-server ran
(\`INFO commandstats\`), where a Lua script's inner calls count too. edgecache's figures include
its coherence (the change log read with reads and writes, and the lease-free write path);
bentocache runs without its bus (no cross-instance invalidation) and @unkey/cache has none, so
their L1s can serve another instance's old value for as long as their TTL.

${cmdTable}

${placeholders()}
`;
  writeFileSync(new URL("./RESULTS.md", import.meta.url), md);
  writeFileSync(
    new URL("./results.svg", import.meta.url),
    barChart(
      hits.map((h) => ({ label: h.name, value: h.opsPerSec / 1e6 })),
      { title: `L1-hit reads, M ops/s (${date}, node ${process.version})` },
    ),
  );
  console.log("wrote bench/RESULTS.md and bench/results.svg");
}
