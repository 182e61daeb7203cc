/**
 * The example Worker end to end, as `npm start` runs it: `wrangler dev` (workerd) with
 * worker/index.ts, against a real redis-server behind the REST bridge. Uses the built
 * package (examples/start.mjs imports edgecache/node).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module shared with `npm start`
import { startExample } from "../examples/start.mjs";

const ADMIN = "e2e-admin-token-0123456789";
let example: { url: string; close(): Promise<void> };

beforeAll(async () => {
  example = await startExample({ adminToken: ADMIN });
}, 120_000);
afterAll(async () => {
  await example?.close();
});

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${example.url}${path}`, { headers });
const admin = { authorization: `Bearer ${ADMIN}` };

describe("the example Worker under wrangler dev", () => {
  it("answers /health", async () => {
    expect(await (await get("/health")).text()).toBe("ok");
  });

  it("caches a product route: a miss stores, then hits replay the same response", async () => {
    const first = await get("/products/11");
    expect(first.status).toBe(200);
    expect(first.headers.get("cache-status")).toMatch(/fwd=miss/);
    const body = await first.json();
    for (let i = 0; i < 3; i++) {
      const again = await get("/products/11");
      expect(again.headers.get("cache-status")).toMatch(/^edgecache; hit/);
      expect(await again.json()).toEqual(body); // same updatedAt: the origin was not asked
    }
    // The uncached origin answers anew every time.
    const a = await (await get("/origin/products/11")).json();
    const b = await (await get("/origin/products/11")).json();
    expect(a.updatedAt).not.toBe(b.updatedAt);
  });

  it("normalizes the query: reordered parameters hit the same entry", async () => {
    const first = await get("/products?page=2&sort=desc");
    const body = await first.json();
    const reordered = await get("/products?sort=desc&page=2");
    expect(reordered.headers.get("cache-status")).toMatch(/^edgecache; hit/);
    expect(await reordered.json()).toEqual(body);
  });

  it("admin: refuses without the token, serves stats and metrics with it", async () => {
    expect((await get("/_cache/stats")).status).toBe(401);
    expect(
      (await get("/_cache/stats", { authorization: "Bearer wrong-token-xxxxxxxx" })).status,
    ).toBe(401);
    const stats = await get("/_cache/stats", admin);
    expect(stats.status).toBe(200);
    const metrics = await (await get("/_cache/metrics", admin)).text();
    expect(metrics).toMatch(/^# HELP edgecache_/m);
  });

  it("invalidating the products tag through the admin API makes the routes miss", async () => {
    const before = await (await get("/products/12")).json();
    expect((await get("/products/12")).headers.get("cache-status")).toMatch(/^edgecache; hit/);
    const res = await fetch(`${example.url}/_cache/tags/products?ns=http`, {
      method: "DELETE",
      headers: admin,
    });
    expect(res.status).toBeLessThan(300);
    const after = await get("/products/12");
    expect(after.headers.get("cache-status")).toMatch(/fwd=miss/);
    expect((await after.json()).updatedAt).not.toBe(before.updatedAt);
  });

  it("keeps the key-value API, behind the admin token", async () => {
    const put = (headers: Record<string, string>) =>
      fetch(`${example.url}/cache/greeting`, {
        method: "PUT",
        headers,
        body: JSON.stringify({ hello: "world" }),
      });
    const refused = await put({});
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toBe("Bearer");
    expect((await get("/stats")).status).toBe(401);
    expect((await get("/cache/greeting")).status).toBe(401);
    expect((await put(admin)).status).toBe(204);
    expect(await (await get("/cache/greeting", admin)).json()).toEqual({ hello: "world" });
    expect((await get("/stats", admin)).status).toBe(200);
  });
});
