import { ClosedError, StoreError } from "../../errors.js";
import type { LocalEntry } from "../../local.js";
import type { Core } from "../core.js";
import type { Reader } from "../read.js";
import type { Op } from "../trace.js";
import type { Job, Loads, Outcome } from "./load.js";

/** What asking for a key's lease decided: load here (holding it or not), or wait. */
type Asked = { kind: "load" } | { kind: "taken" } | { kind: "held" };

/** Loads `jobs` together (one loader call), resolving to their outcomes in order. */
export type RunMany = (jobs: readonly Job[]) => Promise<Outcome[]>;

/**
 * Loads with a lease in L2 when `lock` asks for one: whoever takes the lease loads; the
 * others wait for its value (woken early when a change of the key arrives) and load
 * themselves only if it never comes.
 */
export class Leases {
  readonly #core: Core;
  readonly #reader: Reader;
  readonly #loads: Loads;
  // Loads waiting for another instance's value, woken early when a change of the key arrives.
  readonly #waiters = new Map<string, Set<() => void>>();

  constructor(core: Core, reader: Reader, loads: Loads) {
    this.#core = core;
    this.#reader = reader;
    this.#loads = loads;
  }

  /** Loads `job`'s key, under a lease when its settings ask for one. */
  async run(job: Job): Promise<Outcome> {
    const store = this.#core.store;
    if (job.o.lock === undefined || store.acquireLease === undefined) return this.#loads.run(job);
    const token = crypto.randomUUID();
    const deadline = this.#core.now() + job.o.lock.wait;
    const asked = await this.#ask(job, token, true);
    if (asked.kind === "load") return this.#loads.run(job);
    if (asked.kind === "taken") {
      return this.#holding([job], token, async () => {
        const seen = await this.#lookAgain(job.key, job.op);
        return [seen ?? (await this.#loads.run(job))];
      }).then((out) => out[0]!);
    }
    return this.#wait(job, token, deadline);
  }

  /**
   * Loads several keys with one call of `many` (the keys this instance may load), under
   * leases when their settings ask for them: keys whose lease another instance holds are
   * waited for one by one, and loaded alone (with `job.loader`) if their value never comes.
   * All jobs share one set of settings.
   */
  async runMany(jobs: readonly Job[], many: RunMany): Promise<Outcome[]> {
    const store = this.#core.store;
    const lock = jobs[0]?.o.lock;
    if (lock === undefined || store.acquireLease === undefined) return many(jobs);
    const token = crypto.randomUUID();
    const deadline = this.#core.now() + lock.wait;
    const asked =
      store.acquireLeases === undefined
        ? await Promise.all(jobs.map((job) => this.#ask(job, token, true)))
        : await this.#askMany(jobs, token);
    const out: Array<Promise<Outcome>> = new Array(jobs.length);
    const free: number[] = [];
    const taken: number[] = [];
    asked.forEach((a, i) => {
      if (a.kind === "held") out[i] = this.#wait(jobs[i]!, token, deadline);
      else (a.kind === "taken" ? taken : free).push(i);
    });
    const mine = this.#holding(
      taken.map((i) => jobs[i]!),
      token,
      async () => {
        // The holders before us may have stored their values and let go since we looked.
        const seen = await this.#lookAgainMany(
          taken.map((i) => jobs[i]!.key),
          jobs[0]?.op,
        );
        const load = [...free, ...taken.filter((_, j) => seen[j] === undefined)].sort(
          (a, b) => a - b,
        );
        const loaded = load.length > 0 ? await many(load.map((i) => jobs[i]!)) : [];
        const byIndex = new Map<number, Outcome>();
        load.forEach((i, j) => {
          byIndex.set(i, loaded[j]!);
        });
        taken.forEach((i, j) => {
          if (seen[j] !== undefined) byIndex.set(i, seen[j]!);
        });
        return [...free, ...taken].map((i) => byIndex.get(i)!);
      },
    );
    [...free, ...taken].forEach((i, j) => {
      out[i] = mine.then((outcomes) => outcomes[j]!);
    });
    return Promise.all(out);
  }

