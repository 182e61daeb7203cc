/**
 * The `tinylfu` L1 policy (`local: { policy: "tinylfu" }`): W-TinyLFU under the same item and
 * byte bounds as the built-in LRU. New entries enter a small LRU window; one pushed out of
 * the window joins the main segmented LRU only if it was used more often (per a
 * {@link FrequencySketch}) than the entry main would evict for it. A hill climber moves the
 * window's share of the bounds toward what raises the hit ratio, so a recency-heavy workload
 * drifts toward plain LRU. See docs/performance.md for the measurements.
 * @module
 */

import type { LocalCache, LocalEntry } from "./local.js";
import { FrequencySketch, hashKey } from "./sketch.js";

/** The segments an entry can be in. */
const WINDOW = 0;
const PROBATION = 1;
const PROTECTED = 2;

/** The window's share of the bounds at the start, before the climber moves it. */
const INITIAL_WINDOW = 0.01;
/** Protected's share of the main segment. */
const PROTECTED_SHARE = 0.8;
/** The climber's first step, and its step after a large change in hit ratio. */
const STEP = 0.0625;
/** Each step is this fraction of the one before while the hit ratio changes little. */
const STEP_DECAY = 0.98;
/**
 * The climber steps after every `maxItems` accesses (at least this many): often enough to
 * follow a working set that moves, where a longer sample would lag behind it.
 */
const CLIMB_SAMPLE = 1_000;
/** A change in hit ratio this large restarts the climb with a full step. */
const RESTART = 0.05;

/** One entry, linked into the LRU list of its segment. */
class Node {
  prev: Node = this;
  next: Node = this;
  /** Hits not yet added to the sketch. */
  hits = 0;
  /** Read since protected last passed over it (its second chance, see `#demote`). */
  referenced = false;
  constructor(
    readonly key: string,
    public entry: LocalEntry,
    readonly hash: number,
    public size: number,
    public segment: number,
  ) {}
}

/** Unlinks `node` from its list. */
function unlink(node: Node): void {
  node.prev.next = node.next;
  node.next.prev = node.prev;
}

/** Links `node` at the most recent end of the list headed by `head`. */
function append(head: Node, node: Node): void {
  const last = head.prev;
  node.prev = last;
  node.next = head;
  last.next = node;
  head.prev = node;
}

/** The bounds of the policy, as resolved from `local` (see `LocalOptions`). */
export interface TinyLfuBounds {
  max: number;
  maxSize: number;
}

class TinyLfuLocal implements LocalCache {
  readonly #map = new Map<string, Node>();
  /** The sentinel heads of each segment's list: `next` is the least recently used. */
  readonly #heads: readonly [Node, Node, Node];
  readonly #count = [0, 0, 0];
  readonly #weight = [0, 0, 0];
  readonly #maxItems: number;
  readonly #maxBytes: number;
  readonly #sketch: FrequencySketch;
  #bytes = 0;
  #evictions = 0;
  // Bounds of the window and of protected, from the window's share.
  #share = INITIAL_WINDOW;
  #windowItems = 1;
  #windowBytes = 0;
  #protectedItems = 0;
  #protectedBytes = 0;
  // Hits and misses so far, and where the sketch last aged and the climber last stepped.
  #hits = 0;
  #misses = 0;
  #agedAt = 0;
  #climbedAt = 0;
  #climbHits = 0;
  readonly #climbSample: number;
  #lastRate = 0;
  #step = STEP;

  constructor(bounds: TinyLfuBounds) {
    this.#maxItems = bounds.max;
    this.#maxBytes = bounds.maxSize;
    this.#sketch = new FrequencySketch(bounds.max);
    this.#climbSample = Math.max(CLIMB_SAMPLE, bounds.max);
    const head = () => new Node("", undefined as unknown as LocalEntry, 0, 0, -1);
    this.#heads = [head(), head(), head()];
    this.#resize();
  }

