/**
 * The few workerd types the workers tests use, declared locally instead of depending on
 * `@cloudflare/workers-types`.
 */
declare module "cloudflare:workers" {
  /** The bindings of the main Worker (wrangler.toml `[vars]`, overridden by vitest.config.ts). */
  export const env: import("../../worker/index.js").Env & { EDGECACHE_NAMESPACE: string };
  /** The main Worker's exports, callable as if over a service binding. */
  export const exports: {
    default: { fetch(request: Request): Promise<Response> };
  };
}
