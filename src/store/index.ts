/**
 * `edgecache/store`: for store implementers. The {@link Store} contract and the types its
 * methods take and return, {@link leaseTtl} for checking lease TTLs as the contract wants,
 * and {@link storeSuite}, the contract's test suite, which edgecache runs against its own
 * stores and which takes your test framework's functions, so that it imports none.
 *
 * @example
 * ```ts
 * import { type Store, storeSuite } from "edgecache/store";
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
 *
 * @module
 */
export {
  type ChangeBatch,
  type ChangeRecord,
  leaseTtl,
  type Store,
  type StoreEntry,
  type StoreReadResult,
  type StoreWrite,
  type StoreWriteResult,
  type SyncRequest,
  type WriteMeta,
} from "./contract.js";
export {
  type StoreCapabilities,
  type StoreSuiteOptions,
  storeSuite,
} from "./suite.js";
