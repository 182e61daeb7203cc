/**
 * Types of the workerd test environment: the bindings of the main Worker (wrangler.toml
 * `[vars]` and the hub's Durable Object, overridden by vitest.config.ts) and its exports,
 * through the `Cloudflare` namespace that `@cloudflare/workers-types` declares for this.
 */
import type { Env as WorkerEnv } from "../../worker/index.js";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      EDGECACHE_NAMESPACE: string;
      /** Set by vitest.config.ts (random per run): the raw routes need it. */
      EDGECACHE_ADMIN_TOKEN: string;
    }
    interface GlobalProps {
      mainModule: typeof import("../../worker/index.js");
      durableNamespaces: "InvalidationHub";
    }
  }
}
