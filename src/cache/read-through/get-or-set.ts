import { ClosedError, LoaderError } from "../../errors.js";
import type { LoadSettings } from "../../load.js";
import type { LocalEntry } from "../../local.js";
import type { BatchLoader, Loader } from "../../types.js";
import type { Core } from "../core.js";
import type { Reader } from "../read.js";
import { type Op, traced } from "../trace.js";
import { type Deciding, decide, type Resolution } from "./decide.js";
import type { Leases } from "./lease.js";
import { type Job, type Loads, loaderFailed, loaderTimeout, type Outcome } from "./load.js";

/**
 * `getOrSet` past an L1 hit: concurrent misses of a key share one L2 read and one decision
 * (fresh, stale, graced, or load), and one load per key runs on this instance at a time;
 * each caller waits for it within its own timeouts.
 */
export class ReadThrough {
  readonly #core: Core;
  readonly #reader: Reader;
  readonly #loads: Loads;
  readonly #leases: Leases;
  // Loads running on this instance, by key: concurrent misses join them.
  readonly #running = new Map<string, Promise<Outcome>>();
  // Misses being resolved (L2 read, then a decision), by key.
  readonly #jobs = new Map<string, Promise<Resolution>>();
  // Loads that ended while a read of their key was in flight, and when (in #seq order).
  readonly #finished = new Map<string, { seq: number; outcome: Outcome }>();
  #seq = 0;

  readonly #deciding: Deciding;

