import { Buffer } from "node:buffer";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { InvalidOptionError } from "../src/errors.js";
import { base64url, fromBase64url, isWellFormed, utf8Length } from "../src/util/bytes.js";
import { duration, MAX_TIMER, nonNegative, positiveInt } from "../src/util/check.js";
import { handOff, unref } from "../src/util/runtime.js";

/** Any UTF-16 string, lone surrogates included (fc's string units pair them up). */
const utf16 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 })
  .map((units) => String.fromCharCode(...units));

const encoder = new TextEncoder();

/** The error `fn` throws, for checks of its type, code, key and message. */
function thrown(fn: () => unknown): InvalidOptionError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionError);
    return err as InvalidOptionError;
  }
  throw new Error("expected a throw");
}

describe("utf8Length", () => {
  it("counts what TextEncoder writes: a lone surrogate is U+FFFD, 3 bytes", () => {
    expect(utf8Length("\uD800")).toBe(3);
    expect(utf8Length("\uDC00")).toBe(3);
    expect(utf8Length("\uDC00\uD800")).toBe(6); // reversed: two lone halves, not a pair
    expect(utf8Length("🚀")).toBe(4);
    expect(utf8Length("a\uD83D")).toBe(4); // a high surrogate at the very end
    fc.assert(
      fc.property(utf16, (text) => {
        expect(utf8Length(text)).toBe(encoder.encode(text).byteLength);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("isWellFormed", () => {
  it("is false exactly when the string holds a lone surrogate", () => {
    expect(isWellFormed("a🚀b")).toBe(true);
    expect(isWellFormed("\uD800")).toBe(false);
    expect(isWellFormed("x\uDFFF")).toBe(false);
    fc.assert(
      fc.property(utf16, (text) => {
        const roundTrips = new TextDecoder().decode(encoder.encode(text)) === text;
        expect(isWellFormed(text)).toBe(roundTrips);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("base64url", () => {
  it("is unpadded RFC 4648 base64url, as Node writes it", () => {
    expect(base64url(new Uint8Array([0xfb, 0xff]))).toBe("-_8");
    expect(base64url(new Uint8Array())).toBe("");
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(base64url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
      }),
    );
  });

  it("encodes arrays past the chunk size in one piece", () => {
    const bytes = new Uint8Array(70_000).map((_, i) => i * 7);
    expect(base64url(bytes)).toBe(Buffer.from(bytes).toString("base64url"));
  });

  it("reads back what it wrote, and nothing that is not unpadded base64url", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        expect(fromBase64url(base64url(bytes))).toEqual(bytes);
      }),
    );
    for (const bad of ["a", "ab=", "AA==", "+/", "a b", "é"]) {
      expect(fromBase64url(bad), bad).toBeUndefined();
    }
  });
});

describe("positiveInt, nonNegative, duration", () => {
  it("positiveInt takes a safe integer >= 1, and the fallback for undefined only", () => {
    expect(positiveInt("n", undefined, 7)).toBe(7);
    expect(positiveInt("n", 1, 7)).toBe(1);
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 53, null, "5"]) {
      expect(thrown(() => positiveInt("n", bad, 7)).message).toBe("n must be a positive integer");
    }
  });

  it("nonNegative takes a finite number >= 0 (an integer when asked)", () => {
    expect(nonNegative("n", undefined, 3)).toBe(3);
    expect(nonNegative("n", 0.5, 3)).toBe(0.5);
    expect(thrown(() => nonNegative("n", 0.5, 3, true)).message).toBe(
      "n must be a finite integer >= 0",
    );
    for (const bad of [-1, Number.POSITIVE_INFINITY, Number.NaN, null, "1"]) {
      expect(thrown(() => nonNegative("n", bad, 3)).message).toBe("n must be a finite number >= 0");
    }
  });

  it("duration takes finite ms in range, names the option and key, never the value", () => {
    expect(duration("t", 0)).toBe(0);
    expect(duration("t", 1.5)).toBe(1.5);
    expect(duration("t", undefined, { fallback: 9 })).toBe(9);
    expect(duration("t", MAX_TIMER, { max: MAX_TIMER })).toBe(MAX_TIMER);
    const zero = thrown(() => duration("t", 0, { zero: false, key: "k" }));
    expect(zero.message).toBe("t must be a number of ms > 0");
    expect(zero.code).toBe("EC_INVALID_OPTION");
    expect(zero.key).toBe("k");
    expect(thrown(() => duration("t", MAX_TIMER + 1, { max: MAX_TIMER })).message).toBe(
      `t must be a number of ms >= 0 and at most ${MAX_TIMER}`,
    );
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, null, "5", undefined]) {
      const err = thrown(() => duration("t", bad));
      expect(err.message).toBe("t must be a number of ms >= 0");
      expect(err.key).toBeUndefined();
    }
  });
});

describe("unref", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("lets a Node timer not keep the process alive", () => {
    const timer = setTimeout(() => {}, 60_000);
    try {
      unref(timer);
      expect(timer.hasRef()).toBe(false);
    } finally {
      clearTimeout(timer);
    }
  });

  it("calls Deno.unrefTimer for a numeric timer id, and ignores anything else", () => {
    const unrefTimer = vi.fn();
    vi.stubGlobal("Deno", { unrefTimer });
    unref(42);
    expect(unrefTimer).toHaveBeenCalledWith(42);
    vi.unstubAllGlobals();
    expect(() => unref(42)).not.toThrow(); // no Deno here
    expect(() => unref(undefined)).not.toThrow();
  });
});

describe("handOff", () => {
  it("gives the work itself to waitUntil, and says whether it took it", () => {
    const work = Promise.resolve();
    const handed: Promise<unknown>[] = [];
    expect(handOff(work, (p) => handed.push(p))).toBe(true);
    expect(handed).toEqual([work]);
    expect(handed[0]).toBe(work);
    expect(handOff(work, undefined)).toBe(false);
  });

  it("says no when waitUntil throws (outside a request context), and does not throw", () => {
    const refuse = () => {
      throw new Error("outside a request context");
    };
    expect(handOff(Promise.resolve(), refuse)).toBe(false);
  });
});
