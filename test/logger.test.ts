/**
 * Log lines while L2 is down: one line per level and code per `logInterval`, then one that
 * counts what was dropped; measured on the cache's clock (no timers), with a bounded memory
 * of codes. `onError` still gets every error.
 */
import { describe, expect, it } from "vitest";
import {
  type CacheOptions,
  createCache,
  type EdgeCacheError,
  type Logger,
  memoryStore,
} from "../src/index.js";
import { GuardedLogger } from "../src/logger.js";
import { chaosStore, fakeClock } from "./helpers.js";

type Line = [level: string, message: string, meta: Record<string, unknown> | undefined];

function recorder() {
  const lines: Line[] = [];
  const logger: Logger = {
    debug: (m, meta) => lines.push(["debug", m, meta]),
    info: (m, meta) => lines.push(["info", m, meta]),
    warn: (m, meta) => lines.push(["warn", m, meta]),
    error: (m, meta) => lines.push(["error", m, meta]),
  };
  return { lines, logger };
}

/** A cache whose L2 is down, logging into `lines`. */
function downed(options: Partial<CacheOptions> = {}) {
  const clock = fakeClock();
  const chaos = chaosStore(memoryStore({ now: clock.now }));
  const { lines, logger } = recorder();
  const cache = createCache({
    store: chaos.store,
    namespace: "app",
    now: clock.now,
    sync: false,
    breaker: false,
    logger,
    ...options,
  });
  chaos.mode = "fail";
  return { cache, chaos, clock, lines };
}

describe("log lines while L2 is down", () => {
  it("writes one warning per code per minute, then one that counts the rest", async () => {
    const { cache, clock, lines } = downed();
    for (let i = 0; i < 50; i++) {
      expect(await cache.get(`k${i}`)).toBeUndefined();
      clock.advance(1000);
    }
    // 50 failed reads in 50 s: one line.
    expect(lines).toEqual([
      ["warn", "chaos: store down", { code: "EC_STORE_UNAVAILABLE", namespace: "app" }],
    ]);
    clock.advance(10_000);
    await cache.get("again");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toEqual([
      "warn",
      "chaos: store down (49 similar suppressed in the last 60 s)",
      { code: "EC_STORE_UNAVAILABLE", namespace: "app", suppressed: 49 },
    ]);
    // A new interval starts with that line; nothing was dropped since.
    clock.advance(60_000);
    await cache.get("later");
    expect(lines[2]).toEqual([
      "warn",
      "chaos: store down",
      { code: "EC_STORE_UNAVAILABLE", namespace: "app" },
    ]);
  });

  it("counts each code on its own", async () => {
    const { cache, chaos, lines } = downed({ local: false });
    for (let i = 0; i < 5; i++) await cache.get("k");
    chaos.mode = "ok";
    await cache.set("k", 1);
    chaos.mode = "garble";
    for (let i = 0; i < 5; i++) expect(await cache.get("k")).toBeUndefined();
    expect(lines.map(([level, , meta]) => `${level} ${meta?.code}`)).toEqual([
      "warn EC_STORE_UNAVAILABLE",
      "warn EC_CORRUPT_ENTRY",
    ]);
  });

  it("gives onError every error: only log lines are limited", async () => {
    const errors: EdgeCacheError[] = [];
    const { cache, lines } = downed({ onError: (e) => errors.push(e) });
    for (let i = 0; i < 20; i++) await cache.get(`k${i}`);
    expect(errors).toHaveLength(20);
    expect(lines).toEqual([]);
  });

  it("writes every line with logInterval 0", async () => {
    const { cache, lines } = downed({ logInterval: 0 });
    for (let i = 0; i < 5; i++) await cache.get(`k${i}`);
    expect(lines).toHaveLength(5);
  });

  it("follows a configured interval", async () => {
    const { cache, clock, lines } = downed({ logInterval: 5000 });
    for (let i = 0; i < 3; i++) await cache.get(`k${i}`);
    clock.advance(5000);
    await cache.get("k");
    expect(lines.map(([, m]) => m)).toEqual([
      "chaos: store down",
      "chaos: store down (2 similar suppressed in the last 5 s)",
    ]);
  });
});

describe("GuardedLogger", () => {
  it("limits lines without a code by their message", () => {
    const clock = fakeClock();
    const { lines, logger } = recorder();
    const log = new GuardedLogger(logger, clock.now, 1000);
    for (let i = 0; i < 3; i++) log.error("onError threw", { name: "TypeError" });
    log.error("another message");
    log.warn("onError threw");
    clock.advance(1500);
    log.error("onError threw", { name: "TypeError" });
    expect(lines).toEqual([
      ["error", "onError threw", { name: "TypeError" }],
      ["error", "another message", undefined],
      ["warn", "onError threw", undefined],
      [
        "error",
        "onError threw (2 similar suppressed in the last 2 s)",
        { name: "TypeError", suppressed: 2 },
      ],
    ]);
  });

  it("remembers at most 64 kinds of lines, forgetting the least recent", () => {
    const clock = fakeClock();
    const { lines, logger } = recorder();
    const log = new GuardedLogger(logger, clock.now, 60_000);
    for (let i = 0; i <= 64; i++) log.warn("x", { code: `C${i}` });
    expect(lines).toHaveLength(65);
    // C0 was forgotten to make room for C64: it is written again; C64 is still limited.
    log.warn("x", { code: "C0" });
    log.warn("x", { code: "C64" });
    expect(lines).toHaveLength(66);
    expect(lines[65]![2]).toEqual({ code: "C0" });
  });

  it("never throws: methods that throw, reject or are missing are skipped", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const throwing = new GuardedLogger(
        {
          warn: () => {
            throw new Error("down");
          },
          error: async () => {
            throw new Error("down");
          },
        },
        Date.now,
        0,
      );
      throwing.warn("w");
      throwing.error("e");
      throwing.debug("d");
      throwing.info("i");
      const badClock = new GuardedLogger(
        { warn: () => {}, error: () => {} },
        () => {
          throw new Error("clock");
        },
        1000,
      );
      badClock.warn("w");
      await new Promise((r) => setTimeout(r, 10));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});
