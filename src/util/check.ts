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

/** `value`, or `fallback` when it is `undefined`; throws unless a finite number >= 0. */
export function nonNegative(name: string, value: unknown, fallback: number): number {
  const v = value === undefined ? fallback : value;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new InvalidOptionError(`${name} must be a finite number >= 0`);
  }
  return v;
}
