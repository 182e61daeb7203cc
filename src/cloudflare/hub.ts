/**
 * The invalidation hub's Durable Object: fans change-log records out to every subscriber of
 * one (namespace, shard), batched. Published as part of `edgecache/cloudflare`.
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import { BATCH_RECORDS, MAX_FRAME_BYTES, parseFrame, parseRecord } from "../hub/protocol.js";
import type { HubRole } from "../hub/token.js";
import type { ChangeRecord } from "../store/contract.js";
import { FramePacer } from "./pacing.js";
import { HUB_NAMESPACE_HEADER, HUB_ROLE_HEADER, HUB_SHARD_HEADER } from "./router.js";

/** What {@link InvalidationHub.stats} reports. */
export interface HubObjectStats {
  /** Sockets connected to this object now (hibernated ones included). */
  sockets: number;
  /** Records accepted for fan-out (RPC, HTTP and socket publishes). */
  published: number;
  /** Frames handed to sockets: one per socket per batch. */
  framesSent: number;
  /** Frames and records refused: malformed, oversized, binary, or from a socket without the publish role. */
  dropped: number;
}

/**
 * What each socket carries across hibernation (`serializeAttachment`, at most 16 KiB): the
 * object's memory is gone when it wakes, the attachment is not.
 */
export interface HubSocketAttachment {
  /** The role of the token the socket was opened with. */
  role: HubRole;
  namespace: string;
  shard: number;
  /** When the socket was accepted, in ms since the epoch. */
  connectedAt: number;
}

/** Room left for `{"t":"changes","shard":N,"records":[...]}` around the records. */
const ENVELOPE_BYTES = 64;
/** Most bytes of records in one frame, so that subscribers (which drop larger ones) take it. */
const FRAME_BUDGET = MAX_FRAME_BYTES - ENVELOPE_BYTES;

/** UTF-8 length of a string without allocating; JSON text never holds lone surrogates. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    // A surrogate pair is two units and four bytes: two per unit.
    bytes += c < 0x80 ? 1 : c < 0x800 || (c >= 0xd800 && c <= 0xdfff) ? 2 : 3;
  }
  return bytes;
}

/** Whether a string is longer than `limit` UTF-8 bytes, stopping as soon as it is. */
function exceeds(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return utf8Length(text) > limit;
}

function readAttachment(ws: WebSocket): HubSocketAttachment | undefined {
  try {
    const value: unknown = ws.deserializeAttachment();
    if (typeof value !== "object" || value === null) return undefined;
    return value as HubSocketAttachment;
  } catch {
    return undefined;
  }
}

/** `namespace#shard`, the name the router gives each object, split back apart. */
function parseObjectName(
  name: string | undefined,
): { namespace: string; shard: number } | undefined {
  if (name === undefined) return undefined;
  const at = name.lastIndexOf("#");
  const shard = Number(name.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(shard) || shard < 0) return undefined;
  return { namespace: name.slice(0, at), shard };
}

/**
 * The invalidation hub: one Durable Object per (namespace, shard), named
 * `hubObjectName(namespace, shard)`. Subscribers hold WebSockets to it through
 * {@link handleHubRequest}; publishers call {@link InvalidationHub.publish} over RPC (Workers),
 * `POST /hub/:namespace/publish`, or send a `PublishFrame` over a socket opened with a
 * `"both"` token. Frames are paced by their fan-out cost: after a frame to `n` sockets the
 * next waits `n / 20,000` s, at least 5 ms and at most `BATCH_MS` (50 ms), so 5 ms up to 100
 * sockets. A publish goes out at once when that wait is over; otherwise it is batched with
 * whatever arrives until then, or until `BATCH_RECORDS` (100) are waiting. So writes spaced
 * wider than the wait add no delay, no record waits longer than it, and a flood coalesces
 * into at most one frame per wait (20,000 sends/s from 100 sockets up) plus one per 100
 * records (see `pacing.ts`). Frames never exceed `MAX_FRAME_BYTES`.
 *
 * It uses the WebSocket Hibernation API, so idle subscribers cost nothing: `"ping"` is
 * answered `"pong"` by the runtime without waking the object, and each socket's role and
 * shard live in its attachment. Counters and the pending batch live in memory: they reset
 * when the object hibernates or is evicted (a pending batch keeps it awake until sent).
 *
 * Limits of one object, which is why a busy namespace needs shards (`EDGECACHE_HUB_SHARDS`):
 * - about 1,000 requests/s (a soft limit): every RPC publish, HTTP publish and incoming
 *   socket message is one request;
 * - 32,768 hibernatable WebSockets;
 * - incoming WebSocket messages are billed as requests at 20:1, outgoing ones are free, so a
 *   fan-out to many subscribers costs the same as one.
 *
 * A deploy disconnects every socket: subscribers reconnect and catch up from the change log.
 *
 * @example
 * ```toml
 * # wrangler.toml
 * [[durable_objects.bindings]]
 * name = "EDGECACHE_HUB"
 * class_name = "InvalidationHub"
 *
 * [[migrations]]
 * tag = "edgecache-hub-v1"
 * new_sqlite_classes = ["InvalidationHub"]
 * ```
 * @see docs/hub.md, and docs/cloudflare.md for a Worker from an empty folder (shipped in the package).
 */
