// The fault suite (issue 11): several cache processes run mixed operations against a real
// redis-server and the REST bridge with a fault proxy in between, while the orchestrator
// injects faults window by window: the proxy holds requests past the store timeout and
// forwards them anyway, delays answers, answers 5xx before or after forwarding, answers
// garbage or a truncated body, resets connections before or after forwarding; redis-server
// is SIGKILLed and restarted on the same port (its data lost), or SIGSTOPped for longer
// than the store timeout; the bridge process is SIGKILLed and restarted.
//
// The last window holds requests and the workload stops as it ends. Then the processes
// read every key over and over while the held writes land; once the proxy has answered
// every write, it snapshots Redis, lets the reads go on past every process's staleness
// bound (and breaker cooldown), closes the processes, snapshots Redis again and checks
// (check.mjs): final state (no acknowledged write lost), no late write (the proxy saw it
// applied after the client's rejection), no junk value, read latency, convergence, clean
// exits, no unhandled rejection, and coherence under faults (test/coherence/history.mjs
// on the history rebuilt with the versions the proxy saw).
//
// Usage: node test/faults/run.mjs [--procs 3] [--seconds 30 | --ops N] [--seed N]
//   [--timeout 400] [--json] [--keys 8] [--gkeys 3] [--concurrency 3] [--window 1500]
//   [--gap 400] [--staleness 250,750] [--faults hold,redis-kill,...] [--dump FILE]
// (--ops N: each process runs N operations; fault windows go on until all are done.)
import { fork } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { rng } from "../rng.mjs";
import { checkFaults } from "./check.mjs";
import { loadScriptKinds, PROXY_MODES, startFaultProxy } from "./proxy.mjs";
import { BridgeProcess, freePort, RedisProcess, redisCommand } from "./servers.mjs";
import { watchStalls } from "./stalls.mjs";
import { valuesIn } from "./values.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const FAULTS = [...PROXY_MODES, "redis-kill", "redis-stop", "bridge-kill"];

