/**
 * Property-based fuzz (fast-check) of every entry point that takes user input, against the
 * real Redis behind the bridge: for every generated call, either it is accepted and its
 * value reads back the same through a fresh cache, or it is refused with a typed input
 * error (EC_INVALID_KEY, EC_INVALID_OPTION, EC_SERIALIZE, EC_VALUE_TOO_LARGE) that quotes
 * no value, and Redis is byte-identical (a DUMP of every key of the namespace), the stats
 * unchanged, the loader not called. What is good or bad is judged by the documented rules
 * (test/fuzz/inputs.ts, values.ts, config.ts), not by asking src/.
 *
 * Runs per property: `EDGECACHE_FUZZ_RUNS` (150 by default, a few seconds in all; 5000 for
 * a long run). A failure prints its seed and path: `EDGECACHE_FUZZ_SEED=<seed>` (with
 * `EDGECACHE_FUZZ_PATH=<path>` and `-t <property>`, straight to the shrunk case) replays it.
 * `EDGECACHE_FUZZ_STATS=1` prints how many calls of each kind were accepted or refused.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { type Cache, createCache } from "../src/index.js";
import { batchCase } from "./fuzz/batch.js";
import { cacheOptionsCase, judgeNamespaceName, namespaceOptionsCase } from "./fuzz/config.js";
import {
  budget,
  check,
  checkRefusal,
  fuzzParameters,
  namespaces,
  noMarker,
  readBack,
  type SerializerName,
  serializerName,
  store,
  tally,
} from "./fuzz/harness.js";
import {
  goodKeyCase,
  invalidateOptionsCase,
  invalidateTagsCase,
  jitterCase,
  judgeLifetime,
  keyCase,
  loaderShapeCase,
  loadOptionsCase,
  setOptionsCase,
  shortTtl,
  tagCase,
} from "./fuzz/inputs.js";
import { expected, topValueCase, type ValueCase } from "./fuzz/values.js";
import { type Case, worst } from "./fuzz/verdict.js";

const parameters = fuzzParameters();
const all: Array<ReturnType<typeof namespaces>> = [];
const spaces = (label: string) => {
  const n = namespaces(label);
  all.push(n);
  return n;
};
afterAll(async () => {
  for (const n of all) await n.close();
  if (process.env.EDGECACHE_FUZZ_STATS) {
    console.info(
      [...tally]
        .map(([what, n]) => `${what}: ${n}`)
        .sort()
        .join("\n"),
    );
  }
});

const verdictOf = (v: ValueCase, s: SerializerName) => (s === "json" ? v.json : v.sj);

/** Throws unless `keys` read back (through a fresh cache) as the values written. */
async function expectStored(
  ns: string,
  serializer: SerializerName,
  written: Array<[key: string, value: ValueCase]>,
): Promise<void> {
  const got = await readBack(
    ns,
    serializer,
    written.map(([k]) => k),
  );
  written.forEach(([key, v], i) => {
    const want = expected(v.value, serializer);
    expect(got[i], `${JSON.stringify(key)} (${v.why}) read back`).toEqual(want);
  });
}

const isGood = (c: Case) => c.verdict === "ok";
const isRecord = (o: unknown): o is Record<string, unknown> =>
  typeof o === "object" && o !== null && !Array.isArray(o);

