import { InvalidOptionError } from "../errors.js";
import type { Store, StoreEntry, StoreReadResult, StoreWrite } from "../store.js";

/** Options of {@link memoryStore}. */
export interface MemoryStoreOptions {
  /**
   * Clock in milliseconds; inject one in tests to expire entries without sleeping.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Most entries kept across all namespaces; when full, expired entries are swept and then
   * the oldest writes are dropped (as a Redis `maxmemory` eviction would).
   * @default 100_000
   */
  maxItems?: number;
}

interface Slot {
  value: string;
  version: number;
  expiresAt: number;
}

interface Space {
  version: number;
  entries: Map<string, Slot>;
}

/**
 * An in-process {@link Store}: the L2 for a single instance, tests and local development.
 * Share one `memoryStore()` between several caches to simulate instances that share Redis.
 * Values are kept as the strings the cache encoded, so the codec path is the same as with
 * Redis.
 *
 * @example
 * ```ts
 * const store = memoryStore();
 * const a = createCache({ store, namespace: "app" });
 * const b = createCache({ store, namespace: "app" }); // sees a's writes through L2
 * ```
 */
export function memoryStore(options: MemoryStoreOptions = {}): Store {
  const now = options.now ?? Date.now;
  const maxItems = options.maxItems ?? 100_000;
  if (!Number.isInteger(maxItems) || maxItems < 1) {
    throw new InvalidOptionError("memoryStore maxItems must be a positive integer");
  }
  const spaces = new Map<string, Space>();
  let size = 0;

  const space = (ns: string): Space => {
    let s = spaces.get(ns);
    if (!s) {
      s = { version: 0, entries: new Map() };
      spaces.set(ns, s);
    }
    return s;
  };

  const makeRoom = (): void => {
    if (size < maxItems) return;
    const t = now();
    for (const s of spaces.values()) {
      for (const [k, slot] of s.entries) {
        if (slot.expiresAt <= t) {
          s.entries.delete(k);
          size--;
        }
      }
    }
    // Maps iterate in insertion order and writes re-insert, so the first keys are the
    // least recently written.
    for (const s of spaces.values()) {
      for (const k of s.entries.keys()) {
        if (size < maxItems) return;
        s.entries.delete(k);
        size--;
      }
    }
  };

  return {
    name: "memory",
    async get(ns, keys): Promise<StoreReadResult> {
      const s = spaces.get(ns);
      const t = now();
      const entries: Array<StoreEntry | undefined> = keys.map((key) => {
        const slot = s?.entries.get(key);
        if (!slot) return undefined;
        if (slot.expiresAt <= t) {
          s?.entries.delete(key);
          size--;
          return undefined;
        }
        return { value: slot.value, version: slot.version, ttl: slot.expiresAt - t };
      });
      return { entries, corrupt: 0 };
    },
    async set(ns, writes: readonly StoreWrite[]) {
      const s = space(ns);
      const t = now();
      return writes.map((w) => {
        const version = ++s.version;
        if (s.entries.delete(w.key)) size--;
        makeRoom();
        s.entries.set(w.key, { value: w.value, version, expiresAt: t + w.ttl });
        size++;
        return version;
      });
    },
    async delete(ns, keys) {
      const s = space(ns);
      for (const key of keys) if (s.entries.delete(key)) size--;
      return ++s.version;
    },
    async clear(ns) {
      const s = space(ns);
      size -= s.entries.size;
      s.entries.clear();
      return ++s.version;
    },
  };
}
