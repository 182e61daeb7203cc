import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JS module shared with the fault suite's runner (no declarations)
import { checkFaults } from "./faults/check.mjs";

type Rec = Record<string, unknown>;
interface Result {
  violations: Array<{ check: string }>;
  byCheck: Record<string, number>;
  stats: Record<string, unknown>;
}

const TIMEOUT = 400;
const value = (key: string, id: string) => `fv/${key}/${id}/`;

/** A set operation of process `inst` writing `id` to `key` ("p0/3"). */
const set = (key: string, id: string, start: number, end: number, ok = true): Rec => ({
  inst: id.split("/")[0],
  op: "set",
  keys: [key],
  vals: [id],
  start,
  end,
  ok,
  ...(ok ? {} : { code: "EC_STORE_TIMEOUT" }),
});
const del = (inst: string, key: string, start: number, end: number, ok = true): Rec => ({
  inst,
  op: "delete",
  keys: [key],
  start,
  end,
  ok,
});
const get = (inst: string, key: string, got: string | null, start: number, end: number): Rec => ({
  inst,
  op: "get",
  keys: [key],
  got: [got],
  start,
  end,
  ok: true,
});
/** What the proxy logged for a write request it forwarded at `fwd`. */
const request = (
  kind: "set" | "delete",
  keys: string[],
  argv: string[],
  fwd: number,
  ans: number,
  outcome: string,
  version?: number,
): Rec => ({ kind, keys, argv, at: fwd, fwd, ans, status: 200, outcome, version, mode: "pass" });
const setRequest = (key: string, id: string, fwd: number, version: number, outcome = "applied") =>
  request(
    "set",
    [key],
    [
      `edgecache-faults-${id.split("/")[0]}`,
      "5000",
      "",
      "",
      JSON.stringify({ json: value(key, id) }),
      "3600000",
      "1",
    ],
    fwd,
    fwd + 2,
    outcome,
    version,
  );
const delRequest = (inst: string, key: string, fwd: number, version: number) =>
  request(
    "delete",
    [key],
    [`edgecache-faults-${inst}`, "5000", "", ""],
    fwd,
    fwd + 2,
    "applied",
    version,
  );

/** A run of two processes on k1 where nothing went wrong; tests change what they need. */
function cleanRun(): Rec & { ops: Rec[]; proxyLog: Rec[] } {
  return {
    settings: { timeout: TIMEOUT, readMargin: 250, loaderMax: 30, convergeMargin: 250 },
    processes: ["p0", "p1"].map((inst) => ({
      inst,
      instanceId: `edgecache-faults-${inst}`,
      staleness: 100,
      cooldown: 0,
      exited: true,
      code: 0,
      unhandled: [],
    })),
    ops: [set("k1", "p0/0", 0, 10), get("p1", "k1", value("k1", "p0/0"), 200, 201)],
    proxyLog: [setRequest("k1", "p0/0", 2, 101)],
    windows: [],
    kills: [],
    stops: [],
    quiet: { k1: { id: "p0/0" } },
    final: { k1: { id: "p0/0" } },
    converge: [
      {
        inst: "p1",
        from: 1000,
        reads: [{ key: "k1", got: value("k1", "p0/0"), start: 1400, end: 1401 }],
      },
    ],
  };
}

const check = (run: Rec): Result => checkFaults(run) as Result;
const checks = (run: Rec) => check(run).violations.map((v) => v.check);

/**
 * p0's set of p0/1 is held by the proxy past the store timeout and rejected at 500; p1 then
 * writes p1/0, acknowledged; the held request reaches Redis at 1100, after the rejection,
 * and is applied (today's bug) or refused (the write-deadline fix).
 */
function lateWriteRun(outcome: "applied" | "refused") {
  const run = cleanRun();
  run.ops = [set("k1", "p0/1", 100, 500, false), set("k1", "p1/0", 600, 610)];
  run.proxyLog = [
    { ...setRequest("k1", "p0/1", 1100, 103, outcome), at: 101, mode: "hold" },
    setRequest("k1", "p1/0", 601, 102),
  ];
  const last = outcome === "applied" ? "p0/1" : "p1/0";
  run.quiet = { k1: { id: last } };
  run.final = { k1: { id: last } };
  run.converge = [];
  return run;
}

