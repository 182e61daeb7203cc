// `npm run demo:instances`: two Node cache instances on the embedded default. Starts a
// throwaway redis-server (the script first runs .ci/ensure.mjs, which installs it when
// missing), puts edgecache's Upstash-REST bridge in front of it, and runs two cache
// instances that share it as L2, printing where each read was answered. No Upstash account
// needed.
import { randomBytes } from "node:crypto";
import { inspect } from "node:util";
import { createCache } from "edgecache";
import { startRedisServer, startRestBridge } from "edgecache/node";
import { upstashStore } from "edgecache/upstash";

const redis = await startRedisServer();
const token = randomBytes(16).toString("hex");
const bridge = await startRestBridge({ redisUrl: redis.url, token });
console.log(`redis-server  ${redis.url}`);
console.log(`REST bridge   ${bridge.url}  (Upstash REST protocol, random token)\n`);

// Two instances, as two isolates or servers would be: separate L1s, separate HTTP clients,
// one shared L2. A short staleness bound makes coherence visible in a demo.
const WINDOW = 250;
const instance = () =>
  createCache({
    store: upstashStore({ url: bridge.url, token }),
    namespace: "demo",
    ttl: 60_000,
    local: { maxItems: 1_000, maxBytes: 1 << 20 },
    sync: { maxStaleness: WINDOW },
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const a = instance();
const b = instance();

const show = (who, op, result) => console.log(`${who.padEnd(2)} ${op.padEnd(34)} -> ${result}`);
const fmt = (v) =>
  v === undefined
    ? "undefined (miss)"
    : inspect(v, { depth: 4, breakLength: Number.POSITIVE_INFINITY });

try {
  const ada = {
    name: "Ada Lovelace",
    born: new Date(1815, 11, 10),
    langs: new Set(["Analytical Engine"]),
  };
  await a.set("user:1", ada, { ttl: 30_000 });
  show("A", 'set("user:1", {...Date, Set})', "ok (1 request)");
  const fromL2 = await b.get("user:1");
  show("B", 'get("user:1")', `${fmt(fromL2)}  [L2: B's L1 was empty]`);
  show("B", "  born is a Date again?", String(fromL2.born instanceof Date));
  show("B", 'get("user:1") again', `${fmt(await b.get("user:1"))}  [L1: no request]`);
  await a.setMany([
    ["user:2", { name: "Grace Hopper" }],
    ["user:3", { name: "Katherine Johnson" }],
  ]);
  show("A", 'setMany(["user:2", "user:3"])', "ok (1 request)");
  show(
    "B",
    'getMany(["user:1".."user:4"])',
    fmt(await b.getMany(["user:1", "user:2", "user:3", "user:4"])),
  );
  await a.delete("user:3");
  show("A", 'delete("user:3")', "ok");
  show("A", 'get("user:3")', fmt(await a.get("user:3")));
  await a.set("user:2", { name: "Grace Hopper", rank: "Rear Admiral" });
  show("A", 'set("user:2", {...rank})', "ok: the value goes into the change log too");
  show(
    "B",
    'get("user:2") at once',
    `${fmt(await b.get("user:2"))}  [B's L1, within ${WINDOW} ms]`,
  );
  await sleep(WINDOW);
  show(
    "B",
    `get("user:2") ${WINDOW} ms later`,
    `${fmt(await b.get("user:2"))}  [one sync request]`,
  );
  await a.clear();
  show("A", "clear()", "namespace 'demo' emptied in one request");
  show("A", 'get("user:2")', fmt(await a.get("user:2")));

  console.log("\nhits per tier");
  console.log(
    "instance  l1Hits  l1Misses  l2Hits  l2Misses  sets  deletes  syncs  applied  flushes  l1Items",
  );
  for (const [name, c] of [
    ["A", a],
    ["B", b],
  ]) {
    const s = c.stats();
    console.log(
      [
        name.padEnd(8),
        s.l1Hits,
        s.l1Misses,
        s.l2Hits,
        s.l2Misses,
        s.sets,
        s.deletes,
        s.syncs,
        s.changesApplied,
        s.flushes,
        s.l1Items,
      ]
        .map((x, i) => String(x).padStart(i === 0 ? 8 : [6, 9, 7, 9, 5, 8, 6, 8, 8, 8][i - 1]))
        .join(" "),
    );
  }
  console.log(
    `\nCoherence: no instance serves a value more than ${WINDOW} ms (its maxStaleness) after another replaced it.`,
  );
} finally {
  await a.close();
  await b.close();
  await bridge.close();
  await redis.close();
}
