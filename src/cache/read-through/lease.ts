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
    const [outcome] = await this.runMany([job], (jobs) =>
      Promise.all(jobs.map((one) => this.#loads.run(one))),
    );
    return outcome!;
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
      const asked = await this.#ask(
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

  /**
   * Asks for the leases of `jobs`' keys once: several in one request where the store takes
   * them (`acquireLeases`), else key by key. The first ask of a miss gets what is left of one
   * store timeout after its read: past that, L2 is too slow to arbitrate and this instance
   * loads itself.
   */
  async #ask(jobs: readonly Job[], token: string, first: boolean): Promise<Asked[]> {
    const core = this.#core;
    const store = core.store;
    const batch = jobs.length > 1 && store.acquireLeases !== undefined;
    if (!batch && jobs.length > 1) {
      return (await Promise.all(jobs.map((job) => this.#ask([job], token, first)))).flat();
    }
    const keys = jobs.map((job) => job.key);
    const { o, op } = jobs[0]!;
    const ttl = o.lock!.ttl;
    const asking = core.now();
    if (op !== undefined) op.requests++;
    const all = (kind: Asked["kind"]): Asked[] => jobs.map(() => ({ kind }) as Asked);
    try {
      const asked = batch
        ? store.acquireLeases!(core.name, keys, token, ttl)
        : store.acquireLease!(core.name, keys[0]!, token, ttl).then((answer) => [answer]);
      const answers = first ? await this.#loads.fills.withinTimeout(keys, asked) : await asked;
      if (answers === undefined) {
        // Taken too late to use: let go of what it took once the answer comes.
        const late = asked.then(
          (got) =>
            this.#letGo(
              keys.filter((_, i) => got[i] !== false),
              token,
            ),
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

  /**
   * Runs `work` holding the leases of `jobs`, letting them go once their values are in L2
   * (a fill still being written holds its lease).
   */
  async #holding<T>(jobs: readonly Job[], token: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } finally {
      if (jobs.length > 0) {
        const { o } = jobs[0]!;
        const keys = jobs.map((job) => job.key);
        const release = Promise.all(keys.map((key) => this.#loads.fills.filled(key))).then(() =>
          this.#letGo(keys, token, jobs[0]!.op),
        );
        this.#core.keepAlive(release, o.waitUntil);
      }
    }
  }

  /**
   * Ends the leases `token` holds on `keys`: in one request where the store takes several
   * (`releaseLeases`), else key by key. Failures are reported, never thrown.
   */
  #letGo(keys: readonly string[], token: string, trace?: Op): Promise<void> {
    const core = this.#core;
    const store = core.store;
    const settle = (of: readonly string[], call: () => Promise<void> | undefined) =>
      Promise.resolve()
        .then(call)
        .catch((err) => core.absorb(core.failed(err, "releaseLease", of)));
    if (keys.length > 1 && store.releaseLeases !== undefined) {
      if (trace !== undefined) trace.requests++;
      return settle(keys, () => store.releaseLeases!(core.name, keys, token));
    }
    if (trace !== undefined) trace.requests += keys.length;
    return Promise.all(
      keys.map((key) => settle([key], () => store.releaseLease?.(core.name, key, token))),
    ).then(() => undefined);
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

  /**
   * Fresh answers for `keys` that appeared meanwhile: in L1 (a hub push) or in L2, with one
   * L2 read for those L1 lacks.
   */
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

  /** Sleeps up to `ms`, waking early when a change of any of `keys` arrives. */
  #nap(keys: readonly string[], ms: number): Promise<void> {
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
