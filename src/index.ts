/**
 * edgecache: a two-level cache (in-process LRU + shared Redis over REST) for Cloudflare
 * Workers, Deno, Bun and Node.
 *
 * Stores: `memoryStore` and `shardedStore` here, `upstashStore` in `edgecache/upstash`;
 * what a store of your own implements, and the suite that tests it, in `edgecache/store`.
 * @module
 */

export type { CacheEventMap } from "./cache/events.js";
export { createCache } from "./cache.js";
export type { Serializer } from "./codec.js";
export { fromEnv } from "./env.js";
export {
  ClosedError,
  CorruptEntryError,
  EdgeCacheError,
  type EdgeCacheErrorCode,
  HubError,
  InvalidKeyError,
  InvalidOptionError,
  isEdgeCacheError,
  LoaderError,
  SerializationError,
  StoreError,
  ValueTooLargeError,
} from "./errors.js";
export { mintHubToken } from "./hub/token.js";
export type { LocalCache } from "./local.js";
export type { Logger } from "./logger.js";
export { memoryStore } from "./stores/memory.js";
export { type ShardedStoreOptions, shardedStore } from "./stores/sharded.js";
export type {
  BatchLoader,
  BatchLoaderContext,
  Cache,
  CacheOptions,
  CacheStats,
  GetOrSetOptions,
  Group,
  Loader,
  LoaderContext,
  NamespaceOptions,
  SetOptions,
} from "./types.js";