  get(key: string): LocalEntry | undefined {
    const node = this.#map.get(key);
    if (node === undefined) return undefined;
    // A hit is tallied on the entry and reaches the sketch before anything reads it there
    // (which keeps a hit nearly as cheap as the LRU's). A miss is counted by the `set` that
    // follows it: the cache reads L1 more than once on a miss.
    node.hits++;
    this.#hits++;
    // Protected keeps its order like a clock: a hit only marks the entry, and the entry is
    // moved up when protected's oldest end reaches it (`#demote`). Most hits land there, and
    // a mark costs one write where a move costs six in scattered nodes.
    if (node.segment === PROTECTED) node.referenced = true;
    else if (node.segment === PROBATION) this.#promote(node);
    else {
      unlink(node);
      append(this.#heads[WINDOW], node);
    }
    return node.entry;
  }

  set(key: string, entry: LocalEntry): void {
    const size = Math.max(1, entry.size);
    if (size > this.#maxBytes) {
      this.delete(key); // as the LRU does: it is not kept, nor is an older copy
      return;
    }
    let node = this.#map.get(key);
    if (node !== undefined) {
      this.#weight[node.segment]! += size - node.size;
      this.#bytes += size - node.size;
      node.entry = entry;
      node.size = size;
      unlink(node);
      append(this.#heads[node.segment]!, node);
    } else {
      const hash = hashKey(key);
      this.#sketch.increment(hash);
      const accesses = this.#hits + ++this.#misses;
      if (accesses - this.#agedAt >= this.#sketch.sampleSize) this.#age(accesses);
      if (accesses - this.#climbedAt >= this.#climbSample) this.#climb(accesses);
      node = new Node(key, entry, hash, size, WINDOW);
      this.#map.set(key, node);
      append(this.#heads[WINDOW], node);
      this.#count[WINDOW]!++;
      this.#weight[WINDOW]! += size;
      this.#bytes += size;
    }
    this.#evict();
  }

  delete(key: string): void {
    const node = this.#map.get(key);
    if (node === undefined) return;
    this.#map.delete(key);
    this.#remove(node);
  }

  clear(): void {
    // The entries go, not what is known of how often their keys are used.
    for (const node of this.#map.values()) this.#tally(node);
    this.#map.clear();
    for (const head of this.#heads) head.prev = head.next = head;
    this.#count.fill(0);
    this.#weight.fill(0);
    this.#bytes = 0;
  }

  get size(): number {
    return this.#map.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get evictions(): number {
    return this.#evictions;
  }

  /** Adds the hits tallied on `node` to the sketch. */
  #tally(node: Node): void {
    if (node.hits === 0) return;
    this.#sketch.increment(node.hash, node.hits);
    node.hits = 0;
  }

  /** The estimated number of accesses of the key of `node`. */
  #frequency(node: Node): number {
    this.#tally(node);
    return this.#sketch.frequency(node.hash);
  }

  /** Takes `node` out of its segment (the map is the caller's). */
  #remove(node: Node): void {
    this.#tally(node);
    unlink(node);
    this.#count[node.segment]!--;
    this.#weight[node.segment]! -= node.size;
    this.#bytes -= node.size;
  }

  /** Moves `node` between segments, keeping the totals. */
  #move(node: Node, segment: number): void {
    node.referenced = false;
    unlink(node);
    this.#count[node.segment]!--;
    this.#weight[node.segment]! -= node.size;
    node.segment = segment;
    append(this.#heads[segment]!, node);
    this.#count[segment]!++;
    this.#weight[segment]! += node.size;
  }

  /** A hit in probation: the entry is protected, which may push protected's oldest back. */
  #promote(node: Node): void {
    this.#move(node, PROTECTED);
    this.#demote();
  }

  /**
   * Moves protected's least recently used entries back to probation while protected is over
   * its bounds. An entry read since it was last passed over gets a second chance: unmarked
   * and moved up instead (one pass at most unmarks them all, so this ends).
   */
  #demote(): void {
    const head = this.#heads[PROTECTED];
    while (
      head.next !== head &&
      (this.#count[PROTECTED]! > this.#protectedItems ||
        this.#weight[PROTECTED]! > this.#protectedBytes)
    ) {
      const oldest = head.next;
      if (oldest.referenced) {
        oldest.referenced = false;
        unlink(oldest);
        append(head, oldest);
      } else this.#move(oldest, PROBATION);
    }
  }

  #over(): boolean {
    return this.#map.size > this.#maxItems || this.#bytes > this.#maxBytes;
  }

  /** Drops `node` to stay within bounds. */
  #drop(node: Node): void {
    this.#map.delete(node.key);
    this.#remove(node);
    this.#evictions++;
  }

  /**
   * Restores the bounds: entries past the window's share leave it as candidates for main
   * (at probation's recent end); while the whole is over its bounds, each candidate meets
   * main's least recently used entry, and the less frequently used of the two is dropped.
   */
  #evict(): void {
    const window = this.#heads[WINDOW];
    const probation = this.#heads[PROBATION];
    let candidate: Node | undefined;
    while (
      window.next !== window &&
      (this.#count[WINDOW]! > this.#windowItems || this.#weight[WINDOW]! > this.#windowBytes)
    ) {
      const node = window.next;
      this.#move(node, PROBATION);
      candidate ??= node;
    }
    let victim: Node | undefined = probation.next === probation ? undefined : probation.next;
    while (this.#over()) {
      if (victim === undefined) {
        // Probation is empty: fall back to protected's, then the window's, oldest.
        const next = this.#heads[PROTECTED].next !== this.#heads[PROTECTED] ? PROTECTED : WINDOW;
        const head = this.#heads[next];
        if (head.next === head) return;
        this.#drop(head.next);
        continue;
      }
      if (candidate === undefined || candidate === victim) {
        const next: Node = victim.next;
        if (candidate === victim) candidate = undefined;
        this.#drop(victim);
        victim = next === probation ? undefined : next;
        continue;
      }
      const next: Node = candidate.next;
      if (this.#frequency(candidate) > this.#frequency(victim)) {
        const nextVictim: Node = victim.next;
        this.#drop(victim);
        victim = nextVictim === probation ? undefined : nextVictim;
      } else {
        this.#drop(candidate);
      }
      candidate = next === probation ? undefined : next;
    }
  }

  /** Sets the window's and protected's bounds from the window's share. */
  #resize(): void {
    const share = this.#share;
    this.#windowItems = Math.max(1, Math.floor(this.#maxItems * share));
    this.#windowBytes = Math.floor(this.#maxBytes * share);
    this.#protectedItems = Math.floor((this.#maxItems - this.#windowItems) * PROTECTED_SHARE);
    this.#protectedBytes = Math.floor(this.#maxBytes * (1 - share) * PROTECTED_SHARE);
  }

  /** After each sample of accesses the sketch ages, with the hits tallied so far. */
  #age(accesses: number): void {
    for (const node of this.#map.values()) this.#tally(node);
    this.#sketch.age();
    this.#agedAt = accesses;
  }

  /**
   * After each sample: if the hit ratio rose, move the window's share further the same way,
   * else turn back; steps shrink while the ratio settles and restart when it jumps.
   */
  #climb(accesses: number): void {
    const rate = (this.#hits - this.#climbHits) / (accesses - this.#climbedAt);
    this.#climbedAt = accesses;
    this.#climbHits = this.#hits;
    const change = rate - this.#lastRate;
    const amount = change >= 0 ? this.#step : -this.#step;
    this.#step = Math.abs(change) >= RESTART ? Math.sign(amount) * STEP : STEP_DECAY * amount;
    this.#lastRate = rate;
    const share = Math.min(1, Math.max(0, this.#share + amount));
    if (share === this.#share) return;
    this.#share = share;
    this.#resize();
    this.#demote();
  }
}

/** Creates the `tinylfu` L1 (see `LocalOptions.policy`). */
export function tinyLfuLocal(bounds: TinyLfuBounds): LocalCache {
  return new TinyLfuLocal(bounds);
}