  /** Asks for `job`'s lease once. */
  async #ask(job: Job, token: string, first: boolean): Promise<Asked> {
    const core = this.#core;
    const store = core.store;
    const { key, o } = job;
    const asking = core.now();
    if (job.op !== undefined) job.op.requests++;
    try {
      const asked = store.acquireLease!(core.name, key, token, o.lock!.ttl);
      // The miss's first lease request gets what is left of one store timeout after its
      // read: past that, L2 is too slow to arbitrate and this instance loads itself.
      const answer = first ? await this.#loads.fills.withinTimeout(key, asked) : await asked;
      if (answer === undefined) {
        const late = asked.then(
          (got) => (got === false ? undefined : store.releaseLease?.(core.name, key, token)),
          () => undefined,
        );
        core.keepAlive(late, o.waitUntil);
        return { kind: "load" };
      }
      this.#loads.fills.spend(key, core.now() - asking);
      if (answer === "repaired") core.corrupt(1, key, true);
      return answer === false ? { kind: "held" } : { kind: "taken" };
    } catch (err) {
      // L2 cannot arbitrate: load here rather than not at all.
      core.absorb(core.failed(err, "acquireLease", [key]));
      return { kind: "load" };
    }
  }

  /** Asks for the leases of `jobs`' keys in one request (`Store.acquireLeases`). */
  async #askMany(jobs: readonly Job[], token: string): Promise<Asked[]> {
    const core = this.#core;
    const store = core.store;
    const keys = jobs.map((job) => job.key);
    const { o, op } = jobs[0]!;
    const asking = core.now();
    if (op !== undefined) op.requests++;
    const all = (kind: Asked["kind"]): Asked[] => jobs.map(() => ({ kind }) as Asked);
    try {
      const asked = store.acquireLeases!(core.name, keys, token, o.lock!.ttl);
      // What is left of one store timeout after the read, as for a single lease.
      const answers = await this.#loads.fills.withinTimeout(keys, asked);
      if (answers === undefined) {
        const late = asked.then(
          (got) => {
            const taken = keys.filter((_, i) => got[i] !== false);
            return taken.length > 0 ? store.releaseLeases?.(core.name, taken, token) : undefined;
          },
          () => undefined,
        );
        core.keepAlive(late, o.waitUntil);
        return all("load");
      }
      if (!Array.isArray(answers) || answers.length !== keys.length) {
        throw new StoreError(
          "EC_STORE_ERROR",
          "acquireLeases returned the wrong number of answers",
        );
      }
      const ms = core.now() - asking;
      return answers.map((answer, i) => {
        this.#loads.fills.spend(keys[i]!, ms);
        if (answer === "repaired") core.corrupt(1, keys[i], true);
        return answer === false ? { kind: "held" } : { kind: "taken" };
      });
    } catch (err) {
      // L2 cannot arbitrate: load here rather than not at all.
      core.absorb(core.failed(err, "acquireLease", keys));
      return all("load");
    }
  }

  /** Runs `work` holding the leases of `jobs`, letting each go once its value is in L2. */
  async #holding<T>(jobs: readonly Job[], token: string, work: () => Promise<T>): Promise<T> {
    const core = this.#core;
    const store = core.store;
    try {
      return await work();
    } finally {
      if (jobs.length > 1 && store.releaseLeases !== undefined) {
        // One request for all, once every value is in L2.
        const { o, op } = jobs[0]!;
        const keys = jobs.map((job) => job.key);
        if (op !== undefined) op.requests++;
        const release = Promise.all(keys.map((key) => this.#loads.fills.filled(key)))
          .then(() => store.releaseLeases!(core.name, keys, token))
          .catch((err) => core.absorb(core.failed(err, "releaseLease", keys)));
        core.keepAlive(release, o.waitUntil);
      } else this.#release(jobs, token);
    }
  }

  /** Lets each of `jobs`' leases go once its value is in L2 (one request each). */
  #release(jobs: readonly Job[], token: string): void {
    const core = this.#core;
    // A fill still being written holds the lease.
    for (const { key, o, op } of jobs) {
      if (op !== undefined) op.requests++;
      const release = this.#loads.fills
        .filled(key)
        .then(() => core.store.releaseLease?.(core.name, key, token))
        .catch((err) => core.absorb(core.failed(err, "releaseLease", [key])));
      core.keepAlive(release, o.waitUntil);
    }
  }

  /** Waits for the value of a key whose lease another instance holds, asking again. */
  async #wait(job: Job, token: string, deadline: number): Promise<Outcome> {
    const core = this.#core;
    const { key } = job;
    if (job.background) return { kind: "skipped" };
    core.stats.lockWaits++;
    let delay = 10;
    for (;;) {
      if (core.now() >= deadline) return this.#loads.run(job);
      await this.#nap(key, delay * (0.5 + Math.random() / 2));
      // Closed meanwhile: stop waiting (close() waits for this load) and touch L2 no more.
      if (core.closed) return { kind: "error", error: new ClosedError() };
      delay = Math.min(delay * 2, 250);
      const seen = await this.#lookAgain(key, job.op);
      if (seen !== undefined) return seen;
      const asked = await this.#ask(job, token, false);
      if (asked.kind === "load") return this.#loads.run(job);
      if (asked.kind === "taken") {
        return this.#holding([job], token, async () => {
          const again = await this.#lookAgain(key, job.op);
          return [again ?? (await this.#loads.run(job))];
        }).then((out) => out[0]!);
      }
    }
  }

  /** Wakes the loads waiting on `key` (a change of it arrived). */
  wake(key: string): void {
    const waiters = this.#waiters.get(key);
    if (waiters === undefined) return;
    for (const done of [...waiters]) done();
  }

  /** Wakes every waiting load (the cache is closing). */
  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.wake(key);
  }

  /** A fresh answer for `key` that appeared meanwhile: in L1 (a hub push) or in L2. */
  async #lookAgain(key: string, trace: Op | undefined): Promise<Outcome | undefined> {
    return (await this.#lookAgainMany([key], trace))[0];
  }

  /** {@link Leases.#lookAgain} for several keys, with one L2 read for those L1 lacks. */
  async #lookAgainMany(
    keys: readonly string[],
    trace: Op | undefined,
  ): Promise<Array<Outcome | undefined>> {
    if (keys.length === 0) return [];
    const now = this.#core.now();
    const entries: Array<LocalEntry | undefined> = keys.map((key) => this.#reader.lookup(key, now));
    const missing = keys.filter((_, i) => entries[i] === undefined);
    if (missing.length > 0) {
      const read = (await this.#reader.fromL2(missing, false, trace)).entries;
      let j = 0;
      keys.forEach((_, i) => {
        if (entries[i] === undefined) entries[i] = read[j++];
      });
    }
    return entries.map((entry) => {
      if (entry === undefined) return undefined;
      return entry.negative === undefined
        ? { kind: "value", value: entry.value }
        : { kind: "negative", negative: entry.negative };
    });
  }

  /** Sleeps up to `ms`, waking early when a change of `key` arrives. */
  #nap(key: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.#waiters.get(key);
      if (set === undefined) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      const waiters = set;
      const done = (): void => {
        clearTimeout(timer);
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiters.add(done);
    });
  }
}
