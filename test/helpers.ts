/**
 * Test helpers: a fake clock, a fetch counter (counts real HTTP requests, it does not fake
 * them), a chaos store wrapper for faults a real Redis cannot be made to produce on cue, and
 * a cluster of cache instances over one such store.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "vitest";
import { StoreError } from "../src/errors.js";
import {
  type CacheOptions,
  createCache,
  type EdgeCacheError,
  isEdgeCacheError,
  memoryStore,
} from "../src/index.js";
import type { Store } from "../src/store/contract.js";

/** A clock tests move by hand. */
export function fakeClock(start = 1_700_000_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

/**
 * Counts the HTTP requests this process sends to `origin` through the global fetch. The
 * requests still go out for real.
 */
export function countRequests(origin: string) {
  const original = globalThis.fetch;
  let count = 0;
  const bodies: unknown[] = [];
  globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url.startsWith(origin)) {
      count++;
      if (typeof init?.body === "string") bodies.push(JSON.parse(init.body));
    }
    return original(input, init);
  }) as typeof fetch;
  return {
    get count() {
      return count;
    },
    /** The JSON bodies sent, for asserting which Redis commands went out. */
    bodies,
    reset() {
      count = 0;
      bodies.length = 0;
    },
    restore() {
      globalThis.fetch = original;
    },
  };
}

export type ChaosMode = "ok" | "fail" | "garble";

/**
 * Wraps a store so a test can make it fail or return garbage on command.
 */
export function chaosStore(inner: Store) {
  let mode: ChaosMode = "ok";
  let calls = 0;
  let gate: Promise<void> | undefined;
  const guard = async <T>(fn: () => Promise<T>): Promise<T> => {
    calls++;
    if (mode === "fail") throw new StoreError("EC_STORE_UNAVAILABLE", "chaos: store down");
    return fn();
  };
  // Reads run against the store at once but their answers wait for the gate: a late answer.
  let nextGate: Promise<void> | undefined;
  let writeGate: Promise<void> | undefined;
  // The write lands in the store at once; its answer waits for the gate.
  // The next write lands in the store, but its answer is lost: a timeout after the fact.
  let loseAnswer = false;
  const lateWrite = async <T>(fn: () => Promise<T>): Promise<T> => {
    const wait = writeGate;
    writeGate = undefined;
    const lose = loseAnswer;
    loseAnswer = false;
    const result = await fn();
    if (lose) throw new StoreError("EC_STORE_TIMEOUT", "chaos: the answer was lost");
    if (wait) await wait;
    return result;
  };
  // The next read hangs until its gate opens, then fails: a request that times out.
  let failGate: Promise<void> | undefined;
  const late = async <T>(fn: () => Promise<T>): Promise<T> => {
    const failing = failGate;
    failGate = undefined;
    if (failing) {
      calls++;
      await failing;
      throw new StoreError("EC_STORE_TIMEOUT", "chaos: the read timed out");
    }
    const wait = nextGate ?? gate;
    nextGate = undefined;
    const result = await guard(fn);
    if (wait) await wait;
    return result;
  };
  const store: Store = {
    name: `chaos(${inner.name})`,
    ...(inner.orderedVersions === undefined ? {} : { orderedVersions: inner.orderedVersions }),
    get: (ns, keys, sync) =>
      late(async () => {
        const r = await inner.get(ns, keys, sync);
        if (mode !== "garble") return r;
        return {
          ...r,
          corrupt: 0,
          entries: r.entries.map((e) => (e ? { ...e, value: "sj:{not json" } : e)),
        };
      }),
    sync: (ns, request) => late(() => inner.sync(ns, request)),
    set: (ns, w, meta) => guard(() => lateWrite(() => inner.set(ns, w, meta))),
    delete: (ns, k, meta) => guard(() => lateWrite(() => inner.delete(ns, k, meta))),
    clear: (ns, meta) => guard(() => lateWrite(() => inner.clear(ns, meta))),
  };
  const { acquireLease, releaseLease } = inner;
  if (acquireLease && releaseLease) {
    store.acquireLease = (ns, key, token, ttl) =>
      guard(() => acquireLease.call(inner, ns, key, token, ttl));
    store.releaseLease = (ns, key, token) => guard(() => releaseLease.call(inner, ns, key, token));
  }
  const { acquireLeases, releaseLeases } = inner;
  if (acquireLeases && releaseLeases) {
    store.acquireLeases = (ns, keys, token, ttl) =>
      guard(() => acquireLeases.call(inner, ns, keys, token, ttl));
    store.releaseLeases = (ns, keys, token) =>
      guard(() => releaseLeases.call(inner, ns, keys, token));
  }
  return {
    store,
    set mode(m: ChaosMode) {
      mode = m;
    },
    get calls() {
      return calls;
    },
    /** Apply the next write at once but hold its answer until the returned function is called. */
    holdNextWrite(): () => void {
      let release!: () => void;
      writeGate = new Promise<void>((r) => {
        release = r;
      });
      return release;
    },
    /** The next write reaches the store, but fails for the caller (its answer is lost). */
    loseNextWriteAnswer(): void {
      loseAnswer = true;
    },
    /** The next read hangs until the returned function is called, then fails (a timeout). */
    failNextReadLater(): () => void {
      let release!: () => void;
      failGate = new Promise<void>((r) => {
        release = r;
      });
      return release;
    },
    /** Hold the answer of the next read only, until the returned function is called. */
    holdNextRead(): () => void {
      let release!: () => void;
      nextGate = new Promise<void>((r) => {
        release = r;
      });
      return release;
    },
    /** Hold the answers of reads started from now on until the returned function is called. */
    holdReads(): () => void {
      let release!: () => void;
      gate = new Promise<void>((r) => {
        release = r;
      });
      return () => {
        gate = undefined;
        release();
      };
    },
  };
}

/**
 * Waits until `check` holds, polling every 5 ms; for conditions another process or a socket
 * brings about. Fails after `ms` rather than hanging.
 */
export async function until(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out waiting for a condition");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Cache instances of namespace "app" on one shared chaos memory store and one fake clock;
 * `defaults` apply to every instance, `instance(extra)` adds to them. Absorbed errors are
 * collected in `errors`.
 */
export function cluster(defaults: Partial<CacheOptions> = {}) {
  const clock = fakeClock();
  const chaos = chaosStore(memoryStore({ now: clock.now }));
  const errors: EdgeCacheError[] = [];
  const instance = (extra: Partial<CacheOptions> = {}) =>
    createCache({
      store: chaos.store,
      namespace: "app",
      now: clock.now,
      onError: (e) => errors.push(e),
      ...defaults,
      ...extra,
    });
  return { clock, chaos, errors, instance };
}

/** The typed error `p` rejects with; fails the test if it resolves or throws anything else. */
export async function rejection(p: Promise<unknown>): Promise<EdgeCacheError> {
  try {
    await p;
  } catch (err) {
    expect(isEdgeCacheError(err)).toBe(true);
    return err as EdgeCacheError;
  }
  throw new Error("expected a rejection");
}

/**
 * A real HTTP server on loopback that accepts requests and never answers: a stalled L2
 * endpoint, for timeouts.
 */
export async function hangingServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(() => {});
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
