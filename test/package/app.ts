// A user's file in a fresh project that installed the packed tarball: it must typecheck
// under --strict against every supported version of hono and @upstash/redis.
import { Redis } from "@upstash/redis";
import { type BatchLoader, createCache } from "edgecache";
import { type CachedEnv, cacheAdmin, cached } from "edgecache/hono";
import { type InstrumentOptions, instrument } from "edgecache/otel";
import { upstashStore } from "edgecache/upstash";
import { Hono } from "hono";

interface User {
  name: string;
  born: Date;
}

// The project's own client, of whatever version it installed.
const redis = new Redis({ url: "http://127.0.0.1:8079", token: "dev-token-0123456789" });
const cache = createCache({ store: upstashStore(redis, { timeout: 500 }), namespace: "app" });
const users = cache.namespace<User>("users", {
  loader: async (id) => ({ name: id, born: new Date() }),
});
const http = cache.namespace("http");

// Batch read-through, typed, and the cache traced through the project's @opentelemetry/api.
const loadPeople: BatchLoader<User> = async (ids, ctx) => {
  ctx.tag(ids[0]!, "people");
  return new Map(ids.map((id) => [id, { name: id, born: new Date() }]));
};
const people = cache.namespace<User>("people", { loadMany: loadPeople, loadConcurrency: 4 });
export const some: Promise<Array<User | undefined>> = people.getMany(["ada", "alan"]);
export const more: Promise<Array<User | undefined>> = cache.getOrSetMany(["x"], loadPeople, {
  ttl: 1000,
});
const tracing: InstrumentOptions = { recordKeys: false, meter: false };
export const stopTracing: () => void = instrument(cache, tracing);

const app = new Hono<CachedEnv>();
app.get("/products/:id", cached({ cache: http, ttl: 60_000 }), (c) => {
  c.var.cacheTag(`product:${c.req.param("id")}`);
  return c.json({ id: c.req.param("id") });
});
app.get("/users/:id", async (c) => {
  const user: User | undefined = await users.get(c.req.param("id"));
  return c.json({ name: user?.name ?? null });
});
app.route("/_cache", cacheAdmin({ cache, token: "0123456789abcdef0123", caches: { http } }));

// A plain Hono app too: cached() and the admin fit any Env.
const plain = new Hono();
plain.use("/static/*", cached({ cache: http }));
plain.route("/admin", cacheAdmin({ cache, token: "0123456789abcdef0123" }));

export default app;
