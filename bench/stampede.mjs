// Stampede protection, measured: N Node processes (each one cache) ask for one cold key M
// times each at the same moment, against a local redis-server behind the REST bridge, with
// a 200 ms origin behind the loader. Prints how often the loader ran, with and without
// `lock: true`. Usage: node bench/stampede.mjs [instances=5] [perInstance=200] [rounds=3]
import { randomUUID } from "node:crypto";
import { startRedisServer, startRestBridge } from "edgecache/node";
import { runStampede } from "../test/stampede/run.mjs";

const instances = Number(process.argv[2] ?? 5);
const perInstance = Number(process.argv[3] ?? 200);
const rounds = Number(process.argv[4] ?? 3);

const redis = await startRedisServer();
const token = randomUUID();
const bridge = await startRestBridge({ redisUrl: redis.url, token });
try {
  console.log(
    `stampede: ${instances} processes x ${perInstance} concurrent getOrSet of one cold key, 200 ms loader`,
  );
  console.log("lock    round  loader calls  lease waits  distinct values  wall ms");
  for (const lock of [true, false]) {
    for (let round = 1; round <= rounds; round++) {
      const r = await runStampede({ url: bridge.url, token, instances, perInstance, lock });
      if (r.rejected > 0) throw new Error(`${r.rejected} gets failed`);
      console.log(
        `${String(lock).padEnd(8)}${String(round).padEnd(7)}${String(r.loaderCalls).padEnd(14)}${String(r.lockWaits).padEnd(13)}${String(r.distinct.length).padEnd(17)}${r.ms}`,
      );
    }
  }
} finally {
  await bridge.close();
  await redis.close();
}
