/**
 * Node-only parts of edgecache: a local Upstash-REST-compatible bridge in front of any Redis,
 * and a throwaway `redis-server` launcher for tests and local development.
 *
 * @example
 * import { startRedisServer, startRestBridge } from "edgecache/node";
 *
 * const redis = await startRedisServer();
 * const bridge = await startRestBridge({ redisUrl: redis.url, token: "dev" });
 * // new Redis({ url: bridge.url, token: bridge.token }) from @upstash/redis now works locally.
 * await bridge.close();
 * await redis.close();
 *
 * @module
 */
export { type RestBridge, type RestBridgeOptions, startRestBridge } from "./bridge.js";
export {
  type RedisServer,
  RedisServerError,
  type RedisServerOptions,
  startRedisServer,
} from "./redis-server.js";
