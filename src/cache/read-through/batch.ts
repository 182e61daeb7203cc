/**
 * The batch loader's side of `getOrSetMany`: what it may return, its context, and the
 * bridges between batch and per-key loaders.
 * @module
 */
import type {
  BatchLoader,
  BatchLoaderContext,
  Loader,
  LoaderContext,
} from "../../cache-options.js";
import { InvalidOptionError, LoaderError } from "../../errors.js";
import { isRecord } from "../../util/check.js";

/**
 * A batch loader's answer as values by key: a Map or a plain object by key, or an array in
 * the order of `keys`. Anything else is the loader's failure.
 */
export function batchValues(keys: readonly string[], answer: unknown): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (answer instanceof Map) {
    for (const key of keys) if (answer.has(key)) out.set(key, answer.get(key));
  } else if (Array.isArray(answer)) {
    if (answer.length !== keys.length) {
      throw new LoaderError(
        "EC_LOADER_FAILED",
        `the batch loader returned ${answer.length} values for ${keys.length} keys`,
      );
    }
    keys.forEach((key, i) => {
      out.set(key, answer[i]);
    });
  } else if (isRecord(answer)) {
    const record = answer as Record<string, unknown>;
    for (const key of keys) if (Object.hasOwn(record, key)) out.set(key, record[key]);
  } else {
    throw new LoaderError(
      "EC_LOADER_FAILED",
      "a batch loader must return a Map, an object by key or an array in the order of the keys",
    );
  }
  return out;
}

/** Per-key settings a batch loader made through its context. */
export interface BatchMarks {
  readonly tags: Map<string, string[]>;
  readonly ttls: Map<string, number>;
  readonly noStore: Set<string>;
}

/**
 * The context of one batch load. `allowTags` checks tags as `ctx.tag` of a single load
 * does; `refused` is called when it refuses some.
 */
export function batchContext(
  keys: readonly string[],
  stale: ReadonlyMap<string, unknown>,
  background: boolean,
  signal: AbortSignal,
  allowTags: (tags: readonly string[], key: string) => void,
  refused: () => void,
): { context: BatchLoaderContext; marks: BatchMarks } {
  const marks: BatchMarks = { tags: new Map(), ttls: new Map(), noStore: new Set() };
  const asked = new Set(keys);
  const known = (key: string): string => {
    if (typeof key !== "string" || !asked.has(key)) {
      throw new InvalidOptionError("the batch loader named a key it was not asked for");
    }
    return key;
  };
  const context: BatchLoaderContext = {
    keys,
    stale,
    background,
    signal,
    tag: (key, ...more) => {
      known(key);
      try {
        allowTags(more, key);
      } catch (refusal) {
        refused();
        throw refusal;
      }
      const list = marks.tags.get(key);
      if (list === undefined) marks.tags.set(key, [...more]);
      else list.push(...more);
    },
    setTtl: (key, ms) => {
      marks.ttls.set(known(key), ms);
    },
    noStore: (key) => {
      marks.noStore.add(known(key));
    },
  };
  return { context, marks };
}

/** A batch loader as the loader of one key (for loads that run alone). */
export function oneAtATime(batch: BatchLoader): Loader {
  return async (key: string, ctx: LoaderContext) => {
    const stale = new Map<string, unknown>();
    if (ctx.stale !== undefined) stale.set(key, ctx.stale);
    const answer = await batch([key], {
      keys: [key],
      stale,
      background: ctx.background,
      signal: ctx.signal,
      tag: (k, ...tags) => {
        if (k !== key)
          throw new InvalidOptionError("the batch loader named a key it was not asked for");
        ctx.tag(...tags);
      },
      setTtl: (k, ms) => {
        if (k === key) ctx.setTtl(ms);
      },
      noStore: (k) => {
        if (k === key) ctx.noStore();
      },
    });
    return batchValues([key], answer).get(key);
  };
}

/** A per-key loader as a batch loader of one key: a load of one key runs as a batch of one. */
export function asBatch(loader: Loader): BatchLoader {
  return async (keys, ctx) => {
    const key = keys[0]!;
    const context: LoaderContext = {
      key,
      stale: ctx.stale.get(key),
      background: ctx.background,
      signal: ctx.signal,
      tag: (...tags) => ctx.tag(key, ...tags),
      setTtl: (ms) => ctx.setTtl(key, ms),
      noStore: () => ctx.noStore(key),
    };
    return [await loader(key, context)];
  };
}

/** `fn` called at most `limit` at a time; the others queue in order. */
export function limited<A extends unknown[], R>(
  limit: number,
  fn: (...args: A) => Promise<R> | R,
): (...args: A) => Promise<R> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (...args: A) => {
    if (active >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    active++;
    try {
      return await fn(...args);
    } finally {
      active--;
      queue.shift()?.();
    }
  };
}
