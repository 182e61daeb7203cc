/**
 * The store suite's cases about key listing (`keys`), for a store that declares it; a store
 * that declares none is checked to have none.
 * @module
 */
import type { Store } from "./contract.js";
import { META, type SuiteRun } from "./suite-case.js";

/** Every key of a listing, page after page (at most 1000 pages), and the pages' sizes. */
async function listAll(store: Store, ns: string, prefix: string, limit: number) {
  const keys: string[] = [];
  const sizes: number[] = [];
  let cursor = "";
  for (let page = 0; page < 1000; page++) {
    const r = await store.keys!(ns, { prefix, cursor, limit });
    keys.push(...r.keys);
    sizes.push(r.keys.length);
    cursor = r.cursor;
    if (cursor === "") return { keys: [...new Set(keys)].sort(), sizes };
  }
  throw new Error("the listing did not end within 1000 pages");
}

const sorted = (keys: string[]) => [...keys].sort();

/** Registers the key listing cases (see {@link SuiteRun}). */
export function keyCases({ caps, expect, it }: SuiteRun): void {
  if (!caps.keys) {
    it("has no key listing, as its capabilities say", async ({ h }) => {
      expect(h.store.keys).toBeUndefined();
    });
    return;
  }

  const write = (keys: string[], ttl = 60_000) =>
    keys.map((key) => ({ key, value: `v:${key}`, ttl, propagate: false }));

  it("lists the live keys under a prefix, page by page, to the end", async (c) => {
    expect(typeof c.h.store.keys).toBe("function");
    const users = Array.from({ length: 40 }, (_, i) => `user:${i}`);
    await c.set(c.ns, write([...users, "other:1", "other:2", "use"]), META);
    await c.del(c.ns, ["user:3", "user:17"], META);
    // Another namespace's keys stay out of this one's listing.
    await c.set(`${c.ns}-x`, write(["user:x"]), META);
    const live = users.filter((k) => k !== "user:3" && k !== "user:17");
    const { keys, sizes } = await listAll(c.h.store, c.ns, "user:", 7);
    expect(keys).toEqual(sorted(live));
    // A bounded page: about `limit` keys (a scanning store may return a few more).
    for (const size of sizes) expect(size).toBeLessThanOrEqual(7 * 2);
    const all = await listAll(c.h.store, c.ns, "", 1000);
    expect(all.keys).toEqual(sorted([...live, "other:1", "other:2", "use"]));
    expect((await listAll(c.h.store, c.ns, "nothing:", 5)).keys).toEqual([]);
  });

  it("lists nothing a clear made unreadable; what is written after it, it lists", async (c) => {
    await c.set(c.ns, write(["a", "b"]), META);
    await c.clr(c.ns, META);
    await c.set(c.ns, write(["c"]), META);
    expect((await listAll(c.h.store, c.ns, "", 10)).keys).toEqual(["c"]);
  });

  it("matches the prefix literally: glob and pattern characters are plain text", async (c) => {
    const odd = ["a*b", "a?c", "a[1]", "a\\d", "ab", "a*", "ü/é:x"];
    await c.set(c.ns, write(odd), META);
    expect((await listAll(c.h.store, c.ns, "a*", 3)).keys).toEqual(sorted(["a*b", "a*"]));
    expect((await listAll(c.h.store, c.ns, "a[", 3)).keys).toEqual(["a[1]"]);
    expect((await listAll(c.h.store, c.ns, "a\\", 3)).keys).toEqual(["a\\d"]);
    expect((await listAll(c.h.store, c.ns, "ü/", 3)).keys).toEqual(["ü/é:x"]);
  });

  it("refuses a bad limit or a cursor it never handed out, with InvalidOptionError", async (c) => {
    const keys = c.h.store.keys!.bind(c.h.store);
    for (const page of [
      { prefix: "", cursor: "", limit: 0 },
      { prefix: "", cursor: "", limit: 1.5 },
      { prefix: "", cursor: "not a cursor!", limit: 10 },
    ]) {
      await expect(keys(c.ns, page)).rejects.toMatchObject({ code: "EC_INVALID_OPTION" });
    }
  });

  if (caps.leases) {
    it("lists no leases", async (c) => {
      expect(await c.h.store.acquireLease!(c.ns, "held", "t", 60_000)).toBe(true);
      await c.set(c.ns, write(["entry"]), META);
      expect((await listAll(c.h.store, c.ns, "", 10)).keys).toEqual(["entry"]);
    });
  }

  if (caps.fakeTime) {
    it("lists no expired entries", async (c) => {
      await c.set(c.ns, [...write(["short"], 1_000), ...write(["long"], 10_000)], META);
      c.h.advance!(1_000);
      expect((await listAll(c.h.store, c.ns, "", 10)).keys).toEqual(["long"]);
    });
  }

  if (caps.foreignData) {
    it("lists nothing planted under its prefix by someone else", async (c) => {
      await c.h.plantForeign!(c.ns, "foreign", "hello, not ours");
      await c.set(c.ns, write(["ours"]), META);
      expect((await listAll(c.h.store, c.ns, "", 10)).keys).toEqual(["ours"]);
    });
  }
}
