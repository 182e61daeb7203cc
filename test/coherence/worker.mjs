// The coherence checker's instance inside workerd: one cache per isolate, driven over
// HTTP by the coordinator, which times each request from outside.
import { checkedCache } from "./ops.mjs";

let instance;

export default {
  async fetch(request, env) {
    instance ??= checkedCache({
      url: env.UPSTASH_REDIS_REST_URL,
      token: env.UPSTASH_REDIS_REST_TOKEN,
      namespace: env.NAMESPACE,
      instanceId: env.INSTANCE_ID,
      M: Number(env.MAX_STALENESS),
      logLength: Number(env.LOG_LENGTH),
      batch: Number(env.BATCH),
      broken: env.BROKEN === "1",
      shards: Number(env.SHARDS ?? "1"),
      pubsub: env.PUBSUB === "1" ? "publish" : undefined,
    });
    const url = new URL(request.url);
    if (url.pathname === "/stats") return Response.json(instance.cache.stats());
    if (url.pathname !== "/op" || request.method !== "POST") {
      return new Response("not found", { status: 404 });
    }
    const { op, id } = await request.json();
    return Response.json(await instance.execute(op, id));
  },
};
