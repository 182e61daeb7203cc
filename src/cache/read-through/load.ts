import type { Prepared } from "../../envelope.js";
import { EdgeCacheError, LoaderError } from "../../errors.js";
import type { LoadSettings } from "../../load.js";
import type { LocalEntry } from "../../local.js";
import type { Loader, LoaderContext } from "../../types.js";
import type { Core } from "../core.js";
import type { LocalBasis, Writer } from "../write.js";

/** How a load ended, shared by every caller that joined it. */
export type Outcome =
  | { kind: "value"; value: unknown }
  /** The loader asked not to cache or share its value (`ctx.noStore()`). */
  | { kind: "private"; value: unknown }
  | { kind: "negative"; negative: "error" | "absent" }
  | { kind: "error"; error: unknown }
  /** A background refresh found another instance's lease: that instance refreshes. */
  | { kind: "skipped" };

/** One load of one key: what to call, with which settings, over which stale value. */
export interface Job {
  readonly key: string;
  readonly loader: Loader;
  readonly o: LoadSettings;
  /** The stale value it refreshes (stale-while-revalidate, grace), if any. */
  readonly stale: LocalEntry | undefined;
  /** A refresh nobody waits for. */
  readonly background: boolean;
}

/** The error of a load that ran past `hardTimeout`. */
export function loaderTimeout(key: string, ms: number): LoaderError {
  return new LoaderError("EC_LOADER_TIMEOUT", `the loader did not finish within ${ms} ms`, {
    key,
  });
}

/** A loader's failure as a LoaderError (the loader's own error as its cause). */
export function loaderFailed(error: unknown, key: string, message: string): LoaderError {
  return error instanceof LoaderError
    ? error
    : new LoaderError("EC_LOADER_FAILED", message, { key, cause: error });
}

/**
 * Runs loaders and caches what they return: the loader context, the hard timeout, the
 * negative cache, the fill within what is left of the store's timeout, and what L1 keeps
 * when L2 cannot take a value.
 */
export class Loads {
  readonly #core: Core;
  readonly #writer: Writer;
  // The watch mark of the load of each key running here (see `run`).
  readonly #marks = new Map<string, number>();
  // Ms of L2 time already spent on the miss of each key being loaded (its read, its lease),
  // and fills still being written after their callers were answered (see `#fillWithin`).
  readonly #spent = new Map<string, number>();
  readonly #filling = new Map<string, Promise<void>>();

  constructor(core: Core, writer: Writer) {
    this.#core = core;
    this.#writer = writer;
  }

  /** The watch mark of the load of `key` running here, if one is. */
  markOf(key: string): number | undefined {
    return this.#marks.get(key);
  }

  /** The miss of `key` starts its load after an L2 read that took `ms`. */
  missed(key: string, ms: number): void {
    this.#spent.set(key, ms);
  }

  /** Counts `ms` more of L2 time spent on the miss of `key`. */
  spend(key: string, ms: number): void {
    this.#spent.set(key, (this.#spent.get(key) ?? 0) + ms);
  }

  /** Resolves once the fill of `key` still being written (if any) has ended. */
  filled(key: string): Promise<void> {
    return this.#filling.get(key) ?? Promise.resolve();
  }

  /**
   * Calls the loader and caches what it returns (or, with `negativeTtl`, its failure),
   * watching the key meanwhile: what L1 keeps without L2 must not cover a change seen
   * while the loader ran.
   */
  async run(job: Job): Promise<Outcome> {
    const core = this.#core;
    const { key, stale } = job;
    const mark = core.l1.watch(key);
    // The flight's load, for a caller that stops waiting for it (`graced`); a private
    // load running beside it does not replace it.
    if (!this.#marks.has(key)) this.#marks.set(key, mark);
    // What a value loaded now is at least as new as: every change seen so far (the cursor),
    // where versions compare across keys; else the copy it replaces.
    const seen = core.orderedVersions ? (core.sync?.cursor ?? 0) : 0;
    const basis = Math.max(seen, stale?.version ?? 0, 0);
    // Before its first sync an instance has no place in the change log: the first sync
    // starts at the head, so changes made meanwhile never reach what it kept. Such values
    // are dropped with L1 when that sync arrives.
    const anchored = core.sync === undefined || core.sync.cursor >= 0;
    try {
      return await this.#watched(job, { mark, basis, anchored });
    } finally {
      core.l1.unwatch(key);
      if (this.#marks.get(key) === mark) this.#marks.delete(key);
    }
  }

  async #watched(job: Job, local: LocalBasis): Promise<Outcome> {
    const core = this.#core;
    const { key, o, stale } = job;
    core.stats.loads++;
    const controller = new AbortController();
    const hard = o.hardTimeout;
    const timer =
      hard === undefined
        ? undefined
        : setTimeout(() => controller.abort(loaderTimeout(key, hard)), hard);
    const tags: string[] = [];
    let ttl: number | undefined;
    let noStore = false;
    // A refused `ctx.tag` is a mistake in the call, not the loader's failure: not remembered.
    let tagRefused = false;
    const context: LoaderContext = {
      key,
      // Its own copy when copies are on: a loader that changes it must not change L1.
      stale: stale === undefined ? undefined : core.out(stale.value),
      background: job.background,
      signal: controller.signal,
      tag: (...more) => {
        try {
          core.codec.allowTags(more, key);
        } catch (refusal) {
          tagRefused = true;
          throw refusal;
        }
        tags.push(...more);
      },
      setTtl: (ms) => {
        ttl = ms;
      },
      noStore: () => {
        noStore = true;
      },
    };
    let value: unknown;
    const began = core.now();
    try {
      value = await job.loader(key, context);
    } catch (error) {
      core.stats.loadErrors++;
      const outcome = controller.signal.aborted ? "timeout" : "error";
      core.emit("load", { key, ms: core.now() - began, outcome });
      // A value within grace is better than a remembered failure: keep it.
      if (stale !== undefined) this.holdOff(key, stale, o, local.mark);
      else if (o.negativeTtl !== undefined && !tagRefused) {
        await this.#fillWithin(key, this.#store(key, undefined, o, local, "error"), o);
      }
      return { kind: "error", error };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    core.emit("load", { key, ms: core.now() - began, outcome: "ok" });
    if (noStore) return { kind: "private", value };
    if (value === undefined) {
      if (o.negativeTtl !== undefined) {
        await this.#fillWithin(key, this.#store(key, undefined, o, local, "absent"), o);
      }
      return { kind: "value", value: undefined };
    }
    const fill = this.#store(key, value, o, local, undefined, {
      ...(tags.length > 0 ? { tags } : {}),
      ...(ttl === undefined ? {} : { ttl }),
    });
    await this.#fillWithin(key, fill, o);
    return { kind: "value", value };
  }

