/**
 * The `sync.hub` options and their validation at construction.
 * @module
 */
import { InvalidOptionError } from "../errors.js";
import type { ChangeRecord } from "../store/contract.js";
import { duration } from "../util/check.js";

/** The part of a Durable Object namespace binding the publisher uses. */
export interface HubBinding {
  getByName(name: string): {
    publish(records: ChangeRecord[], shard?: number): Promise<unknown>;
  };
}

/** The standard WebSocket surface the subscriber needs (global in Workers, Deno, Bun, Node 22). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "close" | "error", listener: () => void): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
}

/** A WebSocket constructor, e.g. the global one, or `WebSocket` from the `ws` package in Node 20. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: Record<string, unknown>,
) => WebSocketLike;

/**
 * Options of the invalidation hub (`sync.hub`). Pass `binding` in a Cloudflare Worker (it
 * publishes by RPC; a Worker cannot stay subscribed), or `url` and `token` in a long-lived
 * Node, Deno or Bun server (it subscribes, and publishes over its sockets).
 *
 * @example
 * ```ts
 * // In a Worker:
 * createCache({ store, sync: { hub: { binding: env.EDGECACHE_HUB } } });
 * // In Node 20 (no global WebSocket):
 * import WebSocket from "ws";
 * createCache({ store, sync: { hub: { url: "https://hub.example.com", token, WebSocket } } });
 * ```
 */
export interface HubOptions {
  /** The Durable Object namespace binding of `InvalidationHub` (Workers). */
  binding?: HubBinding;
  /** Base URL of the Worker that hosts the hub (`http(s)://` or `ws(s)://`). */
  url?: string;
  /** A token from `mintHubToken` for this namespace: role `"both"` to subscribe and publish. */
  token?: string;
  /**
   * The WebSocket constructor; needed in Node 20, which has no global one.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Shards of the namespace's hub (`EDGECACHE_HUB_SHARDS` on the Worker); must match it.
   * @default 1
   */
  shards?: number;
  /**
   * The staleness window while every shard's socket is open and caught up with the change
   * log, in ms: pushed changes arrive within milliseconds, so polling may relax. The moment a
   * socket drops, `maxStaleness` applies again. Defaults to `maxStaleness` (no relaxation):
   * the hub then only makes propagation faster.
   */
  relaxedStaleness?: number;
  /**
   * Longest a publish may take before it is abandoned (the change log still carries it).
   * @default 1000
   */
  publishTimeout?: number;
  /**
   * First reconnection delay in ms; it doubles per failed attempt, with jitter, up to
   * `maxBackoff`.
   * @default 100
   */
  minBackoff?: number;
  /** @default 10_000 */
  maxBackoff?: number;
  /**
   * Send `"ping"` this often, in ms, and reconnect when nothing arrived for three times as
   * long (a silently dead connection).
   * @default 15_000
   */
  heartbeat?: number;
}

/** Validated hub options. */
export interface ResolvedHub {
  options: HubOptions;
  shards: number;
  publishTimeout: number;
}

/** Validates `sync.hub` at construction. */
export function resolveHub(hub: HubOptions | undefined): ResolvedHub | undefined {
  if (hub === undefined) return undefined;
  if (typeof hub !== "object" || hub === null) {
    throw new InvalidOptionError("sync.hub must be an options object");
  }
  const shards = hub.shards ?? 1;
  if (!Number.isSafeInteger(shards) || shards < 1 || shards > 256) {
    throw new InvalidOptionError("sync.hub.shards must be an integer from 1 to 256");
  }
  if (hub.binding === undefined && hub.url === undefined) {
    throw new InvalidOptionError("sync.hub needs a binding (Workers) or a url and token");
  }
  if (hub.binding !== undefined && typeof hub.binding?.getByName !== "function") {
    throw new InvalidOptionError("sync.hub.binding must be a Durable Object namespace binding");
  }
  if (hub.url !== undefined) {
    if (typeof hub.url !== "string" || !/^(https?|wss?):\/\/[^\s/]+/.test(hub.url)) {
      throw new InvalidOptionError("sync.hub.url must be an http(s) or ws(s) URL");
    }
    if (typeof hub.token !== "string" || hub.token.length === 0) {
      throw new InvalidOptionError("sync.hub.token is required with sync.hub.url");
    }
    const ctor = hub.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket;
    if (typeof ctor !== "function") {
      throw new InvalidOptionError(
        "no WebSocket here: pass sync.hub.WebSocket (e.g. from the ws package in Node 20)",
      );
    }
  }
  for (const name of [
    "relaxedStaleness",
    "publishTimeout",
    "minBackoff",
    "maxBackoff",
    "heartbeat",
  ] as const) {
    if (hub[name] !== undefined) duration(`sync.hub.${name}`, hub[name]);
  }
  return { options: hub, shards, publishTimeout: hub.publishTimeout ?? 1000 };
}
