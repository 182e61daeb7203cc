// Runs the example Worker (worker/index.ts, with the InvalidationHub Durable Object) in
// workerd through Miniflare on a real loopback port, bundled by wrangler exactly as a
// deploy would bundle it. Used by the end-to-end hub test, the coherence checker and the
// hub benchmark. `restart()` replaces the runtime like a deploy does: every WebSocket drops.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * @param {{ redisUrl: string, redisToken: string, secret: string, shards?: number, namespace?: string, adminToken?: string }} options
 *   `redisUrl`/`redisToken`: the Upstash-REST endpoint (the bridge) the Worker's cache uses.
 *   `adminToken`: the Worker's EDGECACHE_ADMIN_TOKEN (16+ characters), which its raw routes
 *   (`/cache/*`, `/stats`) and `/_cache` need; without it they answer 404.
 */
export async function startHubWorker({
  redisUrl,
  redisToken,
  secret,
  shards = 1,
  namespace = "hub-e2e",
  adminToken,
}) {
  const { Miniflare } = await import("miniflare");
  const { unstable_getMiniflareWorkerOptions } = await import("wrangler");
  const outdir = await mkdtemp(join(tmpdir(), "edgecache-hub-"));
  await new Promise((ok, fail) => {
    execFile(
      join(root, "node_modules/.bin/wrangler"),
      ["deploy", "--dry-run", "--outdir", outdir],
      { cwd: root, env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
      (err, _out, stderr) => (err ? fail(new Error(`wrangler could not bundle: ${stderr}`)) : ok()),
    );
  });
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, "wrangler.toml"));
  const options = {
    ...workerOptions,
    modules: true,
    modulesRoot: outdir,
    scriptPath: join(outdir, "index.js"),
    cf: false,
    host: "127.0.0.1",
    port: 0,
    bindings: {
      ...workerOptions.bindings,
      UPSTASH_REDIS_REST_URL: redisUrl,
      UPSTASH_REDIS_REST_TOKEN: redisToken,
      EDGECACHE_NAMESPACE: namespace,
      EDGECACHE_HUB_SECRET: secret,
      EDGECACHE_HUB_SHARDS: String(shards),
      ...(adminToken === undefined ? {} : { EDGECACHE_ADMIN_TOKEN: adminToken }),
    },
  };
  let mf = new Miniflare(options);
  let url = (await mf.ready).origin;
  const port = Number(new URL(url).port);
  return {
    get url() {
      return url;
    },
    /** Takes the Worker down: every socket drops and connections are refused. */
    async stop() {
      await mf.dispose();
    },
    /** Brings it back on the same port (after `stop`). */
    async start() {
      mf = new Miniflare({ ...options, port });
      url = (await mf.ready).origin;
    },
    /** A deploy: the runtime is replaced on the same port, and every socket is dropped. */
    async restart() {
      await this.stop();
      await this.start();
    },
    /** Hub stats of one shard's object. */
    async stats(ns, shard = 0) {
      const stub = (await mf.getDurableObjectNamespace("EDGECACHE_HUB")).getByName(
        `${ns}#${shard}`,
      );
      return stub.stats();
    },
    async close() {
      await mf.dispose();
      await rm(outdir, { recursive: true, force: true });
    },
  };
}
