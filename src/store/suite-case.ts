/**
 * What the store suite's groups of cases share: the case context, the run they register
 * with, and the namespaces and write metadata they use.
 * @module
 */
import type { StoreWrite, WriteMeta } from "./contract.js";
import type { StoreCapabilities, StoreHarness } from "./suite.js";
import type { SuiteMatchers, SuiteTestApi } from "./test-api.js";

/** Write metadata for suite writes: a fixed origin and a log long enough for the cases. */
export const META = { origin: "suite", logLength: 100 } as const;

let counter = 0;
/** A namespace no other case uses, so that suites and tests can share one database. */
export const freshNamespace = (label = "t"): string =>
  `${label}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** One case's harness and namespace, with shorthands for the version part of write answers. */
export interface SuiteCase {
  readonly h: StoreHarness;
  readonly ns: string;
  set(namespace: string, writes: readonly StoreWrite[], meta: WriteMeta): Promise<number[]>;
  del(namespace: string, keys: readonly string[], meta: WriteMeta): Promise<number>;
  clr(namespace: string, meta: WriteMeta): Promise<number>;
}

/** What each group of cases registers with. */
export interface SuiteRun {
  readonly caps: StoreCapabilities;
  readonly describe: SuiteTestApi["describe"];
  readonly expect: (actual: unknown) => SuiteMatchers;
  /** Registers a case that gets a fresh harness and namespace. */
  readonly it: (title: string, body: (c: SuiteCase) => Promise<void>) => void;
}
