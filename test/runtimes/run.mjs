/**
 * Command-line entry of the runtime scenario, shared by Node, Deno and Bun:
 *
 * ```sh
 * EDGECACHE_URL=http://127.0.0.1:8079 EDGECACHE_TOKEN=dev EDGECACHE_NAMESPACE=rt.node node test/runtimes/run.mjs
 * deno run --no-prompt --allow-net=127.0.0.1:8079 --allow-env --allow-read=. --node-modules-dir=manual test/runtimes/run.mjs
 * bun --no-install --no-env-file test/runtimes/run.mjs
 * ```
 *
 * Prints the summary as one JSON line on stdout and exits 1 when the scenario throws or the
 * summary differs from the expected one, so it can be run by hand as well as from
 * `test/runtimes.test.ts`. One file serves all three because the only runtime-specific parts
 * are reading the environment and exiting.
 *
 * @module
 */
import { expectedSummary, runScenario } from "./scenario.mjs";

const deno = globalThis.Deno;
const runtime = deno ? "deno" : globalThis.Bun ? "bun" : "node";

/** @param {string} name */
function env(name) {
  const value = deno ? deno.env.get(name) : globalThis.process.env[name];
  if (!value) throw new Error(`set ${name} (see test/runtimes/run.mjs)`);
  return value;
}

/** @param {number} code */
function exit(code) {
  if (deno) deno.exit(code);
  else globalThis.process.exit(code);
}

/**
 * JSON with object keys sorted, so that two summaries compare equal whatever order their
 * keys were built in.
 * @param {unknown} value
 * @returns {string}
 */
function canonical(value) {
  return JSON.stringify(value, (_key, v) =>
    typeof v === "object" && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

let code = 0;
try {
  const summary = {
    runtime,
    ...(await runScenario({
      url: env("EDGECACHE_URL"),
      token: env("EDGECACHE_TOKEN"),
      namespace: env("EDGECACHE_NAMESPACE"),
    })),
  };
  console.log(JSON.stringify(summary));
  if (canonical(summary) !== canonical(expectedSummary(runtime))) {
    console.error(`${runtime}: the summary differs from expectedSummary("${runtime}")`);
    code = 1;
  }
} catch (error) {
  console.error(`${runtime}: the scenario failed:`, error);
  code = 1;
}
exit(code);
