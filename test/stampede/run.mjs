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
  const origin = createServer((req, res) => {
    loaderCalls++;
    const n = loaderCalls;
    setTimeout(() => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ load: n, path: req.url }));
    }, loadMs);
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
    let out = "";
    const ready = new Promise((resolve, reject) => {
      child.stdout.on("data", (chunk) => {
        out += chunk;
        if (out.startsWith("ready\n")) resolve(undefined);
      });
      child.once("exit", (code) => reject(new Error(`instance exited early (${code})`)));
    });
    const done = new Promise((resolve, reject) => {
      child.once("exit", (code) => {
        if (code !== 0) return reject(new Error(`instance exited with ${code}`));
        resolve(JSON.parse(out.slice("ready\n".length)));
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
