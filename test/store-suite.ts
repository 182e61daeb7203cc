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
  capabilities: {
    fakeTime?: boolean;
    foreignData?: boolean;
    /**
     * Versions come from several counters (one per shard), not one per namespace: only
     * versions of the same key are ordered, and log records are numbered in a sequence of
     * their own, so a record's `first`/`last` and a batch's `head` are not entry versions.
     * Records of different shards merged in one batch have no order between them.
     */
    shardedVersions?: boolean;
  } = {},
): void {
  // Tests that need a capability are only registered for stores that have it.
  const itWithClock = capabilities.fakeTime ? it : undefined;
  const itWithForeign = capabilities.foreignData ? it : undefined;
  const sharded = capabilities.shardedVersions === true;
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
      // Sharded: a, b and c may sit on different counters, so only a's own versions compare.
      if (!sharded) {
        expect(v1[1]).toBe(v1[0]! + 1);
        expect(v1[2]).toBe(v1[1]! + 1);
      }
      const d = await del(ns, ["a"], META);
      expect(d).toBeGreaterThan(sharded ? v1[0]! : v1[2]!);
      const c = await clr(ns, META);
      expect(c).toBeGreaterThan(d);
      const [v2] = await set(ns, [{ key: "a", value: "x", ttl: 60_000, propagate: false }], META);
      // Sharded: a clear reports the highest of its shards' versions, maybe not a's shard's.
      expect(v2).toBeGreaterThan(sharded ? d : c);
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
        // Sharded: the log's own numbering starts at 0 when it is first read.
        expect(batch.head).toBeGreaterThanOrEqual(sharded ? 0 : 1);
      });

      it("records every write, delete and clear after the cursor, contiguous, in order", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        const [v1, v2] = await set(ns, [w("a", "A", true), w("b", "B")], META);
        const d = await del(ns, ["a", "zz"], { origin: "other", logLength: 100 });
        const c = await clr(ns, META);
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
        const keysOf = (b: typeof all) => b.records.map((r) => r.keys[0]!.key);
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
        // Sharded: the head and record numbers are the log's own, the key keeps its version.
        expect(r.changes?.head).toBe(sharded ? r.changes?.records.at(-1)?.last : v);
        expect(r.changes?.records.map((x) => (sharded ? x.keys[0]?.version : x.last))).toEqual([v]);
        expect((await h.store.get(ns, ["a"])).changes).toBeUndefined();
      });

      it("a write can carry the sync, read after the write", async () => {
        const start = (await h.store.sync(ns, { cursor: -1, limit: 10 })).head;
        await set(ns, [w("other", "x")], { origin: "other", logLength: 100 });
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
        const c = await h.store.clear(ns, {
          ...META,
          sync: { cursor: d.changes!.head, limit: 10 },
        });
        if (sharded) {
          // One clear per shard, numbered in the log's own sequence.
          const records = c.changes!.records;
          expect(records.length).toBeGreaterThan(0);
          expect(records.at(-1)!.last).toBe(c.changes!.head);
          for (const x of records)
            expect(x).toMatchObject({ op: "clear", origin: "suite", keys: [] });
        } else {
          expect(c.changes).toEqual({
            head: c.version,
            records: [
              { op: "clear", first: c.version, last: c.version, origin: "suite", keys: [] },
            ],
          });
        }
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
        // Sharded: the head is the log's own number, not the delete's version.
        if (!sharded) expect(batch.head).toBe(d);
        expect(keys).toBe(5000);
        expect(versions.at(-1)).toBeLessThan(d);
      });
    });

    describe("load leases", () => {
      it("one holder at a time, per key and namespace; only the holder releases", async () => {
        const { acquireLease, releaseLease } = h.store;
        if (!acquireLease || !releaseLease) return expect(releaseLease).toBeUndefined();
        const acquire = acquireLease.bind(h.store);
        const release = releaseLease.bind(h.store);
        expect(await acquire(ns, "k", "a", 60_000)).toBe(true);
        expect(await acquire(ns, "k", "b", 60_000)).toBe(false);
        expect(await acquire(ns, "k2", "b", 60_000)).toBe(true);
        expect(await acquire(`${ns}-x`, "k", "b", 60_000)).toBe(true);
        await release(ns, "k", "b"); // not the holder: nothing happens
        expect(await acquire(ns, "k", "c", 60_000)).toBe(false);
        await release(ns, "k", "a");
        expect(await acquire(ns, "k", "c", 60_000)).toBe(true);
        // Leases are not entries: reads, clears and the log do not see them.
        expect((await h.store.get(ns, ["k"])).entries).toEqual([undefined]);
        await expect(acquire(ns, "k", "d", 0)).rejects.toMatchObject({
          code: "EC_INVALID_OPTION",
        });
        await expect(acquire(ns, "k", "d", 1.5)).rejects.toMatchObject({
          code: "EC_INVALID_OPTION",
        });
      });

      it("a lease ends on its own after its ttl", async () => {
        const { acquireLease } = h.store;
        if (!acquireLease) return;
        const acquire = acquireLease.bind(h.store);
        const ttl = h.advance ? 1000 : 40;
        expect(await acquire(ns, "k", "a", ttl)).toBe(true);
        expect(await acquire(ns, "k", "b", ttl)).toBe(false);
        if (h.advance) {
          h.advance(ttl);
          expect(await acquire(ns, "k", "b", ttl)).toBe(true);
        } else {
          // Real Redis expiry: poll until it lets go (it must, within a second).
          const deadline = Date.now() + 1000;
          while (!(await acquire(ns, "k", "b", 60_000))) {
            expect(Date.now()).toBeLessThan(deadline);
            await new Promise((r) => setTimeout(r, 10));
          }
        }
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