export class InvalidationHub<Env = unknown> extends DurableObject<Env> {
  /** Serialized records waiting for the next frame, oldest first. */
  #queue: string[] = [];
  /** Their UTF-8 size, commas included. */
  #queueBytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #pacer = new FramePacer();
  /** Learnt from the object's name, the router's headers or a socket's attachment. */
  #namespace: string | undefined;
  #shard: number | undefined;
  #published = 0;
  #framesSent = 0;
  #dropped = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Set on every start, before any event is handled: clients' keep-alive pings are then
    // answered by the runtime and never wake a hibernated hub.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair("ping", "pong"));
    const named = parseObjectName(ctx.id.name);
    if (named) {
      this.#namespace = named.namespace;
      this.#shard = named.shard;
    }
  }

  /**
   * Accepts a subscriber's WebSocket. Only the router ({@link handleHubRequest}) calls this:
   * it has verified the token and states the role, namespace and shard in headers, which
   * clients cannot reach (the object has no public URL).
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade", { status: 426 });
    }
    const role = request.headers.get(HUB_ROLE_HEADER);
    const namespace = request.headers.get(HUB_NAMESPACE_HEADER);
    const shard = Number(request.headers.get(HUB_SHARD_HEADER) ?? Number.NaN);
    if (
      (role !== "subscribe" && role !== "both") ||
      !namespace ||
      !Number.isSafeInteger(shard) ||
      shard < 0
    ) {
      return new Response("not forwarded by the hub router", { status: 400 });
    }
    if (
      (this.#namespace !== undefined && this.#namespace !== namespace) ||
      (this.#shard !== undefined && this.#shard !== shard)
    ) {
      // One object serves one (namespace, shard); anything else would mix subscribers.
      return new Response("this object serves another namespace or shard", { status: 409 });
    }
    this.#namespace = namespace;
    this.#shard = shard;
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    try {
      this.ctx.acceptWebSocket(server, [namespace]);
    } catch {
      // Past 32,768 sockets: the client retries later, or the operator adds shards.
      return new Response("this hub shard has no room for another socket", { status: 503 });
    }
    const attachment: HubSocketAttachment = { role, namespace, shard, connectedAt: Date.now() };
    server.serializeAttachment(attachment);
    return new Response(null, { status: 101, webSocket: client });
  }

  /**
   * Queues records for every subscriber of this object; the RPC a Worker-side cache calls
   * through the binding (`env.EDGECACHE_HUB.getByName(hubObjectName(ns, shard)).publish(...)`,
   * or {@link publishToHub}, which splits by shard). Malformed records are dropped and
   * counted. Resolves once queued, before the frame goes out: a publisher must not wait for
   * the batching window.
   *
   * @param records Change-log records whose keys belong to this shard.
   * @param shard This object's shard, for the frames it sends; needed only when the object
   *   was not reached by name (`getByName`).
   */
  async publish(records: readonly ChangeRecord[], shard?: number): Promise<{ accepted: number }> {
    if (this.#shard === undefined && Number.isSafeInteger(shard) && (shard as number) >= 0) {
      this.#shard = shard;
    }
    if (!Array.isArray(records)) {
      this.#dropped++;
      return { accepted: 0 };
    }
    let accepted = 0;
    for (const value of records as unknown[]) {
      const record = parseRecord(value);
      if (record) {
        this.#enqueue(record);
        accepted++;
      } else this.#dropped++;
    }
    this.#published += accepted;
    this.#schedule();
    return { accepted };
  }

  /**
   * A `PublishFrame` from a socket whose token allows publishing is fanned out like an RPC
   * publish. Anything else is dropped and counted; nothing a client sends may throw here, or
   * one bad client would cost every subscriber its hub.
   */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    try {
      if (typeof message !== "string" || exceeds(message, MAX_FRAME_BYTES)) {
        this.#dropped++;
        return;
      }
      const attachment = readAttachment(ws);
      if (attachment?.role !== "publish" && attachment?.role !== "both") {
        this.#dropped++;
        return;
      }
      this.#learn(attachment);
      const frame = parseFrame(message, "publish");
      if (!frame) {
        this.#dropped++;
        return;
      }
      for (const record of frame.records) this.#enqueue(record);
      this.#published += frame.records.length;
      this.#schedule();
    } catch {
      this.#dropped++;
    }
  }

  /**
   * Completes the close handshake. Codes a peer may not send back (1005 "no status", 1006
   * "abnormal", 1015 "TLS") and reserved ones are answered with 1000.
   */
  override async webSocketClose(
    ws: WebSocket,
    code: number,
    reason: string,
    _wasClean: boolean,
  ): Promise<void> {
    const reply = code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000;
    try {
      ws.close(reply, reason.slice(0, 120));
    } catch {
      // Already closed (the runtime may have answered for us): nothing left to do.
    }
  }

  /** A broken socket: close our end so that it leaves `getWebSockets()`. */
  override async webSocketError(ws: WebSocket, _error: unknown): Promise<void> {
    try {
      ws.close(1011, "socket error");
    } catch {
      // Already gone.
    }
  }

  /**
   * This object's counters. `sockets` is exact; the others count since the object last
   * started, since they live in memory and reset when it hibernates or is evicted.
   */
  async stats(): Promise<HubObjectStats> {
    return {
      sockets: this.ctx.getWebSockets().length,
      published: this.#published,
      framesSent: this.#framesSent,
      dropped: this.#dropped,
    };
  }

  /** After hibernation the object's memory is new: sockets still know where they belong. */
  #learn(attachment: HubSocketAttachment): void {
    this.#namespace ??= attachment.namespace;
    this.#shard ??= attachment.shard;
  }

  #enqueue(record: ChangeRecord): void {
    const text = JSON.stringify(record);
    const bytes = utf8Length(text);
    if (bytes > FRAME_BUDGET) {
      // Too large for any frame: split its keys (a record per part keeps its versions, as
      // recordsByShard does), or drop a single key that is too large by itself.
      if (record.keys.length < 2) {
        this.#dropped++;
        return;
      }
      const half = Math.ceil(record.keys.length / 2);
      this.#enqueue({ ...record, keys: record.keys.slice(0, half) });
      this.#enqueue({ ...record, keys: record.keys.slice(half) });
      return;
    }
    if (this.#queueBytes + bytes + 1 > FRAME_BUDGET) this.#flush();
    this.#queue.push(text);
    this.#queueBytes += bytes + 1;
    if (this.#queue.length >= BATCH_RECORDS) this.#flush();
  }

  /**
   * Sends what a publish queued: at once when the pacer allows a frame (so a hub below its
   * budget adds no delay), otherwise when it does, batched with whatever else arrives
   * meanwhile (so a busy hub sends at most its budget of frames, plus one per BATCH_RECORDS
   * records).
   */
  #schedule(): void {
    if (this.#queue.length === 0 || this.#timer !== undefined) return;
    const wait = this.#pacer.wait(Date.now());
    if (wait <= 0) this.#flush();
    else this.#timer = setTimeout(() => this.#flush(), wait);
  }

  /**
   * Sends everything queued as one frame. It always fits: enqueueing flushes before the queue
   * passes BATCH_RECORDS records or a frame's bytes.
   */
  #flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const queue = this.#queue;
    this.#queue = [];
    this.#queueBytes = 0;
    if (queue.length === 0) return;
    const sockets = this.ctx.getWebSockets(this.#namespace);
    if (sockets.length === 0) return;
    if (this.#shard === undefined) {
      const first = readAttachment(sockets[0]!);
      if (first) this.#learn(first);
    }
    const frame = `{"t":"changes","shard":${this.#shard ?? 0},"records":[${queue.join(",")}]}`;
    this.#pacer.sent(Date.now(), sockets.length);
    for (const ws of sockets) {
      try {
        ws.send(frame);
        this.#framesSent++;
      } catch {
        // That socket is closing or gone; the others still get the frame.
      }
    }
  }
}
