/**
 * The store suite's cases about load leases (`acquireLease`/`releaseLease`), for a store that
 * declares them; a store that declares none is checked to have none.
 * @module
 */
import type { Store } from "./contract.js";
import type { SuiteRun } from "./suite-case.js";

/** Registers the lease cases (see {@link SuiteRun}). */
export function leaseCases({ caps, expect, it }: SuiteRun): void {
  if (!caps.leases) {
    it("has no leases, as its capabilities say", async ({ h }) => {
      expect(h.store.acquireLease).toBeUndefined();
      expect(h.store.releaseLease).toBeUndefined();
    });
    return;
  }

  /** The store's lease methods, bound; fails the case when the declared leases are missing. */
  const leases = (store: Store) => {
    expect(typeof store.acquireLease).toBe("function");
    expect(typeof store.releaseLease).toBe("function");
    return {
      acquire: store.acquireLease!.bind(store),
      release: store.releaseLease!.bind(store),
    };
  };

  it("one holder at a time, per key and namespace; only the holder releases", async ({ h, ns }) => {
    const { acquire, release } = leases(h.store);
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
    await expect(acquire(ns, "k", "d", 0)).rejects.toMatchObject({ code: "EC_INVALID_OPTION" });
    await expect(acquire(ns, "k", "d", 1.5)).rejects.toMatchObject({
      code: "EC_INVALID_OPTION",
    });
  });

  if (caps.batchLeases === true) {
    it("acquireLeases and releaseLeases answer per key as the single-key methods", async ({
      h,
      ns,
    }) => {
      const { acquire } = leases(h.store);
      const store = h.store;
      expect(typeof store.acquireLeases).toBe("function");
      expect(typeof store.releaseLeases).toBe("function");
      expect(await acquire(ns, "b", "other", 60_000)).toBe(true);
      expect(await store.acquireLeases!(ns, ["a", "b", "c"], "mine", 60_000)).toEqual([
        true,
        false,
        true,
      ]);
      expect(await store.acquireLeases!(ns, [], "mine", 60_000)).toEqual([]);
      expect(await acquire(ns, "a", "other", 60_000)).toBe(false);
      // Only what "mine" holds is let go: b stays with its holder.
      await store.releaseLeases!(ns, ["a", "b", "c"], "mine");
      expect(await store.acquireLeases!(ns, ["a", "b", "c"], "third", 60_000)).toEqual([
        true,
        false,
        true,
      ]);
      await expect(store.acquireLeases!(ns, ["a"], "x", 0)).rejects.toMatchObject({
        code: "EC_INVALID_OPTION",
      });
    });
  }

  it("a lease ends on its own after its ttl", async ({ h, ns }) => {
    const { acquire } = leases(h.store);
    // On a real clock the lease must outlive the two calls that check it is held: 40 ms did
    // not over a loaded machine's loopback, and would not over a network to a remote store.
    const ttl = caps.fakeTime ? 1000 : 500;
    expect(await acquire(ns, "k", "a", ttl)).toBe(true);
    expect(await acquire(ns, "k", "b", ttl)).toBe(false);
    if (caps.fakeTime) {
      if (!h.advance) throw new Error("the fakeTime capability needs advance() in the harness");
      h.advance(ttl);
      expect(await acquire(ns, "k", "b", ttl)).toBe(true);
    } else {
      // Real expiry: poll until it lets go (it must, within a second).
      const deadline = Date.now() + 1000;
      while (!(await acquire(ns, "k", "b", 60_000))) {
        expect(Date.now()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  });
}
