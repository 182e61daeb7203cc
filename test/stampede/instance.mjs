// One instance of the stampede measurement, as its own process: a cache on the real bridge.
// Says "ready" once set up, waits for "go" on stdin, then fires `perInstance` getOrSet calls
// of one cold key at once and prints what they got as one JSON line.
import { createCache } from "edgecache";
import { upstashStore } from "edgecache/upstash";

const config = JSON.parse(process.argv[2]);
const errors = [];
const cache = createCache({
  store: upstashStore({ url: config.url, token: config.token }, { timeout: config.timeout }),
  namespace: config.namespace,
  logger: false,
  onError: (err) => errors.push(`${err.code}: ${err.message}`),
});
// The loader asks the origin server of the run, which counts the calls.
const loader = async (key) => {
  process.stdout.write("loading\n");
  const res = await fetch(`${config.origin}/load?key=${encodeURIComponent(key)}`);
  if (!res.ok) throw new Error(`origin answered ${res.status}`);
  return await res.json();
};
process.stdout.write("ready\n");
await new Promise((resolve) => process.stdin.once("data", resolve));
// Tell the run once a call waits for another instance's lease, so that it can hold the
// origin's answer until every instance has either loaded or is waiting (see run.mjs).
const told = setInterval(() => {
  if (cache.stats().lockWaits > 0) {
    process.stdout.write("waiting\n");
    clearInterval(told);
  }
}, 1);
const settled = await Promise.allSettled(
  Array.from({ length: config.perInstance }, () =>
    cache.getOrSet(config.key, loader, { ttl: 60_000, lock: config.lock }),
  ),
);
clearInterval(told);
const values = settled.filter((s) => s.status === "fulfilled").map((s) => JSON.stringify(s.value));
const stats = cache.stats();
process.stdout.write(
  `result ${JSON.stringify({
    fulfilled: values.length,
    rejected: settled.length - values.length,
    distinct: [...new Set(values)],
    loads: stats.loads,
    lockWaits: stats.lockWaits,
    coalesced: stats.coalesced,
    errors,
  })}\n`,
);
await cache.close();
process.stdin.destroy();
