import { ClosedError } from "../../errors.js";
import type { LocalEntry } from "../../local.js";
import type { Core } from "../core.js";
import type { Reader } from "../read.js";
import type { Job, Loads, Outcome } from "./load.js";

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
    const core = this.#core;
    const store = core.store;
    const { key, o } = job;
    const lock = o.lock;
    if (lock === undefined || store.acquireLease === undefined) return this.#loads.run(job);
    const token = crypto.randomUUID();
    const deadline = core.now() + lock.wait;
    let delay = 10;
    let waited = false;
    for (let first = true; ; first = false) {
      let taken: boolean;
      const asking = core.now();
      try {
        const asked = store.acquireLease(core.name, key, token, lock.ttl);
        // The miss's first lease request gets what is left of one store timeout after its
        // read: past that, L2 is too slow to arbitrate and this instance loads itself.
        const answer = first ? await this.#loads.withinTimeout(key, asked) : await asked;
        if (answer === undefined) {
          const late = asked.then(
            (got) => (got === false ? undefined : store.releaseLease?.(core.name, key, token)),
            () => undefined,
          );
          core.keepAlive(late, o.waitUntil);
          return this.#loads.run(job);
        }
        this.#loads.spend(key, core.now() - asking);
        if (answer === "repaired") core.corrupt(1, key, true);
        taken = answer !== false;
      } catch (err) {
        // L2 cannot arbitrate: load here rather than not at all.
        core.absorb(core.failed(err, "acquireLease", [key]));
        return this.#loads.run(job);
      }
      if (taken) {
        try {
          // The holder before us may have stored its value and let go since we looked.
          const seen = await this.#lookAgain(key);
          if (seen !== undefined) return seen;
          return await this.#loads.run(job);
        } finally {
          // Let go once the value is in L2 (a fill still being written holds the lease).
          const release = this.#loads
            .filled(key)
            .then(() => store.releaseLease?.(core.name, key, token))
            .catch((err) => core.absorb(core.failed(err, "releaseLease", [key])));
          core.keepAlive(release, o.waitUntil);
        }
      }
      if (job.background) return { kind: "skipped" };
      if (!waited) {
        waited = true;
        core.stats.lockWaits++;
      }
      if (core.now() >= deadline) return this.#loads.run(job);
      await this.#nap(key, delay * (0.5 + Math.random() / 2));
      // Closed meanwhile: stop waiting (close() waits for this load) and touch L2 no more.
      if (core.closed) return { kind: "error", error: new ClosedError() };
      delay = Math.min(delay * 2, 250);
      const seen = await this.#lookAgain(key);
      if (seen !== undefined) return seen;
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
  async #lookAgain(key: string): Promise<Outcome | undefined> {
    let entry: LocalEntry | undefined = this.#reader.lookup(key, this.#core.now());
    if (entry === undefined) entry = (await this.#reader.fromL2([key], false)).entries[0];
    if (entry === undefined) return undefined;
    return entry.negative === undefined
      ? { kind: "value", value: entry.value }
      : { kind: "negative", negative: entry.negative };
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
