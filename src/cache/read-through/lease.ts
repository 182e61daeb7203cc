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
   * leases when their settings ask for them. Keys whose lease another instance holds are
   * waited for together: one look in L1 and L2 and one lease request per round for all of
   * them, and one call of `many` for those whose lease comes free (or, past `lock.wait`,
   * for all that are left). All jobs share one set of settings.
   */
  async runMany(jobs: readonly Job[], many: RunMany): Promise<Outcome[]> {
    const core = this.#core;
    const lock = jobs[0]?.o.lock;
    if (lock === undefined || core.store.acquireLease === undefined) return many(jobs);
    const { background, op } = jobs[0]!;
    const token = crypto.randomUUID();
    const deadline = core.now() + lock.wait;
    const out: Outcome[] = new Array(jobs.length);
    // Loads started in earlier rounds, still running while the rest wait.
    const loading: Array<Promise<void>> = [];
    let pending = jobs.map((_, i) => i);
    let delay = 10;
    for (let round = 0; ; round++) {
      const asked = await this.#askAll(
        pending.map((i) => jobs[i]!),
        token,
        round === 0,
      );
      const free = pending.filter((_, j) => asked[j]!.kind === "load");
      const taken = pending.filter((_, j) => asked[j]!.kind === "taken");
      pending = pending.filter((_, j) => asked[j]!.kind === "held");
      if (free.length + taken.length > 0) {
        loading.push(this.#loadRound(jobs, free, taken, token, many, out));
      }
      if (pending.length > 0 && background) {
        for (const i of pending) out[i] = { kind: "skipped" };
        pending = [];
      }
      if (pending.length === 0) break;
      if (round === 0) core.stats.lockWaits += pending.length;
      if (core.now() >= deadline) {
        // Waited long enough: load what is left here, without the leases.
        const rest = pending;
        loading.push(
          many(rest.map((i) => jobs[i]!)).then((outcomes) => {
            rest.forEach((i, j) => {
              out[i] = outcomes[j]!;
            });
          }),
        );
        break;
      }
      await this.#nap(
        pending.map((i) => jobs[i]!.key),
        delay * (0.5 + Math.random() / 2),
      );
      // Closed meanwhile: stop waiting (close() waits for these loads) and touch L2 no more.
      if (core.closed) {
        for (const i of pending) out[i] = { kind: "error", error: new ClosedError() };
        break;
      }
      delay = Math.min(delay * 2, 250);
      const seen = await this.#lookAgainMany(
        pending.map((i) => jobs[i]!.key),
        op,
      );
      pending.forEach((i, j) => {
        if (seen[j] !== undefined) out[i] = seen[j]!;
      });
      pending = pending.filter((_, j) => seen[j] === undefined);
      if (pending.length === 0) break;
    }
    await Promise.all(loading);
    return out;
  }

  /**
   * One round's loads: keys this instance may load without a lease (`free`) and those whose
   * lease it took (`taken`, looked up once more first: a holder before may have just
   * written), in one call of `many`; outcomes go into `out`.
   */
  async #loadRound(
    jobs: readonly Job[],
    free: number[],
    taken: number[],
    token: string,
    many: RunMany,
    out: Outcome[],
  ): Promise<void> {
    await this.#holding(
      taken.map((i) => jobs[i]!),
      token,
      async () => {
        const seen = await this.#lookAgainMany(
          taken.map((i) => jobs[i]!.key),
          jobs[0]?.op,
        );
        taken.forEach((i, j) => {
          if (seen[j] !== undefined) out[i] = seen[j]!;
        });
        const load = [...free, ...taken.filter((_, j) => seen[j] === undefined)].sort(
          (a, b) => a - b,
        );
        if (load.length === 0) return;
        const loaded = await many(load.map((i) => jobs[i]!));
        load.forEach((i, j) => {
          out[i] = loaded[j]!;
        });
      },
    );
  }

  /** Asks for the leases of `jobs`' keys: in one request where the store can. */
  #askAll(jobs: readonly Job[], token: string, first: boolean): Promise<Asked[]> {
    if (this.#core.store.acquireLeases !== undefined) return this.#askMany(jobs, token, first);
    return Promise.all(jobs.map((job) => this.#ask(job, token, first)));
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
  async #askMany(jobs: readonly Job[], token: string, first: boolean): Promise<Asked[]> {
    const core = this.#core;
    const store = core.store;
    const keys = jobs.map((job) => job.key);
    const { o, op } = jobs[0]!;
    const asking = core.now();
    if (op !== undefined) op.requests++;
    const all = (kind: Asked["kind"]): Asked[] => jobs.map(() => ({ kind }) as Asked);
    try {
      const asked = store.acquireLeases!(core.name, keys, token, o.lock!.ttl);
      // The first gets what is left of one store timeout after the read, as a single lease.
      const answers = first ? await this.#loads.fills.withinTimeout(keys, asked) : await asked;
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

  /** Sleeps up to `ms`, waking early when a change of `key` (or of any of `key`) arrives. */
  #nap(key: string | readonly string[], ms: number): Promise<void> {
    const keys = typeof key === "string" ? [key] : key;
    return new Promise((resolve) => {
      const sets = keys.map((k) => {
        let set = this.#waiters.get(k);
        if (set === undefined) {
          set = new Set();
          this.#waiters.set(k, set);
        }
        return [k, set] as const;
      });
      const done = (): void => {
        clearTimeout(timer);
        for (const [k, waiters] of sets) {
          waiters.delete(done);
          if (waiters.size === 0 && this.#waiters.get(k) === waiters) this.#waiters.delete(k);
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      for (const [, waiters] of sets) waiters.add(done);
    });
  }
}
