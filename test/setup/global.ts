import { randomBytes } from "node:crypto";
import type { TestProject } from "vitest/node";
import { startRedisServer, startRestBridge } from "../../src/node/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A throwaway redis-server, shared by every test file (`redis://127.0.0.1:PORT`). */
    redisUrl: string;
    /** The REST bridge in front of it (`http://127.0.0.1:PORT`). */
    bridgeUrl: string;
    /** The bridge's bearer token, random per run. */
    bridgeToken: string;
  }
}

/** Starts one real redis-server plus the REST bridge for the whole run. */
export default async function setup(project: TestProject) {
  const redis = await startRedisServer();
  const token = randomBytes(24).toString("base64url");
  let bridge: Awaited<ReturnType<typeof startRestBridge>>;
  try {
    bridge = await startRestBridge({ redisUrl: redis.url, token });
  } catch (error) {
    await redis.close();
    throw error;
  }
  project.provide("redisUrl", redis.url);
  project.provide("bridgeUrl", bridge.url);
  project.provide("bridgeToken", token);
  return async () => {
    await bridge.close();
    await redis.close();
  };
}
