// A cache subscribed to pushes, in whichever runtime runs this file (Node, Deno, Bun), for
// the end-to-end tests of the hub (TRANSPORT=hub) and of Redis pub/sub (TRANSPORT=pubsub).
// It talks over stdin/stdout in JSON lines:
//   out {"ready": true}                         once subscribed and caught up, and "k" read
//   in  {"expect": "<value>"}                   wait until L1 holds it (pushed)
//   out {"seen": "<value>", "ms": <elapsed>}    with the time from the request to the change
//   in  {"read": ["k", ...]}                    get the keys (syncing as the bound requires)
//   out {"values": [...], "stats": {...}}
//   in  {"exit": true}
// Env: EDGECACHE_URL, EDGECACHE_TOKEN (Redis REST), TRANSPORT, HUB_URL, HUB_TOKEN,
// HUB_SHARDS (hub only), NAMESPACE, RUNTIME.
import { createCache } from "edgecache";
import { upstashStore } from "edgecache/upstash";

const env = (name) =>
  globalThis.Deno ? globalThis.Deno.env.get(name) : globalThis.process?.env?.[name];

const pubsub = env("TRANSPORT") === "pubsub";
// Node 20 has no global WebSocket; the ws package stands in for it there.
const WebSocket = pubsub ? undefined : (globalThis.WebSocket ?? (await import("ws")).WebSocket);

const cache = createCache({
  store: upstashStore(
    { url: env("EDGECACHE_URL"), token: env("EDGECACHE_TOKEN") },
    { timeout: 10_000 },
  ),
  namespace: env("NAMESPACE"),
  // A long window: only a push can bring changes quickly.
  sync: pubsub
    ? { maxStaleness: 60_000, pubsub: { minBackoff: 50, maxBackoff: 500 } }
    : {
        maxStaleness: 60_000,
        hub: {
          url: env("HUB_URL"),
          token: env("HUB_TOKEN"),
          WebSocket,
          shards: Number(env("HUB_SHARDS") ?? "1"),
          minBackoff: 50,
          maxBackoff: 500,
        },
      },
  logger: false,
});

const write = (obj) => {
  const line = `${JSON.stringify(obj)}\n`;
  if (globalThis.Deno) globalThis.Deno.stdout.writeSync(new TextEncoder().encode(line));
  else globalThis.process.stdout.write(line);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(check, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(1);
  }
  return check();
}

async function* lines() {
  const decoder = new TextDecoder();
  let buffer = "";
  const stream = globalThis.Deno ? globalThis.Deno.stdin.readable : globalThis.process.stdin;
  for await (const chunk of stream) {
    buffer += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let at = buffer.indexOf("\n");
    while (at !== -1) {
      yield JSON.parse(buffer.slice(0, at));
      buffer = buffer.slice(at + 1);
      at = buffer.indexOf("\n");
    }
  }
}

const push = () => (pubsub ? cache.stats().pubsub : cache.stats().hub);
if (!(await until(() => push()?.healthy === true, 15_000))) {
  write({ error: "never became healthy", stats: push() });
} else {
  await cache.get("k");
  write({ ready: true, runtime: env("RUNTIME") });
}
for await (const msg of lines()) {
  if (msg.expect !== undefined) {
    const start = performance.now();
    const ok = await until(() => cache.peek("k") === msg.expect, 10_000);
    write(
      ok
        ? { seen: msg.expect, ms: performance.now() - start }
        : { timeout: cache.peek("k") ?? null, stats: cache.stats() },
    );
  } else if (msg.read) {
    write({ values: await cache.getMany(msg.read), stats: push() });
  } else if (msg.exit) {
    break;
  }
}
await cache.close();
if (!globalThis.Deno) globalThis.process.exit(0);
