/**
 * The built package in Node, Deno and Bun: each runtime runs `test/runtimes/run.mjs` in its
 * own process against the real REST bridge of the global setup, and must print exactly the
 * expected summary. workerd runs the same scenario in the "workers" project
 * (`test/workers/runtime.test.ts`), where the vitest pool forces `nodejs_compat` on; so the
 * Worker is also bundled here by wrangler, as `wrangler deploy` would, and run in a plain
 * workerd with exactly the flags of wrangler.toml.
 */
import { execFile } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { access, constants, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare, type MiniflareOptions } from "miniflare";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { createCache } from "../src/index.js";
import { upstashStore } from "../src/stores/upstash.js";
import { expectedSummary } from "./runtimes/scenario.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) =>
  fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

/** A cold Deno or Bun on a busy two-core CI machine takes a few seconds to start. */
const RUN_TIMEOUT = 25_000;

interface Runtime {
  name: string;
  command: string;
  args: string[];
  /** Where the binary comes from, for the message when it is missing. */
  install: string;
}

/** How each runtime is started; `bridge` is the only host the scenario may reach. */
function runtimes(bridge: URL): Runtime[] {
  return [
    { name: "node", command: process.execPath, args: [], install: "the Node running vitest" },
    {
      name: "deno",
      command: bin("deno"),
      args: [
        "run",
        "--no-prompt",
        // Only the bridge: any other request (telemetry, a CDN) fails the run.
        `--allow-net=${bridge.host}`,
        // @upstash/redis probes a few variables of its own; Deno throws on unpermitted reads.
        "--allow-env",
        `--allow-read=${root}`,
        // Resolve bare specifiers and the package's self-reference from the existing
        // node_modules and package.json, never fetching or writing anything.
        "--node-modules-dir=manual",
      ],
      install: 'the "deno" devDependency (npm ci)',
    },
    {
      name: "bun",
      command: bin("bun"),
      // No auto-install, no .env loading: the run depends on node_modules and our env only.
      args: ["--no-install", "--no-env-file"],
      install: 'the "bun" devDependency (npm ci, with its postinstall script allowed)',
    },
  ];
}

