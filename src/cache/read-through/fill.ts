import type { Prepared } from "../../envelope.js";
import { EdgeCacheError } from "../../errors.js";
import type { LoadSettings } from "../../load.js";
import type { Core } from "../core.js";
import type { Op } from "../trace.js";
import type { LocalBasis, Writer } from "../write.js";

/**
 * Writes what loads return: within what is left of the store's timeout after the miss's
 * other L2 calls, in one request per load, and into L1 alone when L2 cannot take it.
 */
export class Fills {
  readonly #core: Core;
  readonly #writer: Writer;
  // Ms of L2 time already spent on the miss of each key being loaded (its read, its lease),
  // and fills still being written after their callers were answered (see `within`).
  readonly #spent = new Map<string, number>();
  readonly #filling = new Map<string, Promise<void>>();

  constructor(core: Core, writer: Writer) {
    this.#core = core;
    this.#writer = writer;
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
   * `call`'s answer, or undefined when what is left of the store's timeout after the key's
   * L2 calls so far runs out first.
   */
  async withinTimeout<T>(
    key: string | readonly string[],
    call: Promise<T>,
  ): Promise<T | undefined> {
    const limit = this.#core.store.timeout;
    if (limit === undefined) return call;
    let spent = 0;
    for (const k of typeof key === "string" ? [key] : key) {
      spent = Math.max(spent, this.#spent.get(k) ?? 0);
    }
    const left = limit - spent;
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
  async within(
    key: string | readonly string[],
    fill: Promise<void>,
    o: LoadSettings,
  ): Promise<void> {
    const keys = typeof key === "string" ? [key] : key;
    const done = await this.withinTimeout(
      keys,
      fill.then(() => true as const),
    );
    for (const k of keys) this.#spent.delete(k);
    if (done) return;
    const pending = fill.finally(() => {
      for (const k of keys) if (this.#filling.get(k) === pending) this.#filling.delete(k);
    });
    for (const k of keys) this.#filling.set(k, pending);
    this.#core.keepAlive(pending, o.waitUntil);
  }

  /** A loaded value (or failure) ready to write; undefined (reported) when it cannot be cached. */
  prepare(
    key: string,
    value: unknown,
    o: LoadSettings,
    negative: "error" | "absent" | undefined,
    fromLoader: { tags?: readonly string[]; ttl?: number } = {},
  ): Prepared | undefined {
    const core = this.#core;
    try {
      return core.codec.prepare(
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
      return undefined;
    }
  }

  /**
   * Writes loaded values in one L2 request. A write L2 refuses is reported, not thrown: the
   * callers still get what the loader returned, and L1 keeps it when L2 could not take it.
   */
  async commit(prepared: Prepared[], locals: LocalBasis[], trace?: Op): Promise<void> {
    const core = this.#core;
    try {
      await this.#writer.commit(prepared, true, true, trace);
    } catch (err) {
      core.absorb(
        err instanceof EdgeCacheError
          ? err
          : core.failed(
              err,
              "set",
              prepared.map((p) => p.key),
            ),
      );
      const now = core.now();
      prepared.forEach((p, i) => {
        this.#writer.install(p, locals[i]!, now);
      });
    }
  }
}
