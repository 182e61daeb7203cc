/**
 * `edgecache/cloudflare`: the invalidation hub, a Durable Object that fans out change-log
 * records to every subscriber of one (namespace, shard), plus the router that authenticates
 * clients in front of it, and {@link verifyHubToken} for a Worker that checks hub tokens
 * itself (tokens are minted with `mintHubToken` from `edgecache`, wherever the secret is).
 *
 * Mount both in your Worker:
 *
 * ```ts
 * import { handleHubRequest } from "edgecache/cloudflare";
 * export { InvalidationHub } from "edgecache/cloudflare";
 *
 * export default {
 *   fetch(request: Request, env: Env) {
 *     if (new URL(request.url).pathname.startsWith("/hub/")) return handleHubRequest(request, env);
 *     return new Response("not found", { status: 404 });
 *   },
 * };
 * ```
 *
 * The hub is an accelerator: the change log in Redis stays the source of truth, so a frame
 * the hub drops, or one lost to a deploy or an eviction, costs latency, never coherence.
 *
 * @module
 */
export { verifyHubToken } from "../hub/token.js";
export { InvalidationHub } from "./hub.js";
export {
  type HubEnv,
  handleHubRequest,
  publishToHub,
} from "./router.js";
