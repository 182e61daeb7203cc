import { beforeEach, describe, expect, it } from "vitest";
import type { Store } from "../src/index.js";

/** What a store under test offers the shared suite. */
export interface StoreHarness {
  store: Store;
  /** Advance the store's clock (stores with an injectable clock). */
  advance?: (ms: number) => void;
  /** Write raw, foreign data where the store keeps `key` of `namespace`. */
  plantForeign?: (namespace: string, key: string, raw: string) => Promise<void>;
}

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
    beforeEach(async () => {
      h = await make();
      ns = freshNamespace(name);
    });

    it("returns what was written, aligned with the keys, undefined for misses", async () => {
      await h.store.set(ns, [
        { key: "a", value: "1", ttl: 60_000 },
        { key: "b", value: "two", ttl: 60_000 },
      ]);
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
      await h.store.set(
        ns,
        values.map((value, i) => ({ key: `k:${i}:ü`, value, ttl: 60_000 })),
      );
      const r = await h.store.get(
        ns,
        values.map((_, i) => `k:${i}:ü`),
      );
      expect(r.entries.map((e) => e?.value)).toEqual(values);
    });

    it("stamps strictly increasing versions, n per set of n, shared with delete and clear", async () => {
      const v1 = await h.store.set(ns, [
        { key: "a", value: "1", ttl: 60_000 },
        { key: "b", value: "2", ttl: 60_000 },
        { key: "c", value: "3", ttl: 60_000 },
      ]);
      expect(v1).toHaveLength(3);
      expect(v1[1]).toBe(v1[0]! + 1);
      expect(v1[2]).toBe(v1[1]! + 1);
      const d = await h.store.delete(ns, ["a"]);
      expect(d).toBeGreaterThan(v1[2]!);
      const c = await h.store.clear(ns);
      expect(c).toBeGreaterThan(d);
      const [v2] = await h.store.set(ns, [{ key: "a", value: "x", ttl: 60_000 }]);
      expect(v2).toBeGreaterThan(c);
      const r = await h.store.get(ns, ["a"]);
      expect(r.entries[0]?.version).toBe(v2);
    });

    it("the later of two writes to a key wins, with the higher version", async () => {
      const [a, b] = await Promise.all([
        h.store.set(ns, [{ key: "k", value: "first", ttl: 60_000 }]),
        h.store.set(ns, [{ key: "k", value: "second", ttl: 60_000 }]),
      ]);
      const r = await h.store.get(ns, ["k"]);
      const winner = a![0]! > b![0]! ? "first" : "second";
      expect(r.entries[0]?.value).toBe(winner);
      expect(r.entries[0]?.version).toBe(Math.max(a![0]!, b![0]!));
    });

    it("deletes keys, and deleting absent keys is fine", async () => {
      await h.store.set(ns, [
        { key: "a", value: "1", ttl: 60_000 },
        { key: "b", value: "2", ttl: 60_000 },
      ]);
      await h.store.delete(ns, ["a", "nope"]);
      const r = await h.store.get(ns, ["a", "b"]);
      expect(r.entries.map((e) => e?.value)).toEqual([undefined, "2"]);
    });

    it("clear hides everything written before it, and only in that namespace", async () => {
      const other = `${ns}-other`;
      await h.store.set(ns, [{ key: "a", value: "1", ttl: 60_000 }]);
      await h.store.set(other, [{ key: "a", value: "kept", ttl: 60_000 }]);
      await h.store.clear(ns);
      expect((await h.store.get(ns, ["a"])).entries[0]).toBeUndefined();
      expect((await h.store.get(other, ["a"])).entries[0]?.value).toBe("kept");
      await h.store.set(ns, [{ key: "a", value: "after", ttl: 60_000 }]);
      expect((await h.store.get(ns, ["a"])).entries[0]?.value).toBe("after");
    });

    it("keeps namespaces disjoint, including ones that look like prefixes of each other", async () => {
      await h.store.set(`${ns}`, [{ key: "k:x", value: "outer", ttl: 60_000 }]);
      await h.store.set(`${ns}:k`, [{ key: "x", value: "inner", ttl: 60_000 }]);
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
      await h.store.set(ns, [{ key: "a", value: "1", ttl: 5_000 }]);
      const ttl = (await h.store.get(ns, ["a"])).entries[0]?.ttl ?? 0;
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(5_000);
    });

    itWithClock?.("expires entries after their TTL", async () => {
      if (!h.advance) throw new Error("fakeTime capability without advance()");
      await h.store.set(ns, [
        { key: "short", value: "1", ttl: 1_000 },
        { key: "long", value: "2", ttl: 10_000 },
      ]);
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
        await h.store.set(ns, [{ key: "ours", value: "v", ttl: 60_000 }]);
        const r = await h.store.get(ns, ["foreign", "ours", "fake-header"]);
        expect(r.entries.map((e) => e?.value)).toEqual([undefined, "v", undefined]);
        expect(r.corrupt).toBe(2);
      },
    );

    it("handles empty and large batches", async () => {
      expect(await h.store.set(ns, [])).toEqual([]);
      expect((await h.store.get(ns, [])).entries).toEqual([]);
      const writes = Array.from({ length: 500 }, (_, i) => ({
        key: `k${i}`,
        value: `v${i}`,
        ttl: 60_000,
      }));
      await h.store.set(ns, writes);
      const r = await h.store.get(
        ns,
        writes.map((w) => w.key),
      );
      expect(r.entries.map((e) => e?.value)).toEqual(writes.map((w) => w.value));
      await h.store.delete(
        ns,
        writes.map((w) => w.key),
      );
      expect((await h.store.get(ns, ["k0", "k499"])).entries).toEqual([undefined, undefined]);
    });
  });
}
