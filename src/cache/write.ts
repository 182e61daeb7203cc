import { checkTags, type Prepared, tagKey } from "../envelope.js";
import { InvalidKeyError, InvalidOptionError, StoreError } from "../errors.js";
import type { ChangeBatch, ChangeRecord, WriteMeta } from "../store/contract.js";
import type { SetManyEntry } from "../types.js";
import type { Coherence } from "./coherence.js";
import type { Core } from "./core.js";
import { type Op, reached, traced } from "./trace.js";

/** How long a tag's invalidation marker stays in L2: longer than any tagged entry. */
const TAG_MARKER_TTL = 10 * 365 * 24 * 3_600_000;

/** A load's watch on its key (`GuardedL1.watch`) and what its value is at least as new as. */
export interface LocalBasis {
  mark: number;
  basis: number;
  /** The instance had synced when the load started. */
  anchored: boolean;
}

/** What every store write answers. */
interface Answer {
  changes?: ChangeBatch;
  corrupt?: number;
}

/** One write in flight: when it was sent, with what, and whether its values may enter L1. */
interface Written<R> {
  result: R;
  started: number;
  meta: WriteMeta;
  installable: boolean;
}

/**
 * Every write: one template (`#write`) for the L1 bracket, the sync riding along, error
 * typing and forgetting on failure; then what each write does to L1 and tells the hub.
 */
export class Writer {
  readonly #core: Core;
  readonly #coherence: Coherence;

  constructor(core: Core, coherence: Coherence) {
    this.#core = core;
    this.#coherence = coherence;
  }

