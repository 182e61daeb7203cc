// Runs the cross-process stampede: `instances` Node processes, each one cache, all asking
// for the same cold key at once (`perInstance` concurrent getOrSet calls each), with a slow
// origin behind the loader that counts how often it is called.
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";

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
  const children = Array.from({ length: options.instances }, () => {
    const child = spawn(process.execPath, [INSTANCE.pathname, JSON.stringify(config)], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    // Lines: "ready", then "loading" / "waiting" (at most once each counts), "result {...}".
    let out = "";
    let result;
    let counted = false;
    let markReady;
    const ready = new Promise((resolve, reject) => {
      markReady = resolve;
      child.once("exit", (code) => reject(new Error(`instance exited early (${code})`)));
    });
    child.stdout.on("data", (chunk) => {
      out += chunk;
      let nl = out.indexOf("\n");
      while (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line === "ready") markReady(undefined);
        else if (line === "loading" || line === "waiting") {
          if (!counted) report();
          counted = true;
        } else if (line.startsWith("result ")) result = JSON.parse(line.slice(7));
        nl = out.indexOf("\n");
      }
    });
    const done = new Promise((resolve, reject) => {
      child.once("exit", (code) => {
        if (code !== 0 || result === undefined) {
          return reject(new Error(`instance exited with ${code}`));
        }
        resolve(result);
      });
    });
    ready.catch(() => {});
    return { child, ready, done };
  });
  try {
    await Promise.all(children.map((c) => c.ready));
    const started = performance.now();
    // As close to "at once" as separate processes get.
    for (const c of children) c.child.stdin.write("go\n");
    const results = await Promise.all(children.map((c) => c.done));
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
    for (const c of children) c.child.kill();
    await new Promise((resolve) => origin.close(resolve));
  }
}
