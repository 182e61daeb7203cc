/**
 * The cache's side of the invalidation hub: publishing a write's records and, in long-lived
 * servers, one subscribed WebSocket per shard with reconnection and heartbeats.
 * @module
 */
import { type EdgeCacheError, HubError } from "../errors.js";
import type { ChangeRecord } from "../store/contract.js";
import { unref } from "../util/runtime.js";
import { publishFrames } from "./frames.js";
import type { ResolvedHub, WebSocketConstructor, WebSocketLike } from "./options.js";
import { hubObjectName, parseFrame } from "./protocol.js";
import { recordsByShard } from "./shard.js";

/** What a push transport (this hub client, or pub/sub's) reports to its cache. */
export interface PushEvents {
  /** Records pushed, already validated. */
  records(records: ChangeRecord[], receivedAt: number): void;
  /** A shard's socket or stream (re)opened: resolve true once the change log has been caught up. */
  opened(): Promise<boolean>;
  /** Whether every shard is connected and caught up changed. */
  health(healthy: boolean): void;
  /** A failure worth reporting (never with tokens or values in it). */
  error(error: EdgeCacheError): void;
  now(): number;
}

/** Hub statistics, part of the cache's stats. */
export interface HubStats {
  /**
   * Whether this instance subscribes (holds a socket per shard, with `url`) or only
   * publishes its writes (with `binding` alone, as a Worker does).
   */
  subscribed: boolean;
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

interface ShardSocket {
  index: number;
  socket: WebSocketLike | undefined;
  /** `socket` has opened (and is counted in `stats.connected`). */
  open: boolean;
  healthy: boolean;
  attempt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  lastSeen: number;
}

/**
 * Publishes a write's change records to the hub, and (with `url`) keeps one WebSocket per
 * shard open to receive everyone else's. The change log stays the source of truth: after
 * every (re)connect the cache catches up from its cursor before the socket is trusted.
 */
export class HubClient {
  readonly #hub: ResolvedHub;
  readonly #namespace: string;
  readonly #events: PushEvents;
  readonly #shards: ShardSocket[] = [];
  #closed = false;
  #healthy = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  // A publisher's health: its last publish went through (true until one fails).
  #lastPublishOk = true;
  readonly stats: HubStats = {
    subscribed: false,
    connected: 0,
    reconnects: 0,
    framesReceived: 0,
    framesDropped: 0,
    published: 0,
    publishErrors: 0,
  };

  constructor(hub: ResolvedHub, namespace: string, events: PushEvents) {
    this.#hub = hub;
    this.#namespace = namespace;
    this.#events = events;
    if (hub.options.url !== undefined) {
      this.stats.subscribed = true;
      for (let index = 0; index < hub.shards; index++) {
        const shard: ShardSocket = {
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

  /**
   * A subscriber: whether every shard is connected and caught up. A publisher that does not
   * subscribe: whether its last publish went through (no socket to be down).
   */
  get healthy(): boolean {
    return this.stats.subscribed ? this.#healthy : this.#lastPublishOk;
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
          for (const frame of publishFrames(recs)) {
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
          await this.#bounded(Promise.all(publishFrames(viaHttp).map((f) => this.#post(f.text))));
        }
      }
      this.stats.published += records.length;
      this.#lastPublishOk = true;
    } catch (err) {
      this.stats.publishErrors++;
      this.#lastPublishOk = false;
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

  #connect(shard: ShardSocket): void {
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

  #retry(shard: ShardSocket): void {
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
  #detach(shard: ShardSocket): void {
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
