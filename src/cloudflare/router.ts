/**
 * The hub's front door: authenticates subscribers and publishers before anything reaches an
 * `InvalidationHub` object, and picks the object of each (namespace, shard).
 * @module
 */
import { InvalidOptionError } from "../errors.js";
import { hubObjectName, MAX_FRAME_BYTES, parseFrame, parseRecord } from "../hub/protocol.js";
import { recordsByShard } from "../hub/shard.js";
import { verifyHubToken } from "../hub/token.js";
import { type ChangeRecord, NAMESPACE_PATTERN } from "../store/contract.js";
import type { InvalidationHub } from "./hub.js";

/**
 * Headers the router sets on the upgrade it forwards to the object. Whatever a client sent
 * under these names is removed first, so the object can trust them.
 */
export const HUB_ROLE_HEADER = "x-edgecache-role";
export const HUB_NAMESPACE_HEADER = "x-edgecache-namespace";
export const HUB_SHARD_HEADER = "x-edgecache-shard";

/** Shard counts beyond this would make every clear cost hundreds of RPCs. */
const MAX_SHARDS = 256;

/** The bindings the hub needs (wrangler.toml). */
export interface HubEnv {
  /** The Durable Object namespace binding of {@link InvalidationHub}. */
  EDGECACHE_HUB: DurableObjectNamespace<InvalidationHub>;
  /**
   * The secret tokens are signed with (at least 32 characters): set it with
   * `wrangler secret put EDGECACHE_HUB_SECRET`.
   */
  EDGECACHE_HUB_SECRET: string;
  /**
   * Shards per namespace, 1 to 256; clients must use the same number. Changing it moves keys
   * between shards: subscribers reconnect with the new count.
   * @default 1
   */
  EDGECACHE_HUB_SHARDS?: string | number;
}

/** Options of {@link handleHubRequest}. */
export interface HubRouterOptions {
  /**
   * The path the hub is mounted under.
   * @default "/hub"
   */
  prefix?: string;
  /**
   * The clock tokens' expiry is checked against, in ms.
   * @default Date.now
   */
  now?: () => number;
}

/**
 * The shard count from `EDGECACHE_HUB_SHARDS`.
 * @throws InvalidOptionError when it is not an integer from 1 to 256.
 */
export function hubShards(env: Pick<HubEnv, "EDGECACHE_HUB_SHARDS">): number {
  const raw = env.EDGECACHE_HUB_SHARDS;
  if (raw === undefined || raw === "") return 1;
  const shards = typeof raw === "number" ? raw : /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(shards) || shards < 1 || shards > MAX_SHARDS) {
    throw new InvalidOptionError(`EDGECACHE_HUB_SHARDS must be an integer from 1 to ${MAX_SHARDS}`);
  }
  return shards;
}

/**
 * Publishes change-log records from Worker code: splits them by shard (a clear goes to every
 * shard) and calls {@link InvalidationHub.publish} on each shard's object by RPC. Malformed
 * records are left out. Rejects when an object cannot be reached; the change log still
 * carries the records, so callers report that and move on.
 *
 * @example
 * ```ts
 * await publishToHub(env, "app", records); // { accepted: records.length }
 * ```
 */
export async function publishToHub(
  env: Pick<HubEnv, "EDGECACHE_HUB" | "EDGECACHE_HUB_SHARDS">,
  namespace: string,
  records: readonly ChangeRecord[],
): Promise<{ accepted: number }> {
  if (typeof namespace !== "string" || !NAMESPACE_PATTERN.test(namespace)) {
    throw new InvalidOptionError("invalid namespace for the hub");
  }
  if (typeof env.EDGECACHE_HUB?.getByName !== "function") {
    throw new InvalidOptionError(
      "EDGECACHE_HUB must be the InvalidationHub Durable Object binding",
    );
  }
  const shards = hubShards(env);
  const valid: ChangeRecord[] = [];
  for (const value of records) {
    const record = parseRecord(value);
    if (record) valid.push(record);
  }
  await Promise.all(
    [...recordsByShard(valid, shards)].map(([shard, part]) =>
      env.EDGECACHE_HUB.getByName(hubObjectName(namespace, shard)).publish(part, shard),
    ),
  );
  return { accepted: valid.length };
}

const json = (body: unknown, status: number, headers?: Record<string, string>): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });

const problem = (status: number, error: string, headers?: Record<string, string>): Response =>
  json({ error }, status, headers);

/** One answer for every refused token: saying why would help whoever forged it. */
const unauthorized = (): Response =>
  problem(401, "missing, invalid or expired token", { "www-authenticate": "Bearer" });

function bearer(request: Request): string | undefined {
  const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  return match?.[1];
}

