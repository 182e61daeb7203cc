// The coherence checker: N cache instances as separate processes (Node processes, and
// Workers in workerd) drive random concurrent operations over a small hot key space
// against a real redis-server through the REST bridge. Every operation is recorded with
// its start and end time; the history is then verified offline (history.mjs) for the
// staleness bound of every read and for monotonic reads per key per instance.
//
// Faults injected while it runs:
// - a log trimmed aggressively: some instances write with a tiny `logLength`;
// - an instance paused for longer than the log's retention;
// - restarted instances: one Node instance and each Worker stop half-way and a fresh one
//   (new process or new workerd, new instance id, cold L1) takes over their share.
//
// Usage: node test/coherence/run.mjs [--instances 8] [--workerd 1] [--ops 12500]
//   [--keys 8] [--concurrency 4] [--staleness 0,100,500,1000] [--log-length 5000]
//   [--trim-log-length 25] [--pause-ms 3000] [--seed N] [--json] [--hub] [--break]
//   [--shards N] (L2 behind shardedStore: N stores on the one Redis) [--pubsub] (Node
//   instances subscribe over Redis pub/sub, Workers publish; the bridge restarts half-way)
//   [--history FILE]
//   (the whole history, as JSON lines, when a violation is found)
// (npm run check:coherence builds the package and runs the long configuration.)
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startRedisServer, startRestBridge } from "edgecache/node";
import { rng } from "../rng.mjs";
import { checkHistory } from "./history.mjs";
import { pickOp, toRecords } from "./ops.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");