const { values: args } = parseArgs({
  options: {
    procs: { type: "string", default: "3" },
    seconds: { type: "string", default: "30" },
    ops: { type: "string", default: "0" },
    seed: { type: "string" },
    timeout: { type: "string", default: "400" },
    json: { type: "boolean", default: false },
    keys: { type: "string", default: "8" },
    gkeys: { type: "string", default: "3" },
    concurrency: { type: "string", default: "3" },
    window: { type: "string", default: "1500" },
    gap: { type: "string", default: "400" },
    staleness: { type: "string", default: "250,750" },
    faults: { type: "string", default: FAULTS.join(",") },
    dump: { type: "string" },
  },
});
const int = (name) => {
  const v = Number(args[name]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} must be a whole number`);
  return v;
};
const procs = Math.max(1, int("procs"));
const seconds = int("seconds");
const opsPer = int("ops");
const seed = args.seed !== undefined ? Number(args.seed) : Math.floor(Math.random() * 2 ** 31);
const timeout = Math.max(50, int("timeout"));
const windowMs = int("window");
const gapMs = int("gap");
const bounds = args.staleness.split(",").map(Number);
const faultTypes = args.faults.split(",").filter(Boolean);
for (const f of faultTypes) if (!FAULTS.includes(f)) throw new Error(`unknown fault ${f}`);

const settings = {
  timeout,
  readMargin: 250,
  loaderMax: 30,
  convergeMargin: 250,
  holdMs: Math.round(2.5 * timeout), // past the store timeout: the client has given up
  delayMs: Math.round(1.5 * timeout),
  cooldown: 1_000, // of the breakers of odd processes
  exitMs: 5_000,
};

// CLOCK_MONOTONIC: one clock for every process of the machine.
const now = () => Number(process.hrtime.bigint()) / 1e6;
const random = rng(seed);
const log = (line) => {
  if (!args.json) console.log(line);
};

const dir = await mkdtemp(join(tmpdir(), "edgecache-faults-"));
const namespace = `faults-${seed}`;
const token = `faults-token-${seed}-${"x".repeat(16)}`;
const redis = new RedisProcess({ port: await freePort(), dir });
const bridge = new BridgeProcess({
  cli: join(root, "dist/node/cli.js"),
  redisUrl: redis.url,
  port: await freePort(),
  token,
});
const windows = [];
const kills = [];
const stops = [];
const bridgeKills = [];
let proxy;
const children = [];

/** A forked cache process, with a way to wait for its next message of a type. */
function startChild(index) {
  const inst = `p${index}`;
  const config = {
    inst,
    instanceId: `edgecache-faults-${inst}`,
    url: proxy.url,
    token,
    namespace,
    timeout,
    staleness: bounds[index % bounds.length],
    // Breakers off on every other process, so that faults keep reaching the proxy there;
    // a short cooldown on the others.
    breaker: index % 2 === 0 ? false : { threshold: 5, cooldown: settings.cooldown },
    seed: seed + 7919 * (index + 1),
    keys: int("keys"),
    gkeys: int("gkeys"),
    concurrency: Math.max(1, int("concurrency")),
    ops: opsPer,
    loaderMax: settings.loaderMax,
    thinkMs: 6,
    exitReportMs: 2_000,
    out: join(dir, `${inst}.jsonl`),
  };
  const child = fork(join(here, "instance.mjs"), [JSON.stringify(config)], {
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const state = { inst, config, child, messages: [], waiting: [], unhandled: [], open: undefined };
  state.exit = new Promise((resolvePromise) =>
    child.once("close", (code, signal) => resolvePromise({ code, signal })),
  );
  child.on("message", (msg) => {
    const i = state.waiting.findIndex((w) => w.type === msg.type);
    if (i === -1) state.messages.push(msg);
    else state.waiting.splice(i, 1)[0].resolve(msg);
  });
  let err = "";
  const onLine = (line) => {
    if (line.startsWith("@faults ")) state.unhandled.push(...JSON.parse(line.slice(8)).unhandled);
    else if (line.startsWith("@faults-open ")) state.open = JSON.parse(line.slice(13)).open;
    else if (line.trim()) process.stderr.write(`[${inst}] ${line}\n`);
  };
  const split = (chunk) => {
    err += chunk;
    const lines = err.split("\n");
    err = lines.pop();
    lines.forEach(onLine);
  };
  child.stdout.on("data", split);
  child.stderr.on("data", split);
  state.next = (type) => {
    const i = state.messages.findIndex((m) => m.type === type);
    if (i !== -1) return Promise.resolve(state.messages.splice(i, 1)[0]);
    return Promise.race([
      new Promise((resolvePromise) => state.waiting.push({ type, resolve: resolvePromise })),
      state.exit.then(({ code, signal }) => {
        throw new Error(`${inst} exited (${code ?? signal}) while the run waited for "${type}"`);
      }),
    ]);
  };
  return state;
}

/** One fault window: the fault for `windowMs`, then everything back to normal. */
async function inject(type, p = random() < 0.5 ? 0.5 : 1) {
  const w = { type, start: now() };
  windows.push(w);
  const rest = () => sleep(Math.max(0, w.start + windowMs - now()));
  if (PROXY_MODES.includes(type)) {
    w.p = p;
    proxy.setMode(type, w.p);
    await rest();
    proxy.setMode("pass");
  } else if (type === "redis-kill") {
    const kill = now();
    await redis.kill();
    await sleep(windowMs / 2);
    await redis.start();
    kills.push({ kill, up: now() });
    await rest();
  } else if (type === "redis-stop") {
    redis.stop();
    const stop = now();
    await sleep(settings.holdMs);
    const cont = now();
    redis.cont();
    stops.push({ stop, cont });
    await rest();
  } else if (type === "bridge-kill") {
    const kill = now();
    await bridge.kill();
    await sleep(windowMs / 3);
    await bridge.start();
    bridgeKills.push({ kill, up: now() });
    await rest();
  }
  w.end = now();
}

/** A seeded Fisher-Yates shuffle. */
function shuffled(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** What Redis holds for `keys`, read directly: null, { id, version } or { junk }. */
async function snapshot(keys) {
  const b = `ec:{${namespace}}:`;
  const reply = await redisCommand(redis.port, ["MGET", `${b}c`, ...keys.map((k) => `${b}k:${k}`)]);
  const marker = reply[0] === null ? 0 : Number(reply[0]);
  const state = {};
  keys.forEach((key, i) => {
    const raw = reply[i + 1];
    const m = raw === null ? null : /^ec1:(\d+):(.*)$/s.exec(raw);
    if (raw === null) state[key] = null;
    else if (!m) state[key] = { junk: raw.slice(0, 80) };
    else if (Number(m[1]) <= marker)
      state[key] = null; // hidden by a clear
    else {
      const found = valuesIn(m[2]);
      state[key] =
        found.length === 1 && found[0].key === key
          ? { id: found[0].id, version: Number(m[1]) }
          : { junk: m[2].slice(0, 80) };
    }
  });
  return state;
}

const t0 = now();
const stalls = watchStalls(now);
let result;
let exitCode = 1;
try {
  await redis.start();
  await bridge.start();
  const scripts = await loadScriptKinds(pathToFileURL(join(root, "dist/stores/scripts.js")).href);
  if (scripts.size === 0) console.error("faults: store scripts not found; classifying by KEYS");
  proxy = await startFaultProxy({
    scripts,
    target: bridge.port,
    now,
    random: rng(seed ^ 0x5bd1e995),
    holdMs: settings.holdMs,
    delayMs: settings.delayMs,
  });
  for (let i = 0; i < procs; i++) children.push(startChild(i));
  await Promise.all(children.map((c) => c.next("ready")));
  for (const c of children) c.child.send({ type: "start" });
  const done = opsPer > 0 ? Promise.all(children.map((c) => c.next("done"))) : undefined;
  let finished = false;
  // A process that dies ends the windows too; waiting for its "stopped" then fails the run.
  const end = () => {
    finished = true;
  };
  void done?.then(end, end);

  // Fault windows, every type in a shuffled order, round after round.
  const runUntil = now() + seconds * 1000;
  let queue = [];
  await sleep(gapMs);
  while (opsPer > 0 ? !finished : now() < runUntil) {
    if (queue.length === 0) queue = shuffled(faultTypes);
    if (queue.length === 0) await sleep(windowMs);
    else await inject(queue.shift());
    await sleep(gapMs);
  }

  // The last window holds half the requests and the workload stops as it ends: writes
  // held then reach Redis after every operation resolved, so a late write that lands is
  // what the final state shows (check 1), unless something newer replaced it.
  if (faultTypes.includes("hold")) await inject("hold", 0.5);

  // Quiet: workload stopped, faults off. The processes keep reading every key while the
  // held writes land; once every write request has been answered, Redis is final, and
  // every process must agree with it within its bound (plus a breaker's cooldown: one
  // opened by the last faults holds the first sync back).
  for (const c of children) c.child.send({ type: "stop" });
  const stopped = await Promise.all(children.map((c) => c.next("stopped")));
  for (const c of children) c.child.send({ type: "converge" });
  await proxy.idle({ writes: true });
  const keys = [
    ...Array.from({ length: int("keys") }, (_, i) => `k${i}`),
    ...Array.from({ length: int("gkeys") }, (_, i) => `g${i}`),
  ];
  const quiet = await snapshot(keys);
  const from = now();
  await sleep(Math.max(...bounds) + settings.convergeMargin + settings.cooldown + 300);
  for (const c of children) c.child.send({ type: "converge-end" });
  const converge = await Promise.all(
    children.map(async (c) => ({ inst: c.inst, from, reads: (await c.next("converged")).reads })),
  );
  await proxy.idle();

  // Close, and the process must exit on its own.
  for (const c of children) c.child.send({ type: "close" });
  const processes = await Promise.all(
    children.map(async (c) => {
      const closed = await c.next("closed");
      let timer;
      const deadline = new Promise((r) => {
        timer = setTimeout(r, settings.exitMs);
      });
      const exit = await Promise.race([c.exit, deadline]);
      clearTimeout(timer);
      if (exit === undefined) c.child.kill("SIGKILL");
      // The exit marker (late unhandled rejections) arrives on stderr just before the exit.
      const exited = exit ?? (await c.exit);
      const unhandled = [...new Set([...closed.unhandled, ...c.unhandled])];
      return {
        inst: c.inst,
        instanceId: c.config.instanceId,
        staleness: c.config.staleness,
        cooldown: c.config.breaker ? c.config.breaker.cooldown : 0,
        exited: exit !== undefined,
        code: exited.code,
        signal: exited.signal,
        open: c.open,
        unhandled,
        closeError: closed.closeError,
        closeMs: closed.closeMs,
        codes: closed.codes,
        breaker: closed.stats.breaker,
      };
    }),
  );
  await proxy.idle();
  const final = await snapshot(keys);

  const ops = [];
  for (const c of children) {
    const text = await readFile(c.config.out, "utf8");
    for (const line of text.split("\n")) if (line) ops.push(JSON.parse(line));
  }
  const run = {
    settings,
    processes,
    ops,
    proxyLog: proxy.log,
    windows,
    kills,
    stops,
    quiet,
    final,
    converge,
    stalls: {
      orchestrator: stalls.stalls,
      ...Object.fromEntries(children.map((c, i) => [c.inst, stopped[i].stalls])),
    },
  };
  if (args.dump) await writeFile(args.dump, JSON.stringify(run));
  result = checkFaults(run);
  result.stats.proxiedRequests = { ...proxy.counts };
  result.stats.redisKills = kills.length;
  result.stats.redisStops = stops.length;
  result.stats.bridgeKills = bridgeKills.length;
  result.stats.errorsAbsorbed = processes.reduce((all, p) => {
    for (const [code, n] of Object.entries(p.codes ?? {})) all[code] = (all[code] ?? 0) + n;
    return all;
  }, {});
  result.stats.requestsByKind = {};
  for (const e of proxy.log) {
    result.stats.requestsByKind[e.kind] = (result.stats.requestsByKind[e.kind] ?? 0) + 1;
  }
  exitCode = result.violations.length === 0 ? 0 : 1;
} finally {
  stalls.stop();
  for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGKILL");
  await proxy?.close();
  await bridge.close();
  await redis.close();
  await rm(dir, { recursive: true, force: true });
}

const elapsed = Number(((now() - t0) / 1000).toFixed(1));
const { stats, byCheck, violations } = result;
if (args.json) {
  console.log(
    JSON.stringify({
      seed,
      procs,
      timeout,
      seconds: elapsed,
      ...stats,
      byCheck,
      violations: violations.length,
      firstViolations: violations.slice(0, 10),
      // The first violation of each check.
      examples: Object.fromEntries(
        Object.keys(byCheck).map((name) => [name, violations.find((v) => v.check === name)]),
      ),
    }),
  );
} else {
  const fmt = (o) =>
    Object.entries(o)
      .map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : v}`)
      .join(", ") || "none";
  log(
    `faults: ${stats.operations} operations (${fmt(stats.byOp)}) from ${procs} processes ` +
      `in ${elapsed} s, seed ${seed}, store timeout ${timeout} ms`,
  );
  log(`fault windows: ${fmt(stats.faultWindows)}`);
  log(`requests through the proxy, by mode: ${fmt(stats.proxiedRequests)}`);
  log(`requests through the proxy, by kind: ${fmt(stats.requestsByKind)}`);
  log(
    `redis kills ${stats.redisKills}, redis stops ${stats.redisStops}, bridge kills ${stats.bridgeKills}`,
  );
  log(`errors absorbed: ${fmt(stats.errorsAbsorbed)}; failed operations: ${stats.failedOps}`);
  log(
    `acknowledged writes checked: ${stats.ackedChecked} (writes acknowledged ${stats.writes.acknowledged}, ` +
      `rejected ${stats.writes.rejected})`,
  );
  log(
    `late writes seen: ${stats.lateWrites} (late, outcome unknown: ${stats.latePossible}; ` +
      `late and refused upstream: ${stats.lateRefused}; applied but answered after the rejection: ` +
      `${stats.appliedAfterGiveUp}; getOrSet writes after its answer: ${stats.writesAfterGetOrSet})`,
  );
  log(`slowest read per fault type (ms): ${fmt(stats.slowestRead)}`);
  log(`event-loop stalls over 20 ms (count, longest ms): ${fmt(stats.stalls)}`);
  log(`slowest write per fault type (ms): ${fmt(stats.slowestWrite)}`);
  log(
    `converged after (ms from the end of the faults, proxy drained): ${fmt(stats.convergedAfterMs)}`,
  );
  log(
    `coherence under faults (history.mjs): ${stats.coherence.checked} reads checked, ` +
      `${stats.coherence.unchecked} unchecked, max staleness ${stats.coherence.maxStaleness} ms`,
  );
  log(`processes that failed to exit: ${stats.failedToExit.join(", ") || "none"}`);
  log(`unhandled rejections: ${stats.unhandledRejections}`);
  log(`violations: ${violations.length} ${JSON.stringify(byCheck)}`);
  for (const v of violations.slice(0, 8)) log(`  ${JSON.stringify(v)}`);
}
process.exitCode = exitCode;
// The orchestrator must end on its own too; if something keeps it alive, say what.
setTimeout(() => {
  const open = process.getActiveResourcesInfo().filter((r) => r !== "Timeout");
  console.error(`faults: the orchestrator is still alive, held by ${open.join(", ")}`);
  if (process.env.FAULTS_DEBUG)
    for (const h of process._getActiveHandles())
      console.error(
        h.constructor.name,
        h._handle?.fd,
        h.readable,
        h.destroyed,
        h._events && Object.keys(h._events),
      );
}, 3_000).unref();
