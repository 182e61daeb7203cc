/**
 * The store contract suite: every invariant of {@link Store} (see `src/store/contract.ts`) as test
 * cases, registered with the caller's test framework, so that a third-party store can be
 * checked exactly as edgecache's own stores are.
 * @module
 */
import type { Store } from "./contract.js";
import { freshNamespace, type SuiteRun } from "./suite-case.js";
import { entryCases } from "./suite-entries.js";
import { keyCases } from "./suite-keys.js";
import { leaseCases } from "./suite-leases.js";
import { changeLogCases } from "./suite-log.js";
import type { SuiteTestApi } from "./test-api.js";

/** What a store under test offers the suite; `make()` builds one per case. */
export interface StoreHarness {
  /** The store under test. */
  store: Store;
  /** Advances the store's clock by `ms` (required with `capabilities.fakeTime`). */
  advance?: (ms: number) => void;
  /**
   * Writes raw, foreign data where the store keeps `key` of `namespace` (required with
   * `capabilities.foreignData`).
   */
  plantForeign?: (namespace: string, key: string, raw: string) => Promise<void>;
}

/**
 * What the store under test offers, stated explicitly: a case that needs a capability runs
 * only when it is declared, and a declared capability the store lacks fails the suite (a
 * store that says it has leases and has none fails, rather than skipping their cases).
 */
export interface StoreCapabilities {
  /**
   * The store implements `acquireLease` and `releaseLease`. With `false`, the suite checks
   * that it implements neither.
   */
  leases: boolean;
  /** The store's clock is injectable: the harness has `advance()`, and expiry is checked with it. */
  fakeTime: boolean;
  /** The harness can plant foreign data (`plantForeign()`), which reads must report as corrupt. */
  foreignData: boolean;
  /**
   * The versions of a namespace come from one counter, so that they order writes across
   * keys, and change-log records are numbered by those versions (`Store.orderedVersions`
   * unset or `true`). With `false` (a sharded store: one counter per shard), only versions of
   * the same key are ordered, the log numbers its records in a sequence of its own, and
   * records of different shards in one batch have no order between them.
   */
  orderedVersions: boolean;
  /**
   * The store implements `keys` (listing a namespace's live keys by prefix, in pages). With
   * `false`, the suite checks that it does not.
   */
  keys: boolean;
  /**
   * The store also implements `acquireLeases` and `releaseLeases` (several keys in one
   * call), and the suite checks they answer as the single-key methods do.
   * @default false
   */
  batchLeases?: boolean;
}

/** Options of {@link storeSuite}. */
export interface StoreSuiteOptions {
  /** Names the suite's `describe` block and prefixes the namespaces it writes. */
  name: string;
  /** Your test framework's `describe`, `it` and `expect`. */
  test: SuiteTestApi;
  /** Builds the harness for one case (a fresh store, or one shared: every case uses its own namespace). */
  make: () => StoreHarness | Promise<StoreHarness>;
  /** What the store offers; every field is required. */
  capabilities: StoreCapabilities;
}

const CAPABILITIES = ["leases", "fakeTime", "foreignData", "orderedVersions", "keys"] as const;

/**
 * Registers the store contract's cases for one store, under `describe("Store contract:
 * <name>")`. Cases that need a capability run only when it is declared; the others run for
 * every store. Each case writes to a namespace of its own.
 *
 * @example
 * ```ts
 * import { storeSuite } from "edgecache/store";
 * import { describe, expect, it } from "vitest";
 *
 * storeSuite({
 *   name: "my-store",
 *   test: { describe, it, expect },
 *   make: () => ({ store: myStore() }),
 *   capabilities: {
 *     leases: true,
 *     fakeTime: false,
 *     foreignData: false,
 *     orderedVersions: true,
 *     keys: true,
 *   },
 * });
 * ```
 */
export function storeSuite(options: StoreSuiteOptions): void {
  const { name, test, make, capabilities: caps } = options;
  if (typeof name !== "string" || name === "") {
    throw new TypeError("storeSuite: name must be a non-empty string");
  }
  if (typeof make !== "function") throw new TypeError("storeSuite: make must be a function");
  for (const fn of ["describe", "it", "expect"] as const) {
    if (typeof test?.[fn] !== "function") {
      throw new TypeError(`storeSuite: test.${fn} must be your test framework's ${fn}`);
    }
  }
  for (const cap of CAPABILITIES) {
    if (typeof caps?.[cap] !== "boolean") {
      throw new TypeError(`storeSuite: capabilities.${cap} must be true or false`);
    }
  }
  const run: SuiteRun = {
    caps,
    describe: (title, body) => test.describe(title, body),
    expect: (actual) => test.expect(actual),
    it: (title, body) =>
      test.it(title, async () => {
        const h = await make();
        await body({
          h,
          ns: freshNamespace(name),
          set: async (n, writes, meta) => (await h.store.set(n, writes, meta)).version,
          del: async (n, keys, meta) => (await h.store.delete(n, keys, meta)).version,
          clr: async (n, meta) => (await h.store.clear(n, meta)).version,
        });
      }),
  };
  test.describe(`Store contract: ${name}`, () => {
    entryCases(run);
    test.describe("change log", () => changeLogCases(run));
    test.describe("load leases", () => leaseCases(run));
    test.describe("key listing", () => keyCases(run));
  });
}
