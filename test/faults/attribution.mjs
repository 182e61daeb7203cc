// Joins the fault proxy's log with the processes' histories: which operation each write
// request belongs to, when its effect can have happened at the earliest, and, from the
// versions the upstream answered, the history that test/coherence/history.mjs checks.
import { valuesIn } from "./values.mjs";

export const SETS = new Set(["set", "setInvalidate", "setMany"]);
export const DELETES = new Set(["delete", "deleteMany"]);
export const READS = new Set(["get", "getMany"]);
export const WRITE_KINDS = new Set(["set", "delete", "clear"]);

/** The values each operation wrote: id -> { op, key }. getOrSet's loads count as writes. */
export function writtenValues(ops) {
  const byId = new Map();
  for (const op of ops) {
    if (SETS.has(op.op)) {
      op.vals?.forEach((id, i) => {
        byId.set(id, { op, key: op.keys[i] });
      });
    }
    if (op.op === "getOrSet") {
      for (const id of op.loaded ?? []) byId.set(id, { op, key: op.keys[0] });
    }
  }
  return byId;
}

/**
 * The earliest moment a forwarded request can have taken effect: when it was forwarded,
 * or, when Redis was stopped (SIGSTOP) at that moment, when it was continued.
 */
export function effectFrom(entry, stops) {
  let t = entry.fwd;
  for (const { stop, cont } of stops) if (t >= stop && t < cont) t = cont;
  return t;
}

const sameKeys = (a, b) =>
  a.length === b.length && [...a].sort().join("\0") === [...b].sort().join("\0");

/**
 * Attributes every write request of the proxy log to the operation it carries:
 * - a set by the unique values in its arguments;
 * - a delete or clear by its origin (the process's instance id, among its arguments) and
 *   keys: the latest such operation of that process that had started when it was
 *   forwarded (a process runs one write per key at a time, so there is one).
 * Returns `{ byEntry: Map(entry -> op), byOp: Map(op -> entries), problems }`.
 */
export function attribute({ ops, proxyLog, processes }) {
  const byId = writtenValues(ops);
  const instOf = new Map(processes.map((p) => [p.instanceId, p.inst]));
  const removals = new Map(); // inst -> its deletes and clears, by start
  for (const op of ops) {
    if (!DELETES.has(op.op) && op.op !== "clear") continue;
    if (!removals.has(op.inst)) removals.set(op.inst, []);
    removals.get(op.inst).push(op);
  }
  for (const list of removals.values()) list.sort((a, b) => a.start - b.start);
  const byEntry = new Map();
  const byOp = new Map();
  const problems = [];
  for (const entry of proxyLog) {
    if (!WRITE_KINDS.has(entry.kind)) continue;
    let op;
    if (entry.kind === "set") {
      const writers = new Set(
        entry.argv.flatMap((arg) => valuesIn(arg)).map((v) => byId.get(v.id)?.op),
      );
      if (writers.size === 1) [op] = writers;
    } else {
      const inst = instOf.get(entry.argv.find((a) => instOf.has(a)));
      const at = entry.fwd ?? entry.at;
      const started = (removals.get(inst) ?? []).filter(
        (c) =>
          c.start <= at &&
          (entry.kind === "clear"
            ? c.op === "clear"
            : c.op !== "clear" && sameKeys(c.keys, entry.keys)),
      );
      op = started.at(-1);
      // Every request of an acknowledged operation went out before it was answered: one
      // that goes out later belongs to an earlier operation that was rejected (held).
      if (op?.ok && op.end < at) op = started.findLast((c) => !c.ok);
    }
    if (op === undefined) {
      problems.push({
        check: "harness",
        what: "write request of no known operation",
        entry: brief(entry),
      });
      continue;
    }
    byEntry.set(entry, op);
    if (!byOp.has(op)) byOp.set(op, []);
    byOp.get(op).push(entry);
  }
  return { byEntry, byOp, problems };
}

/** An entry without its arguments, for reports. */
export const brief = (entry) => {
  const { argv: _argv, ...rest } = entry;
  return rest;
};

/** A request's first version: a set of n entries consumed n versions, ending at `version`. */
const firstVersion = (entry) =>
  entry.kind === "set" ? entry.version - entry.keys.length + 1 : entry.version;

