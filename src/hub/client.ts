import { type EdgeCacheError, HubError, InvalidOptionError } from "../errors.js";
import type { ChangeRecord } from "../store.js";
import { hubObjectName, parseFrame } from "./protocol.js";
import { recordsByShard } from "./shard.js";

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

/** What the hub client reports to its cache. */
export interface HubEvents {
  /** Records pushed by the hub, already validated. */
  records(records: ChangeRecord[], receivedAt: number): void;
  /** A shard's socket (re)opened: resolve true once the change log has been caught up. */
  opened(): Promise<boolean>;
  /** Whether every shard is connected and caught up changed. */
  health(healthy: boolean): void;
  /** A failure worth reporting (never with tokens or values in it). */
  error(error: EdgeCacheError): void;
  now(): number;
}

/** Hub statistics, part of the cache's stats. */
export interface HubStats {
  /** Shard sockets open now (at most the hub's shard count). */
  connected: number;
  /** Reconnection attempts scheduled since the start. */
  reconnects: number;
  /** Change frames received and applied. */
  framesReceived: number;
  /** Frames dropped as malformed, oversized, binary or for another shard. */
  framesDropped: number;
  /** Change records published to the hub. */
  published: number;
  /** Publishes that failed (the change log still carries those changes). */
  publishErrors: number;
}

const OPEN = 1;

interface Shard {
  index: number;
  socket: WebSocketLike | undefined;
  /** `socket` has opened (and is counted in `stats.connected`). */
  open: boolean;
  healthy: boolean;
  attempt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  lastSeen: number;
}

/** Keys per published record, and the JSON size a publish frame stays under. */
const RECORD_KEYS = 100;
const FRAME_BYTES = 256 * 1024;

/**
 * Publish frames for `records`: records split to at most RECORD_KEYS keys (a set's keys
 * have consecutive versions, so each part keeps exact first/last versions), packed into
 * frames of about FRAME_BYTES, well under the hub's limit.
 */
function frames(
  records: readonly ChangeRecord[],
): Array<{ text: string; records: ChangeRecord[] }> {
  const parts: ChangeRecord[] = [];
  for (const r of records) {
    if (r.keys.length <= RECORD_KEYS) {
      parts.push(r);
      continue;
    }
    for (let i = 0; i < r.keys.length; i += RECORD_KEYS) {
      const keys = r.keys.slice(i, i + RECORD_KEYS);
      parts.push(
        r.op === "set"
          ? { ...r, keys, first: keys[0]!.version, last: keys[keys.length - 1]!.version }
          : { ...r, keys },
      );
    }
  }
  const out: Array<{ text: string; records: ChangeRecord[] }> = [];
  let batch: ChangeRecord[] = [];
  let texts: string[] = [];
  let size = 0;
  const flush = () => {
    // Assembled from the records' own JSON, so each is serialized once.
    if (batch.length > 0) {
      out.push({ text: `{"t":"publish","records":[${texts.join(",")}]}`, records: batch });
    }
    batch = [];
    texts = [];
    size = 0;
  };
  for (const r of parts) {
    const text = JSON.stringify(r);
    if (batch.length > 0 && (size + text.length > FRAME_BYTES || batch.length >= 500)) flush();
    batch.push(r);
    texts.push(text);
    size += text.length;
  }
  flush();
  return out;
}

function unref(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
  } else if (typeof timer === "number") {
    (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno?.unrefTimer?.(timer);
  }
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
    const v = hub[name];
    if (v !== undefined && (typeof v !== "number" || !Number.isFinite(v) || v < 0)) {
      throw new InvalidOptionError(`sync.hub.${name} must be a finite number >= 0`);
    }
  }
  return { options: hub, shards, publishTimeout: hub.publishTimeout ?? 1000 };
}

/**
 * Publishes a write's change records to the hub, and (with `url`) keeps one WebSocket per
 * shard open to receive everyone else's. The change log stays the source of truth: after
 * every (re)connect the cache catches up from its cursor before the socket is trusted.
 */