interface Outcome {
  code: number | string | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects, so the test can show its output. */
function run(command: string, args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd: root, env: { ...process.env, ...env }, timeout: RUN_TIMEOUT, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        const code = error ? (error.code ?? error.signal ?? "killed") : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The last line of stdout that parses as a JSON object, if any. */
function summaryOf(stdout: string): unknown {
  for (const line of stdout.trim().split("\n").reverse()) {
    try {
      const value: unknown = JSON.parse(line);
      if (typeof value === "object" && value !== null) return value;
    } catch {
      // Not the summary line.
    }
  }
  return undefined;
}

describe("the built package against the REST bridge", () => {
  const url = inject("bridgeUrl");
  const token = inject("bridgeToken");

  beforeAll(async () => {
    // The scenario imports "edgecache" by name, which resolves to dist/ through "exports".
    await access(new URL("../dist/index.js", import.meta.url)).catch(() => {
      throw new Error("dist/ is missing: run `npm run build` before this test");
    });
  });

  it.each(runtimes(new URL(url)))(
    "$name runs the scenario and prints the expected summary",
    async ({ name, command, args, install }) => {
      await access(command, constants.X_OK).catch(() => {
        throw new Error(`no ${name} binary at ${command}: it comes from ${install}`);
      });
      const outcome = await run(command, [...args, "test/runtimes/run.mjs"], {
        EDGECACHE_URL: url,
        EDGECACHE_TOKEN: token,
        EDGECACHE_NAMESPACE: `runtimes.${name}.${randomUUID()}`,
        // Offline CI: no update check, no colour codes in the output.
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
      });
      const summary = summaryOf(outcome.stdout);
      expect(summary, `${name} printed no summary; stderr:\n${outcome.stderr}`).toBeDefined();
      expect(summary).toEqual(expectedSummary(name));
      expect(outcome.code, `${name} exited with ${outcome.code}; stderr:\n${outcome.stderr}`).toBe(
        0,
      );
    },
    RUN_TIMEOUT + 5_000,
  );
});

describe("the Worker as wrangler bundles it, in workerd without nodejs_compat", () => {
  let outdir: string;
  let mf: Miniflare | undefined;
  /** The Miniflare options of the bundle, with the vars of wrangler.toml and this run's bridge. */
  let options: MiniflareOptions;
  /** Its bindings, apart. */
  let bindings: Record<string, unknown>;
  /** Given to the Worker as a binding, as `wrangler secret put` would: never in wrangler.toml. */
  const adminToken = randomBytes(24).toString("base64url");
  const bearer = { authorization: `Bearer ${adminToken}` };

  beforeAll(async () => {
    outdir = await mkdtemp(join(tmpdir(), "edgecache-worker-"));
    const wrangler = await run(bin("wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      CI: "true",
      WRANGLER_SEND_METRICS: "false",
      NO_COLOR: "1",
    });
    if (wrangler.code !== 0) {
      throw new Error(
        `wrangler could not bundle the Worker (${wrangler.code}):\n${wrangler.stderr}`,
      );
    }
    // The compatibility date, flags and vars of wrangler.toml, as `wrangler dev` reads them.
    const { workerOptions } = unstable_getMiniflareWorkerOptions(join(root, "wrangler.toml"));
    expect(workerOptions.compatibilityFlags ?? []).not.toContainEqual(
      expect.stringMatching(/^nodejs_/),
    );
    expect(workerOptions.bindings ?? {}).not.toHaveProperty("EDGECACHE_ADMIN_TOKEN");
    bindings = {
      ...workerOptions.bindings,
      UPSTASH_REDIS_REST_URL: inject("bridgeUrl"),
      UPSTASH_REDIS_REST_TOKEN: inject("bridgeToken"),
      EDGECACHE_NAMESPACE: `runtimes.bundle.${randomUUID()}`,
      EDGECACHE_ADMIN_TOKEN: adminToken,
    };
    options = {
      ...workerOptions,
      modules: true,
      modulesRoot: outdir,
      scriptPath: join(outdir, "index.js"),
      // No request.cf data: it would be fetched from the network.
      cf: false,
      bindings,
    } as MiniflareOptions;
    mf = new Miniflare(options);
  });

  afterAll(async () => {
    await mf?.dispose();
    await rm(outdir, { recursive: true, force: true });
  });

  it("serves PUT, GET, DELETE and /stats with the admin token", async () => {
    const call = async (path: string, init?: { method: string; body?: string }) => {
      const res = await mf!.dispatchFetch(`http://edgecache.test${path}`, {
        ...init,
        headers: bearer,
      });
      return { status: res.status, body: await res.text() };
    };
    expect(await call("/cache/k?ttl=5000", { method: "PUT", body: '{"a":[1,"x"]}' })).toEqual({
      status: 204,
      body: "",
    });
    expect(await call("/cache/k")).toEqual({ status: 200, body: '{"a":[1,"x"]}' });
    expect(await call("/cache/k", { method: "DELETE" })).toEqual({ status: 204, body: "" });
    expect((await call("/cache/k")).status).toBe(404);
    expect(JSON.parse((await call("/stats")).body)).toMatchObject({
      sets: 1,
      deletes: 1,
      l1Hits: 1,
      l2Misses: 1,
      errors: 0,
    });
  });

  it("refuses /cache and /stats without the token, with 401 and WWW-Authenticate: Bearer", async () => {
    for (const [path, method] of [
      ["/cache/k", "GET"],
      ["/cache/k", "PUT"],
      ["/cache/k", "DELETE"],
      ["/stats", "GET"],
    ] as const) {
      const res = await mf!.dispatchFetch(`http://edgecache.test${path}`, {
        method,
        ...(method === "PUT" ? { body: "1" } : {}),
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(res.headers.get("www-authenticate"), `${method} ${path}`).toBe("Bearer");
      await res.arrayBuffer();
    }
  });

  it("with no EDGECACHE_ADMIN_TOKEN, turns /cache and /stats off (404, never open)", async () => {
    const namespace = `runtimes.bundle.off.${randomUUID()}`;
    const { EDGECACHE_ADMIN_TOKEN: _, ...others } = bindings;
    const withoutToken = { ...others, EDGECACHE_NAMESPACE: namespace };
    const l2 = createCache({
      store: upstashStore({ url: inject("bridgeUrl"), token: inject("bridgeToken") }),
      namespace,
      local: false,
    });
    await l2.set("present", "secret-value");
    const off = new Miniflare({ ...options, bindings: withoutToken } as MiniflareOptions);
    try {
      // Any token at all, even the one the other Worker takes: there is nothing to match.
      for (const headers of [{}, bearer]) {
        for (const [path, method] of [
          ["/cache/present", "GET"],
          ["/cache/present", "DELETE"],
          ["/cache/written", "PUT"],
          ["/cache/present", "POST"],
          ["/stats", "GET"],
        ] as const) {
          const what = `${method} ${path} ${JSON.stringify(headers)}`;
          const res = await off.dispatchFetch(`http://edgecache.test${path}`, {
            method,
            headers,
            ...(method === "PUT" || method === "POST" ? { body: '"x"' } : {}),
          });
          expect(res.status, what).toBe(404);
          expect(await res.json(), what).toEqual({
            error: expect.stringContaining("off until EDGECACHE_ADMIN_TOKEN"),
          });
        }
      }
      expect(await l2.get("present")).toBe("secret-value");
      expect(await l2.has("written")).toBe(false);
      // The rest of the Worker runs.
      const health = await off.dispatchFetch("http://edgecache.test/health");
      expect(await health.text()).toBe("ok");
    } finally {
      await off.dispose();
      await l2.close();
    }
  });
});