/** Reads at most `limit` bytes of the body; `undefined` when it is longer. */
async function readBounded(request: Request, limit: number): Promise<string | undefined> {
  if (!request.body) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

interface Config {
  secret: string;
  shards: number;
  hub: HubEnv["EDGECACHE_HUB"];
}

/** The bindings, checked on each request: in a Worker they exist only per request. */
function readConfig(env: HubEnv): Config {
  const secret = env.EDGECACHE_HUB_SECRET;
  if (typeof secret !== "string" || secret.length < 32) {
    throw new InvalidOptionError("EDGECACHE_HUB_SECRET must be at least 32 characters");
  }
  if (typeof env.EDGECACHE_HUB?.getByName !== "function") {
    throw new InvalidOptionError(
      "EDGECACHE_HUB must be the InvalidationHub Durable Object binding",
    );
  }
  return { secret, shards: hubShards(env), hub: env.EDGECACHE_HUB };
}

async function subscribe(
  request: Request,
  url: URL,
  namespace: string,
  config: Config,
  now: () => number,
): Promise<Response> {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return problem(426, "a subscription is a WebSocket upgrade", { upgrade: "websocket" });
  }
  const shardParam = url.searchParams.get("shard") ?? "0";
  const shard = /^\d{1,6}$/.test(shardParam) ? Number(shardParam) : Number.NaN;
  if (!Number.isSafeInteger(shard) || shard >= config.shards) {
    return problem(400, `shard must be an integer from 0 to ${config.shards - 1}`);
  }
  // Browsers cannot set headers on a WebSocket, hence the query parameter; a header is
  // preferred where the client can send one, since URLs end up in logs more often.
  const token = bearer(request) ?? url.searchParams.get("token") ?? undefined;
  const claims = await verifyHubToken(token, config.secret, { namespace, role: "subscribe" }, now);
  if (!claims) return unauthorized();

  // Keep the handshake's own headers; `set` replaces whatever a client sent under our names.
  const headers = new Headers(request.headers);
  headers.delete("authorization");
  headers.set(HUB_ROLE_HEADER, claims.role);
  headers.set(HUB_NAMESPACE_HEADER, namespace);
  headers.set(HUB_SHARD_HEADER, String(shard));
  const forward = new URL(url);
  forward.searchParams.delete("token");
  const stub = config.hub.getByName(hubObjectName(namespace, shard));
  return stub.fetch(new Request(forward, { method: "GET", headers }));
}

async function publish(
  request: Request,
  namespace: string,
  config: Config,
  env: HubEnv,
  now: () => number,
): Promise<Response> {
  const claims = await verifyHubToken(
    bearer(request),
    config.secret,
    { namespace, role: "publish" },
    now,
  );
  if (!claims) return unauthorized();
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_FRAME_BYTES) return problem(413, "the frame is too large");
  const text = await readBounded(request, MAX_FRAME_BYTES);
  if (text === undefined) return problem(413, "the frame is too large");
  const frame = parseFrame(text, "publish");
  if (!frame) return problem(400, "the body must be a valid publish frame");
  try {
    const { accepted } = await publishToHub(env, namespace, frame.records);
    return json({ accepted }, 202);
  } catch (error) {
    // No details: the records are not logged, and the change log still carries them.
    console.error("edgecache hub: publish failed:", (error as Error)?.name);
    return problem(503, "the hub could not take the records");
  }
}

/**
 * Serves the hub under `prefix` (default `/hub`):
 * - `GET /hub/:namespace?shard=<i>&token=<t>` with `Upgrade: websocket`: a subscription
 *   (token role `subscribe` or `both`; the token may also come as `Authorization: Bearer`).
 *   A `both` token may also publish over its socket.
 * - `POST /hub/:namespace/publish` with `Authorization: Bearer <publish or both token>` and a
 *   `PublishFrame` body: answers `202 {"accepted": n}`.
 *
 * Everything is refused before the upgrade or the body is used: 401 for a missing, forged,
 * expired, wrong-namespace or wrong-role token, 400 for a bad namespace, shard or frame, 413
 * for a frame over `MAX_FRAME_BYTES`, 426 for a subscription that is not an upgrade, 500 when
 * the bindings are wrong (logged without secrets). The namespace may be percent-encoded.
 *
 * @example
 * ```ts
 * export { InvalidationHub } from "edgecache/cloudflare";
 * import { handleHubRequest } from "edgecache/cloudflare";
 *
 * export default {
 *   async fetch(request: Request, env: Env): Promise<Response> {
 *     const { pathname } = new URL(request.url);
 *     if (pathname.startsWith("/hub/")) return handleHubRequest(request, env);
 *     return new Response("not found", { status: 404 });
 *   },
 * };
 * ```
 * @see docs/hub.md (routes, tokens, frames, limits; shipped in the package).
 */
export async function handleHubRequest(
  request: Request,
  env: HubEnv,
  options: HubRouterOptions = {},
): Promise<Response> {
  const prefix = (options.prefix ?? "/hub").replace(/\/+$/, "");
  const now = options.now ?? Date.now;
  const url = new URL(request.url);
  if (!url.pathname.startsWith(`${prefix}/`)) return problem(404, "no such route");
  let rest = url.pathname.slice(prefix.length + 1);
  const isPublish = rest.endsWith("/publish");
  if (isPublish) rest = rest.slice(0, -"/publish".length);
  const allowed = isPublish ? "POST" : "GET";
  if (request.method !== allowed) {
    return new Response(null, { status: 405, headers: { allow: allowed } });
  }
  let namespace: string;
  try {
    namespace = decodeURIComponent(rest);
  } catch {
    return problem(400, "the namespace is not valid percent-encoding");
  }
  if (!NAMESPACE_PATTERN.test(namespace)) return problem(400, "invalid namespace");
  let config: Config;
  try {
    config = readConfig(env);
  } catch (error) {
    // The message names the binding, never its value.
    console.error("edgecache hub: misconfigured:", (error as Error).message);
    return problem(500, "the hub is misconfigured");
  }
  return isPublish
    ? publish(request, namespace, config, env, now)
    : subscribe(request, url, namespace, config, now);
}