export class HubClient {
  readonly #hub: ResolvedHub;
  readonly #namespace: string;
  readonly #events: HubEvents;
  readonly #shards: Shard[] = [];
  #closed = false;
  #healthy = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  readonly stats: HubStats = {
    connected: 0,
    reconnects: 0,
    framesReceived: 0,
    framesDropped: 0,
    published: 0,
    publishErrors: 0,
  };

  constructor(hub: ResolvedHub, namespace: string, events: HubEvents) {
    this.#hub = hub;
    this.#namespace = namespace;
    this.#events = events;
    if (hub.options.url !== undefined) {
      for (let index = 0; index < hub.shards; index++) {
        const shard: Shard = {
          index,
          socket: undefined,
          open: false,
          healthy: false,
          attempt: 0,
          timer: undefined,
          lastSeen: 0,
        };
        this.#shards.push(shard);
        this.#connect(shard);
      }
      const every = hub.options.heartbeat ?? 15_000;
      if (every > 0) {
        this.#heartbeat = setInterval(() => this.#beat(every), every);
        unref(this.#heartbeat);
      }
    }
  }

  /** Whether every shard is connected and caught up. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /**
   * Sends the records of a write that just succeeded. Never rejects: a failed publish only
   * costs latency (the others find the change in the log), so it is reported, not thrown.
   */
  async publish(records: ChangeRecord[]): Promise<void> {
    if (this.#closed || records.length === 0) return;
    const parts = recordsByShard(records, this.#hub.shards);
    const { binding } = this.#hub.options;
    try {
      if (binding !== undefined) {
        await this.#bounded(
          Promise.all(
            [...parts].map(([shard, recs]) =>
              binding.getByName(hubObjectName(this.#namespace, shard)).publish(recs, shard),
            ),
          ),
        );
      } else {
        const viaHttp: ChangeRecord[] = [];
        for (const [shard, recs] of parts) {
          const socket = this.#shards[shard]?.socket;
          for (const frame of frames(recs)) {
            if (socket?.readyState === OPEN) {
              try {
                socket.send(frame.text);
                continue;
              } catch {
                // The socket died under us: fall through to HTTP.
              }
            }
            viaHttp.push(...frame.records);
          }
        }
        if (viaHttp.length > 0) {
          await this.#bounded(Promise.all(frames(viaHttp).map((f) => this.#post(f.text))));
        }
      }
      this.stats.published += records.length;
    } catch (err) {
      this.stats.publishErrors++;
      this.#events.error(
        err instanceof HubError
          ? err
          : new HubError("publishing to the invalidation hub failed", { cause: err }),
      );
    }
  }

  /** Closes the sockets and stops reconnecting and heartbeats. */
  close(): void {
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    for (const shard of this.#shards) {
      if (shard.timer !== undefined) clearTimeout(shard.timer);
      shard.timer = undefined;
      try {
        shard.socket?.close(1000, "closed");
      } catch {
        // Already closed.
      }
      this.#detach(shard);
    }
    this.#setHealth();
  }

  async #post(body: string): Promise<void> {
    const { url, token } = this.#hub.options;
    const base = url!.replace(/^ws/, "http").replace(/\/+$/, "");
    const res = await fetch(`${base}/hub/${encodeURIComponent(this.#namespace)}/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body,
    });
    await res.body?.cancel();
    if (res.status === 401) throw new HubError("the hub refused the token");
    if (!res.ok) throw new HubError(`the hub answered ${res.status}`);
  }

  async #bounded<T>(work: Promise<T>): Promise<T> {
    const ms = this.#hub.publishTimeout;
    if (ms <= 0) return work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new HubError(`hub publish timed out after ${ms} ms`)),
            ms,
          );
        }),
      ]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  #connect(shard: Shard): void {
    if (this.#closed) return;
    const { url, token } = this.#hub.options;
    const Ctor = (this.#hub.options.WebSocket ??
      (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket) as WebSocketConstructor;
    const base = url!.replace(/^http/, "ws").replace(/\/+$/, "");
    const target =
      `${base}/hub/${encodeURIComponent(this.#namespace)}` +
      `?shard=${shard.index}&token=${encodeURIComponent(token!)}`;
    let socket: WebSocketLike;
    try {
      // The third argument is for the ws package (standard constructors ignore it): its
      // default per-message compression costs more than it saves on these small frames.
      socket = new Ctor(target, undefined, { perMessageDeflate: false });
    } catch {
      this.#retry(shard);
      return;
    }
    shard.socket = socket;
    socket.addEventListener("open", () => {
      if (shard.socket !== socket) return;
      shard.attempt = 0;
      shard.lastSeen = this.#events.now();
      shard.open = true;
      this.stats.connected++;
      // Only a sync sent after the socket opened covers what it may have missed.
      void this.#events.opened().then((caughtUp) => {
        if (shard.socket === socket && socket.readyState === OPEN && caughtUp) {
          shard.healthy = true;
          this.#setHealth();
        }
      });
    });
    socket.addEventListener("message", (event) => {
      if (shard.socket !== socket) return;
      const receivedAt = this.#events.now();
      shard.lastSeen = receivedAt;
      if (event.data === "pong") return;
      const frame = parseFrame(event.data, "changes");
      if (frame === undefined || frame.shard !== shard.index) {
        this.stats.framesDropped++;
        return;
      }
      this.stats.framesReceived++;
      this.#events.records(frame.records, receivedAt);
    });
    const lost = () => {
      if (shard.socket !== socket) return;
      this.#detach(shard);
      this.#setHealth();
      this.#retry(shard);
    };
    socket.addEventListener("close", lost);
    socket.addEventListener("error", () => {
      try {
        socket.close();
      } catch {
        // Nothing to close.
      }
      lost();
    });
  }

  #retry(shard: Shard): void {
    if (this.#closed || shard.timer !== undefined) return;
    const min = this.#hub.options.minBackoff ?? 100;
    const max = this.#hub.options.maxBackoff ?? 10_000;
    const ceiling = Math.min(max, min * 2 ** shard.attempt);
    // Full jitter on half the delay: reconnecting instances (after a deploy) spread out.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    shard.attempt++;
    this.stats.reconnects++;
    shard.timer = setTimeout(() => {
      shard.timer = undefined;
      this.#connect(shard);
    }, delay);
    unref(shard.timer);
  }

  #beat(every: number): void {
    const now = this.#events.now();
    for (const shard of this.#shards) {
      const socket = shard.socket;
      if (socket?.readyState !== OPEN) continue;
      if (now - shard.lastSeen > 3 * every) {
        // Silent for too long: treat it as dead and reconnect.
        try {
          socket.close(4000, "heartbeat timeout");
        } catch {
          // Ignore.
        }
        this.#detach(shard);
        this.#setHealth();
        this.#retry(shard);
        continue;
      }
      try {
        socket.send("ping");
      } catch {
        // The close event follows.
      }
    }
  }

  /** Forgets the shard's socket: no longer healthy, and no longer counted as open. */
  #detach(shard: Shard): void {
    shard.socket = undefined;
    shard.healthy = false;
    if (shard.open) {
      shard.open = false;
      this.stats.connected--;
    }
  }

  #setHealth(): void {
    const healthy =
      !this.#closed && this.#shards.length > 0 && this.#shards.every((s) => s.healthy);
    if (healthy !== this.#healthy) {
      this.#healthy = healthy;
      this.#events.health(healthy);
    }
  }
}
