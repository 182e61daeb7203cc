// One cache process of the fault suite, forked by run.mjs with an IPC channel. It builds a
// cache from the built package on the fault proxy, runs mixed operations until told to
// stop (or until its `ops` are done), records every operation with its start and end on
// the machine's monotonic clock, then, on command, reads every key over and over until
// told to stop (convergence), and closes. It never calls process.exit: the orchestrator
// checks that it exits on its own once the cache is closed and the channel dropped.
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { createCache } from "edgecache";
import { upstashStore } from "edgecache/upstash";
import { rng } from "../rng.mjs";
import { watchStalls } from "./stalls.mjs";
import { valueFor } from "./values.mjs";

const config = JSON.parse(process.argv[2]);
const { inst } = config;
const now = () => Number(process.hrtime.bigint()) / 1e6;
const random = rng(config.seed);
const stalls = watchStalls(now);

// Never crash on them: count them, the orchestrator reports them.
const unhandled = [];
const describe = (reason) =>
  reason instanceof Error
    ? `${reason.name}${reason.code ? ` ${reason.code}` : ""}: ${reason.message.slice(0, 160)}`
    : String(reason).slice(0, 160);
process.on("unhandledRejection", (reason) =>
  unhandled.push(`unhandledRejection ${describe(reason)}`),
);
process.on("uncaughtException", (error) => unhandled.push(`uncaughtException ${describe(error)}`));
// After the channel is gone, late ones still reach the orchestrator, on stderr.
process.on("exit", () => {
  process.stderr.write(`@faults ${JSON.stringify({ inst, unhandled })}\n`);
});

let absorbed = 0;
const codes = {};
const store = upstashStore({ url: config.url, token: config.token }, { timeout: config.timeout });
const cache = createCache({
  store,
  namespace: config.namespace,
  instanceId: config.instanceId,
  ttl: 3_600_000, // nothing expires during a run: the checker does not model TTLs
  sync: { maxStaleness: config.staleness },
  breaker: config.breaker,
  logger: false,
  onError: (error) => {
    absorbed++;
    codes[error.code] = (codes[error.code] ?? 0) + 1;
  },
});

const kKeys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
const gKeys = Array.from({ length: config.gkeys }, (_, i) => `g${i}`);
const pick = (keys) => keys[Math.floor(random() * keys.length)];
const distinct = (keys, n) => {
  const chosen = new Set();
  while (chosen.size < Math.min(n, keys.length)) chosen.add(pick(keys));
  return [...chosen];
};

/** The next operation: k keys take plain reads and writes, g keys read-through. */
function nextOp() {
  const x = random();
  if (x < 0.3) return { op: "get", keys: [pick(kKeys)] };
  if (x < 0.38) return { op: "getMany", keys: distinct(kKeys, 2 + Math.floor(random() * 2)) };
  if (x < 0.56) return { op: random() < 0.2 ? "setInvalidate" : "set", keys: [pick(kKeys)] };
  if (x < 0.61) return { op: "setMany", keys: distinct(kKeys, 2) };
  if (x < 0.68) return { op: "delete", keys: [pick(kKeys)] };
  if (x < 0.71) return { op: "deleteMany", keys: distinct(kKeys, 2) };
  if (x < 0.715) return { op: "clear", keys: [] };
  if (x < 0.93) return { op: "getOrSet", keys: [pick(gKeys)] };
  if (x < 0.96) return { op: "get", keys: [pick(gKeys)] };
  return { op: "delete", keys: [pick(gKeys)] };
}

const WRITES = new Set(["set", "setInvalidate", "setMany", "delete", "deleteMany", "clear"]);
// One write at a time per key (and one clear at a time) in this process, so that the
// checker can tell which operation a delete or clear request belongs to.
const busy = new Set();

let seq = 0;
const records = [];
/** What a read returned, as the checker wants it: the string, null for a miss, or junk. */
const seen = (v) =>
  v === undefined ? null : typeof v === "string" ? v : { junk: JSON.stringify(v)?.slice(0, 80) };