  /**
   * After a failed load, keeps serving `stale` (within its grace) for `graceBackoff` without
   * calling the loader again: unless the key changed (or L1 was dropped) since the load took
   * `mark`. It is kept as a local value at its own version: any change of the key seen
   * later replaces it, and while L2 is down it is served for the backoff without a refresh.
   */
  holdOff(key: string, stale: LocalEntry, o: LoadSettings, mark: number): void {
    const now = this.#core.now();
    if (o.graceBackoff <= 0 || now - stale.expiresAt >= o.grace) return;
    // Never past grace; and the entry keeps its own freshness (plain reads see it as it was).
    const until = Math.min(now + o.graceBackoff, stale.expiresAt + o.grace);
    this.#core.l1.installLocal(
      key,
      { ...stale, holdUntil: until, staleUntil: Math.max(stale.staleUntil ?? 0, until) },
      mark,
      "same-version",
    );
  }

  /**
   * `call`'s answer, or undefined when what is left of the store's timeout after the key's
   * L2 calls so far runs out first.
   */
  async withinTimeout<T>(key: string, call: Promise<T>): Promise<T | undefined> {
    const limit = this.#core.store.timeout;
    if (limit === undefined) return call;
    const left = limit - (this.#spent.get(key) ?? 0);
    if (left <= 0) {
      call.catch(() => {});
      return undefined;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const out = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), left);
    });
    try {
      return await Promise.race([call, out]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  /**
   * Waits for the write of a loaded value only for what is left of the store's timeout
   * after the miss's other L2 calls: a `getOrSet` on a hung L2 answers within one store
   * timeout plus the loader's own time. The write goes on in the background (holding the
   * key's lease, if any, until it ends).
   */
  async #fillWithin(key: string, fill: Promise<void>, o: LoadSettings): Promise<void> {
    const done = await this.withinTimeout(
      key,
      fill.then(() => true as const),
    );
    this.#spent.delete(key);
    if (done) return;
    const pending = fill.finally(() => {
      if (this.#filling.get(key) === pending) this.#filling.delete(key);
    });
    this.#filling.set(key, pending);
    this.#core.keepAlive(pending, o.waitUntil);
  }

  /**
   * Caches a loaded value. A value that cannot be cached (encoding, size) or a write L2
   * refuses is reported, not thrown: the caller still gets what the loader returned, and
   * L1 keeps it when L2 could not take it.
   */
  async #store(
    key: string,
    value: unknown,
    o: LoadSettings,
    local: LocalBasis,
    negative: "error" | "absent" | undefined,
    fromLoader: { tags?: readonly string[]; ttl?: number } = {},
  ): Promise<void> {
    const core = this.#core;
    let prepared: Prepared;
    try {
      prepared = core.codec.prepare(
        key,
        value,
        {
          ttl: negative === undefined ? o.ttl : (o.negativeTtl as number),
          ...(o.jitter === undefined ? {} : { jitter: o.jitter }),
          ...(o.propagate === undefined ? {} : { propagate: o.propagate }),
          ...(o.tags === undefined || negative !== undefined ? {} : { tags: o.tags }),
        },
        negative === undefined ? { tail: o.tail, ...fromLoader } : { negative },
      );
    } catch (err) {
      core.absorb(err instanceof EdgeCacheError ? err : core.failed(err, "set", [key]));
      return;
    }
    try {
      await this.#writer.commit([prepared], true, true);
    } catch (err) {
      core.absorb(err instanceof EdgeCacheError ? err : core.failed(err, "set", [key]));
      this.#writer.install(prepared, local, core.now());
    }
  }
}
