/**
 * The hub's pacing rule (src/cloudflare/pacing.ts) on a fake clock: when a frame may go out,
 * and what that makes of spaced writes, one writer's back-to-back writes and a flood, replayed
 * through the same queue-and-timer logic as `InvalidationHub` (send at once when the pacer
 * allows, else arm one timer for when it does; a full frame goes out at once).
 */
import { describe, expect, it } from "vitest";
import {
  FramePacer,
  frameInterval,
  MIN_FRAME_MS,
  SENDS_PER_SECOND,
} from "../src/cloudflare/pacing.js";
import { BATCH_MS, BATCH_RECORDS } from "../src/hub/protocol.js";

interface Frame {
  at: number;
  /** Indexes of the publishes it carries, one record each. */
  records: number[];
}

/** Publishes of one record at the given times (ms, ascending), fanned out to `sockets`. */
function replay(arrivals: readonly number[], sockets: number): Frame[] {
  const pacer = new FramePacer();
  const frames: Frame[] = [];
  let queue: number[] = [];
  let timerAt: number | undefined;
  const flush = (now: number) => {
    timerAt = undefined;
    if (queue.length === 0) return;
    frames.push({ at: now, records: queue });
    queue = [];
    pacer.sent(now, sockets);
  };
  arrivals.forEach((at, i) => {
    if (timerAt !== undefined && timerAt <= at) flush(timerAt);
    queue.push(i);
    if (queue.length >= BATCH_RECORDS) flush(at);
    if (queue.length === 0 || timerAt !== undefined) return;
    const wait = pacer.wait(at);
    if (wait <= 0) flush(at);
    else timerAt = at + wait;
  });
  if (timerAt !== undefined) flush(timerAt);
  return frames;
}

/** Every publish delivered once, in order; the longest any of them waited. */
function check(arrivals: readonly number[], frames: readonly Frame[]): number {
  expect(frames.flatMap((f) => f.records)).toEqual(arrivals.map((_, i) => i));
  let longest = 0;
  for (const frame of frames) {
    for (const i of frame.records) longest = Math.max(longest, frame.at - arrivals[i]!);
  }
  return longest;
}

/** Most frames that start within any window of `ms`. */
function mostFramesWithin(frames: readonly Frame[], ms: number): number {
  let most = 0;
  let first = 0;
  for (let last = 0; last < frames.length; last++) {
    while (frames[last]!.at - frames[first]!.at >= ms) first++;
    most = Math.max(most, last - first + 1);
  }
  return most;
}

const every = (gap: number, count: number, start = 0) =>
  Array.from({ length: count }, (_, i) => start + i * gap);

describe("hub pacing", () => {
  it("waits after a frame in proportion to the sockets it reached, between 5 ms and BATCH_MS", () => {
    expect(SENDS_PER_SECOND).toBe(20_000);
    expect(MIN_FRAME_MS).toBe(5);
    expect(BATCH_MS).toBe(50);
    expect(frameInterval(0)).toBe(5);
    expect(frameInterval(1)).toBe(5);
    expect(frameInterval(20)).toBe(5);
    expect(frameInterval(100)).toBe(5);
    expect(frameInterval(101)).toBeCloseTo(5.05, 10);
    expect(frameInterval(400)).toBe(20);
    expect(frameInterval(1_000)).toBe(50);
    expect(frameInterval(32_768)).toBe(50);
  });

  it("allows a frame at once until one went out, then after the interval", () => {
    const pacer = new FramePacer();
    expect(pacer.wait(0)).toBe(0);
    expect(pacer.wait(1e12)).toBe(0);
    pacer.sent(1_000, 100);
    expect(pacer.wait(1_000)).toBe(5);
    expect(pacer.wait(1_003)).toBe(2);
    expect(pacer.wait(1_005)).toBe(0);
    expect(pacer.wait(9_000)).toBe(0);
    // The next interval follows the last frame's fan-out.
    pacer.sent(9_000, 2_000);
    expect(pacer.wait(9_010)).toBe(40);
    pacer.sent(9_050, 10);
    expect(pacer.wait(9_050)).toBe(5);
    expect(pacer.wait(9_056)).toBe(0);
  });

  it("sends every write at once while writes are spaced wider than the interval", () => {
    for (const [sockets, gap] of [
      [101, 6],
      [20, 5],
      [1_000, 50],
    ] as const) {
      const arrivals = every(gap, 200, 10);
      const frames = replay(arrivals, sockets);
      expect(check(arrivals, frames)).toBe(0);
      expect(frames).toHaveLength(200);
    }
  });

  it("holds one writer's back-to-back writes (250/s) to 100 sockets at most 5 ms, not 50", () => {
    const arrivals = every(4, 250);
    const frames = replay(arrivals, 100);
    expect(check(arrivals, frames)).toBeLessThanOrEqual(5);
    expect(mostFramesWithin(frames, 1_000)).toBeLessThanOrEqual(1 + 1_000 / 5);
  });

  it("coalesces a flood into the budgeted frames per second, each record waiting one interval at most", () => {
    // 1,900 and 10,000 publishes a second for a second, with up to 20,000 sockets.
    for (const [gap, sockets] of [0.1, 0.53].flatMap((g) =>
      [1, 10, 100, 400, 1_000, 20_000].map((n) => [g, n] as const),
    )) {
      const arrivals = every(gap, Math.round(1_000 / gap));
      const frames = replay(arrivals, sockets);
      const interval = frameInterval(sockets);
      expect(check(arrivals, frames)).toBeLessThanOrEqual(interval);
      // Frames sent because the interval ended (not full) keep to the budget in any second.
      const partial = frames.filter((f) => f.records.length < BATCH_RECORDS);
      const paced = mostFramesWithin(partial, 1_000);
      expect(paced).toBeLessThanOrEqual(1 + 1_000 / interval);
      if (sockets >= 100 && sockets <= 1_000) {
        expect(paced * sockets).toBeLessThanOrEqual(SENDS_PER_SECOND + sockets);
      }
      // Slow enough that most frames are not full: the budget, not the size, decides.
      if (gap > 0.5 && sockets <= 1_000) expect(paced).toBeGreaterThan(frames.length / 2);
      // Full frames are the only others: at most one per BATCH_RECORDS records.
      expect(frames.length - partial.length).toBeLessThanOrEqual(arrivals.length / BATCH_RECORDS);
      // At the old fixed window (1,000 sockets and more) that is 20 frames per second.
      if (sockets >= 1_000) expect(paced).toBeLessThanOrEqual(21);
    }
  });
});
