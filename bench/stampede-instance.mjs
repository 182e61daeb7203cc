// One process of the cross-process stampede that compares caches (bench/stampede.mjs): one
// cache of one library on the run's redis-server (TCP for the ioredis / node-redis clients,
// the REST bridge for the Upstash ones). Reads a warm-up key so that connections are open,
// says "ready", waits for "go" on stdin, then fires `perInstance` concurrent read-through
// calls of one cold key. The loader prints "load" (the parent counts the lines) and answers
// after `loadMs`. Ends with one "result {...}" line.
//
// Every contender uses its library's documented read-through call with its defaults; what
// each one offers against a stampede is what the library itself does (see the notes in
// bench/stampede.mjs).

const config = JSON.parse(process.argv[2]);
const { contender, key, loadMs, perInstance } = config;

let loads = 0;
const loader = async () => {
  const n = ++loads;
  process.stdout.write("load\n");
  await new Promise((resolve) => setTimeout(resolve, loadMs));
  return { by: process.pid, load: n };
};

/** @returns {Promise<{ read: () => Promise<unknown>, warm: () => Promise<unknown>, close: () => Promise<unknown> }>} */
async function setUp() {
  switch (contender) {
    case "edgecache-lock":
    case "edgecache": {
      const { createCache } = await import("edgecache");
      const { upstashStore } = await import("edgecache/upstash");
      const cache = createCache({
        store: upstashStore({ url: config.restUrl, token: config.token }),
        namespace: "stampede",
        logger: false,
      });
      const lock = contender === "edgecache-lock";
      return {
        read: () => cache.getOrSet(key, loader, { ttl: 60_000, lock }),
        warm: () => cache.get("warm-up"),
        close: () => cache.close(),
      };
    }
    case "bentocache": {
      // Memory L1 + Redis L2 over ioredis, as bentocache documents a multi-tier store. Its
      // stampede protection is a per-key mutex in the process; it has no distributed lock
      // option, so the defaults are the most it offers.
      const { BentoCache, bentostore } = await import("bentocache");
      const { memoryDriver } = await import("bentocache/drivers/memory");
      const { redisDriver } = await import("bentocache/drivers/redis");
      const { default: IORedis } = await import("ioredis");
      const bento = new BentoCache({
        default: "cache",
        stores: {
          cache: bentostore()
            .useL1Layer(memoryDriver({ maxItems: 1_000 }))
            .useL2Layer(redisDriver({ connection: new IORedis(config.redisUrl) })),
        },
      });
      return {
        read: () => bento.getOrSet({ key, factory: loader, ttl: "1m" }),
        warm: () => bento.get({ key: "warm-up" }),
        close: () => bento.disconnect(),
      };
    }
    case "cache-manager": {
      // cache-manager 7's documented two tiers: an in-memory Keyv, then Keyv with
      // @keyv/redis. `wrap` coalesces concurrent calls of one key within the process.
      const { createCache } = await import("cache-manager");
      const { Keyv } = await import("keyv");
      const { default: KeyvRedis } = await import("@keyv/redis");
      const cache = createCache({
        stores: [new Keyv(), new Keyv({ store: new KeyvRedis(config.redisUrl) })],
      });
      return {
        read: () => cache.wrap(key, loader, 60_000),
        warm: () => cache.get("warm-up"),
        close: () => cache.disconnect(),
      };
    }
    case "unkey": {
      // @unkey/cache's swr with a memory tier and its Upstash store on the REST bridge; it
      // deduplicates concurrent origin loads of one key within the process.
      const { DefaultStatefulContext, Namespace, createCache } = await import("@unkey/cache");
      const { MemoryStore, UpstashRedisStore } = await import("@unkey/cache/stores");
      const { Redis } = await import("@upstash/redis");
      const ctx = new DefaultStatefulContext();
      const redis = new Redis({ url: config.restUrl, token: config.token, enableTelemetry: false });
      const cache = createCache({
        value: new Namespace(ctx, {
          stores: [new MemoryStore({ persistentMap: new Map() }), new UpstashRedisStore({ redis })],
          fresh: 60_000,
          stale: 120_000,
        }),
      });
      const unwrap = (res) => {
        if (res.err) throw res.err;
        return res.val;
      };
      return {
        read: async () => unwrap(await cache.value.swr(key, loader)),
        warm: async () => unwrap(await cache.value.get("warm-up")),
        close: async () => {},
      };
    }
    case "cachified": {
      // cachified with a Redis cache written here on ioredis, in the shape cachified
      // documents for a cache (get / set / delete of a CacheEntry, the entry's TTL from
      // totalTtl(metadata)). cachified deduplicates pending values per cache object.
      const { cachified, totalTtl } = await import("@epic-web/cachified");
      const { default: IORedis } = await import("ioredis");
      const redis = new IORedis(config.redisUrl);
      const cache = {
        name: "ioredis",
        async get(k) {
          const raw = await redis.get(k);
          return raw === null ? null : JSON.parse(raw);
        },
        async set(k, entry) {
          const ttl = totalTtl(entry?.metadata);
          const json = JSON.stringify(entry);
          if (ttl === Number.POSITIVE_INFINITY) return redis.set(k, json);
          const left = Math.ceil(entry.metadata.createdTime + ttl - Date.now());
          if (left > 0) return redis.set(k, json, "PX", left);
        },
        delete(k) {
          return redis.del(k);
        },
      };
      return {
        read: () => cachified({ key, cache, ttl: 60_000, getFreshValue: loader }),
        warm: () => cache.get("warm-up"),
        close: () => redis.quit(),
      };
    }
    default:
      throw new Error(`unknown contender ${contender}`);
  }
}

const cache = await setUp();
await cache.warm();
process.stdout.write("ready\n");
await new Promise((resolve) => process.stdin.once("data", resolve));
const started = performance.now();
const settled = await Promise.allSettled(Array.from({ length: perInstance }, () => cache.read()));
const ms = performance.now() - started;
const values = settled.filter((s) => s.status === "fulfilled").map((s) => JSON.stringify(s.value));
const errors = settled.filter((s) => s.status === "rejected").map((s) => String(s.reason));
process.stdout.write(
  `result ${JSON.stringify({
    fulfilled: values.length,
    rejected: errors.length,
    distinct: [...new Set(values)],
    loads,
    ms,
    errors: [...new Set(errors)].slice(0, 3),
  })}\n`,
);
await cache.close();
process.stdin.destroy();
