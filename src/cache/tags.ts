import { tagKey } from "../envelope.js";
import { StoreError } from "../errors.js";
import type { LocalEntry } from "../local.js";
import type { Core } from "./core.js";
import type { Op } from "./trace.js";

/** Keys of tag invalidation markers start with this. */
export const TAG_PREFIX = tagKey("");

/** Most tags whose invalidation version an instance remembers. */
const MAX_TAGS_KNOWN = 10_000;

/**
 * What this instance knows of tag invalidations: the version of each tag's newest
 * invalidation seen (0: none), kept current by the change log and forgotten whenever L1 is
 * dropped whole. Bounded: a forgotten tag is read from L2 again.
 */
export class Tags {
  readonly #core: Core;
  readonly #versions = new Map<string, number>();

  constructor(core: Core) {
    this.#core = core;
  }

  /** Whether this instance has noted `tag`. */
  knows(tag: string): boolean {
    return this.#versions.has(tag);
  }

  /**
   * Whether no tag of `entry` was invalidated after it was written. A tag not seen yet
   * counts as not holding (the entry is read again with its tags' markers); an entry with a
   * tag invalidated after it leaves L1.
   */
  hold(key: string, entry: LocalEntry): boolean {
    const tags = entry.tags!;
    if (this.valid(tags, entry.version)) return true;
    if (tags.some((tag) => (this.#versions.get(tag) ?? 0) > entry.version)) {
      this.#core.l1.delete(key);
    }
    return false;
  }

  /** Whether an entry of `version` with `tags` holds against the noted invalidations. */
  valid(tags: readonly string[], version: number): boolean {
    // Where versions do not compare across keys, a tagged entry (written before tags were
    // refused there) cannot be checked: it never holds.
    if (!this.#core.orderedVersions) return false;
    for (const tag of tags) {
      const v = this.#versions.get(tag);
      if (v === undefined || v > version) return false;
    }
    return true;
  }

  /** Notes that `tag` was invalidated at `version` (keeps the newest). */
  note(tag: string, version: number): void {
    const known = this.#versions.get(tag);
    if (known !== undefined && known >= version) return;
    if (known === undefined && this.#versions.size >= MAX_TAGS_KNOWN) {
      const oldest = this.#versions.keys().next().value;
      if (oldest !== undefined) this.#versions.delete(oldest);
    }
    this.#versions.set(tag, version);
  }

  forgetAll(): void {
    this.#versions.clear();
  }

  /**
   * Reads the invalidation markers of `tags` from L2 and notes their versions. When L2
   * cannot be read, they stay unknown (the entries carrying them count as misses).
   */
  async read(tags: string[], trace?: Op): Promise<void> {
    const core = this.#core;
    if (trace !== undefined) trace.requests++;
    try {
      const { entries } = await core.store.get(core.name, tags.map(tagKey));
      if (!Array.isArray(entries) || entries.length !== tags.length) {
        throw new StoreError("EC_STORE_ERROR", "store.get returned the wrong number of entries");
      }
      tags.forEach((tag, i) => {
        this.note(tag, entries[i]?.version ?? 0);
      });
    } catch (err) {
      // Without coherence a tag's noted version may be old: forget it rather than trust it.
      if (core.sync === undefined) for (const tag of tags) this.#versions.delete(tag);
      core.absorb(core.failed(err, "get", []));
    }
  }
}
