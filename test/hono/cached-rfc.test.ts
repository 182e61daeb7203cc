/**
 * The RFC cases of `cached` (test/hono/rfc-*-cases.ts) in Node: each request with an
 * ExecutionContext whose waitUntil work (background refreshes) is awaited before it returns.
 */

import { executionContext } from "./cached-helpers.js";
import { freshnessCases } from "./rfc-freshness-cases.js";
import type { Send } from "./rfc-site.js";
import { validationCases } from "./rfc-validation-cases.js";

const send: Send = async (app, path, init) => {
  const ec = executionContext();
  const res = await app.request(path, init, undefined, ec.ctx);
  await ec.settle();
  return res;
};

freshnessCases(send);
validationCases(send);
