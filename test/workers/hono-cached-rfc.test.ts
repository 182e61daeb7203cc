/**
 * The RFC cases of `cached` (test/hono/rfc-*-cases.ts) inside workerd: each request with the
 * runtime's own ExecutionContext, waited on as the runtime would.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { expect, it } from "vitest";
import { freshnessCases } from "../hono/rfc-freshness-cases.js";
import type { Send } from "../hono/rfc-site.js";
import { validationCases } from "../hono/rfc-validation-cases.js";

const send: Send = async (app, path, init) => {
  const ctx = createExecutionContext();
  const res = await app.request(path, init, {}, ctx);
  await waitOnExecutionContext(ctx);
  return res;
};

it("runs in workerd", () => {
  expect(navigator.userAgent).toBe("Cloudflare-Workers");
});

freshnessCases(send);
validationCases(send);
