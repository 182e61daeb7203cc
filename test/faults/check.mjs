// The fault suite's checks, run offline on everything a run recorded (see run.mjs for how
// it is gathered). Pure: no I/O, no clock; the unit tests feed it synthetic runs.
//
// Input `run`:
//   settings   { timeout, readMargin, loaderMax, convergeMargin }
//   processes  [{ inst, instanceId, staleness, cooldown, exited, code, signal, open,
//              unhandled, closeError }] (cooldown: of its breaker, 0 without one)
//   ops        the processes' operations: { inst, op, keys, vals?, loaded?, got?, start, end,
//              ok, code?, errs? } (times in ms on the machine's monotonic clock)
//   proxyLog   the fault proxy's requests (see proxy.mjs)
//   windows    [{ type, start, end }] the fault windows
//   kills      [{ kill, up }] redis-server SIGKILLed at `kill`, answering again at `up`
//   stops      [{ stop, cont }] redis-server SIGSTOPped and SIGCONTed
//   quiet      { key: state } Redis after the workload stopped and the proxy drained
//   final      { key: state } Redis after every process closed
//              (a state is null for no visible entry, { id } for one of ours, { junk })
//   converge   [{ inst, from, reads: [{ key, got, start, end }] }]
//   stalls     { [inst or "orchestrator"]: [[from, to]] } event-loop stalls (stalls.mjs)
// Returns { violations, byCheck, stats }.
import { checkHistory } from "../coherence/history.mjs";
import {
  attribute,
  brief,
  coherenceHistory,
  DELETES,
  effectFrom,
  READS,
  SETS,
  writtenValues,
} from "./attribution.mjs";
import { stalledDuring } from "./stalls.mjs";
import { parseValue } from "./values.mjs";

const INF = Number.POSITIVE_INFINITY;
const max = (a, b) => (a === undefined || b > a ? b : a);
const round = (n) => Math.round(n * 10) / 10;
const opBrief = (op) => ({
  inst: op.inst,
  op: op.op,
  keys: op.keys,
  vals: op.vals,
  start: round(op.start),
  end: round(op.end),
  ok: op.ok,
  code: op.code,
});

/** The first fault window an operation overlaps ("none" if it ran between windows). */
function faultOf(windows, op) {
  for (const w of windows) if (op.start < w.end && op.end >= w.start) return w.type;
  return "none";
}

/** A state's id for comparisons: the value's id, null for none, "junk" otherwise. */
const stateId = (s) => (s === null || s === undefined ? null : (s.id ?? "junk"));

/**
 * Check 1: what Redis finally holds. A write's effect, if any, falls before it resolved
 * (acknowledged or rejected: the contract of a rejected write once the write-deadline fix
 * is in); a getOrSet's write is never reported to its caller, so it may fall any time
 * after it started. The final state of a key must come from a write that no required
 * acknowledged write of the key followed in real time (started after the first could last
 * take effect); an absent key must be explained by a delete, clear or restart that no
 * required acknowledged set followed. Required: acknowledged, and started after the last
 * redis-server kill (earlier ones may be lost with its data).
 */
function checkFinalState(run, keys, violations) {
  const lastKill = run.kills.reduce((a, k) => Math.max(a, k.kill), Number.NEGATIVE_INFINITY);
  const perKey = new Map(keys.map((k) => [k, []]));
  const add = (key, w) => perKey.get(key)?.push(w);
  for (const op of run.ops) {
    const outcome = op.ok ? "acked" : "rejected";
    if (SETS.has(op.op)) {
      op.keys.forEach((key, i) => {
        add(key, { kind: "set", id: op.vals?.[i], op, outcome });
      });
    } else if (DELETES.has(op.op)) {
      for (const key of op.keys) add(key, { kind: "del", op, outcome });
    } else if (op.op === "clear") {
      for (const key of keys) add(key, { kind: "del", op, outcome });
    } else if (op.op === "getOrSet") {
      for (const id of op.loaded ?? [])
        add(op.keys[0], { kind: "set", id, op, outcome: "unknown" });
    }
  }
  const restarts = run.kills.map(({ kill, up }) => ({
    kind: "del",
    op: { inst: "redis", op: "restart", keys: [], start: kill, end: up, ok: true },
    outcome: "acked",
  }));
  const upper = (w) => (w.outcome === "unknown" ? INF : w.op.end);
  const required = (w) => w.outcome === "acked" && (w.op.op === "restart" || w.op.start > lastKill);
  let checked = 0;
  for (const [key, writes] of perKey) {
    writes.push(...restarts);
    const musts = writes.filter(required);
    checked += musts.filter((w) => w.op.op !== "restart").length;
    const state = run.final[key] ?? null;
    const lost = (w, newer) =>
      violations.push({
        check: "final-state",
        key,
        final: w ? { ...opBrief(w.op), id: w.id, outcome: w.outcome } : null,
        newer: { ...opBrief(newer.op), kind: newer.kind },
      });
    if (state === null) {
      const best = writes
        .filter((w) => w.kind === "del")
        .reduce((a, w) => Math.max(a, upper(w)), Number.NEGATIVE_INFINITY);
      const newer = musts.find((w) => w.kind === "set" && w.op.start > best);
      if (newer) lost(undefined, newer);
    } else {
      const writer = writes.find((w) => w.kind === "set" && w.id === state.id);
      if (!writer) {
        violations.push({
          check: "final-state",
          key,
          what: "Redis holds a value nobody wrote",
          state,
        });
        continue;
      }
      const newer = musts.find((w) => w !== writer && w.op.start > upper(writer));
      if (newer) lost(writer, newer);
    }
  }
  return checked;
}

