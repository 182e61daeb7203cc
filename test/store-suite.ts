import { beforeEach, describe, expect, it } from "vitest";
import type { Store, StoreWrite, WriteMeta } from "../src/index.js";

/** What a store under test offers the shared suite. */
export interface StoreHarness {
  store: Store;
  /** Advance the store's clock (stores with an injectable clock). */
  advance?: (ms: number) => void;
  /** Write raw, foreign data where the store keeps `key` of `namespace`. */
  plantForeign?: (namespace: string, key: string, raw: string) => Promise<void>;
}

/** Write metadata for suite writes: a fixed origin and a log long enough for the tests. */
export const META = { origin: "suite", logLength: 100 } as const;

let counter = 0;
/** A namespace no other test uses, so suites can share one Redis. */
export const freshNamespace = (label = "t"): string =>
  `${label}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/**
 * The invariants of the Store contract (see src/store.ts), run against any store.
 */
export function storeSuite(
  name: string,
  make: () => StoreHarness | Promise<StoreHarness>,
  capabilities: { fakeTime?: boolean; foreignData?: boolean } = {},
): void {
  // Tests that need a capability are only registered for stores that have it.
  const itWithClock = capabilities.fakeTime ? it : undefined;
  const itWithForeign = capabilities.foreignData ? it : undefined;
  describe(`Store contract: ${name}`, () => {
    let h: StoreHarness;
    let ns: string;
    // The version part of write answers, which most cases are about.
    const set = async (n: string, writes: readonly StoreWrite[], meta: WriteMeta) =>
      (await h.store.set(n, writes, meta)).version;
    const del = async (n: string, keys: readonly string[], meta: WriteMeta) =>
      (await h.store.delete(n, keys, meta)).version;
    const clr = async (n: string, meta: WriteMeta) => (await h.store.clear(n, meta)).version;
    beforeEach(async () => {
      h = await make();
      ns = freshNamespace(name);
    });

    it("returns what was written, aligned with the keys, undefined for misses", async () => {
      await set(
        ns,
        [
          { key: "a", value: "1", ttl: 60_000, propagate: false },
          { key: "b", value: "two", ttl: 60_000, propagate: false },
        ],
        META,
      );
      const r = await h.store.get(ns, ["b", "missing", "a", "b"]);
      expect(r.corrupt).toBe(0);
      expect(r.entries.map((e) => e?.value)).toEqual(["two", undefined, "1", "two"]);
    });

    it("keeps strings byte-exact: unicode, separators, base64-looking and JSON-looking text", async () => {
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
      await set(
        ns,
        values.map((value, i) => ({ key: `k:${i}:ü`, value, ttl: 60_000, propagate: false })),
        META,
      );
      const r = await h.store.get(
        ns,
        values.map((_, i) => `k:${i}:ü`),
      );
      expect(r.entries.map((e) => e?.value)).toEqual(values);
    });

    it("stamps strictly increasing versions, n per set of n, shared with delete and clear", async () => {
      const v1 = await set(
        ns,
        [
          { key: "a", value: "1", ttl: 60_000, propagate: false },
          { key: "b", value: "2", ttl: 60_000, propagate: false },
          { key: "c", value: "3", ttl: 60_000, propagate: false },
        ],
        META,
      );
      expect(v1).toHaveLength(3);
      expect(v1[1]).toBe(v1[0]! + 1);
      expect(v1[2]).toBe(v1[1]! + 1);
      const d = await del(ns, ["a"], META);
      expect(d).toBeGreaterThan(v1[2]!);
      const c = await clr(ns, META);
      expect(c).toBeGreaterThan(d);
      const [v2] = await set(ns, [{ key: "a", value: "x", ttl: 60_000, propagate: false }], META);
      expect(v2).toBeGreaterThan(c);
      const r = await h.store.get(ns, ["a"]);
      expect(r.entries[0]?.version).toBe(v2);
    });

    it("the later of two writes to a key wins, with the higher version", async () => {
      const [a, b] = await Promise.all([
        set(ns, [{ key: "k", value: "first", ttl: 60_000, propagate: false }], META),
        set(ns, [{ key: "k", value: "second", ttl: 60_000, propagate: false }], META),
      ]);
      const r = await h.store.get(ns, ["k"]);
      const winner = a![0]! > b![0]! ? "first" : "second";
      expect(r.entries[0]?.value).toBe(winner);
      expect(r.entries[0]?.version).toBe(Math.max(a![0]!, b![0]!));
    });

    it("deletes keys, and deleting absent keys is fine", async () => {
      await set(
        ns,
        [
          { key: "a", value: "1", ttl: 60_000, propagate: false },
          { key: "b", value: "2", ttl: 60_000, propagate: false },
        ],
        META,
      );
      await del(ns, ["a", "nope"], META);
      const r = await h.store.get(ns, ["a", "b"]);
      expect(r.entries.map((e) => e?.value)).toEqual([undefined, "2"]);
    });

    it("clear hides everything written before it, and only in that namespace", async () => {
      const other = `${ns}-other`;
      await set(ns, [{ key: "a", value: "1", ttl: 60_000, propagate: false }], META);
      await set(other, [{ key: "a", value: "kept", ttl: 60_000, propagate: false }], META);
      await clr(ns, META);
      expect((await h.store.get(ns, ["a"])).entries[0]).toBeUndefined();
      expect((await h.store.get(other, ["a"])).entries[0]?.value).toBe("kept");
      await set(ns, [{ key: "a", value: "after", ttl: 60_000, propagate: false }], META);
      expect((await h.store.get(ns, ["a"])).entries[0]?.value).toBe("after");
    });

    it("keeps namespaces disjoint, including ones that look like prefixes of each other", async () => {
      await set(`${ns}`, [{ key: "k:x", value: "outer", ttl: 60_000, propagate: false }], META);
      await set(`${ns}:k`, [{ key: "x", value: "inner", ttl: 60_000, propagate: false }], META);
      expect((await h.store.get(ns, ["k:x", "x"])).entries.map((e) => e?.value)).toEqual([
        "outer",
        undefined,
      ]);
      expect((await h.store.get(`${ns}:k`, ["x", "k:x"])).entries.map((e) => e?.value)).toEqual([
        "inner",
        undefined,
      ]);
    });

    it("reports the remaining TTL, never more than was written", async () => {
      await set(ns, [{ key: "a", value: "1", ttl: 5_000, propagate: false }], META);
      const ttl = (await h.store.get(ns, ["a"])).entries[0]?.ttl ?? 0;
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(5_000);
    });

    itWithClock?.("expires entries after their TTL", async () => {
      if (!h.advance) throw new Error("fakeTime capability without advance()");
      await set(
        ns,
        [
          { key: "short", value: "1", ttl: 1_000, propagate: false },
          { key: "long", value: "2", ttl: 10_000, propagate: false },
        ],
        META,
      );
      h.advance(999);
      expect((await h.store.get(ns, ["short"])).entries[0]?.ttl).toBe(1);
      h.advance(1);
      const r = await h.store.get(ns, ["short", "long"]);
      expect(r.entries.map((e) => e?.value)).toEqual([undefined, "2"]);
    });

    itWithForeign?.(
      "reports foreign data under its prefix as corrupt, never as an entry",
      async () => {
        if (!h.plantForeign) throw new Error("foreignData capability without plantForeign()");
        await h.plantForeign(ns, "foreign", "hello, not ours");
        await h.plantForeign(ns, "fake-header", "ec1:notanumber:x");
        await set(ns, [{ key: "ours", value: "v", ttl: 60_000, propagate: false }], META);
        const r = await h.store.get(ns, ["foreign", "ours", "fake-header"]);
        expect(r.entries.map((e) => e?.value)).toEqual([undefined, "v", undefined]);
        expect(r.corrupt).toBe(2);
      },
    );

    describe("change log", () => {
      const w = (key: string, value: string, propagate = false, ttl = 60_000) => ({
        key,
        value,
        ttl,
        propagate,
      });

      it("a first sync (cursor -1) returns the head and no records", async () => {
        await set(ns, [w("a", "1")], META);
        const batch = await h.store.sync(ns, { cursor: -1, limit: 10 });
        expect(batch.records).toEqual([]);
        expect(batch.head).toBeGreaterThan(0);
      });

      it("records every write, delete and clear after the cursor, contiguous, in order", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        const [v1, v2] = await set(ns, [w("a", "A", true), w("b", "B")], META);
        const d = await del(ns, ["a", "zz"], { origin: "other", logLength: 100 });
        const c = await clr(ns, META);
        const batch = await h.store.sync(ns, { cursor: start, limit: 10 });
        expect(batch.head).toBe(c);
        expect(batch.records.map((r) => [r.op, r.first, r.last, r.origin])).toEqual([
          ["set", v1, v2, "suite"],
          ["delete", d, d, "other"],
          ["clear", c, c, "suite"],
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

      it("returns only records after the cursor, at most `limit`", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        for (let i = 0; i < 5; i++) await set(ns, [w(`k${i}`, "v")], META);
        const all = await h.store.sync(ns, { cursor: start, limit: 100 });
        expect(all.records).toHaveLength(5);
        const tail = await h.store.sync(ns, { cursor: all.records[2]!.last, limit: 100 });
        expect(tail.records.map((r) => r.keys[0]!.key)).toEqual(["k3", "k4"]);
        const limited = await h.store.sync(ns, { cursor: start, limit: 2 });
        expect(limited.records.map((r) => r.keys[0]!.key)).toEqual(["k0", "k1"]);
        expect(limited.head).toBe(all.head);
        expect(await h.store.sync(ns, { cursor: all.head, limit: 10 })).toEqual({
          head: all.head,
          records: [],
        });
      });

      it("is bounded: old records are trimmed, which a reader sees as a gap", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        for (let i = 0; i < 400; i++) {
          await set(ns, [w(`k${i}`, "v")], { origin: "suite", logLength: 10 });
        }
        const batch = await h.store.sync(ns, { cursor: start, limit: 1000 });
        // Trimming may be approximate (Redis trims whole stream nodes), but it is bounded.
        expect(batch.records.length).toBeLessThan(250);
        expect(batch.records.length).toBeGreaterThanOrEqual(10);
        expect(batch.records[0]!.first).toBeGreaterThan(start + 1);
        expect(batch.records.at(-1)!.last).toBe(batch.head);
      });

      it("writes with logLength 0 advance the head without records", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        await set(ns, [w("a", "1")], { origin: "x", logLength: 0 });
        const batch = await h.store.sync(ns, { cursor: start, limit: 10 });
        expect(batch.head).toBe(start + 1);
        expect(batch.records).toEqual([]);
      });

      it("a read can carry the sync, from the same snapshot", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        const [v] = await set(ns, [w("a", "A", true)], META);
        const r = await h.store.get(ns, ["a", "b"], { cursor: start, limit: 10 });
        expect(r.entries.map((e) => e?.version)).toEqual([v, undefined]);
        expect(r.changes?.head).toBe(v);
        expect(r.changes?.records.map((x) => x.last)).toEqual([v]);
        expect((await h.store.get(ns, ["a"])).changes).toBeUndefined();
      });

      it("a write can carry the sync, read after the write", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        await set(ns, [w("other", "x")], { origin: "other", logLength: 100 });
        const r = await h.store.set(ns, [w("a", "A")], {
          ...META,
          sync: { cursor: start, limit: 10 },
        });
        expect(r.changes?.head).toBe(r.version[0]);
        expect(r.changes?.records.map((x) => [x.origin, x.keys[0]?.key])).toEqual([
          ["other", "other"],
          ["suite", "a"],
        ]);
        const d = await h.store.delete(ns, ["a"], {
          ...META,
          sync: { cursor: r.version[0]!, limit: 10 },
        });
        expect(d.changes?.records.map((x) => x.op)).toEqual(["delete"]);
        const c = await h.store.clear(ns, { ...META, sync: { cursor: d.version, limit: 10 } });
        expect(c.changes).toEqual({
          head: c.version,
          records: [{ op: "clear", first: c.version, last: c.version, origin: "suite", keys: [] }],
        });
        expect((await h.store.set(ns, [w("b", "B")], META)).changes).toBeUndefined();
      });

      it("splits very large batches into contiguous records", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        const writes = Array.from({ length: 2500 }, (_, i) => w(`k${i}`, "v"));
        const versions = await set(ns, writes, { origin: "suite", logLength: 100 });
        const d = await del(
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
        expect(batch.head).toBe(d);
        expect(keys).toBe(5000);
        expect(versions.at(-1)).toBeLessThan(d);
      });
    });

    it("handles empty and large batches", async () => {
      expect(await set(ns, [], META)).toEqual([]);
      expect((await h.store.get(ns, [])).entries).toEqual([]);
      const writes = Array.from({ length: 500 }, (_, i) => ({
        key: `k${i}`,
        value: `v${i}`,
        ttl: 60_000,
        propagate: false,
      }));
      await set(ns, writes, META);
      const r = await h.store.get(
        ns,
        writes.map((w) => w.key),
      );
      expect(r.entries.map((e) => e?.value)).toEqual(writes.map((w) => w.value));
      await del(
        ns,
        writes.map((w) => w.key),
        META,
      );
      expect((await h.store.get(ns, ["k0", "k499"])).entries).toEqual([undefined, undefined]);
    });
  });
}
