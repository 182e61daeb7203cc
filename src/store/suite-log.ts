/**
 * The store suite's cases about the change log: what every write records, reading after a
 * cursor, trimming, and syncs carried by reads and writes.
 * @module
 */
import type { ChangeBatch } from "./contract.js";
import { META, type SuiteRun } from "./suite-case.js";

const w = (key: string, value: string, propagate = false, ttl = 60_000) => ({
  key,
  value,
  ttl,
  propagate,
});

/** Registers the change-log cases (see {@link SuiteRun}). */
export function changeLogCases({ caps, expect, it }: SuiteRun): void {
  const sharded = !caps.orderedVersions;

  it("a first sync (cursor -1) returns the head and no records", async (c) => {
    await c.set(c.ns, [w("a", "1")], META);
    const batch = await c.h.store.sync(c.ns, { cursor: -1, limit: 10 });
    expect(batch.records).toEqual([]);
    // Sharded: the log's own numbering starts at 0 when it is first read.
    expect(batch.head).toBeGreaterThanOrEqual(sharded ? 0 : 1);
  });

  it("records every write, delete and clear after the cursor, contiguous, in order", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    const [v1, v2] = await c.set(ns, [w("a", "A", true), w("b", "B")], META);
    const d = await c.del(ns, ["a", "zz"], { origin: "other", logLength: 100 });
    const cleared = await c.clr(ns, META);
    const batch = await h.store.sync(ns, { cursor: start, limit: 10 });
    if (sharded) {
      // Records are numbered apart from entry versions, and shards' records interleave.
      let expected = start + 1;
      for (const r of batch.records) {
        expect(r.first).toBe(expected);
        expected = r.last + 1;
      }
      expect(expected - 1).toBe(batch.head);
      const keys = batch.records.flatMap((r) =>
        r.keys.map((k) => [r.op, r.origin, k.key, k.value, k.version] as const),
      );
      const sets = keys.filter(([op]) => op === "set");
      expect(sets.sort((x, y) => (x[2] < y[2] ? -1 : 1))).toEqual([
        ["set", "suite", "a", "A", v1],
        ["set", "suite", "b", undefined, v2],
      ]);
      const ttl = batch.records.flatMap((r) => r.keys).find((k) => k.key === "a")?.ttl;
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
      const deleted = keys.filter(([op]) => op === "delete");
      expect(deleted.map(([, o, k, x]) => [o, k, x]).sort()).toEqual([
        ["other", "a", undefined],
        ["other", "zz", undefined],
      ]);
      expect(deleted.find(([, , k]) => k === "a")![4]).toBeGreaterThan(v1!);
      for (const [, , , , v] of deleted) expect(v).toBeLessThanOrEqual(d);
      const clears = batch.records.filter((r) => r.op === "clear");
      expect(clears.length).toBeGreaterThan(0);
      expect(clears.every((r) => r.origin === "suite" && r.keys.length === 0)).toBe(true);
      return;
    }
    expect(batch.head).toBe(cleared);
    expect(batch.records.map((r) => [r.op, r.first, r.last, r.origin])).toEqual([
      ["set", v1, v2, "suite"],
      ["delete", d, d, "other"],
      ["clear", cleared, cleared, "suite"],
    ]);
    const [setRecord, deleteRecord] = batch.records;
    expect(setRecord!.keys.map((k) => [k.key, k.version, k.value])).toEqual([
      ["a", v1, "A"],
      ["b", v2, undefined],
    ]);
    expect(setRecord!.keys[0]!.ttl).toBeGreaterThan(0);
    expect(setRecord!.keys[0]!.ttl).toBeLessThanOrEqual(60_000);
    expect(deleteRecord!.keys.map((k) => [k.key, k.version])).toEqual([
      ["a", d],
      ["zz", d],
    ]);
    expect(batch.records[2]!.keys).toEqual([]);
  });

  it("returns only records after the cursor, at most `limit`", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    for (let i = 0; i < 5; i++) await c.set(ns, [w(`k${i}`, "v")], META);
    const all = await h.store.sync(ns, { cursor: start, limit: 100 });
    expect(all.records).toHaveLength(5);
    const keysOf = (b: ChangeBatch) => b.records.map((r) => r.keys[0]!.key);
    // Sharded: writes to different shards have no order between them; the log keeps the
    // order in which it first returned them.
    const order = sharded ? keysOf(all) : ["k0", "k1", "k2", "k3", "k4"];
    expect([...keysOf(all)].sort()).toEqual(["k0", "k1", "k2", "k3", "k4"]);
    const tail = await h.store.sync(ns, { cursor: all.records[2]!.last, limit: 100 });
    expect(keysOf(tail)).toEqual(order.slice(3));
    const limited = await h.store.sync(ns, { cursor: start, limit: 2 });
    expect(keysOf(limited)).toEqual(order.slice(0, 2));
    expect(limited.head).toBe(all.head);
    expect(await h.store.sync(ns, { cursor: all.head, limit: 10 })).toEqual({
      head: all.head,
      records: [],
    });
  });

  it("is bounded: old records are trimmed, which a reader sees as a gap", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    for (let i = 0; i < 400; i++) {
      await c.set(ns, [w(`k${i}`, "v")], { origin: "suite", logLength: 10 });
    }
    const batch = await h.store.sync(ns, { cursor: start, limit: 1000 });
    // Trimming may be approximate (Redis trims whole stream nodes), but it is bounded.
    expect(batch.records.length).toBeLessThan(250);
    expect(batch.records.length).toBeGreaterThanOrEqual(10);
    expect(batch.records[0]!.first).toBeGreaterThan(start + 1);
    expect(batch.records.at(-1)!.last).toBe(batch.head);
  });

  it("writes with logLength 0 advance the head without records", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    await c.set(ns, [w("a", "1")], { origin: "x", logLength: 0 });
    const batch = await h.store.sync(ns, { cursor: start, limit: 10 });
    expect(batch.head).toBe(start + 1);
    expect(batch.records).toEqual([]);
  });

  it("a read can carry the sync, from the same snapshot", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    const [v] = await c.set(ns, [w("a", "A", true)], META);
    const r = await h.store.get(ns, ["a", "b"], { cursor: start, limit: 10 });
    expect(r.entries.map((e) => e?.version)).toEqual([v, undefined]);
    // Sharded: the head and record numbers are the log's own, the key keeps its version.
    expect(r.changes?.head).toBe(sharded ? r.changes?.records.at(-1)?.last : v);
    expect(r.changes?.records.map((x) => (sharded ? x.keys[0]?.version : x.last))).toEqual([v]);
    expect((await h.store.get(ns, ["a"])).changes).toBeUndefined();
  });

  it("a write can carry the sync, read after the write", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    await c.set(ns, [w("other", "x")], { origin: "other", logLength: 100 });
    const r = await h.store.set(ns, [w("a", "A")], {
      ...META,
      sync: { cursor: start, limit: 10 },
    });
    // Sharded: the head is the log's own number, and the two writes' shards unordered.
    expect(r.changes?.head).toBe(sharded ? r.changes?.records.at(-1)?.last : r.version[0]);
    const seen = r.changes?.records.map((x) => [x.origin, x.keys[0]?.key]);
    expect(sharded ? seen?.sort() : seen).toEqual([
      ["other", "other"],
      ["suite", "a"],
    ]);
    const d = await h.store.delete(ns, ["a"], {
      ...META,
      sync: { cursor: r.changes!.head, limit: 10 },
    });
    expect(d.changes?.records.map((x) => x.op)).toEqual(["delete"]);
    const cl = await h.store.clear(ns, {
      ...META,
      sync: { cursor: d.changes!.head, limit: 10 },
    });
    if (sharded) {
      // One clear per shard, numbered in the log's own sequence.
      const records = cl.changes!.records;
      expect(records.length).toBeGreaterThan(0);
      expect(records.at(-1)!.last).toBe(cl.changes!.head);
      for (const x of records) expect(x).toMatchObject({ op: "clear", origin: "suite", keys: [] });
    } else {
      expect(cl.changes).toEqual({
        head: cl.version,
        records: [{ op: "clear", first: cl.version, last: cl.version, origin: "suite", keys: [] }],
      });
    }
    expect((await h.store.set(ns, [w("b", "B")], META)).changes).toBeUndefined();
  });

  it("splits very large batches into contiguous records", async (c) => {
    const { h, ns } = c;
    const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
    const writes = Array.from({ length: 2500 }, (_, i) => w(`k${i}`, "v"));
    const versions = await c.set(ns, writes, { origin: "suite", logLength: 100 });
    const d = await c.del(
      ns,
      writes.map((x) => x.key),
      { origin: "suite", logLength: 100 },
    );
    const batch = await h.store.sync(ns, { cursor: start, limit: 100 });
    let expected = start + 1;
    let keys = 0;
    for (const r of batch.records) {
      expect(r.first).toBe(expected);
      expected = r.last + 1;
      keys += r.keys.length;
    }
    expect(expected - 1).toBe(batch.head);
    // Sharded: the head is the log's own number, not the delete's version.
    if (!sharded) expect(batch.head).toBe(d);
    expect(keys).toBe(5000);
    expect(versions.at(-1)).toBeLessThan(d);
  });
}
