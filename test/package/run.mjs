// Run in the same fresh project: the user's code at run time, with the project's versions
// of hono and @upstash/redis, against the REST bridge (BRIDGE_URL, BRIDGE_TOKEN). Prints one
// JSON line for test/package.test.ts to check.
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import { Redis } from "@upstash/redis";
import { createCache } from "edgecache";
import { cacheAdmin, cached } from "edgecache/hono";
import { instrument } from "edgecache/otel";
import { upstashStore } from "edgecache/upstash";
import { Hono } from "hono";

const url = process.env.BRIDGE_URL;
const token = process.env.BRIDGE_TOKEN;
const namespace = `package.${randomUUID()}`;
const out = {};

// Two instances over the project's own Redis clients: what one writes, the other reads.
const cache = createCache({ store: upstashStore(new Redis({ url, token })), namespace });
const other = createCache({ store: upstashStore(new Redis({ url, token })), namespace });
await cache.set("user:1", { name: "Ada", born: new Date(Date.UTC(1815, 11, 10)) });
const read = await other.get("user:1");
out.roundTrip = read?.born instanceof Date ? `${read.name} ${read.born.toISOString()}` : read;

// getOrSetMany, traced through the project's @opentelemetry/api (no provider: a no-op).
const stop = instrument(other);
let batchCalls = 0;
out.batch = await other.getOrSetMany(["user:1", "b:1", "b:2"], async (keys) => {
  batchCalls += 1;
  return keys.map((k) => `loaded ${k}`);
});
out.batch.push(batchCalls);
stop();

// cached() and the admin, mounted with app.route, on the project's hono.
const http = cache.namespace("http");
let runs = 0;
const app = new Hono();
app.get("/products/:id", cached({ cache: http, ttl: 60_000 }), (c) => {
  runs += 1;
  return c.json({ id: c.req.param("id") });
});
const admin = "admin-token-0123456789";
app.route("/_cache", cacheAdmin({ cache, token: admin, caches: { http } }));
const first = await app.request("/products/1");
const second = await app.request("/products/1");
out.cacheStatus = [first.headers.get("cache-status"), second.headers.get("cache-status")];
out.body = await second.json();
out.runs = runs;
const stats = await app.request("/_cache/stats?ns=http", {
  headers: { authorization: `Bearer ${admin}` },
});
out.stats = [stats.status, (await stats.json()).namespace === `${namespace}/http`];
const login = await app.request("http://app.test/_cache/login", {
  method: "POST",
  headers: {
    "content-type": "application/x-www-form-urlencoded",
    origin: "http://app.test",
    "sec-fetch-site": "same-origin",
  },
  body: new URLSearchParams({ token: admin }).toString(),
});
const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
const page = await app.request("http://app.test/_cache", { headers: { cookie } });
out.login = [login.status, login.headers.get("location"), page.status];

// A server that never answers: the store's timeout holds with the project's client and its
// default retries.
const hang = createServer(() => {});
await new Promise((resolve) => hang.listen(0, "127.0.0.1", resolve));
const slow = createCache({
  store: upstashStore(new Redis({ url: `http://127.0.0.1:${hang.address().port}`, token }), {
    timeout: 300,
  }),
  namespace,
  logger: false,
});
const started = performance.now();
try {
  await slow.set("k", 1);
  out.timeout = "resolved";
} catch (error) {
  out.timeout = error.code;
}
out.timeoutWithin1s = performance.now() - started < 1000;
hang.closeAllConnections();
hang.close();

await Promise.all([cache.close(), other.close(), slow.close()]);
console.log(JSON.stringify(out));
