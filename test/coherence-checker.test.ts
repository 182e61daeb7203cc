import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JS module shared with the checker's runner (no declarations)
import { checkHistory } from "./coherence/history.mjs";

type Rec = Record<string, unknown>;
const w = (
  kind: string,
  key: string | undefined,
  id: string | null,
  version: number,
  start: number,
  end: number,
): Rec => ({
  t: "w",
  inst: "a",
  kind,
  key,
  id: id ?? undefined,
  version,
  start,
  end,
  ok: true,
});
const r = (
  inst: string,
  key: string,
  id: string | null,
  start: number,
  end: number,
  M = 100,
): Rec => ({
  t: "r",
  inst,
  key,
  id,
  start,
  end,
  ok: true,
  M,
});
const kinds = (records: Rec[]) =>
  (checkHistory(records) as { violations: Array<{ kind: string }> }).violations.map((v) => v.kind);

describe("the history checker", () => {
  it("accepts a coherent history", () => {
    const history = [
      w("set", "k", "v1", 1, 0, 10),
      r("b", "k", "v1", 20, 21),
      w("set", "k", "v2", 2, 30, 40),
      r("b", "k", "v1", 100, 101), // 60 ms after v2 resolved: inside a 100 ms bound
      r("b", "k", "v2", 200, 201),
      w("del", "k", null, 3, 210, 220),
      r("b", "k", null, 400, 401),
      w("clear", undefined, null, 4, 500, 510),
      r("c", "k", null, 511, 512),
    ];
    expect(kinds(history)).toEqual([]);
    const result = checkHistory(history);
    expect(result.checked).toBe(5);
    expect(result.maxStaleness).toBeCloseTo(60);
  });

  it("finds a read that returned a state older than the bound allows", () => {
    expect(
      kinds([
        w("set", "k", "v1", 1, 0, 10),
        w("set", "k", "v2", 2, 20, 30),
        r("b", "k", "v1", 131, 132),
      ]),
    ).toEqual(["stale"]);
  });

  it("finds a miss served after a set resolved long before", () => {
    expect(kinds([w("set", "k", "v1", 1, 0, 10), r("b", "k", null, 111, 112)])).toEqual(["stale"]);
  });

  it("finds a value deleted long before", () => {
    expect(
      kinds([
        w("set", "k", "v1", 1, 0, 10),
        w("del", "k", null, 2, 20, 30),
        r("b", "k", "v1", 200, 201),
      ]),
    ).toEqual(["stale"]);
  });

  it("finds a value that survived a clear for too long", () => {
    expect(
      kinds([
        w("set", "k", "v1", 1, 0, 10),
        w("clear", undefined, null, 2, 20, 30),
        r("b", "k", "v1", 200, 201),
      ]),
    ).toEqual(["stale"]);
  });

  it("finds reads that go backwards on one instance, but not across instances", () => {
    const base = [w("set", "k", "v1", 1, 0, 10), w("set", "k", "v2", 2, 20, 30)];
    expect(kinds([...base, r("b", "k", "v2", 40, 41), r("b", "k", "v1", 50, 51)])).toEqual([
      "backwards",
    ]);
    expect(kinds([...base, r("b", "k", "v2", 40, 41), r("c", "k", "v1", 50, 51)])).toEqual([]);
    // Overlapping reads on one instance are not ordered.
    expect(kinds([...base, r("b", "k", "v2", 40, 60), r("b", "k", "v1", 50, 51)])).toEqual([]);
  });

  it("finds values from nowhere, from the future and from another key", () => {
    expect(kinds([r("b", "k", "ghost", 0, 1)])).toEqual(["unknown-value"]);
    expect(kinds([w("set", "k", "v1", 1, 50, 60), r("b", "k", "v1", 0, 1)])).toEqual([
      "future-value",
    ]);
    expect(kinds([w("set", "j", "v1", 1, 0, 10), r("b", "k", "v1", 20, 21)])).toEqual([
      "other-key",
    ]);
  });

  it("uses the reader's own bound, including 0", () => {
    const base = [w("set", "k", "v1", 1, 0, 10), w("set", "k", "v2", 2, 20, 30)];
    expect(kinds([...base, r("b", "k", "v1", 31, 32, 0)])).toEqual(["stale"]);
    expect(kinds([...base, r("b", "k", "v1", 31, 32, 1000)])).toEqual([]);
  });

  it("does not judge reads of keys whose writes failed", () => {
    const failed = { ...w("set", "k", "v2", 2, 20, 30), ok: false };
    const result = checkHistory([
      w("set", "k", "v1", 1, 0, 10),
      failed,
      r("b", "k", "v1", 500, 501),
    ]);
    expect(result.violations).toEqual([]);
    expect(result.unchecked).toBe(1);
  });
});

const runner = join(dirname(fileURLToPath(import.meta.url)), "coherence", "run.mjs");

function runChecker(args: string[]): Promise<{ code: number; summary: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [runner, "--json", ...args],
      { timeout: 120_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.trim().split("\n").at(-1);
        if (!line) return reject(new Error(`the checker printed nothing: ${stderr || err}`));
        resolve({ code: err ? Number(err.code ?? 1) : 0, summary: JSON.parse(line) });
      },
    );
  });
}

/** A run with every fault, which must find nothing; `extra` adds the hub or sharding. */
async function cleanRun(...extra: string[]) {
  const run = await runChecker(
    ["--instances", "4", "--workerd", "1", "--ops", "500", "--pause-ms", "600"].concat(extra),
  );
  const { summary } = run;
  expect(
    summary.violations,
    `seed ${summary.seed}: ${JSON.stringify(summary.firstViolations)}`,
  ).toBe(0);
  expect(summary.unchecked).toBe(0);
  expect(summary.checked as number).toBeGreaterThan(1000);
  expect(summary.totalFlushes as number).toBeGreaterThan(0); // trimmed log, pause, clears
  expect(run.code).toBe(0);
  return summary;
}

describe("the coherence checker on real instances (Node processes and workerd, real Redis)", () => {
  it("finds no violation, with the faults taking effect and the hub restarted", async () => {
    const summary = await cleanRun("--hub");
    expect((summary.hub as { framesReceived: number }).framesReceived).toBeGreaterThan(0);
    expect(Object.keys(summary.flushes as object)).toEqual(
      expect.arrayContaining(["n0", "n0r", "w0", "w0r"]), // restarted instances took part
    );
  }, 120_000);

  it("finds no violation with pushes over Redis pub/sub, the bridge restarted half-way", async () => {
    const summary = await cleanRun("--pubsub");
    const pubsub = summary.pubsub as { received: number; reconnects: number };
    expect(pubsub.received).toBeGreaterThan(0);
    // Every subscribed instance alive at the restart lost its stream and opened it again.
    expect(pubsub.reconnects).toBeGreaterThan(0);
  }, 120_000);

  it("finds no violation with L2 sharded over three stores (merged change logs)", async () => {
    await cleanRun("--shards", "3");
  }, 120_000);

  it.each([
    ["the instances run", []],
    ["sharded instances run", ["--shards", "3"]],
  ])(
    "finds violations when %s without coherence",
    async (_, extra) => {
      const { code, summary } = await runChecker(
        ["--instances", "3", "--workerd", "1", "--ops", "300", "--pause-ms", "0", "--break"].concat(
          extra,
        ),
      );
      expect(summary.violations as number).toBeGreaterThan(0);
      expect(code).toBe(1);
    },
    120_000,
  );
});
