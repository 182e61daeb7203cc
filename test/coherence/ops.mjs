// The operations of the coherence checker, shared by the Node instances and the Worker.
// Plain JS with no Node APIs, so that it runs in workerd as well.
import { createCache, shardedStore } from "edgecache";
import { upstashStore } from "edgecache/upstash";

/** Picks the next operation over a small, hot key space. */
export function pickOp(random, keyCount) {
  const key = `k${Math.floor(random() * keyCount)}`;
  const x = random();
  if (x < 0.55) return { op: "get", key };
  if (x < 0.62) {
    const other = `k${Math.floor(random() * keyCount)}`;
    return { op: "getMany", keys: other === key ? [key] : [key, other] };
  }
  if (x < 0.8) return { op: "set", key };
  if (x < 0.9) return { op: "inv", key };
  if (x < 0.995) return { op: "del", key };
  return { op: "clear" };
}

/**
 * A cache whose store reports the version stamped on each write. The cache calls the
 * store synchronously, before its first await, so the operation being executed is known
 * when the store is called.
 */
export function checkedCache({
  url,
  token,
  namespace,
  instanceId,
  M,
  logLength,
  batch,
  broken,
  hub,
  pubsub,
  shards = 1,
}) {
  let current = null;
  let errors = 0;
  const codes = {};
  // With `shards` > 1, L2 is that many stores (prefixes s0, s1, ... on the one Redis) behind
  // a consistent-hash ring, and coherence goes through their merged change logs. Versions
  // are then per shard: each shard records the version it stamped on the operation (which
  // rides along in the write's metadata), so the checker orders a clear against each key
  // by the clear's version on that key's shard.
  const first = (result) => (Array.isArray(result.version) ? result.version[0] : result.version);
  const recordingShard = (shard, id) => {
    const recorded = async (meta, call) => {
      const result = await call();
      if (meta.rec) meta.rec.versions[id] = first(result);
      return result;
    };
    return {
      id,
      store: {
        name: shard.name,
        get: (ns, keys, sync) => shard.get(ns, keys, sync),
        sync: (ns, request) => shard.sync(ns, request),
        set: (ns, writes, meta) => recorded(meta, () => shard.set(ns, writes, meta)),
        delete: (ns, keys, meta) => recorded(meta, () => shard.delete(ns, keys, meta)),
        clear: (ns, meta) => recorded(meta, () => shard.clear(ns, meta)),
        ...(shard.subscribe ? { subscribe: (ns, handlers) => shard.subscribe(ns, handlers) } : {}),
      },
    };
  };
  const inner =
    shards > 1
      ? shardedStore(
          Array.from({ length: shards }, (_, i) =>
            recordingShard(
              upstashStore({ url, token }, { timeout: 10_000, prefix: `s${i}` }),
              String(i),
            ),
          ),
        )
      : upstashStore({ url, token }, { timeout: 10_000 });
  const shardOf = (key) => (shards > 1 ? inner.shardFor(key) : undefined);
  const stamp = async (meta, call) => {
    const op = current;
    if (op === null) throw new Error("a write reached the store outside an operation");
    const result = await call(shards > 1 ? { ...meta, rec: op } : meta);
    op.version = first(result);
    return result;
  };
  const store = {
    name: "recording",
    ...(inner.orderedVersions === undefined ? {} : { orderedVersions: inner.orderedVersions }),
    get: (ns, keys, sync) => inner.get(ns, keys, sync),
    sync: (ns, request) => inner.sync(ns, request),
    set: (ns, writes, meta) => stamp(meta, (m) => inner.set(ns, writes, m)),
    delete: (ns, keys, meta) => stamp(meta, (m) => inner.delete(ns, keys, m)),
    clear: (ns, meta) => stamp(meta, (m) => inner.clear(ns, m)),
    ...(inner.subscribe ? { subscribe: (ns, handlers) => inner.subscribe(ns, handlers) } : {}),
  };
  const cache = createCache({
    store,
    namespace,
    instanceId,
    ttl: 3_600_000, // no expiry during a run: the checker does not model TTLs
    // `broken` turns coherence off while the history still claims the bound: the checker's
    // own test uses it to prove that it finds violations.
    // `hub`: { url, token, WebSocket, shards } of the invalidation hub, for Node instances.
    // `pubsub`: "subscribe" (Node instances) or "publish" (Workers) over Redis pub/sub.
    sync: broken
      ? false
      : {
          maxStaleness: M,
          logLength,
          batch,
          ...(hub ? { hub } : {}),
          ...(pubsub === "subscribe" ? { pubsub: { minBackoff: 20, maxBackoff: 500 } } : {}),
          ...(pubsub === "publish" ? { pubsub: { subscribe: false } } : {}),
        },
    logger: false,
    onError: (error) => {
      codes[error.code] = (codes[error.code] ?? 0) + 1;
      // A failed hub publish or a dropped pub/sub stream never changes what a read returns
      // (the log covers both); L2 failures may.
      if (error.code !== "EC_HUB_UNAVAILABLE" && error.code !== "EC_PUBSUB_UNAVAILABLE") errors++;
    },
  });

  /** Runs one operation; `id` names the value a set writes. */
  async function execute(op, id) {
    const before = errors;
    const result = { ok: true };
    try {
      switch (op.op) {
        case "get": {
          const v = await cache.get(op.key);
          result.ids = [v === undefined ? null : v.id];
          break;
        }
        case "getMany": {
          const vs = await cache.getMany(op.keys);
          result.ids = vs.map((v) => (v === undefined ? null : v.id));
          break;
        }
        case "set":
        case "inv":
        case "del":
        case "clear": {
          const rec = { version: undefined, versions: {} };
          current = rec;
          let p;
          try {
            if (op.op === "set") p = cache.set(op.key, { id });
            else if (op.op === "inv") p = cache.setWithInvalidate(op.key, { id });
            else if (op.op === "del") p = cache.delete(op.key);
            else p = cache.clear();
          } finally {
            current = null;
          }
          await p;
          result.version = rec.version;
          if (shards > 1) {
            if (op.op === "clear") result.versions = rec.versions;
            else result.shard = shardOf(op.key);
          }
          break;
        }
        default:
          throw new Error(`unknown op ${op.op}`);
      }
    } catch {
      result.ok = false;
    }
    if (errors !== before) result.ok = false;
    return result;
  }

  return { cache, execute, codes };
}

/** Turns one executed operation into history records (see history.mjs). */
export function toRecords(inst, M, op, id, result, start, end) {
  if (op.op === "get" || op.op === "getMany") {
    const keys = op.op === "get" ? [op.key] : op.keys;
    return keys.map((key, i) => ({
      t: "r",
      inst,
      key,
      id: result.ok ? result.ids[i] : null,
      start,
      end,
      ok: result.ok,
      M,
    }));
  }
  return [
    {
      t: "w",
      inst,
      kind: op.op,
      key: op.key,
      id: op.op === "set" || op.op === "inv" ? id : undefined,
      version: result.version,
      // Sharded L2: the key's shard, or a clear's version on each shard.
      ...(result.shard === undefined ? {} : { shard: result.shard }),
      ...(result.versions === undefined ? {} : { versions: result.versions }),
      start,
      end,
      ok: result.ok,
    },
  ];
}
