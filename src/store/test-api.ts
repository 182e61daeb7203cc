/**
 * The little of a test framework that the store suite uses, typed structurally so that
 * vitest's, Jest's or `bun:test`'s `describe`, `it` and `expect` fit as they are, and the
 * suite imports none of them.
 * @module
 */

/** The matchers the suite calls on `expect(actual)`, with Jest's meaning. */
export interface SuiteMatchers {
  /** `Object.is` equality. */
  toBe(expected: unknown): void;
  /** Deep equality. */
  toEqual(expected: unknown): void;
  /** `actual === undefined`. */
  toBeUndefined(): void;
  /** `actual > expected`. */
  toBeGreaterThan(expected: number): void;
  /** `actual >= expected`. */
  toBeGreaterThanOrEqual(expected: number): void;
  /** `actual < expected`. */
  toBeLessThan(expected: number): void;
  /** `actual <= expected`. */
  toBeLessThanOrEqual(expected: number): void;
  /** `actual.length === expected`. */
  toHaveLength(expected: number): void;
  /** `actual` has at least the properties of `expected`, deeply equal. */
  toMatchObject(expected: object): void;
  /** Matchers on the reason `actual` (a promise) rejects with; fails if it resolves. */
  readonly rejects: {
    /** The rejection reason has at least the properties of `expected`. */
    toMatchObject(expected: object): Promise<void>;
  };
}

/**
 * The test functions the suite registers its cases with: pass your framework's own.
 *
 * @example
 * ```ts
 * import { describe, expect, it } from "vitest";
 * const test: StoreSuiteOptions["test"] = { describe, it, expect };
 * ```
 */
export interface SuiteTestApi {
  /** Groups cases under a title. */
  describe(title: string, body: () => void): void;
  /** Registers one case; the case fails when `body` throws or rejects. */
  it(title: string, body: () => Promise<void>): void;
  /** Starts an assertion on `actual`. */
  expect(actual: unknown): SuiteMatchers;
}