/**
 * The history of the k keys (plain reads and writes; getOrSet's g keys are left out: a
 * value loaded while L2 refused it is served locally by design) in the records of
 * test/coherence/history.mjs, with each write's version taken from the upstream answer
 * the proxy saw. Each time a write was applied is a completed write (from its start to its
 * acknowledgement, or to its upstream answer when it was rejected); a write never applied
 * is left out; see below for retries and unknown outcomes.
 *
 * One history per lifetime of redis-server: a restart loses every entry, and every process
 * must have dropped its L1 within its bound after it (its first sync sees a gap), so what
 * was written before cannot be read after. A write belongs to the lifetime it was sent in;
 * a read to the one it ran in, if it started a bound after the restart and ended before
 * the next kill (other reads are not judged). A write with an unknown outcome then leaves
 * its keys unjudged until the next restart only.
 * Returns `{ segments: [records], excluded: reads not judged, problems }`.
 */
export function coherenceHistory({ ops, processes, byOp, kills }) {
  const M = new Map(processes.map((p) => [p.inst, p.staleness]));
  const segments = Array.from({ length: kills.length + 1 }, () => []);
  const lifetime = (t) => kills.filter((k) => k.kill < t).length;
  const problems = [];
  const ambiguous = new Set(); // ids of sets that ran more than once, or maybe
  const judged = (key) => key.startsWith("k");
  for (const op of ops) {
    const isSet = SETS.has(op.op);
    if (!isSet && !DELETES.has(op.op) && op.op !== "clear") continue;
    const keys = op.keys.filter(judged);
    if (op.op !== "clear" && keys.length === 0) continue;
    const entries = byOp.get(op) ?? [];
    const applied = entries.filter((e) => e.outcome === "applied");
    const unknown = entries.filter((e) => e.outcome === "unknown");
    const base = { inst: op.inst, start: op.start, ref: op };
    if (applied.length === 0 && unknown.length === 0) {
      if (op.ok) {
        problems.push({
          check: "harness",
          what: "acknowledged write the proxy never saw applied",
          op,
        });
      }
      continue;
    }
    // A delete or clear with an unknown outcome leaves its keys unjudged (it may explain a
    // miss); one that ran twice (a retry) is two deletes or clears.
    if (!isSet && unknown.length > 0) {
      for (const e of unknown) {
        const records = segments[lifetime(e.fwd)];
        const failed = { ...base, end: op.end, ok: false };
        if (op.op === "clear") records.push({ t: "w", kind: "clear", ...failed });
        for (const key of keys) records.push({ t: "w", kind: "del", key, ...failed });
      }
      continue;
    }
    // A set that ran twice has one value at two versions, and one with an unknown outcome
    // may be at a version nobody saw: each run is a write of its own, and the reads that
    // return that value are not judged (leaving out a write never makes the check stricter).
    const several = isSet && (applied.length > 1 || unknown.length > 0);
    if (several) for (const key of keys) ambiguous.add(op.vals[op.keys.indexOf(key)]);
    applied.forEach((e, n) => {
      const records = segments[lifetime(e.fwd)];
      const end = op.ok ? op.end : Math.max(op.end, e.ans);
      if (op.op === "clear") {
        records.push({ t: "w", kind: "clear", version: e.version, ...base, end, ok: true });
        return;
      }
      for (const key of keys) {
        const version = isSet ? firstVersion(e) + e.keys.indexOf(key) : e.version;
        let id = isSet ? op.vals[op.keys.indexOf(key)] : undefined;
        if (several) id = `${id}#${n}`;
        records.push({
          t: "w",
          kind: isSet ? "set" : "del",
          key,
          id,
          version,
          ...base,
          end,
          ok: true,
        });
      }
    });
  }
  let excluded = 0;
  for (const op of ops) {
    if (!READS.has(op.op)) continue;
    const i = lifetime(op.start);
    const inLifetime =
      (i === 0 || op.start > kills[i - 1].up + M.get(op.inst)) &&
      !(op.end > (kills[i]?.kill ?? Number.POSITIVE_INFINITY));
    op.keys.forEach((key, j) => {
      if (!judged(key)) return;
      const got = op.got?.[j];
      if (got !== null && typeof got !== "string") return; // junk: check 3 reports it
      if (!inLifetime) {
        excluded++;
        return;
      }
      const id = got === null || got === undefined ? null : (valuesIn(got)[0]?.id ?? got);
      const ok = op.ok && !op.errs && got !== undefined && !ambiguous.has(id);
      segments[i].push({
        t: "r",
        inst: op.inst,
        key,
        id,
        start: op.start,
        end: op.end,
        ok,
        M: M.get(op.inst),
      });
    });
  }
  return { segments, excluded, problems };
}