describe("fuzz: bad input is a typed error and changes nothing; good input round-trips", () => {
  const setSpaces = spaces("set");
  it(
    "set and setWithInvalidate",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          keyCase,
          topValueCase,
          setOptionsCase,
          invalidateOptionsCase,
          serializerName,
          async (invalidate, key, value, setOptions, invalidateOptions, serializer) => {
            const { ns } = await setSpaces.next();
            const options = invalidate ? invalidateOptions : setOptions;
            const verdict = worst(key.verdict, options.verdict, verdictOf(value, serializer));
            await check({
              ns,
              serializer,
              verdict,
              what: `${invalidate ? "setWithInvalidate" : "set"}(${key.why}, ${value.why}, ${options.why}) [${serializer}]`,
              run: (cache) =>
                invalidate
                  ? cache.setWithInvalidate(
                      key.input as string,
                      value.value,
                      options.input as never,
                    )
                  : cache.set(key.input as string, value.value, options.input as never),
              accepted: async (_, probe) => {
                expect(probe.cache.stats().sets).toBe(1);
                await expectStored(ns, serializer, [[key.input as string, value]]);
              },
            });
          },
        ),
        parameters,
      );
    },
    budget(30),
  );

  const manySpaces = spaces("setmany");
  it(
    "setMany: one bad entry refuses the whole batch",
    async () => {
      await fc.assert(
        fc.asyncProperty(batchCase, async (batch) => {
          const { ns } = await manySpaces.next();
          await check({
            ns,
            serializer: batch.serializer,
            verdict: batch.verdict,
            what: `setMany(${batch.why}) [${batch.serializer}]`,
            run: (cache) => cache.setMany(batch.input as never),
            accepted: async (_, probe) => {
              expect(probe.cache.stats().sets).toBe(batch.written.length);
              await expectStored(ns, batch.serializer, batch.written);
            },
          });
        }),
        parameters,
      );
    },
    budget(30),
  );

  const loadSpaces = spaces("getorset");
  it(
    "getOrSet: bad options never call the loader",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          keyCase,
          loaderShapeCase,
          loadOptionsCase,
          // A loader's promise is awaited, so a Promise cannot be a loaded value.
          topValueCase.filter((v) => v.value !== undefined && !(v.value instanceof Promise)),
          serializerName,
          async (key, loaderShape, options, value, serializer) => {
            const { ns, admin } = await loadSpaces.next();
            let calls = 0;
            const loader =
              loaderShape.input === "function"
                ? async () => {
                    calls++;
                    // A loader that takes a moment, as real ones do (timers get a chance).
                    await new Promise((r) => setTimeout(r, 2));
                    return value.value;
                  }
                : loaderShape.input;
            // Background work handed to waitUntil is awaited before reading back.
            const pending: Array<Promise<unknown>> = [];
            const record = isRecord(options.input) ? options.input : undefined;
            const input =
              typeof record?.waitUntil === "function"
                ? { ...record, waitUntil: (p: Promise<unknown>) => void pending.push(p) }
                : options.input;
            const fill = verdictOf(value, serializer);
            await check({
              ns,
              serializer,
              verdict: worst(key.verdict, loaderShape.verdict, options.verdict),
              what: `getOrSet(${key.why}, ${loaderShape.why}, ${options.why}) loading ${value.why} [${serializer}]`,
              setup: async () => {
                if (isGood(key)) await admin.delete(key.input as string);
              },
              run: (cache) => cache.getOrSet(key.input as string, loader as never, input as never),
              refused: () => expect(calls, "loader calls after a refusal").toBe(0),
              accepted: async (result, probe) => {
                await Promise.allSettled(pending);
                expect(calls).toBe(1);
                expect(result).toBe(value.value);
                const [got] = await readBack(ns, serializer, [key.input as string]);
                if (fill === "ok") expect(got).toEqual(expected(value.value, serializer));
                else if (fill === "bad") {
                  expect(got, "an unencodable loaded value is not stored").toBeUndefined();
                  const codes = probe.reported.map((e) => e.code);
                  expect(
                    codes.some((c) => c === "EC_SERIALIZE" || c === "EC_VALUE_TOO_LARGE"),
                  ).toBe(true);
                } else if (got !== undefined) {
                  expect(got).toEqual(expected(value.value, serializer));
                }
              },
            });
          },
        ),
        parameters,
      );
    },
    budget(40),
  );

  const readSpaces = spaces("reads");
  const keysCase = fc.oneof(
    { weight: 5, arbitrary: fc.array(keyCase, { maxLength: 4 }) },
    fc.constantFrom<unknown>("k", null, 5, {}, new Set(["k"]), { length: 1, 0: "k" }),
  );
  type Op = "get" | "has" | "inspect" | "peek" | "delete" | "getMany" | "deleteMany";
  it(
    "reads, deletes and tag invalidation",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom<Op | "invalidateTag" | "invalidateTags">(
            "get",
            "has",
            "inspect",
            "peek",
            "delete",
            "getMany",
            "deleteMany",
            "invalidateTag",
            "invalidateTags",
          ),
          keyCase,
          keysCase,
          tagCase,
          invalidateTagsCase,
          async (op, key, keys, tag, tags) => {
            const { ns, admin } = await readSpaces.next();
            const many = op === "getMany" || op === "deleteMany";
            const list = Array.isArray(keys) ? (keys as Case[]) : undefined;
            let verdict = worst(key.verdict);
            let args: unknown = key.input;
            let what = `${op}(${key.why})`;
            if (many) {
              verdict = list ? worst(...list.map((c) => c.verdict)) : "bad";
              args = list ? list.map((c) => c.input) : keys;
              what = `${op}(${list ? `[${list.map((c) => `${c.why} ${c.verdict}`).join(", ")}]` : "not an array"})`;
            } else if (op === "invalidateTag" || op === "invalidateTags") {
              const c = op === "invalidateTag" ? tag : tags;
              verdict = c.verdict;
              args = c.input;
              what = `${op}(${c.why})`;
            }
            const good = (many ? (list ?? []) : op.startsWith("invalidate") ? [] : [key])
              .filter(isGood)
              .map((c) => c.input as string);
            const stored = (k: string) => ({ key: k, at: 1 });
            await check({
              ns,
              serializer: "superjson",
              verdict,
              what,
              setup: async () => {
                if (good.length > 0) await admin.setMany(good.map((k) => [k, stored(k)]));
              },
              run: (cache) => (cache[op as Op] as (a: unknown) => unknown).call(cache, args),
              accepted: async (result) => {
                if (op === "get") expect(result).toEqual(stored(good[0]!));
                if (op === "has") expect(result).toBe(true);
                if (op === "inspect")
                  expect((result as { value: unknown }).value).toEqual(stored(good[0]!));
                if (op === "getMany") expect(result).toEqual(good.map(stored));
                if (op === "delete" || op === "deleteMany") {
                  const after = await readBack(ns, "superjson", good);
                  expect(after).toEqual(good.map(() => undefined));
                }
              },
            });
          },
        ),
        parameters,
      );
    },
    budget(30),
  );

  it(
    "createCache and namespace(): bad options throw a typed error at construction",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          cacheOptionsCase(store),
          fc.constantFrom<unknown>("child", "a/b", "", 5, null, "x".repeat(120), "a b"),
          namespaceOptionsCase,
          async (options, name, nsOptions) => {
            let cache: Cache;
            try {
              cache = createCache(options.input as never);
            } catch (error) {
              const e = checkRefusal(error, `createCache(${options.why})`);
              if (options.verdict === "ok") {
                throw new Error(`createCache(${options.why}): good options refused: ${e.message}`);
              }
              return;
            }
            try {
              if (options.verdict === "bad") {
                throw new Error(`createCache(${options.why}): bad options accepted`);
              }
              const parentTtl = (options.input as { ttl?: number }).ttl ?? 60_000;
              const o = nsOptions.input;
              const verdict = worst(
                judgeNamespaceName(cache.name, name),
                nsOptions.verdict,
                isRecord(o) ? judgeLifetime(o, parentTtl) : "ok",
              );
              const what = `namespace(${JSON.stringify(name)}, ${nsOptions.why})`;
              try {
                cache.namespace(name as string, o as never);
              } catch (error) {
                const e = checkRefusal(error, what);
                if (verdict === "ok")
                  throw new Error(`${what}: good options refused: ${e.message}`);
                return;
              }
              if (verdict === "bad") throw new Error(`${what}: bad options accepted`);
            } finally {
              await cache.close();
            }
          },
        ),
        // Construction only, no I/O: ten times the runs cost well under a second.
        { ...parameters, numRuns: parameters.numRuns * 10 },
      );
    },
    budget(10),
  );

  const shortSpaces = spaces("short");
  it(
    "short TTLs and jitter near 1 are valid",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          goodKeyCase,
          shortTtl,
          fc.oneof(jitterCase.filter(isGood), fc.constant({ input: 0.999999 } as Case)),
          async (key, ttl, jitter) => {
            const { ns } = await shortSpaces.next();
            const cache = createCache({ store, namespace: ns, logger: false, ttl });
            try {
              await cache.set(key.input as string, 1, { ttl, jitter: jitter.input as number });
              await cache.setMany([[key.input as string, 2, { ttl }]]);
              expect(await cache.getOrSet(key.input as string, () => 3, { ttl })).toBeDefined();
            } catch (error) {
              noMarker(error, "a refusal");
              throw error;
            } finally {
              await cache.close();
            }
          },
        ),
        parameters,
      );
    },
    budget(20),
  );
});
