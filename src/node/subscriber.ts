import { Buffer } from "node:buffer";
import {
  encodeCommands,
  parseReply,
  parseTarget,
  RedisConnectionError,
  RedisReplyError,
  type RespValue,
} from "./resp.js";

/** A pub/sub event as Redis pushes it: `subscribe`, `message`, `psubscribe` or `pmessage`. */
export type PushFrame = readonly RespValue[];

/**
 * One Redis connection in subscribe mode (RESP2): it sends `SUBSCRIBE` or `PSUBSCRIBE` once,
 * then hands every frame Redis pushes to `onFrame` until it is closed or the connection is
 * lost (`onEnd`, once). It never sends another command, so it needs no reply matching.
 */
export class RespSubscriber {
  readonly #url: string;
  #socket: ReturnType<ReturnType<typeof parseTarget>["connect"]> | undefined;
  #ended = false;

  constructor(url: string) {
    parseTarget(url); // validates the URL before anything connects
    this.#url = url;
  }

  /**
   * Connects, authenticates and subscribes. Resolves once the socket is up (Redis confirms
   * each subscription with a frame of its own); rejects with {@link RedisConnectionError}.
   */
  open(
    command: "SUBSCRIBE" | "PSUBSCRIBE",
    names: readonly (string | Buffer)[],
    onFrame: (frame: PushFrame) => void,
    onEnd: (error?: Error) => void,
    connectTimeoutMs = 10_000,
  ): Promise<void> {
    const target = parseTarget(this.#url);
    const socket = target.connect();
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    let handshake = target.handshake.length;
    let chunks: Buffer[] = [];
    const end = (error?: Error) => {
      if (this.#ended) return;
      this.#ended = true;
      socket.destroy();
      onEnd(error);
    };
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const buf = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      let offset = 0;
      try {
        while (offset < buf.length) {
          const parsed = parseReply(buf, offset);
          if ("need" in parsed) break;
          offset = parsed.end;
          if (handshake > 0) {
            handshake--;
            if (parsed.value instanceof RedisReplyError) {
              throw new RedisConnectionError(`Redis handshake failed: ${parsed.value.message}`);
            }
          } else if (parsed.value instanceof RedisReplyError) {
            throw new RedisConnectionError(
              `Redis refused the subscription: ${parsed.value.message}`,
            );
          } else if (Array.isArray(parsed.value)) {
            onFrame(parsed.value);
          }
        }
      } catch (error) {
        end(error instanceof Error ? error : new RedisConnectionError(String(error)));
        return;
      }
      const rest = buf.subarray(offset);
      chunks = rest.length > 0 ? [rest] : [];
    });
    socket.on("error", () => {}); // "close" follows
    socket.on("close", () => end(new RedisConnectionError("Connection to Redis lost")));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new RedisConnectionError("Timed out connecting to Redis"));
        end();
      }, connectTimeoutMs);
      socket.once(target.readyEvent, () => {
        clearTimeout(timer);
        socket.write(encodeCommands([...target.handshake, [command, ...names]]));
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(new RedisConnectionError(`Cannot connect to Redis: ${error.message}`));
      });
    });
  }

  /** Drops the connection (Redis forgets the subscription with it); `onEnd` is not called. */
  close(): void {
    this.#ended = true;
    this.#socket?.destroy();
  }
}