const { values: args } = parseArgs({
  options: {
    instances: { type: "string", default: "8" },
    workerd: { type: "string", default: "1" },
    ops: { type: "string", default: "12500" },
    keys: { type: "string", default: "8" },
    concurrency: { type: "string", default: "4" },
    staleness: { type: "string", default: "0,100,500,1000" },
    "log-length": { type: "string", default: "5000" },
    "trim-log-length": { type: "string", default: "25" },
    batch: { type: "string", default: "1000" },
    "pause-ms": { type: "string", default: "3000" },
    seed: { type: "string" },
    json: { type: "boolean", default: false },
    // Run the instances without coherence, to show that the checker catches it.
    break: { type: "boolean", default: false },
    // Node instances also subscribe and publish through the invalidation hub (a workerd
    // Durable Object), which is restarted half-way, as a deploy would.
    hub: { type: "boolean", default: false },
    // Node instances subscribe over Redis pub/sub (SSE through the bridge), Workers publish;
    // the bridge every instance uses restarts half-way, cutting every stream.
    pubsub: { type: "boolean", default: false },
    // L2 is this many stores behind shardedStore's ring (1: one store).
    shards: { type: "string", default: "1" },
    // Where to write the whole history (JSON lines) when a violation is found.
    history: { type: "string" },
  },
});
const int = (name) => {
  const v = Number(args[name]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a whole number`);
  return v;
};
const instances = int("instances");
const workerdCount = int("workerd");
const opsPer = int("ops");
const keys = int("keys");
const concurrency = Math.max(1, int("concurrency"));
const bounds = args.staleness.split(",").map(Number);
const seed = args.seed !== undefined ? Number(args.seed) : Math.floor(Math.random() * 2 ** 31);
const logLength = int("log-length");
const trimLength = int("trim-log-length");
const batch = int("batch");
const pauseMs = int("pause-ms");
const shards = Math.max(1, int("shards"));
if (workerdCount > instances || instances < 2)
  throw new Error("need 2+ instances, workerd <= instances");

// CLOCK_MONOTONIC is one clock for every process on the machine: times recorded by
// different instances compare to within microseconds.
const now = () => Number(process.hrtime.bigint()) / 1e6;
const log = (line) => {
  if (!args.json) console.log(line);
};

const redis = await startRedisServer();
const token = `chk-${seed}`;
let bridge = await startRestBridge({ redisUrl: redis.url, token });
if (args.pubsub && args.hub) throw new Error("--pubsub and --hub: choose one");
const restartBridge = async () => {
  const port = Number(new URL(bridge.url).port);
  await bridge.close();
  bridge = await startRestBridge({ redisUrl: redis.url, token, port });
};
const namespace = `chk-${seed}`;
const HUB_SHARDS = 2;
const hubSecret = `hub-secret-${seed}-${"x".repeat(32)}`;
const hub = args.hub
  ? await (await import("../hub/harness.mjs")).startHubWorker({
      redisUrl: bridge.url,
      redisToken: token,
      secret: hubSecret,
      shards: HUB_SHARDS,
    })
  : undefined;
const hubToken = hub
  ? await (await import("edgecache")).mintHubToken({ secret: hubSecret, namespace, role: "both" })
  : undefined;
const work = await mkdtemp(join(tmpdir(), "edgecache-coherence-"));
const faults = [];
const stats = [];
const records = [];

// Instance i's settings: bounds cycle through the list; every third instance trims the log.
const settingsOf = (i) => ({
  M: bounds[i % bounds.length],
  logLength: i % 3 === 1 ? trimLength : logLength,
});

async function nodeInstance(slot, inst, ops, extra = {}) {
  const out = join(work, `${inst}.jsonl`);
  const config = {
    url: bridge.url,
    token,
    namespace,
    inst,
    instanceId: inst,
    seed: seed + slot * 7919 + inst.length,
    ops,
    concurrency,
    keys,
    batch,
    out,
    broken: args.break,
    shards,
    ...(hub ? { hubUrl: hub.url, hubToken, hubShards: HUB_SHARDS } : {}),
    ...(args.pubsub ? { pubsub: "subscribe" } : {}),
    ...settingsOf(slot),
    ...extra,
  };
  const child = spawn(process.execPath, [join(here, "instance.mjs"), JSON.stringify(config)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  const code = await new Promise((r) => child.on("close", r));
  if (code !== 0) throw new Error(`instance ${inst} exited with ${code}`);
  stats.push(JSON.parse(stdout.trim().split("\n").at(-1)));
  const text = await readFile(out, "utf8");
  for (const line of text.split("\n")) if (line) records.push(JSON.parse(line));
}

async function bundleWorker() {
  const outdir = join(work, "worker");
  const wrangler = join(root, "node_modules/.bin/wrangler");
  // Its own config: the repository's wrangler.toml describes the example Worker.
  const config = join(work, "wrangler.toml");
  await writeFile(
    config,
    `name = "coherence"\nmain = ${JSON.stringify(join(here, "worker.mjs"))}\ncompatibility_date = "2026-04-01"\n`,
  );
  await new Promise((resolvePromise, reject) => {
    execFile(
      wrangler,
      ["deploy", "--config", config, "--dry-run", "--outdir", outdir],
      { cwd: work, env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
      (err, _out, stderr) => (err ? reject(new Error(`wrangler: ${stderr}`)) : resolvePromise()),
    );
  });
  return join(outdir, "worker.js");
}

async function workerdInstance(slot, inst, ops, scriptPath) {
  const { Miniflare } = await import("miniflare");
  const { M, logLength: length } = settingsOf(slot);
  const mf = new Miniflare({
    modules: true,
    modulesRoot: dirname(scriptPath),
    scriptPath,
    compatibilityDate: "2026-04-01",
    cf: false,
    bindings: {
      UPSTASH_REDIS_REST_URL: bridge.url,
      UPSTASH_REDIS_REST_TOKEN: token,
      NAMESPACE: namespace,
      INSTANCE_ID: inst,
      MAX_STALENESS: String(M),
      LOG_LENGTH: String(length),
      BATCH: String(batch),
      BROKEN: args.break ? "1" : "0",
      SHARDS: String(shards),
      PUBSUB: args.pubsub ? "1" : "0",
    },
  });
  try {
    const random = rng(seed + slot * 7919 + inst.length);
    let started = 0;
    let seq = 0;
    const loop = async () => {
      while (started < ops) {
        started++;
        const op = pickOp(random, keys);
        const id = `${inst}:${seq++}`;
        const start = now();
        const res = await mf.dispatchFetch("http://instance/op", {
          method: "POST",
          body: JSON.stringify({ op, id }),
        });
        const result = await res.json();
        const end = now();
        records.push(...toRecords(inst, M, op, id, result, start, end));
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    const res = await mf.dispatchFetch("http://instance/stats");
    stats.push({ inst, stats: await res.json() });
  } finally {
    await mf.dispose();
  }
}

const t0 = now();
try {
  const scriptPath = workerdCount > 0 ? await bundleWorker() : undefined;
  const nodeCount = instances - workerdCount;
  const half = Math.floor(opsPer / 2);
  const jobs = [];
  for (let slot = 0; slot < instances; slot++) {
    if (slot < nodeCount) {
      const inst = `n${slot}`;
      if (slot === 0) {
        // A restarted instance: a fresh process, id and L1 take over half-way.
        faults.push(`${inst} restarted half-way (new process, new id, cold L1)`);
        if (hub) faults.push("the hub (workerd) restarted at the same moment, as a deploy would");
        if (args.pubsub)
          faults.push("the bridge restarted at the same moment, cutting every stream");
        jobs.push(
          nodeInstance(slot, inst, half)
            .then(() => (args.pubsub ? restartBridge() : hub?.restart()))
            .then(() => nodeInstance(slot, `${inst}r`, opsPer - half)),
        );
      } else if (slot === 2 % nodeCount && pauseMs > 0) {
        faults.push(`${inst} paused ${pauseMs} ms after ${half} ops`);
        jobs.push(nodeInstance(slot, inst, opsPer, { pauseAt: half, pauseMs }));
      } else {
        jobs.push(nodeInstance(slot, inst, opsPer));
      }
    } else {
      const inst = `w${slot - nodeCount}`;
      faults.push(`${inst} (workerd) restarted half-way`);
      jobs.push(
        workerdInstance(slot, inst, half, scriptPath).then(() =>
          workerdInstance(slot, `${inst}r`, opsPer - half, scriptPath),
        ),
      );
    }
  }
  const trimmed = Array.from({ length: instances }, (_, i) => i).filter((i) => i % 3 === 1);
  if (trimmed.length > 0 && trimLength < logLength) {
    faults.push(
      `log trimmed to ~${trimLength} records by the writes of ${trimmed.length} instance(s)`,
    );
  }
  await Promise.all(jobs);
} finally {
  await hub?.close();
  await bridge.close();
  await redis.close();
}
const seconds = (now() - t0) / 1000;
const result = checkHistory(records);
const flushes = Object.fromEntries(stats.map((s) => [s.inst, s.stats.flushes]));
const totalFlushes = Object.values(flushes).reduce((a, b) => a + b, 0);
const summary = {
  seed,
  instances,
  workerd: workerdCount,
  seconds: Number(seconds.toFixed(1)),
  ...result,
  violations: result.violations.length,
  firstViolations: result.violations.slice(0, 5),
  flushes,
  totalFlushes,
  syncs: stats.reduce((a, s) => a + s.stats.syncs, 0),
  errors: stats.reduce((all, s) => {
    for (const [code, n] of Object.entries(s.errors ?? {})) all[code] = (all[code] ?? 0) + n;
    return all;
  }, {}),
  hub: stats.reduce(
    (all, s) => {
      all.framesReceived += s.stats.hub?.framesReceived ?? 0;
      all.reconnects += s.stats.hub?.reconnects ?? 0;
      return all;
    },
    { framesReceived: 0, reconnects: 0 },
  ),
  pubsub: stats.reduce(
    (all, s) => {
      all.received += s.stats.pubsub?.received ?? 0;
      all.reconnects += s.stats.pubsub?.reconnects ?? 0;
      return all;
    },
    { received: 0, reconnects: 0 },
  ),
  faults,
};
await rm(work, { recursive: true, force: true });
if (args.history && result.violations.length > 0) {
  await writeFile(args.history, `${records.map((r) => JSON.stringify(r)).join("\n")}\n`);
}
if (args.json) {
  console.log(JSON.stringify(summary));
} else {
  log(
    `coherence: ${result.operations} operation records (${result.reads} reads, ${result.writes} writes) ` +
      `from ${instances} instances (${instances - workerdCount} node, ${workerdCount} workerd) in ${summary.seconds} s, seed ${seed}`,
  );
  log(`faults: ${faults.join("; ")}`);
  log(`flushes per instance: ${JSON.stringify(flushes)}; syncs: ${summary.syncs}`);
  log(`errors reported: ${JSON.stringify(summary.errors)}`);
  if (args.pubsub) log(`pub/sub: ${JSON.stringify(summary.pubsub)}`);
  const perBound = bounds
    .map((b) => `${b} ms: ${(result.maxStalenessByBound[b] ?? 0).toFixed(1)} ms`)
    .join(", ");
  log(`max staleness observed, per bound: ${perBound}`);
  log(
    `reads checked: ${result.checked}, unchecked (an error during the read): ${result.unchecked}`,
  );
  log(`violations: ${result.violations.length}`);
  for (const v of result.violations.slice(0, 5)) log(`  ${JSON.stringify(v)}`);
}
process.exitCode = result.violations.length === 0 && result.unchecked === 0 ? 0 : 1;