/**
 * Check 2: no write took effect after its rejection. A write request the upstream applied
 * whose effect cannot have come before it was forwarded (or before Redis was continued,
 * if it was stopped then) is late when its operation had already been rejected.
 */
function checkLateWrites(run, byEntry, violations) {
  const s = { lateWrites: 0, latePossible: 0, lateRefused: 0, appliedAfterGiveUp: 0 };
  s.writesAfterGetOrSet = 0;
  for (const [entry, op] of byEntry) {
    if (entry.fwd === undefined || entry.outcome === "none") continue;
    const from = effectFrom(entry, run.stops);
    if (op.op === "getOrSet") {
      if (entry.fwd > op.end && entry.outcome !== "refused") s.writesAfterGetOrSet++;
      continue;
    }
    if (op.ok) {
      if (entry.fwd > op.end) {
        violations.push({
          check: "harness",
          what: "forwarded after its acknowledgement",
          op: opBrief(op),
        });
      }
      continue;
    }
    if (from > op.end) {
      if (entry.outcome === "applied") {
        s.lateWrites++;
        violations.push({
          check: "late-write",
          op: opBrief(op),
          request: brief(entry),
          lateBy: round(from - op.end),
        });
      } else if (entry.outcome === "unknown") s.latePossible++;
      else s.lateRefused++;
    } else if (entry.outcome === "applied" && entry.ans > op.end) s.appliedAfterGiveUp++;
  }
  return s;
}

/** Check 3: a read returns a value some process wrote for that key, or nothing. */
function checkValue(byId, key, got, where, violations) {
  if (got === null) return;
  const parsed = parseValue(got);
  const writer = parsed && byId.get(parsed.id);
  if (!parsed || parsed.key !== key || !writer || writer.key !== key) {
    violations.push({ check: "junk", key, got, ...where });
  }
}

/**
 * Check 4: reads answer within the store timeout (getOrSet: plus the loader's time), not
 * counting the time their process or the orchestrator (the proxy) was stalled.
 */
function checkLatency(run, violations) {
  const { timeout, readMargin, loaderMax } = run.settings;
  const slowestRead = {};
  const slowestWrite = {};
  const stalls = run.stalls ?? {};
  for (const op of run.ops) {
    const fault = faultOf(run.windows, op);
    const ms = op.end - op.start;
    if (READS.has(op.op) || op.op === "getOrSet") {
      slowestRead[fault] ??= {};
      slowestRead[fault][op.op] = round(max(slowestRead[fault][op.op], ms));
      const limit = timeout + readMargin + (op.op === "getOrSet" ? loaderMax : 0);
      if (ms <= limit) continue;
      const stalled = stalledDuring(
        [...(stalls[op.inst] ?? []), ...(stalls.orchestrator ?? [])],
        op.start,
        op.end,
      );
      if (ms - stalled > limit) {
        violations.push({
          check: "slow-read",
          fault,
          ms: round(ms),
          stalled: round(stalled),
          limit,
          op: opBrief(op),
        });
      }
    } else {
      slowestWrite[fault] = round(max(slowestWrite[fault], ms));
    }
  }
  return { slowestRead, slowestWrite };
}

/**
 * Check 5: once the faults stopped and the proxy drained (`from`: every write has landed),
 * reads on every process agree with Redis within that process's staleness bound plus a
 * margin (plus its breaker's cooldown, which may hold its first sync back).
 */
function checkConvergence(run, byId, violations) {
  const bounds = new Map(
    run.processes.map((p) => [
      p.inst,
      p.staleness + (p.cooldown ?? 0) + run.settings.convergeMargin,
    ]),
  );
  const converged = {};
  for (const { inst, from, reads } of run.converge) {
    const bound = bounds.get(inst);
    let last = 0;
    let reported = 0;
    for (const r of reads) {
      checkValue(byId, r.key, r.got, { inst, phase: "convergence" }, violations);
      const want = stateId(run.quiet[r.key]);
      const got = r.got === null ? null : (parseValue(r.got)?.id ?? "junk");
      if (got === want) continue;
      last = Math.max(last, r.end - from);
      if (r.start > from + bound && reported++ < 5) {
        violations.push({
          check: "convergence",
          inst,
          key: r.key,
          got,
          want,
          at: round(r.start - from),
          bound,
        });
      }
    }
    converged[inst] = round(last);
  }
  return converged;
}

