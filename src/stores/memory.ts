import { InvalidOptionError } from "../errors.js";
import {
  type ChangeBatch,
  type ChangedKey,
  type ChangeRecord,
  checkKeysPage,
  leaseTtl,
  type Store,
  type StoreEntry,
  type StoreWrite,
  type StoreWriteResult,
  type SyncRequest,
  type WriteMeta,
} from "../store/contract.js";

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

interface LoggedKey {
  key: string;
  version: number;
  value?: string;
  expiresAt?: number;
}

interface Logged {
  op: ChangeRecord["op"];
  first: number;
  last: number;
  origin: string;
  keys: LoggedKey[];
}

interface Space {
  version: number;
  entries: Map<string, Slot>;
  /** The change log, oldest first, trimmed to the writers' `logLength`. */
  log: Logged[];
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
 * @see docs/stores.md (shipped in the package).
 */
export function memoryStore(options: MemoryStoreOptions = {}): Store {
  const now = options.now ?? Date.now;
  const maxItems = options.maxItems ?? 100_000;
  if (!Number.isInteger(maxItems) || maxItems < 1) {
    throw new InvalidOptionError("memoryStore maxItems must be a positive integer");
  }
  const spaces = new Map<string, Space>();
  // Load leases by namespace and key; expired ones are replaced on the next acquire.
  const leases = new Map<string, { token: string; expiresAt: number }>();
  let size = 0;

  const space = (ns: string): Space => {
    let s = spaces.get(ns);
    if (!s) {
      s = { version: 0, entries: new Map(), log: [] };
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

  const append = (s: Space, meta: WriteMeta, record: Logged): void => {
    if (meta.logLength <= 0) return;
    s.log.push(record);
    if (s.log.length > meta.logLength) s.log.splice(0, s.log.length - meta.logLength);
  };

  const changes = (ns: string, sync: SyncRequest): ChangeBatch => {
    const s = spaces.get(ns);
    const head = s?.version ?? 0;
    if (!s || sync.cursor < 0 || head <= sync.cursor) return { head, records: [] };
    const t = now();
    const records: ChangeRecord[] = [];
    for (const r of s.log) {
      if (r.last <= sync.cursor) continue;
      if (records.length === sync.limit) break;
      records.push({
        op: r.op,
        first: r.first,
        last: r.last,
        origin: r.origin,
        keys: r.keys.map(
          (k): ChangedKey =>
            k.value === undefined || k.expiresAt === undefined
              ? { key: k.key, version: k.version }
              : { key: k.key, version: k.version, value: k.value, ttl: k.expiresAt - t },
        ),
      });
    }
    return { head, records };
  };

  const written = <V>(ns: string, version: V, meta: WriteMeta): StoreWriteResult<V> =>
    meta.sync ? { version, changes: changes(ns, meta.sync) } : { version };

  return {
    name: "memory",
    async get(ns, keys, sync) {
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
      return sync ? { entries, corrupt: 0, changes: changes(ns, sync) } : { entries, corrupt: 0 };
    },
    async sync(ns, sync) {
      return changes(ns, sync);
    },
    async set(ns, writes: readonly StoreWrite[], meta) {
      const s = space(ns);
      const t = now();
      const first = s.version + 1;
      const versions = writes.map((w) => {
        const version = ++s.version;
        if (s.entries.delete(w.key)) size--;
        makeRoom();
        s.entries.set(w.key, { value: w.value, version, expiresAt: t + w.ttl });
        size++;
        return version;
      });
      if (writes.length > 0) {
        append(s, meta, {
          op: "set",
          first,
          last: s.version,
          origin: meta.origin,
          keys: writes.map((w, i) =>
            w.propagate
              ? { key: w.key, version: first + i, value: w.value, expiresAt: t + w.ttl }
              : { key: w.key, version: first + i },
          ),
        });
      }
      return written(ns, versions, meta);
    },
    async delete(ns, keys, meta) {
      const s = space(ns);
      for (const key of keys) if (s.entries.delete(key)) size--;
      const version = ++s.version;
      append(s, meta, {
        op: "delete",
        first: version,
        last: version,
        origin: meta.origin,
        keys: keys.map((key) => ({ key, version })),
      });
      return written(ns, version, meta);
    },
    async clear(ns, meta) {
      const s = space(ns);
      size -= s.entries.size;
      s.entries.clear();
      const version = ++s.version;
      append(s, meta, {
        op: "clear",
        first: version,
        last: version,
        origin: meta.origin,
        keys: [],
      });
      return written(ns, version, meta);
    },
    async keys(ns, page) {
      checkKeysPage(page);
      // The cursor is the last key listed: pages walk the live keys in sorted order, so a
      // key live throughout is listed exactly once whatever is written meanwhile.
      if (page.cursor !== "" && !page.cursor.startsWith(">")) {
        throw new InvalidOptionError("keys: not a cursor of this store");
      }
      const after = page.cursor.slice(1);
      const t = now();
      const live: string[] = [];
      for (const [key, slot] of spaces.get(ns)?.entries ?? []) {
        if (slot.expiresAt > t && key.startsWith(page.prefix) && (after === "" || key > after)) {
          live.push(key);
        }
      }
      live.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      const keys = live.slice(0, page.limit);
      const done = live.length <= page.limit;
      return { keys, cursor: done ? "" : `>${keys[keys.length - 1]}` };
    },
    async acquireLease(ns, key, token, ttl) {
      leaseTtl(ttl);
      const t = now();
      const id = `${ns}\u0000${key}`;
      const held = leases.get(id);
      if (held !== undefined && held.expiresAt > t) return false;
      if (leases.size >= 10_000) {
        for (const [k, l] of leases) if (l.expiresAt <= t) leases.delete(k);
      }
      leases.set(id, { token, expiresAt: t + ttl });
      return true;
    },
    async releaseLease(ns, key, token) {
      const id = `${ns}\u0000${key}`;
      if (leases.get(id)?.token === token) leases.delete(id);
    },
    async acquireLeases(ns, keys, token, ttl) {
      leaseTtl(ttl);
      return Promise.all(keys.map((key) => this.acquireLease!(ns, key, token, ttl)));
    },
    async releaseLeases(ns, keys, token) {
      await Promise.all(keys.map((key) => this.releaseLease!(ns, key, token)));
    },
  };
}
