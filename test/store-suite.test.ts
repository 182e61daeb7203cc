/**
 * The published store suite itself (edgecache/store): its capabilities are explicit and
 * enforced, so a store cannot pass a case it does not meet by leaving something out.
 */
import { describe, expect, it } from "vitest";
import { memoryStore } from "../src/index.js";
import type { Store } from "../src/store/contract.js";
import { type StoreSuiteOptions, storeSuite } from "../src/store/index.js";

type SuiteTestApi = StoreSuiteOptions["test"];

import { shardedStore } from "../src/stores/sharded.js";
import { fakeClock } from "./helpers.js";

interface Case {
  title: string;
  run: () => Promise<void>;
}

/** Registers the suite with a framework that only records its cases, to run them here. */
function cases(options: Omit<StoreSuiteOptions, "test">): Case[] {
  const found: Case[] = [];
  const path: string[] = [];
  const test: SuiteTestApi = {
    describe(title, body) {
      path.push(title);
      body();
      path.pop();
    },
    it(title, body) {
      found.push({ title: [...path, title].join(" > "), run: body });
    },
    expect,
  };
  storeSuite({ ...options, test });
  return found;
}

/** Outcome of each case whose title contains `part`. */
async function outcomes(all: Case[], part: string): Promise<Array<"pass" | "fail">> {
  const picked = all.filter((c) => c.title.includes(part));
  expect(picked.length).toBeGreaterThan(0);
  const out: Array<"pass" | "fail"> = [];
  for (const c of picked) {
    out.push(
      await c.run().then(
        () => "pass" as const,
        () => "fail" as const,
      ),
    );
  }
  return out;
}

/** `inner` without its leases: every other call goes through. */
function withoutLeases(inner: Store): Store {
  return {
    name: inner.name,
    get: (ns, keys, sync) => inner.get(ns, keys, sync),
    sync: (ns, sync) => inner.sync(ns, sync),
    set: (ns, writes, meta) => inner.set(ns, writes, meta),
    delete: (ns, keys, meta) => inner.delete(ns, keys, meta),
    clear: (ns, meta) => inner.clear(ns, meta),
  };
}

const memory = () => {
  const clock = fakeClock();
  return { store: memoryStore({ now: clock.now }), advance: clock.advance };
};
const caps = {
  leases: true,
  fakeTime: true,
  foreignData: false,
  orderedVersions: true,
  keys: true,
};

describe("storeSuite (edgecache/store)", () => {
  it("passes the lease cases of a store that has the leases it declares", async () => {
    expect(
      await outcomes(cases({ name: "leases", make: memory, capabilities: caps }), "load leases"),
    ).toEqual(["pass", "pass"]);
  });

  it("fails every lease case of a store that declares leases and lacks them", async () => {
    const all = cases({
      name: "no-leases",
      make: () => {
        const h = memory();
        return { ...h, store: withoutLeases(h.store) };
      },
      capabilities: caps,
    });
    expect(await outcomes(all, "load leases")).toEqual(["fail", "fail"]);
  });

  it("fails a store that says it has no leases and has them, and passes one without", async () => {
    const noLeases = { ...caps, leases: false };
    expect(
      await outcomes(cases({ name: "has", make: memory, capabilities: noLeases }), "load leases"),
    ).toEqual(["fail"]);
    const without = cases({
      name: "hasnt",
      make: () => ({ store: withoutLeases(memoryStore()) }),
      capabilities: noLeases,
    });
    expect(await outcomes(without, "load leases")).toEqual(["pass"]);
  });

  it("fails every key listing case of a store that declares keys and lacks them; checks one that declares none", async () => {
    const lacking = () => {
      const h = memory();
      const { keys: _keys, ...store } = h.store;
      return { ...h, store: store as Store };
    };
    const declared = await outcomes(
      cases({ name: "no-keys", make: lacking, capabilities: caps }),
      "key listing",
    );
    expect(declared.length).toBeGreaterThanOrEqual(5);
    expect(declared.every((o) => o === "fail")).toBe(true);
    const none = { ...caps, keys: false };
    expect(
      await outcomes(cases({ name: "hasnt", make: lacking, capabilities: none }), "key listing"),
    ).toEqual(["pass"]);
    expect(
      await outcomes(cases({ name: "has", make: memory, capabilities: none }), "key listing"),
    ).toEqual(["fail"]);
  });

  it("fails a store whose orderedVersions differs from its declared capability", async () => {
    const sharded = () => ({ store: shardedStore([memoryStore(), memoryStore()]) });
    const declared = (orderedVersions: boolean) =>
      cases({
        name: "sharded",
        make: sharded,
        capabilities: { ...caps, fakeTime: false, orderedVersions },
      });
    expect(await outcomes(declared(true), "declares orderedVersions")).toEqual(["fail"]);
    expect(await outcomes(declared(false), "declares orderedVersions")).toEqual(["pass"]);
  });

  it("fails the clock and foreign-data cases when the harness lacks what they need", async () => {
    const bare = cases({
      name: "bare",
      make: () => ({ store: memoryStore() }),
      capabilities: { ...caps, foreignData: true },
    });
    expect(await outcomes(bare, "expires entries after their TTL")).toEqual(["fail"]);
    expect(await outcomes(bare, "foreign data")).toEqual(["fail"]);
  });

  it("refuses capabilities that are not all stated, before registering anything", () => {
    const test: SuiteTestApi = {
      describe: () => expect.unreachable("registered a group"),
      it: () => expect.unreachable("registered a case"),
      expect,
    };
    const partial = {
      leases: true,
      fakeTime: false,
    } as unknown as StoreSuiteOptions["capabilities"];
    expect(() => storeSuite({ name: "x", test, make: memory, capabilities: partial })).toThrow(
      /capabilities.foreignData must be true or false/,
    );
    expect(() => storeSuite({ name: "x", test, make: memory } as StoreSuiteOptions)).toThrow(
      TypeError,
    );
  });
});
