import { afterEach, vi } from "vitest";
import type { CacheOptions, LoaderContext } from "../../src/index.js";
import { cluster } from "../helpers.js";

/** A cache on a shared memory store behind a chaos wrapper, and a maker of more instances. */
export function setup(options: Partial<CacheOptions> = {}) {
  const { instance, ...rest } = cluster(options);
  return { ...rest, cache: instance(), make: instance };
}

/** A loader that counts its calls and answers what `answer` says, when `release` is called. */
export function gatedLoader<V>(answer: (n: number) => V | Error) {
  let calls = 0;
  const pending: Array<() => void> = [];
  const contexts: LoaderContext[] = [];
  const loader = (_key: string, ctx: LoaderContext): Promise<V> => {
    const n = ++calls;
    contexts.push(ctx);
    return new Promise<V>((resolve, reject) => {
      pending.push(() => {
        const a = answer(n);
        if (a instanceof Error) reject(a);
        else resolve(a);
      });
    });
  };
  return {
    loader,
    contexts,
    get calls() {
      return calls;
    },
    /** Let every load started so far finish. */
    release() {
      for (const p of pending.splice(0)) p();
    },
  };
}

export const flush = () => new Promise((r) => setTimeout(r, 0));

/** Every file of these tests uses real timers again after each test. */
export function realTimersAfterEach(): void {
  afterEach(() => {
    vi.useRealTimers();
  });
}
