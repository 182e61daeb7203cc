/**
 * How often the invalidation hub may send a frame: the pacing rule behind
 * `InvalidationHub`'s batching. It has no runtime imports, so that it can be tested with
 * a fake clock.
 *
 * The cost of a frame is its fan-out: one `send` per socket, each a copy of the frame on the
 * object's single thread (outgoing messages are not billed, but they take CPU from the
 * publishes the object must keep accepting). So the budget is counted in sends: after a frame
 * to `n` sockets the next one waits `n / SENDS_PER_SECOND` seconds, between
 * {@link MIN_FRAME_MS} and `BATCH_MS`. Records that arrive meanwhile are batched into that
 * next frame. A hub below the budget sends every publish at once; above it, frames go out at
 * the budgeted pace, each holding whatever arrived since the last one.
 * @module
 */
import { BATCH_MS } from "../hub/protocol.js";

/**
 * Socket sends per second the hub allows itself for batched frames. A fixed window of
 * `BATCH_MS` (50 ms, Cloudflare's advice is to batch every 50-100 ms) spends this much at
 * 1,000 sockets; below that, the same work buys shorter waits: 50 frames/s to 400 sockets,
 * 200 frames/s (one per 5 ms) to 100 sockets.
 */
export const SENDS_PER_SECOND = 20_000;

/**
 * Shortest wait between two frames, in ms: at most 200 frames a second to each subscriber,
 * however few there are. Every frame costs a subscriber a parse (and an inflate with
 * permessage-deflate) on top of its own work, and costs the object a wake-up; 5 ms is well
 * under the propagation a server notices, and a fifth of the requests per second one object
 * is meant to take (about 1,000, its soft limit).
 */
export const MIN_FRAME_MS = 5;

/** The wait after a frame to `sockets` sockets before the next may go, in ms. */
export function frameInterval(sockets: number): number {
  return Math.min(BATCH_MS, Math.max(MIN_FRAME_MS, (sockets * 1000) / SENDS_PER_SECOND));
}

/** When the next frame may go out, from when the last one went and how many it reached. */
export class FramePacer {
  #lastAt = Number.NEGATIVE_INFINITY;
  #interval = MIN_FRAME_MS;

  /** Ms from `now` until a frame may go out; 0 when it may go at once. */
  wait(now: number): number {
    return Math.max(0, this.#lastAt + this.#interval - now);
  }

  /** A frame went out at `now` to `sockets` sockets. */
  sent(now: number, sockets: number): void {
    this.#lastAt = now;
    this.#interval = frameInterval(sockets);
  }
}