/** Runs every check; see the top of the file for `run`. */
export function checkFaults(run) {
  const violations = [];
  const keys = [
    ...new Set([...Object.keys(run.final), ...run.ops.flatMap((op) => op.keys)]),
  ].sort();
  const byId = writtenValues(run.ops);
  const { byEntry, byOp, problems } = attribute(run);
  violations.push(...problems);

  const ackedChecked = checkFinalState(run, keys, violations);
  for (const key of keys) {
    if (stateId(run.quiet[key]) !== stateId(run.final[key])) {
      violations.push({
        check: "final-state",
        key,
        what: "Redis changed after the quiet period",
        quiet: run.quiet[key],
        final: run.final[key],
      });
    }
  }
  const late = checkLateWrites(run, byEntry, violations);
  for (const op of run.ops) {
    op.got?.forEach((got, i) => {
      const key = op.keys[i];
      if (got !== null && typeof got !== "string")
        violations.push({ check: "junk", key, got, op: opBrief(op) });
      else checkValue(byId, key, got, { op: opBrief(op) }, violations);
    });
  }
  const latency = checkLatency(run, violations);
  const converged = checkConvergence(run, byId, violations);
  for (const p of run.processes) {
    if (!p.exited) violations.push({ check: "exit", inst: p.inst, open: p.open, signal: p.signal });
    else if (p.code !== 0) violations.push({ check: "exit", inst: p.inst, code: p.code });
    if (p.closeError) violations.push({ check: "exit", inst: p.inst, closeError: p.closeError });
    for (const u of p.unhandled ?? [])
      violations.push({ check: "unhandled", inst: p.inst, error: u });
  }

  // Check 8: coherence (staleness bound, monotonic reads) under faults, by the coherence
  // checker, on the history rebuilt with the versions the proxy saw, one redis-server
  // lifetime at a time.
  const history = coherenceHistory({ ...run, byOp });
  violations.push(...history.problems);
  const coherence = { checked: 0, unchecked: history.excluded, maxStaleness: 0 };
  for (const records of history.segments) {
    const result = checkHistory(records);
    coherence.checked += result.checked;
    coherence.unchecked += result.unchecked;
    coherence.maxStaleness = Math.max(coherence.maxStaleness, result.maxStaleness);
    for (const v of result.violations) {
      // A deleteMany stamps one version on each of its keys.
      if (v.kind === "duplicate-version" && v.op.ref === v.other.ref) continue;
      const strip = (r) => (r && typeof r === "object" ? { ...r, ref: undefined } : r);
      violations.push({
        check: "staleness",
        kind: v.kind,
        read: strip(v.read),
        op: strip(v.op),
        returned: v.returned,
        required: v.required,
        earlier: v.earlier,
      });
    }
  }

  const byCheck = {};
  for (const v of violations) byCheck[v.check] = (byCheck[v.check] ?? 0) + 1;
  const byOpKind = {};
  for (const op of run.ops) byOpKind[op.op] = (byOpKind[op.op] ?? 0) + 1;
  const windows = {};
  for (const w of run.windows) windows[w.type] = (windows[w.type] ?? 0) + 1;
  const writes = run.ops.filter((op) => SETS.has(op.op) || DELETES.has(op.op) || op.op === "clear");
  return {
    violations,
    byCheck,
    stats: {
      operations: run.ops.length,
      byOp: byOpKind,
      failedOps: run.ops.filter((op) => !op.ok).length,
      faultWindows: windows,
      writes: {
        acknowledged: writes.filter((w) => w.ok).length,
        rejected: writes.filter((w) => !w.ok).length,
      },
      ackedChecked,
      ...late,
      ...latency,
      convergedAfterMs: converged,
      coherence: {
        checked: coherence.checked,
        unchecked: coherence.unchecked,
        maxStaleness: round(coherence.maxStaleness),
      },
      stalls: Object.fromEntries(
        Object.entries(run.stalls ?? {}).map(([who, list]) => [
          who,
          [list.length, round(list.reduce((m, [a, b]) => Math.max(m, b - a), 0))],
        ]),
      ),
      failedToExit: run.processes.filter((p) => !p.exited).map((p) => p.inst),
      unhandledRejections: run.processes.reduce((n, p) => n + (p.unhandled?.length ?? 0), 0),
    },
  };
}
