/**
 * The store suite's cases about entries: reads, writes, versions, deletes, clears,
 * namespaces, TTLs and foreign data.
 * @module
 */
import { META, type SuiteRun } from "./suite-case.js";

/** Registers the entry cases (see {@link SuiteRun}). */
export function entryCases({ caps, expect, it }: SuiteRun): void {
  const sharded = !caps.orderedVersions;

  it("declares orderedVersions as its capabilities say", async ({ h }) => {
    expect(h.store.orderedVersions ?? true).toBe(caps.orderedVersions);
  });

  it("returns what was written, aligned with the keys, undefined for misses", async (c) => {
    await c.set(
      c.ns,
      [
        { key: "a", value: "1", ttl: 60_000, propagate: false },
        { key: "b", value: "two", ttl: 60_000, propagate: false },
      ],
      META,
    );
    const r = await c.h.store.get(c.ns, ["b", "missing", "a", "b"]);
    expect(r.corrupt).toBe(0);
    expect(r.entries.map((e) => e?.value)).toEqual(["two", undefined, "1", "two"]);
  });

  it("keeps strings byte-exact: unicode, separators, base64-looking and JSON-looking text", async (c) => {
    const values = [
      "aGVsbG8=",
      "test",
      "123",
      '{"json":1}',
      "héllo 🌍 世界",
      "a:b:c",
      "",
      "OK",
      "null",
    ];
    await c.set(
      c.ns,
      values.map((value, i) => ({ key: `k:${i}:ü`, value, ttl: 60_000, propagate: false })),
      META,
    );
    const r = await c.h.store.get(
      c.ns,
      values.map((_, i) => `k:${i}:ü`),
    );
    expect(r.entries.map((e) => e?.value)).toEqual(values);
  });

  it("stamps strictly increasing versions, n per set of n, shared with delete and clear", async (c) => {
    const v1 = await c.set(
      c.ns,
      [
        { key: "a", value: "1", ttl: 60_000, propagate: false },
        { key: "b", value: "2", ttl: 60_000, propagate: false },
        { key: "c", value: "3", ttl: 60_000, propagate: false },
      ],
      META,
    );
    expect(v1).toHaveLength(3);
    // Sharded: a, b and c may sit on different counters, so only a's own versions compare.
    if (!sharded) {
      expect(v1[1]).toBe(v1[0]! + 1);
      expect(v1[2]).toBe(v1[1]! + 1);
    }
    const d = await c.del(c.ns, ["a"], META);
    expect(d).toBeGreaterThan(sharded ? v1[0]! : v1[2]!);
    const cleared = await c.clr(c.ns, META);
    expect(cleared).toBeGreaterThan(d);
    const [v2] = await c.set(c.ns, [{ key: "a", value: "x", ttl: 60_000, propagate: false }], META);
    // Sharded: a clear reports the highest of its shards' versions, maybe not a's shard's.
    expect(v2).toBeGreaterThan(sharded ? d : cleared);
    const r = await c.h.store.get(c.ns, ["a"]);
    expect(r.entries[0]?.version).toBe(v2);
  });

  it("the later of two writes to a key wins, with the higher version", async (c) => {
    const [a, b] = await Promise.all([
      c.set(c.ns, [{ key: "k", value: "first", ttl: 60_000, propagate: false }], META),
      c.set(c.ns, [{ key: "k", value: "second", ttl: 60_000, propagate: false }], META),
    ]);
    const r = await c.h.store.get(c.ns, ["k"]);
    const winner = a![0]! > b![0]! ? "first" : "second";
    expect(r.entries[0]?.value).toBe(winner);
    expect(r.entries[0]?.version).toBe(Math.max(a![0]!, b![0]!));
  });

  it("deletes keys, and deleting absent keys is fine", async (c) => {
    await c.set(
      c.ns,
      [
        { key: "a", value: "1", ttl: 60_000, propagate: false },
        { key: "b", value: "2", ttl: 60_000, propagate: false },
      ],
      META,
    );
    await c.del(c.ns, ["a", "nope"], META);
    const r = await c.h.store.get(c.ns, ["a", "b"]);
    expect(r.entries.map((e) => e?.value)).toEqual([undefined, "2"]);
  });

  it("clear hides everything written before it, and only in that namespace", async (c) => {
    const other = `${c.ns}-other`;
    await c.set(c.ns, [{ key: "a", value: "1", ttl: 60_000, propagate: false }], META);
    await c.set(other, [{ key: "a", value: "kept", ttl: 60_000, propagate: false }], META);
    await c.clr(c.ns, META);
    expect((await c.h.store.get(c.ns, ["a"])).entries[0]).toBeUndefined();
    expect((await c.h.store.get(other, ["a"])).entries[0]?.value).toBe("kept");
    await c.set(c.ns, [{ key: "a", value: "after", ttl: 60_000, propagate: false }], META);
    expect((await c.h.store.get(c.ns, ["a"])).entries[0]?.value).toBe("after");
  });

  it("keeps namespaces disjoint, including ones that look like prefixes of each other", async (c) => {
    const { ns } = c;
    await c.set(`${ns}`, [{ key: "k:x", value: "outer", ttl: 60_000, propagate: false }], META);
    await c.set(`${ns}:k`, [{ key: "x", value: "inner", ttl: 60_000, propagate: false }], META);
    expect((await c.h.store.get(ns, ["k:x", "x"])).entries.map((e) => e?.value)).toEqual([
      "outer",
      undefined,
    ]);
    expect((await c.h.store.get(`${ns}:k`, ["x", "k:x"])).entries.map((e) => e?.value)).toEqual([
      "inner",
      undefined,
    ]);
  });

  it("reports the remaining TTL, never more than was written", async (c) => {
    await c.set(c.ns, [{ key: "a", value: "1", ttl: 5_000, propagate: false }], META);
    const ttl = (await c.h.store.get(c.ns, ["a"])).entries[0]?.ttl ?? 0;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(5_000);
  });

  if (caps.fakeTime) {
    it("expires entries after their TTL", async (c) => {
      const { advance } = c.h;
      if (!advance) throw new Error("the fakeTime capability needs advance() in the harness");
      await c.set(
        c.ns,
        [
          { key: "short", value: "1", ttl: 1_000, propagate: false },
          { key: "long", value: "2", ttl: 10_000, propagate: false },
        ],
        META,
      );
      advance(999);
      expect((await c.h.store.get(c.ns, ["short"])).entries[0]?.ttl).toBe(1);
      advance(1);
      const r = await c.h.store.get(c.ns, ["short", "long"]);
      expect(r.entries.map((e) => e?.value)).toEqual([undefined, "2"]);
    });
  }

  if (caps.foreignData) {
    it("reports foreign data under its prefix as corrupt, never as an entry", async (c) => {
      const { plantForeign } = c.h;
      if (!plantForeign) {
        throw new Error("the foreignData capability needs plantForeign() in the harness");
      }
      await plantForeign(c.ns, "foreign", "hello, not ours");
      await plantForeign(c.ns, "fake-header", "ec1:notanumber:x");
      await c.set(c.ns, [{ key: "ours", value: "v", ttl: 60_000, propagate: false }], META);
      const r = await c.h.store.get(c.ns, ["foreign", "ours", "fake-header"]);
      expect(r.entries.map((e) => e?.value)).toEqual([undefined, "v", undefined]);
      expect(r.corrupt).toBe(2);
    });
  }

  it("handles empty and large batches", async (c) => {
    expect(await c.set(c.ns, [], META)).toEqual([]);
    expect((await c.h.store.get(c.ns, [])).entries).toEqual([]);
    const writes = Array.from({ length: 500 }, (_, i) => ({
      key: `k${i}`,
      value: `v${i}`,
      ttl: 60_000,
      propagate: false,
    }));
    await c.set(c.ns, writes, META);
    const r = await c.h.store.get(
      c.ns,
      writes.map((w) => w.key),
    );
    expect(r.entries.map((e) => e?.value)).toEqual(writes.map((w) => w.value));
    await c.del(
      c.ns,
      writes.map((w) => w.key),
      META,
    );
    expect((await c.h.store.get(c.ns, ["k0", "k499"])).entries).toEqual([undefined, undefined]);
  });
}