async function execute(rec) {
  const { keys } = rec;
  switch (rec.op) {
    case "get":
      rec.got = [seen(await cache.get(keys[0]))];
      return;
    case "getMany":
      rec.got = (await cache.getMany(keys)).map(seen);
      return;
    case "set":
    case "setInvalidate":
    case "setMany": {
      const numbers = keys.map(() => seq++);
      const entries = keys.map((key, i) => [key, valueFor(key, inst, numbers[i])]);
      rec.vals = numbers.map((n) => `${inst}/${n}`);
      if (rec.op === "set") await cache.set(keys[0], entries[0][1]);
      else if (rec.op === "setInvalidate") await cache.setWithInvalidate(keys[0], entries[0][1]);
      else await cache.setMany(entries);
      return;
    }
    case "delete":
      await cache.delete(keys[0]);
      return;
    case "deleteMany":
      await cache.deleteMany(keys);
      return;
    case "clear":
      await cache.clear();
      return;
    case "getOrSet": {
      rec.loaded = [];
      const value = await cache.getOrSet(keys[0], async (key) => {
        const n = seq++;
        rec.loaded.push(`${inst}/${n}`);
        await sleep(Math.floor(random() * config.loaderMax));
        return valueFor(key, inst, n);
      });
      rec.got = [seen(value)];
      return;
    }
    default:
      throw new Error(`unknown op ${rec.op}`);
  }
}

let stopping = false;
let started = 0;

async function loop() {
  while (!stopping && (config.ops === 0 || started < config.ops)) {
    started++;
    let { op, keys } = nextOp();
    const locks = op === "clear" ? ["*"] : keys;
    if (WRITES.has(op) && locks.some((k) => busy.has(k))) op = "get";
    const rec = { inst, i: records.length, op, keys, start: 0, end: 0, ok: true };
    records.push(rec);
    const held = WRITES.has(op) ? locks : [];
    for (const k of held) busy.add(k);
    const before = absorbed;
    rec.start = now();
    try {
      await execute(rec);
    } catch (error) {
      rec.ok = false;
      rec.code = error?.code ?? error?.name ?? "unknown";
    }
    rec.end = now();
    for (const k of held) busy.delete(k);
    if (absorbed !== before) rec.errs = true;
    await sleep(Math.floor(random() * config.thinkMs));
  }
}

let converging = false;
/** Reads every key, one by one and all at once, until told to stop; returns the reads. */
async function converge() {
  const all = [...kKeys, ...gKeys];
  const reads = [];
  while (converging) {
    for (const key of all) {
      const start = now();
      const got = seen(await cache.get(key));
      reads.push({ key, got, start, end: now() });
    }
    const start = now();
    const got = await cache.getMany(all);
    const end = now();
    all.forEach((key, i) => {
      reads.push({ key, got: seen(got[i]), start, end });
    });
    await sleep(20);
  }
  return reads;
}

let work;
process.on("message", async (msg) => {
  if (msg.type === "start") {
    work = Promise.all(Array.from({ length: config.concurrency }, loop));
    await work;
    if (!stopping) process.send({ type: "done" });
  } else if (msg.type === "stop") {
    stopping = true;
    await work;
    await writeFile(config.out, `${records.map((r) => JSON.stringify(r)).join("\n")}\n`);
    process.send({ type: "stopped", ops: records.length, stalls: stalls.stalls });
  } else if (msg.type === "converge") {
    converging = true;
    work = converge();
  } else if (msg.type === "converge-end") {
    converging = false;
    process.send({ type: "converged", reads: await work });
  } else if (msg.type === "close") {
    const stats = cache.stats();
    const t = now();
    let closeError;
    try {
      await cache.close();
    } catch (error) {
      closeError = describe(error);
    }
    process.send({
      type: "closed",
      closeMs: now() - t,
      closeError,
      stats,
      codes,
      unhandled: [...unhandled],
    });
    stalls.stop();
    process.disconnect();
    // Does not keep the process alive; if something else does, say what.
    setTimeout(() => {
      const open = process.getActiveResourcesInfo().filter((r) => r !== "Timeout");
      process.stderr.write(`@faults-open ${JSON.stringify({ inst, open })}\n`);
    }, config.exitReportMs).unref();
  }
});
// Warm up (connections, JIT) outside the record, so that the first recorded operations do
// not measure the process's start-up; a key of neither workload range.
await cache.get("warmup");
process.send({ type: "ready" });
