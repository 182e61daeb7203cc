// Offline verification of a recorded history of cache operations from many instances.
//
// Records (one per operation, times in ms on one shared clock):
//   write: { t: "w", inst, kind: "set" | "inv" | "del" | "clear", key?, id?, version, start, end, ok }
//   read:  { t: "r", inst, key, id: string | null, start, end, ok, M }
// `version` is what the store stamped on the write (the namespace's total order); `id` is
// the unique value a set wrote, or what a read returned (null for a miss); `M` is the
// reader's maxStaleness. With a sharded L2 each shard has its own order: writes also carry
// `shard` (the key's shard) and clears `versions` (their version on each shard), and a
// key's history is ordered by its shard's versions.
//
// A read is checked against two properties:
// - the staleness bound: if a write to its key (or a clear) resolved more than M ms before
//   the read started, the read returns that write's state or a newer one;
// - monotonic reads: on one instance, a read that starts after another read of the same
//   key ended never returns an older state.
// A read that returned a value is pinned to the set that wrote it. A miss may stand for the
// initial state or any delete or clear of the key; the checker picks the oldest state that
// satisfies both properties, which is the most lenient choice for the reads that follow.

const INITIAL = { kind: "initial", version: 0, start: Number.NEGATIVE_INFINITY, end: 0 };

/**
 * @param {Array<Record<string, unknown>>} records
 * @param {{ epsilon?: number }} [options] tolerance in ms for comparing times taken by
 *   different processes (clock reads of one machine, but not of one process)
 */
export function checkHistory(records, { epsilon = 0.1 } = {}) {
  const writes = records.filter((r) => r.t === "w");
  const reads = records.filter((r) => r.t === "r");
  const violations = [];

  // A failed write may or may not have happened: its key cannot be judged.
  const tainted = new Set(
    writes.filter((w) => !w.ok).map((w) => (w.kind === "clear" ? "*" : w.key)),
  );
  const done = writes.filter((w) => w.ok);
  const seen = new Map();
  for (const w of done) {
    const stamps = w.versions ? Object.entries(w.versions) : [[w.shard ?? "", w.version]];
    for (const [shard, version] of stamps) {
      if (!Number.isSafeInteger(version) || version < 1) {
        violations.push({ kind: "bad-version", op: w });
        continue;
      }
      const other = seen.get(`${shard}:${version}`);
      if (other) violations.push({ kind: "duplicate-version", op: w, other });
      seen.set(`${shard}:${version}`, w);
    }
  }
  const clears = done.filter((w) => w.kind === "clear");
  const byKey = new Map();
  const shardOf = new Map();
  for (const w of done) {
    if (w.kind === "clear") continue;
    if (!byKey.has(w.key)) byKey.set(w.key, []);
    byKey.get(w.key).push(w);
    if (w.shard !== undefined) shardOf.set(w.key, w.shard);
  }
  const opsOf = new Map();
  const opsFor = (key) => {
    let ops = opsOf.get(key);
    if (!ops) {
      const shard = shardOf.get(key);
      // A clear's place in a key's order is its version on the key's shard.
      const own = clears.map((c) =>
        c.versions && shard !== undefined ? { ...c, version: c.versions[shard] } : c,
      );
      ops = [INITIAL, ...(byKey.get(key) ?? []), ...own].sort((a, b) => a.version - b.version);
      opsOf.set(key, ops);
    }
    return ops;
  };
  const bySetId = new Map(done.filter((w) => w.id != null).map((w) => [w.id, w]));

  let checked = 0;
  let unchecked = 0;
  let maxStaleness = 0;
  let maxStalenessRatio = 0;
  const maxStalenessByBound = {};
  const chosen = new Map(); // read -> version of the state it is pinned to

  // Group reads by (instance, key) for the monotonic property; each group is walked in
  // start order, folding in the reads that ended before the current one started.
  const groups = new Map();
  for (const r of reads) {
    const g = `${r.inst}\u0000${r.key}`;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(r);
  }
  for (const group of groups.values()) {
    const byStart = [...group].sort((a, b) => a.start - b.start);
    const byEnd = [...group].sort((a, b) => a.end - b.end);
    let e = 0;
    let floor = 0;
    for (const read of byStart) {
      while (e < byEnd.length && byEnd[e].end < read.start) {
        const v = chosen.get(byEnd[e]);
        if (v !== undefined && v > floor) floor = v;
        e++;
      }
      if (!read.ok || tainted.has("*") || tainted.has(read.key)) {
        unchecked++;
        continue;
      }
      checked++;
      const ops = opsFor(read.key);
      // The newest state the bound obliges this read to see (or pass).
      let vmin = 0;
      for (const op of ops) {
        if (op.kind !== "initial" && op.end + read.M + epsilon < read.start && op.version > vmin) {
          vmin = op.version;
        }
      }
      let candidates;
      if (read.id !== null) {
        const op = bySetId.get(read.id);
        if (!op) {
          violations.push({ kind: "unknown-value", read });
          continue;
        }
        if (op.key !== read.key) {
          violations.push({ kind: "other-key", read, op });
          continue;
        }
        candidates = [op];
      } else {
        candidates = ops.filter(
          (o) => o.kind === "initial" || o.kind === "del" || o.kind === "clear",
        );
      }
      // A read cannot see a write that had not started when it ended.
      const possible = candidates.filter((o) => o.start < read.end + epsilon);
      if (possible.length === 0) {
        violations.push({ kind: "future-value", read, op: candidates[0] });
        continue;
      }
      const fresh = possible.filter((o) => o.version >= vmin);
      if (fresh.length === 0) {
        const best = possible[possible.length - 1];
        violations.push({ kind: "stale", read, returned: best.version, required: vmin });
        chosen.set(read, best.version);
        continue;
      }
      const ordered = fresh.filter((o) => o.version >= floor);
      const pick = ordered[0] ?? fresh[fresh.length - 1];
      if (ordered.length === 0) {
        violations.push({ kind: "backwards", read, returned: pick.version, earlier: floor });
      }
      chosen.set(read, pick.version);
      // How long after a newer state had resolved this read still saw the one it returned.
      // A miss may stand for several states; the newest acceptable one is what it most
      // likely saw (for the monotonic floor above, the oldest is the lenient choice).
      const seen = ordered.length > 0 ? ordered[ordered.length - 1] : pick;
      const next = ops.find((o) => o.version > seen.version);
      if (next && next.end < read.start) {
        const staleness = read.start - next.end;
        if (staleness > maxStaleness) maxStaleness = staleness;
        if (staleness > (maxStalenessByBound[read.M] ?? 0)) maxStalenessByBound[read.M] = staleness;
        if (read.M > 0 && staleness / read.M > maxStalenessRatio) {
          maxStalenessRatio = staleness / read.M;
        }
      }
    }
  }
  return {
    operations: records.length,
    reads: reads.length,
    writes: writes.length,
    checked,
    unchecked,
    violations,
    maxStaleness,
    maxStalenessRatio,
    maxStalenessByBound,
  };
}
