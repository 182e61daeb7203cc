// Runs the cross-process stampede: `instances` Node processes, each one cache, all asking
// for the same cold key at once (`perInstance` concurrent getOrSet calls each), with a slow
// origin behind the loader that counts how often it is called.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { fleet } from "./fleet.mjs";

const INSTANCE = new URL("./instance.mjs", import.meta.url);

/**
 * @param {{ url: string, token: string, instances: number, perInstance: number,
 *   lock: boolean, loadMs?: number }} options
 */
export async function runStampede(options) {
  const loadMs = options.loadMs ?? 200;
  let loaderCalls = 0;
  // With the lock, the origin answers only once every instance has either called the loader
  // or found the lease taken (or after 10 s): a process the machine starts late must still
  // find the load in flight, so what is counted is the coalescing, not the scheduler.
  let reported = 0;
  let allReported;
  const everyone = new Promise((resolve) => {
    allReported = resolve;
  });
  const report = () => {
    if (++reported === options.instances) allReported();
  };
  const held = () =>
    options.lock
      ? Promise.race([everyone, new Promise((resolve) => setTimeout(resolve, 10_000))])
      : undefined;
  const origin = createServer(async (req, res) => {
    loaderCalls++;
    const n = loaderCalls;
    await Promise.all([new Promise((resolve) => setTimeout(resolve, loadMs)), held()]);
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ load: n, path: req.url }));
  });
  await new Promise((resolve) => origin.listen(0, "127.0.0.1", resolve));
  const config = {
    url: options.url,
    token: options.token,
    origin: `http://127.0.0.1:${origin.address().port}`,
    namespace: `stampede-${randomUUID()}`,
    key: "cold",
    perInstance: options.perInstance,
    lock: options.lock,
    // What is measured is the coalescing, not the network: a loaded test machine must not
    // turn a slow lease request into a timeout (which rightly loads without the lease).
    timeout: options.timeout ?? 10_000,
  };
  // Lines besides "ready" and the result: "loading" / "waiting" (once per instance counts).
  const counted = new Set();
  const instancesOf = await fleet(INSTANCE.pathname, config, options.instances, (line, i) => {
    if ((line === "loading" || line === "waiting") && !counted.has(i)) {
      counted.add(i);
      report();
    }
  }).catch(async (err) => {
    await new Promise((resolve) => origin.close(resolve));
    throw err;
  });
  try {
    const { results, started } = await instancesOf.go();
    return {
      loaderCalls,
      ms: Math.round(performance.now() - started),
      gets: results.reduce((n, r) => n + r.fulfilled + r.rejected, 0),
      rejected: results.reduce((n, r) => n + r.rejected, 0),
      distinct: [...new Set(results.flatMap((r) => r.distinct))],
      lockWaits: results.reduce((n, r) => n + r.lockWaits, 0),
      loadsPerInstance: results.map((r) => r.loads),
      errors: results.flatMap((r) => r.errors),
    };
  } finally {
    instancesOf.kill();
    await new Promise((resolve) => origin.close(resolve));
  }
}
