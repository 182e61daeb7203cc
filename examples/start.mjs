// `npm start`: the example Worker (worker/index.ts, a Hono app) under `wrangler dev`, on the
// embedded default: a throwaway redis-server behind edgecache's own Upstash-REST bridge,
// started here (`npm start` first runs .ci/ensure.mjs, which installs redis-server when
// missing, and builds the package). No Upstash or Cloudflare account needed. Prints the URLs
// to try, times a cached route against its slow origin, and runs until Ctrl-C.
//
// Also a module: `startExample()` is what the end-to-end test runs.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRedisServer, startRestBridge } from "edgecache/node";

const root = fileURLToPath(new URL("..", import.meta.url));
const wrangler = join(root, "node_modules", ".bin", "wrangler");

/** A port nothing listens on now. */
async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts redis-server, the REST bridge and `wrangler dev` with the example Worker.
 * @param {{ port?: number, adminToken?: string, log?: (line: string) => void }} [options]
 */
export async function startExample(options = {}) {
  const log = options.log ?? (() => {});
  const redis = await startRedisServer();
  const token = randomBytes(16).toString("hex");
  const bridge = await startRestBridge({ redisUrl: redis.url, token });
  const adminToken = options.adminToken ?? randomBytes(18).toString("base64url");
  const port = options.port ?? (await freePort());
  const persist = await mkdtemp(join(tmpdir(), "edgecache-dev-"));
  const child = spawn(
    wrangler,
    [
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(await freePort()),
      "--persist-to",
      persist,
      "--show-interactive-dev-session=false",
      "--log-level",
      "warn",
      "--var",
      `UPSTASH_REDIS_REST_URL:${bridge.url}`,
      "--var",
      `UPSTASH_REDIS_REST_TOKEN:${token}`,
      "--var",
      `EDGECACHE_ADMIN_TOKEN:${adminToken}`,
    ],
    {
      cwd: root,
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        // Offline-friendly: no fetch of the `request.cf` object from Cloudflare.
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        NO_UPDATE_NOTIFIER: "1",
      },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: wrangler runs workerd as a child of a child, and stopping it
      // must stop them all.
      detached: true,
    },
  );
  let output = "";
  const collect = (chunk) => {
    output += chunk;
    for (const line of String(chunk).split("\n")) if (line.trim()) log(line);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const exited = new Promise((resolve) => child.once("exit", resolve));

  const url = `http://127.0.0.1:${port}`;
  const signal = (name) => {
    try {
      process.kill(-child.pid, name);
    } catch {
      // already gone
    }
  };
  const close = async () => {
    if (child.exitCode === null) {
      signal("SIGTERM");
      const timer = setTimeout(() => signal("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    }
    // Whatever of the group outlived its leader.
    signal("SIGKILL");
    await bridge.close();
    await redis.close();
    await rm(persist, { recursive: true, force: true });
  };
  try {
    // wrangler bundles the Worker and starts workerd: wait until it answers.
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(`wrangler dev exited (${child.exitCode}):\n${output.slice(-2000)}`);
      }
      try {
        const res = await fetch(`${url}/health`);
        if (res.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline)
        throw new Error(`wrangler dev did not start:\n${output.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { url, adminToken, bridgeUrl: bridge.url, close };
}

/** Times one GET, in ms, with the Cache-Status it got. */
async function timed(url) {
  const start = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  return { ms: performance.now() - start, status: res.headers.get("cache-status") ?? "-" };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  console.log("Starting redis-server, the REST bridge and `wrangler dev` (worker/index.ts)...");
  const example = await startExample({
    log: (line) => {
      if (/error|warn/i.test(line)) console.log(`  wrangler: ${line}`);
    },
  });
  const { url, adminToken } = example;
  console.log(`
The example Worker is up at ${url}  (a Hono app; its origin takes ~300 ms per request)

  GET  ${url}/products/1              cached route (Cache-Status: miss, then hit)
  GET  ${url}/products?page=2&sort=asc  query order does not matter
  GET  ${url}/origin/products/1       the same data straight from the slow origin
  GET  ${url}/_cache                  admin dashboard (log in with the admin token)
  GET  ${url}/_cache/metrics          Prometheus metrics (needs the token)
  GET|PUT|DELETE ${url}/cache/<key>, GET ${url}/stats
                                       the raw key-value API (needs the token)

  admin token: ${adminToken}
  curl -H "authorization: Bearer ${adminToken}" ${url}/_cache/stats
  curl -X DELETE -H "authorization: Bearer ${adminToken}" "${url}/_cache/tags/products?ns=http"
  curl -X PUT -H "authorization: Bearer ${adminToken}" -d '{"hello":"world"}' ${url}/cache/greeting
  curl -H "authorization: Bearer ${adminToken}" ${url}/cache/greeting
  curl -H "authorization: Bearer ${adminToken}" ${url}/stats
`);
  // A quick measurement: the uncached origin against a cached hit of the same route.
  const origin = [];
  const hits = [];
  for (let i = 0; i < 5; i++) origin.push(await timed(`${url}/origin/products/7`));
  const miss = await timed(`${url}/products/7`);
  for (let i = 0; i < 20; i++) hits.push(await timed(`${url}/products/7`));
  const median = (xs) => xs.map((x) => x.ms).sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `measured: origin ${median(origin).toFixed(1)} ms (median of 5); first cached-route request ${miss.ms.toFixed(1)} ms (${miss.status}); cached hit ${median(hits).toFixed(1)} ms (median of 20, ${hits.at(-1).status})`,
  );
  console.log("\nCtrl-C stops everything.");
  const stop = async () => {
    await example.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