describe("the fault checker", () => {
  it("accepts a clean run", () => {
    const result = check(cleanRun());
    expect(result.violations).toEqual([]);
    expect(result.stats.ackedChecked).toBe(1);
    expect(result.stats.lateWrites).toBe(0);
    expect((result.stats.coherence as { checked: number }).checked).toBe(1);
  });

  it("finds a write that reached Redis after its rejection, and the state it left", () => {
    const result = check(lateWriteRun("applied"));
    expect(result.stats.lateWrites).toBe(1);
    // p1/0 was acknowledged after p0/1 was rejected, yet Redis keeps p0/1.
    expect(result.byCheck).toEqual({ "late-write": 1, "final-state": 1 });
  });

  it("accepts a late request that the store refused", () => {
    const result = check(lateWriteRun("refused"));
    expect(result.violations).toEqual([]);
    expect(result.stats.lateRefused).toBe(1);
  });

  it("finds a late delete, attributed by its origin and keys", () => {
    const run = cleanRun();
    run.ops = [del("p0", "k1", 100, 500, false), set("k1", "p1/0", 600, 610)];
    run.proxyLog = [delRequest("p0", "k1", 1100, 103), setRequest("k1", "p1/0", 601, 102)];
    run.quiet = { k1: null };
    run.final = { k1: null };
    run.converge = [];
    expect(check(run).byCheck).toEqual({ "late-write": 1, "final-state": 1 });
  });

  it("counts a write Redis ran after SIGCONT as late when it was forwarded during a SIGSTOP", () => {
    const run = lateWriteRun("applied");
    run.proxyLog[0] = { ...run.proxyLog[0], at: 101, fwd: 102, ans: 1102, mode: "pass" };
    run.stops = [{ stop: 50, cont: 1000 }];
    expect(check(run).stats.lateWrites).toBe(1);
    run.stops = [];
    expect(check(run).stats.lateWrites).toBe(0); // forwarded before the rejection: unknown when it ran
  });

  it("finds an acknowledged write lost while Redis stayed up, not one lost with a restart", () => {
    const run = cleanRun();
    run.final = { k1: null };
    run.quiet = { k1: null };
    run.converge = [];
    expect(checks(run)).toEqual(["final-state"]);
    run.kills = [{ kill: 300, up: 310 }]; // after every operation
    expect(checks(run)).toEqual([]);
  });

  it("finds junk: a foreign value, another key's value and a value nobody wrote", () => {
    const run = cleanRun();
    run.ops.push(
      get("p1", "k1", "garbage", 300, 301),
      get("p1", "k1", value("k2", "p0/0"), 302, 303),
      get("p1", "k1", value("k1", "p0/9"), 304, 305),
    );
    expect(checks(run).filter((c) => c === "junk")).toHaveLength(3);
  });

  it("finds a read slower than the store timeout allows, by fault window", () => {
    const run = cleanRun();
    run.ops.push(get("p1", "k1", value("k1", "p0/0"), 300, 300 + TIMEOUT + 300));
    run.windows = [{ type: "hold", start: 250, end: 900 }];
    const result = check(run);
    expect(result.byCheck).toEqual({ "slow-read": 1 });
    expect(result.stats.slowestRead).toMatchObject({ hold: { get: TIMEOUT + 300 } });
    // Not when its process (or the orchestrator, which runs the proxy) was not running.
    run.stalls = { p1: [[350, 500]], orchestrator: [[450, 560]] };
    expect(checks(run)).toEqual([]);
  });

  it("finds a process that disagrees with Redis past its bound, not within it", () => {
    const run = cleanRun();
    const reads = (run.converge as Array<{ reads: Rec[] }>)[0]!.reads;
    reads.push({ key: "k1", got: null, start: 1200, end: 1201 }); // within 100 + 250 ms
    expect(checks(run)).toEqual([]);
    reads.push({ key: "k1", got: null, start: 1360, end: 1361 });
    expect(checks(run)).toEqual(["convergence"]);
  });

  it("finds a process that did not exit, and unhandled rejections", () => {
    const run = cleanRun();
    const [p0, p1] = run.processes as Rec[];
    Object.assign(p0!, { exited: false, open: ["TCPSocketWrap"] });
    p1!.unhandled = ["unhandledRejection StoreError EC_STORE_TIMEOUT: ..."];
    expect(checks(run)).toEqual(["exit", "unhandled"]);
  });

  it("finds a value read after a restart lost it, once the reader's bound has passed", () => {
    const run = cleanRun(); // p0/0 written at 0..10, Redis killed at 100, back at 150
    run.kills = [{ kill: 100, up: 150 }];
    run.ops.push(get("p1", "k1", value("k1", "p0/0"), 200, 201)); // within 100 ms of 150
    run.quiet = { k1: null };
    run.final = { k1: null };
    run.converge = [];
    expect(checks(run)).toEqual([]);
    run.ops.push(get("p1", "k1", value("k1", "p0/0"), 260, 261));
    expect(checks(run)).toEqual(["staleness"]);
  });

  it("runs the coherence checker on the history rebuilt from the proxy's versions", () => {
    const run = cleanRun();
    run.ops.push(set("k1", "p0/1", 300, 310), get("p1", "k1", value("k1", "p0/0"), 600, 601));
    run.proxyLog.push(setRequest("k1", "p0/1", 302, 102));
    run.quiet = { k1: { id: "p0/1" } };
    run.final = { k1: { id: "p0/1" } };
    run.converge = [];
    expect(checks(run)).toEqual(["staleness"]); // p0/0 read 290 ms after p0/1 (bound 100)
  });
});

