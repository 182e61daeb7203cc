import { ClosedError, LoaderError } from "../../errors.js";
import type { LoadSettings } from "../../load.js";
import type { LocalEntry } from "../../local.js";
import type { Loader } from "../../types.js";
import type { Core } from "../core.js";
import type { Reader } from "../read.js";
import type { Leases } from "./lease.js";
import { type Job, type Loads, loaderFailed, loaderTimeout, type Outcome } from "./load.js";

/** What the callers of a miss get, decided once per miss. */
type Resolution =
  | { kind: "fresh"; entry: LocalEntry }
  /** Stale within staleWhileRevalidate: served while a refresh runs. */
  | { kind: "stale"; entry: LocalEntry }
  /** L2 could not be read: the last value, within grace, served while a refresh runs. */
  | { kind: "graced"; entry: LocalEntry }
  /** A load that ended after the read was sent answers it. */
  | { kind: "done"; outcome: Outcome; stale: LocalEntry | undefined }
  | { kind: "load"; stale: LocalEntry | undefined };

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

  constructor(core: Core, reader: Reader, loads: Loads, leases: Leases) {
    this.#core = core;
    this.#reader = reader;
    this.#loads = loads;
    this.#leases = leases;
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

  /** A miss of `key` that L1 could not answer at `t`. */
  async miss(key: string, loader: Loader, o: LoadSettings, t: number): Promise<unknown> {
    const core = this.#core;
    const running = this.#jobs.get(key);
    const joined = running !== undefined;
    let job: Promise<Resolution>;
    if (running !== undefined) {
      core.stats.coalesced++;
      job = running;
    } else {
      const started = this.#resolve(key, loader, o, t);
      job = started;
      this.#jobs.set(key, started);
      const done = () => {
        if (this.#jobs.get(key) !== started) return;
        this.#jobs.delete(key);
        this.#finished.delete(key);
      };
      void started.then(done, done);
    }
    const r = await job;
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
        return this.#settle(
          { key, loader, o, stale: r.stale, background: false },
          r.outcome,
          false,
        );
      default:
        return this.#waitFor({ key, loader, o, stale: r.stale, background: false }, !joined);
    }
  }

  /** Reads L2 for a key L1 could not answer, and decides what the callers get. */
  async #resolve(key: string, loader: Loader, o: LoadSettings, t: number): Promise<Resolution> {
    const core = this.#core;
    const asked = ++this.#seq;
    const readStarted = core.now();
    const { entries, failed } = await this.#reader.slow([key], t, true);
    const now = core.now();
    const found = entries[0];
    if (found !== undefined && found.expiresAt > now) return { kind: "fresh", entry: found };
    // Past its TTL, or (when L2 failed) what L1 still holds, not vouched for by a sync:
    // usable only as stale. Looked up after the read, so that a change, delete or drop that
    // arrived meanwhile (a sync may have got through where the read did not) counts.
    const down = failed && found === undefined;
    const kept = this.#reader.lookupStale(key, t);
    // Held off after a failed load (graceBackoff): served without calling the loader, while
    // L2 still has that very version or cannot be read.
    if (
      kept?.holdUntil !== undefined &&
      kept.holdUntil > now &&
      (down || (found !== undefined && found.version === kept.version))
    ) {
      return { kind: "graced", entry: kept };
    }
    const last = found ?? (down ? kept : undefined);
    // Loaded (or remembered as failed) here while L2 could not take it: good for its TTL.
    if (down && last?.unvouched === true && (last.unvouchedUntil ?? last.expiresAt) > now) {
      return { kind: "fresh", entry: last };
    }
    let stale: LocalEntry | undefined;
    if (last !== undefined && last.negative === undefined) {
      const age = now - last.expiresAt;
      if (age < o.staleWhileRevalidate) {
        this.revalidate({ key, loader, o, stale: last, background: true });
        return { kind: "stale", entry: last };
      }
      if (age < o.grace) {
        if (!down) stale = last;
        else {
          // Fail-safe: with L2 unreachable, leases cannot coordinate the instances, so a
          // foreground load on each would hit the origin at once. The caller gets the last
          // value now (the L2 error is reported) and one refresh runs in the background.
          this.revalidate({ key, loader, o, stale: last, background: true });
          return { kind: "graced", entry: last };
        }
      }
    }
    // A load of this key that ended after the read was sent answers it: the read missed
    // only because it overtook that load's write.
    const done = this.#finished.get(key);
    if (done !== undefined && done.seq > asked)
      return { kind: "done", outcome: done.outcome, stale };
    this.#loads.missed(key, now - readStarted);
    return { kind: "load", stale };
  }

  /** Waits for the key's load (joining one in flight), within this caller's timeouts. */
  async #waitFor(job: Job, count: boolean): Promise<unknown> {
    const { key, o, stale } = job;
    const own = !this.#running.has(key);
    const flight = this.#flight(job, count);
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
    const flight = this.#leases.run(job).then((outcome) => {
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

  /** Stale-while-revalidate: one background refresh per key; errors are reported. */
  revalidate(job: Job): void {
    if (this.#running.has(job.key)) return;
    const work = this.#flight(job, true).then((outcome) => {
      if (outcome.kind === "error") {
        this.#core.absorb(loaderFailed(outcome.error, job.key, "a background refresh failed"));
      }
    });
    this.#core.keepAlive(work, job.o.waitUntil);
  }
}
