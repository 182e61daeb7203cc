// One cache instance of the coherence checker, as its own Node process. Reads its config
// (JSON) from argv[2], runs its share of random operations with some concurrency, writes
// the history to `config.out` (JSON lines) and prints its final stats as one JSON line.
import { writeFile } from "node:fs/promises";
import { rng } from "../rng.mjs";
import { checkedCache, pickOp, toRecords } from "./ops.mjs";

const config = JSON.parse(process.argv[2]);
// CLOCK_MONOTONIC is one clock for every process on the machine: times recorded by
// different instances compare to within microseconds.
const now = () => Number(process.hrtime.bigint()) / 1e6;
const random = rng(config.seed);
// With the invalidation hub, this instance subscribes and publishes through it too.
const hub = config.hubUrl
  ? {
      url: config.hubUrl,
      token: config.hubToken,
      shards: config.hubShards,
      WebSocket: (await import("ws")).WebSocket,
      minBackoff: 20,
      maxBackoff: 500,
    }
  : undefined;
const { cache, execute, codes } = checkedCache({ ...config, hub });
const records = [];
let started = 0;
let seq = 0;
// A pause (longer than the log's retention) after `pauseAt` operations.
let pause;

async function loop() {
  while (started < config.ops) {
    if (config.pauseAt !== undefined && started >= config.pauseAt && !pause) {
      pause = new Promise((r) => setTimeout(r, config.pauseMs));
    }
    if (pause) await pause;
    started++;
    const op = pickOp(random, config.keys);
    const id = `${config.inst}:${seq++}`;
    const start = now();
    const result = await execute(op, id);
    const end = now();
    records.push(...toRecords(config.inst, config.M, op, id, result, start, end));
  }
}

await Promise.all(Array.from({ length: config.concurrency }, loop));
const stats = cache.stats();
await cache.close();
await writeFile(config.out, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
console.log(JSON.stringify({ inst: config.inst, stats, errors: codes }));
