/**
 * The fault scenario both push transports (the hub, pub/sub) are tested with: writes go on
 * while the test cuts and restarts the transport, then every subscriber must agree with L2.
 */
import { expect } from "vitest";
import { type Cache, createCache } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";
import type { RuntimeSubscriber } from "./spawn.js";

/** Sets, invalidating sets and deletes over `keys` from `writer`, until `stop()`. */
export function churn(writer: Cache, keys: readonly string[]) {
  let round = 0;
  let writing = true;
  const writes = (async () => {
    while (writing) {
      round++;
      const k = keys[round % keys.length]!;
      // Writes must succeed against Redis whatever the transport is doing: it only
      // accelerates.
      if (round % 5 === 0) await writer.setWithInvalidate(k, round);
      else if (round % 7 === 0) await writer.delete(k);
      else await writer.set(k, round);
    }
  })();
  return {
    /** Writes started so far. */
    get round() {
      return round;
    },
    async stop(): Promise<void> {
      writing = false;
      await writes;
    },
  };
}

/**
 * What L2 holds for `keys` must be what every in-process cache and every runtime
 * subscriber holds (L1, if anything) and reads.
 */
export async function expectAgreement(
  store: { url: string; token: string; namespace: string },
  keys: string[],
  caches: Cache[],
  subscribers: RuntimeSubscriber[],
): Promise<void> {
  const truth = await createCache({
    store: upstashStore({ url: store.url, token: store.token }),
    namespace: store.namespace,
    local: false,
    sync: false,
  }).getMany(keys);
  for (const c of caches) {
    expect(keys.map((k) => c.peek(k) ?? null).every((v, i) => v === null || v === truth[i])).toBe(
      true,
    );
    expect(await c.getMany(keys)).toEqual(truth);
  }
  for (const r of subscribers) r.send({ read: keys });
  const answers = await Promise.all(subscribers.map((r) => r.next()));
  for (const a of answers) {
    expect((a as { values: unknown[] }).values).toEqual(truth.map((v) => v ?? null));
  }
}
