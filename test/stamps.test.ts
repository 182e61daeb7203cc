import { describe, expect, it } from "vitest";
import type { ChangeRecord } from "../src/store/contract.js";
import { resolveSync, SyncState } from "../src/sync/state.js";

const settings = (o = {}) => resolveSync({ maxStaleness: 1000, batch: 10, ...o })!;
const rec = (first: number, last = first, op: ChangeRecord["op"] = "set"): ChangeRecord => ({
  op,
  first,
  last,
  origin: "x",
  keys: [],
});

function at(cursor: number, o = {}) {
  const s = new SyncState(settings(o));
  s.accept({ head: cursor, records: [] }, -1, 0); // first sync puts the cursor at the head
  return s;
}

describe("SyncState", () => {
  it("starts at the head on the first sync, with nothing to apply", () => {
    const s = new SyncState(settings());
    expect(s.accept({ head: 42, records: [] }, -1, 5)).toEqual({ kind: "none" });
    expect(s.cursor).toBe(42);
    expect(s.syncedAt).toBe(5);
  });

  it("applies a contiguous run of records and moves to the head", () => {
    const s = at(10);
    const records = [rec(11), rec(12, 14), rec(15, 15, "delete")];
    expect(s.accept({ head: 15, records }, 10, 100)).toEqual({ kind: "apply", records });
    expect(s.cursor).toBe(15);
    expect(s.stats.syncLag).toBe(5);
  });

  it("flushes on a gap (trimmed log), an empty log below the head, or a backlog over batch", () => {
    const gap = at(10);
    expect(gap.accept({ head: 14, records: [rec(13), rec(14)] }, 10, 1).kind).toBe("flush");
    expect(gap.cursor).toBe(14);
    const lost = at(10);
    expect(lost.accept({ head: 12, records: [] }, 10, 1)).toEqual({ kind: "flush", reason: "gap" });
    const behind = at(10);
    expect(behind.accept({ head: 30, records: [rec(11), rec(12)] }, 10, 1)).toEqual({
      kind: "flush",
      reason: "behind",
    });
    expect(behind.stats.flushes).toBe(1);
  });

  it("flushes when the counter went backwards (Redis lost its data)", () => {
    const s = at(50);
    expect(s.accept({ head: 3, records: [] }, 50, 1)).toEqual({ kind: "flush", reason: "reset" });
    expect(s.cursor).toBe(3);
  });

  it("a reset answer overtaken by a newer applied one does not move the cursor back", () => {
    const s = at(5);
    expect(s.accept({ head: 3, records: [] }, 5, 200).kind).toBe("flush"); // newer: the reset
    expect(s.accept({ head: 2, records: [] }, 5, 150).kind).toBe("unverified"); // older, late
    expect(s.cursor).toBe(3);
  });

  it("an answer overtaken by a newer one changes nothing but may refresh the window", () => {
    const s = at(10);
    s.accept({ head: 12, records: [rec(11), rec(12)] }, 10, 200);
    // An older request (sent at 150 from cursor 10) answers late with head 11.
    expect(s.accept({ head: 11, records: [rec(11)] }, 10, 150)).toEqual({ kind: "none" });
    expect(s.cursor).toBe(12);
    expect(s.syncedAt).toBe(200);
    // A late answer that reaches past the cursor is applied from the cursor on.
    expect(s.accept({ head: 13, records: [rec(11), rec(12), rec(13)] }, 10, 180)).toEqual({
      kind: "apply",
      records: [rec(13)],
    });
    expect(s.syncedAt).toBe(200);
  });

  it("an answer asked before the cursor existed vouches for nothing once it does", () => {
    const s = at(10);
    expect(s.accept({ head: 12, records: [] }, -1, 1).kind).toBe("unverified");
    expect(s.cursor).toBe(10);
  });

  it("is fresh for maxStaleness ms after the sync was sent; never with 0", () => {
    const s = at(1);
    s.accept({ head: 1, records: [] }, 1, 1000);
    expect(s.fresh(1999)).toBe(true);
    expect(s.fresh(2000)).toBe(false);
    expect(s.fresh(1998, 1)).toBe(true);
    expect(s.fresh(1999, 1)).toBe(false); // a coarse clock's slack counts against the window
    const zero = at(1, { maxStaleness: 0 });
    zero.accept({ head: 1, records: [] }, 1, 1000);
    expect(zero.fresh(1000)).toBe(false);
  });

  it("refresh-ahead is due once the given fraction of the window is used", () => {
    const s = at(1, { refreshAhead: 0.5 });
    s.accept({ head: 1, records: [] }, 1, 0);
    expect(s.due(499)).toBe(false);
    expect(s.due(500)).toBe(true);
    expect(at(1).due(10_000)).toBe(false);
  });

  it("validates its options", () => {
    for (const bad of [
      { maxStaleness: -1 },
      { maxStaleness: Number.NaN },
      { batch: 0 },
      { logLength: 1.5 },
      { refreshAhead: 1 },
      { propagateMaxBytes: -2 },
      { waitUntil: 1 },
    ]) {
      expect(() => resolveSync(bad as never)).toThrowError(
        expect.objectContaining({ code: "EC_INVALID_OPTION" }),
      );
    }
    expect(resolveSync(false)).toBeUndefined();
    expect(resolveSync(undefined)).toMatchObject({ maxStaleness: 1000, logLength: 5000 });
  });
});
