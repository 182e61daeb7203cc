/**
 * The invalidation hub's shared pieces: wire protocol, tokens and shard choice. Used by the
 * Durable Object (`edgecache/cloudflare`) and by caches that publish to or subscribe to it.
 * @module
 */

export { EdgeCacheError, InvalidOptionError } from "../errors.js";
export { NAMESPACE_PATTERN } from "../store.js";
export {
  BATCH_MS,
  BATCH_RECORDS,
  type ChangesFrame,
  hubObjectName,
  MAX_FRAME_BYTES,
  MAX_PUBLISH_RECORDS,
  type PublishFrame,
  parseFrame,
  parseRecord,
} from "./protocol.js";
export { recordsByShard, shardOf } from "./shard.js";
export {
  type HubClaims,
  type HubRole,
  type MintHubTokenOptions,
  mintHubToken,
  verifyHubToken,
} from "./token.js";
