import { randomBytes } from "node:crypto";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** The hub's signing secret for this run: random, so no test can depend on the dev value. */
const hubSecret = randomBytes(32).toString("base64url");
/** The example Worker's admin token (`/_cache`, `/cache/*`, `/stats`) for this run, likewise. */
const adminToken = randomBytes(24).toString("base64url");

export default defineConfig({
  test: {
    // The JSON report feeds the summary line that .ci/run prints.
    reporters: ["default", ["json", { outputFile: ".test-results/vitest.json" }]],
    projects: [
      {
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          exclude: ["test/workers/**"],
          globalSetup: ["test/setup/global.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        // Tests that run inside workerd. Their globalSetup still runs in Node: it starts
        // redis-server and the REST bridge, which the tests and the Worker reach over fetch.
        plugins: [
          cloudflareTest(({ inject }) => ({
            main: "./worker/index.ts",
            wrangler: { configPath: "./wrangler.toml" },
            // Nothing remote: CI is offline.
            remoteBindings: false,
            miniflare: {
              // Point the Worker's [vars] at this run's bridge instead of the dev defaults.
              bindings: {
                UPSTASH_REDIS_REST_URL: inject("bridgeUrl"),
                UPSTASH_REDIS_REST_TOKEN: inject("bridgeToken"),
                EDGECACHE_NAMESPACE: "worker-test",
                EDGECACHE_HUB_SECRET: hubSecret,
                EDGECACHE_ADMIN_TOKEN: adminToken,
                // More than one shard, so that the tests see records split between them.
                EDGECACHE_HUB_SHARDS: "4",
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          globalSetup: ["test/setup/global.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
    ],
  },
});
