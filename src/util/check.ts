/**
 * Option checks shared by the resolvers of `createCache`'s options. Only `undefined` means
 * "not set": `null`, arrays, `NaN` and `Infinity` are wrong shapes, refused at setup.
 * @module
 */

import { InvalidOptionError } from "../errors.js";

/** The longest delay a timer can wait: past it, setTimeout fires at once in every runtime. */
export const MAX_TIMER = 2 ** 31 - 1;

/** Whether `value` is an options object: an object, not `null`, not an array. */
export function isRecord(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `value`, or `fallback` when it is `undefined`; throws unless a positive safe integer. */
export function positiveInt(name: string, value: unknown, fallback: number): number {
  const v = value === undefined ? fallback : value;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    throw new InvalidOptionError(`${name} must be a positive integer`);
  }
  return v;
}

/**
 * `value`, or `fallback` when it is `undefined`; throws unless a finite number >= 0 (a safe
 * integer with `integer`).
 */
export function nonNegative(
  name: string,
  value: unknown,
  fallback: number,
  integer = false,
): number {
  const v = value === undefined ? fallback : value;
  if (
    typeof v !== "number" ||
    !Number.isFinite(v) ||
    v < 0 ||
    (integer && !Number.isSafeInteger(v))
  ) {
    throw new InvalidOptionError(`${name} must be a finite ${integer ? "integer" : "number"} >= 0`);
  }
  return v;
}

/** Bounds of a {@link duration}. */
export interface DurationBounds {
  /**
   * Whether 0 is allowed; without it the duration must be above 0.
   * @default true
   */
  zero?: boolean;
  /**
   * The longest duration allowed, e.g. {@link MAX_TIMER} for one a timer waits for.
   * @default Infinity
   */
  max?: number;
  /** Taken when `value` is `undefined` (only that means "not set"). */
  fallback?: number | undefined;
  /** The key of the call the option came with, named by the error. */
  key?: string | undefined;
}

/**
 * `value` (or `fallback` when it is `undefined`) as a duration in ms: a finite number >= 0
 * (> 0 without `zero`), at most `max`.
 * Throws `InvalidOptionError` otherwise, naming the option but never the value.
 * @example
 * ```ts
 * const cooldown = duration("breaker.cooldown", o.cooldown, { fallback: 5000, zero: false });
 * ```
 */
export function duration(name: string, value: unknown, bounds: DurationBounds = {}): number {
  const { zero = true, max = Number.POSITIVE_INFINITY, key } = bounds;
  const v = value === undefined ? bounds.fallback : value;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!zero && v === 0) || v > max) {
    const range = `${zero ? ">= 0" : "> 0"}${max < Number.POSITIVE_INFINITY ? ` and at most ${max}` : ""}`;
    throw new InvalidOptionError(
      `${name} must be a number of ms ${range}`,
      key === undefined ? {} : { key },
    );
  }
  return v;
}