  /**
   * Sends one write with the sync riding along, inside the L1 bracket. `check` refuses an
   * answer of the wrong shape. On success `done` updates L1 before the bracket closes; on
   * failure `undo` does, and the error is typed.
   */
  async #write<R extends Answer>(
    op: "set" | "delete" | "clear",
    keys: readonly string[],
    send: (meta: WriteMeta) => Promise<R>,
    check: (result: R) => void,
    undo: () => void,
    done: (w: Written<R>) => void,
    trace: Op | undefined,
  ): Promise<Written<R>> {
    const core = this.#core;
    if (trace !== undefined) {
      trace.requests++;
      reached(trace, "l2");
    }
    const started = core.now();
    const meta = this.#coherence.meta();
    const epoch = core.l1.epoch;
    core.l1.begin();
    let written: Written<R>;
    try {
      const result = await send(meta);
      if (result.corrupt) core.corrupt(result.corrupt, undefined, true);
      check(result);
      const installable = this.#coherence.written(result.changes, meta, started, epoch);
      written = { result, started, meta, installable };
    } catch (err) {
      undo();
      core.l1.settle();
      throw core.failed(err, op, keys);
    }
    try {
      done(written);
    } finally {
      core.l1.settle();
    }
    return written;
  }

  /** `setMany`: validates and encodes every entry before the first byte goes out. */
  async setMany(entries: ReadonlyArray<SetManyEntry>): Promise<void> {
    if (!Array.isArray(entries)) {
      throw new InvalidOptionError("setMany expects an array of entries");
    }
    // Bad input changes nothing.
    const prepared = entries.map((entry) => {
      if (!Array.isArray(entry)) {
        throw new InvalidOptionError("setMany entries are [key, value, options?]");
      }
      return this.#core.codec.prepare(entry[0], entry[1], entry[2]);
    });
    if (prepared.length === 0) return;
    const keys = prepared.map((p) => p.key);
    await traced(this.#core.tracing, "set", this.#core.name, keys, (op) =>
      this.commit(prepared, true, false, op),
    );
  }

  /** `deleteMany`: checks every key first; deletes each distinct key once. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    if (!Array.isArray(keys)) throw new InvalidKeyError("deleteMany expects an array of keys");
    for (const key of keys) this.#core.codec.checkKey(key);
    if (keys.length === 0) return;
    const distinct = [...new Set(keys)];
    await traced(this.#core.tracing, "delete", this.#core.name, distinct, (op) =>
      this.delete(distinct, op),
    );
  }

  /** Writes prepared entries to L2, then L1, then tells the hub; throws if L2 did not take them. */
  async commit(
    prepared: Prepared[],
    install = true,
    fromLoad = false,
    trace?: Op,
  ): Promise<number[]> {
    const core = this.#core;
    const keys = prepared.map((p) => p.key);
    // Tags this instance has not seen: read their markers alongside the write, so that
    // reads of what it writes are L1 hits at once.
    const unknown = new Set<string>();
    for (const p of prepared)
      for (const tag of p.tags ?? []) if (!core.tags.knows(tag)) unknown.add(tag);
    const learning = unknown.size > 0 ? core.tags.read([...unknown], trace) : undefined;
    const { result, started, meta } = await this.#write(
      "set",
      keys,
      async (meta) => {
        const result = await core.store.set(
          core.name,
          prepared.map((p) => p.write),
          meta,
        );
        if (learning !== undefined) await learning;
        return result;
      },
      (result) => {
        if (!Array.isArray(result.version) || result.version.length !== prepared.length) {
          throw new StoreError("EC_STORE_ERROR", "store.set returned the wrong number of versions");
        }
      },
      () => core.l1.forget(keys, fromLoad),
      ({ result, started, installable }) => {
        core.stats.sets += prepared.length;
        core.emit("set", { keys });
        // A clear or flush while the write was in flight, or an answer overtaken by a newer
        // sync, leaves the keys out of L1: a later read fetches whatever L2 holds by then.
        prepared.forEach((p, i) => {
          const version = result.version[i]!;
          core.l1.raiseFloor(p.key, version);
          if (!installable || !install) core.l1.delete(p.key);
          // Measured from before the request: the L2 expiry started later, so L1 never
          // outlives it.
          else this.install(p, version, started);
        });
      },
      trace,
    );
    const versions = result.version;
    if (this.#coherence.hub) {
      const elapsed = core.now() - started;
      await this.#coherence.publish([
        {
          op: "set",
          first: versions[0]!,
          last: versions[versions.length - 1]!,
          origin: meta.origin,
          keys: prepared.map((p, i) =>
            p.write.propagate && p.write.ttl - elapsed > 0
              ? {
                  key: p.key,
                  version: versions[i]!,
                  value: p.write.value,
                  ttl: p.write.ttl - elapsed,
                }
              : { key: p.key, version: versions[i]! },
          ),
        },
      ]);
    }
    return versions;
  }

  /** Deletes distinct, checked keys. */
  async delete(keys: string[], trace?: Op): Promise<void> {
    const core = this.#core;
    const { result, meta } = await this.#write(
      "delete",
      keys,
      (meta) => core.store.delete(core.name, keys, meta),
      (result) => {
        if (!Number.isSafeInteger(result.version)) {
          throw new StoreError("EC_STORE_ERROR", "store.delete returned no version");
        }
      },
      () => core.l1.forget(keys),
      ({ result }) => {
        core.stats.deletes += keys.length;
        core.emit("delete", { keys });
        for (const key of keys) {
          core.l1.raiseFloor(key, result.version);
          core.l1.delete(key);
        }
      },
      trace,
    );
    const { version } = result;
    await this.#publish(
      "delete",
      version,
      meta,
      keys.map((key) => ({ key, version })),
    );
  }

  async clear(trace?: Op): Promise<void> {
    const core = this.#core;
    const { result, meta } = await this.#write(
      "clear",
      [],
      (meta) => core.store.clear(core.name, meta),
      () => {},
      // Whether or not L2 applied it, an empty L1 is never wrong.
      () => core.dropAll(),
      () => {
        core.stats.clears++;
        core.emit("clear", {});
        core.dropAll();
      },
      trace,
    );
    await this.#publish("clear", result.version, meta, []);
  }

  /**
   * A marker per tag, written like an entry: its version, from the namespace's counter, is
   * the line below which entries with the tag no longer hold. It reaches the other
   * instances through the change log (and the hub), without its value.
   */
  async invalidateTags(tags: readonly string[], trace?: Op): Promise<void> {
    const core = this.#core;
    const unique = checkTags(tags);
    if (unique === undefined) return;
    core.codec.allowTags(unique);
    const prepared = unique.map((tag) =>
      core.codec.prepare(
        tagKey(tag),
        1,
        { ttl: TAG_MARKER_TTL, propagate: "invalidate", jitter: 0 },
        {},
        true,
      ),
    );
    const versions = await this.commit(prepared, false, false, trace);
    unique.forEach((tag, i) => {
      core.tags.note(tag, versions[i]!);
    });
  }

  #publish(
    op: "delete" | "clear",
    version: number,
    meta: WriteMeta,
    keys: ChangeRecord["keys"],
  ): Promise<void> {
    return this.#coherence.publish([
      { op, first: version, last: version, origin: meta.origin, keys },
    ]);
  }

  /**
   * Puts a prepared write in L1 (a copy, when copies are on), as of `at`: at `version`, or
   * as a local value (see `LocalEntry.unvouched`) when L2 did not take it.
   */
  install(p: Prepared, version: number | LocalBasis, at: number): void {
    const core = this.#core;
    const value = core.copy && p.value !== undefined ? core.copy(p.value) : p.value;
    const entry = core.l1.entry(
      { value, tail: p.tail, negative: p.negative, tags: p.tags },
      typeof version === "number" ? version : version.basis,
      at,
      p.write.ttl,
      p.size,
    );
    if (typeof version === "number") {
      core.l1.install(p.key, entry);
      return;
    }
    if (!version.anchored) {
      // Kept until the first sync drops it; if that sync came during the load, not at all.
      if (core.sync!.cursor >= 0) return;
      this.#coherence.keptUnanchored();
    }
    // Nothing in the log will ever replace it when L2 comes back holding something else:
    // fresh within the staleness bound only, then read from L2 again (see `unvouchedUntil`).
    const bound = core.sync === undefined ? undefined : at + core.sync.settings.maxStaleness;
    core.l1.installLocal(
      p.key,
      bound === undefined || bound >= entry.expiresAt
        ? entry
        : {
            ...entry,
            expiresAt: bound,
            unvouchedUntil: entry.expiresAt,
            staleUntil: Math.max(entry.staleUntil ?? 0, entry.expiresAt),
          },
      version.mark,
    );
  }
}
