/**
 * Types of `scenario.mjs`, which stays plain JavaScript so that Node, Deno, Bun and workerd
 * all run the very same file without a compile step.
 * @module
 */

/** Where the scenario finds the Upstash-REST endpoint, and the namespace it may clear. */
export interface ScenarioOptions {
  url: string;
  token: string;
  /** Must not be used by anything else: the scenario writes to it and clears it. */
  namespace: string;
}

/** Runs the scenario against the built package; throws if the core read `process`/`Buffer`. */
export function runScenario(options: ScenarioOptions): Promise<Record<string, unknown>>;

/** The summary every runtime must produce, with `runtime` set to the given name. */
export function expectedSummary(runtime: string): Record<string, unknown>;

/** A JSON-able, type-tagged rendering of a value (`{ $date }`, `{ $map }`, `"<miss>"`, ...). */
export function render(value: unknown): unknown;
