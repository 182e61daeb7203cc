import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RespValue } from "./resp.js";
import { type PushFrame, RespSubscriber } from "./subscriber.js";

/**
 * Most bytes a stream may hold unsent for a client that does not read: past it the stream
 * ends (the client reconnects and catches up), as Redis drops a pub/sub client whose output
 * buffer overflows, rather than growing without bound.
 */
const MAX_UNSENT = 8 << 20;

/** What one bridge shares among its subscriptions. */
export interface SubscriptionHost {
  readonly redisUrl: string;
  /** Ms between SSE comments that keep proxies from closing an idle stream. */
  readonly heartbeatMs: number;
  /** Live subscriptions, so that closing the bridge ends them. */
  readonly open: Set<RespSubscriber>;
}

function text(value: RespValue): string {
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  if (typeof value === "number") return String(value);
  return "";
}

/**
 * One SSE event per frame, as Upstash sends them: the frame's parts joined by commas
 * (`message,<channel>,<payload>`). A payload with line breaks takes one `data:` line per
 * line, as the SSE format wants (JSON payloads, which the official client expects, have none).
 */
export function sseEvent(frame: PushFrame): string {
  const joined = frame.map(text).join(",");
  return `${joined
    .split(/\r\n|\r|\n/)
    .map((line) => `data: ${line}\n`)
    .join("")}\n`;
}

/**
 * Serves `POST /subscribe/<channel>...` or `/psubscribe/<pattern>...` as an SSE stream of
 * Redis pub/sub frames, on a Redis connection of its own that lives as long as the request.
 * The client unsubscribes by going away; when Redis goes away the stream ends.
 */
export async function serveSubscription(
  host: SubscriptionHost,
  req: IncomingMessage,
  res: ServerResponse,
  command: "SUBSCRIBE" | "PSUBSCRIBE",
  names: readonly Buffer[],
): Promise<void> {
  // The official client posts `[]`: not an argument. Drain whatever came.
  req.resume();
  const sub = new RespSubscriber(host.redisUrl);
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    if (heartbeat !== undefined) clearInterval(heartbeat);
    host.open.delete(sub);
    sub.close();
  };
  res.once("close", stop);
  host.open.add(sub);
  // Frames that arrive before the headers are out wait for them.
  let early: string[] | undefined = [];
  const write = (chunk: string) => {
    if (early !== undefined) early.push(chunk);
    else if (res.writableLength > MAX_UNSENT) {
      stop();
      res.destroy();
    } else if (!res.destroyed) res.write(chunk);
  };
  try {
    await sub.open(
      command,
      names,
      (frame) => write(sseEvent(frame)),
      () => {
        stop();
        if (early === undefined && !res.writableEnded) res.end();
        else if (!res.headersSent) res.destroy();
      },
    );
  } catch (error) {
    stop();
    throw error;
  }
  if (res.destroyed) return stop();
  // Headers the bridge set already (its read-your-writes token) go out with these.
  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.flushHeaders();
  for (const chunk of early) res.write(chunk);
  early = undefined;
  heartbeat = setInterval(() => {
    if (!res.destroyed) res.write(": keep-alive\n\n");
  }, host.heartbeatMs);
  heartbeat.unref?.();
}
