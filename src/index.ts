/**
 * edgecache: a two-level cache (in-process LRU + shared Redis over REST) for Cloudflare
 * Workers, Deno, Bun and Node.
 * @module
 */
export type { BreakerOptions, BreakerStats } from "./breaker.js";
export { createCache } from "./cache.js";
export {
  jsonSerializer,
  type Serializer,
  type SerializerOption,
  superjsonSerializer,
} from "./codec.js";
export { type EdgecacheEnv, fromEnv, optionsFromEnv } from "./env.js";
export {
  ClosedError,
  CorruptEntryError,
  EdgeCacheError,
  type EdgeCacheErrorCode,
  type EdgeCacheErrorOptions,
  HubError,
  InvalidKeyError,
  InvalidOptionError,
  isEdgeCacheError,
  LoaderError,
  SerializationError,
  StoreError,
  type Tier,
  ValueTooLargeError,
} from "./errors.js";
export { type HubRole, type MintHubTokenOptions, mintHubToken } from "./hub/token.js";
export {
  type LocalCache,
  type LocalEntry,
  type LocalOptions,
  lruLocal,
  type Negative,
} from "./local.js";
export { consoleLogger, type Logger, type LogLevel, silentLogger } from "./logger.js";
// What store implementers need beyond these lives in edgecache/store.
export type { ChangeRecord, Store } from "./store.js";
export { type MemoryStoreOptions, memoryStore } from "./stores/memory.js";
export {
  type Shard,
  type ShardedStore,
  type ShardedStoreOptions,
  shardedStore,
} from "./stores/sharded.js";
export type { SyncOptions } from "./sync/stamps.js";
export type {
  Cache,
  CacheOptions,
  CacheStats,
  GetOrSetOptions,
  Group,
  InspectResult,
  Loader,
  LoaderContext,
  NamespaceOptions,
  SetManyEntry,
  SetOptions,
} from "./types.js";