  constructor(core: Core, reader: Reader, loads: Loads, leases: Leases) {
    this.#core = core;
    this.#reader = reader;
    this.#loads = loads;
    this.#leases = leases;
    this.#deciding = {
      core,
      reader,
      fills: loads.fills,
      finished: this.#finished,
      running: this.#running,
    };
  }

  /** Loads still running, for `close()` to wait for. */
  running(): Iterable<Promise<Outcome>> {
    return this.#running.values();
  }

  /** A fresh entry's answer: its value, or what a negative entry remembers. */
  cached(entry: LocalEntry, key: string): unknown {
    if (entry.negative === "error") {
      throw new LoaderError("EC_LOADER_FAILED", "the loader failed recently (negative cache)", {
        key,
      });
    }
    return entry.value === undefined ? undefined : this.#core.out(entry.value);
  }

  /** A miss of `key` that L1 could not answer at `t`: {@link ReadThrough.missMany} of one. */
  async miss(key: string, loader: Loader, o: LoadSettings, t: number, op?: Op): Promise<unknown> {
    return (await this.missMany([key], loader, undefined, o, t, op))[0];
  }

  /**
   * Misses of distinct `keys` that L1 could not answer at `t`: one L2 read for those no
   * miss here is resolving yet, then one load through `batch` for every key that needs one
   * and is not loading here already (keys leased by another instance are waited for).
   * Without `batch`, each key loads alone through `loader` (the caller bounds how many at
   * once). Keys resolve as `miss` would resolve them; the first failure rejects.
   */
  async missMany(
    keys: readonly string[],
    loader: Loader,
    batch: BatchLoader | undefined,
    o: LoadSettings,
    t: number,
    op?: Op,
  ): Promise<unknown[]> {
    const core = this.#core;
    const jobs: Array<Promise<Resolution>> = new Array(keys.length);
    const joined: boolean[] = keys.map(() => false);
    const fresh: number[] = [];
    keys.forEach((key, i) => {
      const running = this.#jobs.get(key);
      if (running === undefined) fresh.push(i);
      else {
        core.stats.coalesced++;
        jobs[i] = running;
        joined[i] = true;
      }
    });
    if (fresh.length > 0) {
      const asked = ++this.#seq;
      const readStarted = core.now();
      const freshKeys = fresh.map((i) => keys[i]!);
      const decided = this.#reader.slow(freshKeys, t, true, op).then(({ entries, failed }) => {
        const refresh: Job[] = [];
        const out = freshKeys.map((key, j) =>
          decide(
            this.#deciding,
            { key, loader, o, t, asked, readStarted },
            entries[j],
            failed,
            refresh,
          ),
        );
        if (refresh.length > 0) {
          if (batch !== undefined) this.revalidateMany(refresh, batch);
          else for (const job of refresh) this.revalidate(job);
        }
        return out;
      });
      fresh.forEach((i, j) => {
        jobs[i] = this.#register(
          keys[i]!,
          decided.then((out) => out[j]!),
        );
      });
    }
    const resolved = await Promise.all(jobs);
    const job = (i: number): Job => {
      const r = resolved[i]!;
      const stale = r.kind === "load" || r.kind === "done" ? r.stale : undefined;
      return { key: keys[i]!, loader, o, stale, background: false, op };
    };
    // The keys to load that no load here covers yet: one load for all of them.
    const started = new Map<number, Promise<Outcome>>();
    if (batch !== undefined) {
      const idle = keys
        .map((_key, i) => i)
        .filter((i) => resolved[i]!.kind === "load" && !this.#running.has(keys[i]!));
      if (idle.length > 0) {
        const flights = this.#flights(idle.map(job), batch);
        idle.forEach((i, j) => {
          started.set(i, flights[j]!);
        });
      }
    }
    return Promise.all(resolved.map((r, i) => this.#answer(r, job(i), !joined[i], started.get(i))));
  }

  /** Registers the resolution of a miss of `key` for concurrent misses to join. */
  #register(key: string, started: Promise<Resolution>): Promise<Resolution> {
    this.#jobs.set(key, started);
    const done = () => {
      if (this.#jobs.get(key) !== started) return;
      this.#jobs.delete(key);
      this.#finished.delete(key);
    };
    void started.then(done, done);
    return started;
  }

  /** What a caller gets from the resolution of its miss. */
  #answer(
    r: Resolution,
    job: Job,
    count: boolean,
    started?: Promise<Outcome>,
  ): Promise<unknown> | unknown {
    const core = this.#core;
    const { key } = job;
    switch (r.kind) {
      case "fresh":
        return this.cached(r.entry, key);
      case "stale":
        core.stats.staleHits++;
        core.emit("stale", { key, reason: "swr" });
        return core.out(r.entry.value);
      case "graced":
        core.stats.graceHits++;
        core.emit("stale", { key, reason: "grace" });
        return core.out(r.entry.value);
      case "done":
        return this.#settle({ ...job, stale: r.stale }, r.outcome, false);
      default:
        return this.#waitFor({ ...job, stale: r.stale }, count, started);
    }
  }

  /** Waits for the key's load (joining one in flight), within this caller's timeouts. */
  async #waitFor(job: Job, count: boolean, started?: Promise<Outcome>): Promise<unknown> {
    const { key, o, stale } = job;
    const own = started !== undefined || !this.#running.has(key);
    const flight = started ?? this.#flight(job, count);
    const soft = stale !== undefined ? o.timeout : undefined;
    const hard = o.hardTimeout;
    if (soft === undefined && hard === undefined) return this.#settle(job, await flight, own);
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    const race: Array<Promise<Outcome | "soft" | "hard">> = [flight];
    if (soft !== undefined) {
      race.push(new Promise((r) => timers.push(setTimeout(() => r("soft"), soft))));
    }
    if (hard !== undefined) {
      race.push(new Promise((r) => timers.push(setTimeout(() => r("hard"), hard))));
    }
    const outcome = await Promise.race(race);
    for (const timer of timers) clearTimeout(timer);
    if (typeof outcome !== "string") return this.#settle(job, outcome, own);
    // The load goes on and caches its result; only this caller stops waiting.
    this.#core.keepAlive(flight, o.waitUntil);
    if (outcome === "soft" && stale !== undefined) {
      this.#core.stats.staleHits++;
      this.#core.emit("stale", { key, reason: "swr" });
      return this.#core.out(stale.value);
    }
    const error = loaderTimeout(key, hard as number);
    if (stale !== undefined) return this.#graced(job, stale, error);
    throw error;
  }

  /** What a caller gets from a load's outcome. */
  async #settle(job: Job, result: Outcome, own: boolean): Promise<unknown> {
    const { key, stale } = job;
    let outcome = result;
    let mine = own;
    if (outcome.kind === "skipped") {
      // Joined a background refresh that left the load to another instance: load (or wait
      // for that instance) in the foreground instead.
      mine = !this.#running.has(key);
      outcome = await this.#flight(job, true);
    }
    if (outcome.kind === "private" && !mine) {
      // The value was only for the caller whose load made it: this caller loads its own.
      outcome = await this.#loads.run(job);
    }
    switch (outcome.kind) {
      case "value":
      case "private":
        return outcome.value === undefined ? undefined : this.#core.out(outcome.value);
      case "negative":
        return this.cached(
          { value: undefined, version: 0, expiresAt: 0, size: 0, negative: outcome.negative },
          key,
        );
      case "error": {
        // Closed while waiting on another instance's lease: not a failure of the loader.
        if (outcome.error instanceof ClosedError) throw outcome.error;
        if (stale !== undefined) {
          return this.#graced(job, stale, loaderFailed(outcome.error, key, "the loader failed"));
        }
        throw outcome.error;
      }
      default:
        // A second skip cannot happen: foreground loads never skip.
        throw new LoaderError("EC_LOADER_FAILED", "the load was skipped", { key });
    }
  }

  /**
   * Serves a stale value because the load failed, reports why, and keeps serving it for
   * `graceBackoff` so the failing loader is not called on every read.
   */
  #graced(job: Job, stale: LocalEntry, error: LoaderError): unknown {
    this.#core.stats.graceHits++;
    this.#core.emit("stale", { key: job.key, reason: "grace" });
    this.#core.absorb(error);
    // A load that failed has held the value off already; one still running (past a
    // timeout) has not.
    const running = this.#loads.markOf(job.key);
    if (running !== undefined) this.#loads.holdOff(job.key, stale, job.o, running);
    return this.#core.out(stale.value);
  }

  /** The key's load on this instance: the one in flight, or a new one. Never rejects. */
  #flight(job: Job, count: boolean): Promise<Outcome> {
    const { key } = job;
    const running = this.#running.get(key);
    if (running !== undefined) {
      if (count) this.#core.stats.coalesced++;
      return running;
    }
    return this.#track(key, this.#leases.run(job));
  }

  /** Registers `load` as the key's load on this instance until it ends. Never rejects. */
  #track(key: string, load: Promise<Outcome>): Promise<Outcome> {
    const flight: Promise<Outcome> = load
      .catch((error: unknown): Outcome => ({ kind: "error", error }))
      .then((outcome) => {
        if (this.#running.get(key) === flight) this.#running.delete(key);
        // A read of the key in flight meanwhile may have overtaken this load's write.
        if (outcome.kind !== "skipped" && outcome.kind !== "private" && this.#jobs.has(key)) {
          this.#finished.set(key, { seq: ++this.#seq, outcome });
        }
        return outcome;
      });
    this.#running.set(key, flight);
    return flight;
  }

  /**
   * Starts one load of `jobs`' keys (none running here yet) through `batch`, each key's
   * outcome registered as its load on this instance.
   */
  #flights(jobs: readonly Job[], batch: BatchLoader): Array<Promise<Outcome>> {
    const all = this.#leases.runMany(jobs, (free) => this.#loads.runMany(free, batch));
    return jobs.map((job, i) =>
      this.#track(
        job.key,
        all.then((outcomes) => outcomes[i]!),
      ),
    );
  }

  /**
   * Background refreshes of several keys (stale-while-revalidate), in one load through
   * `batch` for the keys not loading here already; errors are reported.
   */
  revalidateMany(jobs: readonly Job[], batch: BatchLoader): void {
    const idle = jobs.filter((job) => !this.#running.has(job.key));
    if (idle.length === 0) return;
    const core = this.#core;
    const keys = idle.map((job) => job.key);
    const work = traced(core.tracing, "refresh", core.name, keys, async (op) => {
      const outcomes = await Promise.all(
        this.#flights(op ? idle.map((job) => ({ ...job, op })) : idle, batch),
      );
      const failed = outcomes.findIndex((outcome) => outcome.kind === "error");
      // One failed call fails every key it loaded: reported once.
      if (failed !== -1) {
        throw loaderFailed(
          (outcomes[failed] as { error: unknown }).error,
          keys[failed]!,
          "a background refresh failed",
        );
      }
    }).catch((error: unknown) => core.absorb(error as LoaderError));
    core.keepAlive(work, idle[0]!.o.waitUntil);
  }

  /** Stale-while-revalidate: one background refresh per key; errors are reported. */
  revalidate(job: Job): void {
    if (this.#running.has(job.key)) return;
    const core = this.#core;
    const work = traced(core.tracing, "refresh", core.name, [job.key], async (op) => {
      const outcome = await this.#flight(op === undefined ? job : { ...job, op }, true);
      if (outcome.kind === "error") {
        throw loaderFailed(outcome.error, job.key, "a background refresh failed");
      }
    }).catch((error: unknown) => core.absorb(error as LoaderError));
    core.keepAlive(work, job.o.waitUntil);
  }
}
