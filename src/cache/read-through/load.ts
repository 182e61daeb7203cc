import type { Prepared } from "../../envelope.js";
import { LoaderError } from "../../errors.js";
import type { LoadSettings } from "../../load.js";
import type { LocalEntry } from "../../local.js";
import type { BatchLoader, Loader } from "../../types.js";
import type { Core } from "../core.js";
import { loading, type Op, reached } from "../trace.js";
import type { LocalBasis } from "../write.js";
import { asBatch, batchContext, batchValues } from "./batch.js";
import type { Fills } from "./fill.js";

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
  /** The traced operation it loads for, when tracing is on. */
  readonly op?: Op | undefined;
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
  // The watch mark of the load of each key running here (see `run`).
  readonly #marks = new Map<string, number>();
  /** Where loaded values are written (and how much L2 time each miss has spent). */
  readonly fills: Fills;

  constructor(core: Core, fills: Fills) {
    this.#core = core;
    this.fills = fills;
  }

  /** The watch mark of the load of `key` running here, if one is. */
  markOf(key: string): number | undefined {
    return this.#marks.get(key);
  }

  /**
   * Calls the loader and caches what it returns (or, with `negativeTtl`, its failure),
   * watching the key meanwhile: what L1 keeps without L2 must not cover a change seen
   * while the loader ran.
   */
  async run(job: Job): Promise<Outcome> {
    const [outcome] = await this.runMany([job], asBatch(job.loader));
    return outcome!;
  }

  /**
   * {@link Loads.run} for several keys with one call of `batch`, and one L2 write for
   * everything it returns. All jobs share one set of settings.
   */
  async runMany(jobs: readonly Job[], batch: BatchLoader): Promise<Outcome[]> {
    const locals = jobs.map((job) => this.#watch(job));
    try {
      return await this.#watchedMany(jobs, batch, locals);
    } finally {
      jobs.forEach((job, i) => {
        this.#unwatch(job.key, locals[i]!);
      });
    }
  }

  /** Watches `job`'s key while it loads; what a value loaded now is as new as. */
  #watch(job: Job): LocalBasis {
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
    return { mark, basis, anchored };
  }

  #unwatch(key: string, local: LocalBasis): void {
    this.#core.l1.unwatch(key);
    if (this.#marks.get(key) === local.mark) this.#marks.delete(key);
  }

  /** Calls `batch` once for `jobs`' keys and writes what it returns in one request. */
  async #watchedMany(
    jobs: readonly Job[],
    batch: BatchLoader,
    locals: readonly LocalBasis[],
  ): Promise<Outcome[]> {
    const core = this.#core;
    const { o, background, op: trace } = jobs[0]!;
    const keys = jobs.map((job) => job.key);
    core.stats.loads++;
    if (trace !== undefined) {
      trace.loads++;
      reached(trace, "loader");
    }
    const controller = new AbortController();
    const hard = o.hardTimeout;
    const timer =
      hard === undefined
        ? undefined
        : setTimeout(() => controller.abort(loaderTimeout(keys[0]!, hard)), hard);
    const stale = new Map<string, unknown>();
    for (const job of jobs)
      if (job.stale !== undefined) stale.set(job.key, core.out(job.stale.value));
    let tagRefused = false;
    const { context, marks } = batchContext(
      keys,
      stale,
      background,
      controller.signal,
      (tags, key) => core.codec.allowTags(tags, key),
      () => {
        tagRefused = true;
      },
    );
    let values: Map<string, unknown>;
    const began = core.now();
    try {
      const answer = await loading(
        trace,
        keys,
        async () => batch(keys, context),
        () => controller.signal.aborted,
      );
      values = batchValues(keys, answer);
    } catch (error) {
      core.stats.loadErrors++;
      const outcome = controller.signal.aborted ? "timeout" : "error";
      const ms = core.now() - began;
      for (const key of keys) core.emit("load", { key, ms, outcome });
      const negatives: Prepared[] = [];
      const kept: LocalBasis[] = [];
      jobs.forEach((job, i) => {
        // A value within grace is better than a remembered failure: keep it.
        if (job.stale !== undefined) this.holdOff(job.key, job.stale, o, locals[i]!.mark);
        else if (o.negativeTtl !== undefined && !tagRefused) {
          const p = this.fills.prepare(job.key, undefined, o, "error");
          if (p !== undefined) {
            negatives.push(p);
            kept.push(locals[i]!);
          }
        }
      });
      if (negatives.length > 0) {
        await this.fills.within(
          negatives.map((p) => p.key),
          this.fills.commit(negatives, kept, trace),
          o,
        );
      }
      return jobs.map(() => ({ kind: "error", error }));
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    const ms = core.now() - began;
    for (const key of keys) core.emit("load", { key, ms, outcome: "ok" });
    const writes: Prepared[] = [];
    const kept: LocalBasis[] = [];
    const outcomes = jobs.map((job, i): Outcome => {
      const { key } = job;
      const value = values.get(key);
      if (marks.noStore.has(key)) return { kind: "private", value };
      let p: Prepared | undefined;
      if (value === undefined) {
        if (o.negativeTtl !== undefined) p = this.fills.prepare(key, undefined, o, "absent");
      } else {
        const tags = marks.tags.get(key);
        const ttl = marks.ttls.get(key);
        p = this.fills.prepare(key, value, o, undefined, {
          ...(tags === undefined ? {} : { tags }),
          ...(ttl === undefined ? {} : { ttl }),
        });
      }
      if (p !== undefined) {
        writes.push(p);
        kept.push(locals[i]!);
      }
      return { kind: "value", value };
    });
    if (writes.length > 0) {
      await this.fills.within(
        writes.map((p) => p.key),
        this.fills.commit(writes, kept, trace),
        o,
      );
    }
    return outcomes;
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
}