const runner = join(dirname(fileURLToPath(import.meta.url)), "faults", "run.mjs");

function runSuite(args: string[]): Promise<{ code: number; summary: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [runner, "--json", ...args],
      { timeout: 90_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split("\n").at(-1);
        if (!line) return reject(new Error(`the fault suite printed nothing: ${stderr || err}`));
        resolve({ code: err ? Number(err.code ?? 1) : 0, summary: JSON.parse(line) });
      },
    );
  });
}

describe("the fault suite on real processes (redis-server, bridge, fault proxy)", () => {
  it("finds no violation while every fault takes effect", async () => {
    const { code, summary } = await runSuite([
      "--procs",
      "2",
      "--seconds",
      "15",
      "--timeout",
      "300",
      "--window",
      "1000",
      "--gap",
      "250",
    ]);
    const why = `seed ${summary.seed}`;
    const example = (name: string) =>
      `${name} (${why}): ${JSON.stringify((summary.examples as Record<string, unknown>)[name])}`;
    // The faults really happened: every type had its window, requests were held, Redis
    // was killed and stopped, the bridge killed; and there was something to check.
    expect(Object.keys(summary.faultWindows as object).sort()).toEqual(
      [
        "bridge-kill",
        "delay",
        "error-after",
        "error-before",
        "garbage",
        "hold",
        "redis-kill",
        "redis-stop",
        "reset-after",
        "reset-before",
        "truncated",
      ].sort(),
    );
    expect((summary.proxiedRequests as Record<string, number>).hold).toBeGreaterThan(0);
    expect(summary.ackedChecked as number).toBeGreaterThan(0);
    expect((summary.coherence as { checked: number }).checked).toBeGreaterThan(0);
    // Each check on its own line, so that a failure says which.
    const by = summary.byCheck as Record<string, number>;
    const names = ["late-write", "final-state", "junk", "slow-read", "convergence", "staleness"];
    for (const name of [...names, "exit", "unhandled", "harness"]) {
      expect.soft(by[name] ?? 0, example(name)).toBe(0);
    }
    expect.soft(summary.failedToExit, why).toEqual([]);
    expect.soft(summary.unhandledRejections, why).toBe(0);
    expect(summary.violations, `${why}: ${JSON.stringify(by)}`).toBe(0);
    expect(code).toBe(0);
  }, 120_000);
});
