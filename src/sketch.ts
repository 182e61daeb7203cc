/**
 * The frequency estimate behind the `tinylfu` L1 policy: a count-min sketch of 4-bit
 * counters in 4 rows, fronted by a doorkeeper (a Bloom filter that absorbs each key's first
 * occurrence, so one-off keys never reach the counters), and aged: after every sample of
 * `10 × capacity` accesses all counters are halved and the doorkeeper is cleared, so the
 * estimate follows what is popular now. See docs/performance.md.
 * @module
 */

/** Multipliers that pick each row's counter from a key's hash (odd, well spread). */
const ROW_SEEDS = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f] as const;
/** Multipliers of the doorkeeper's two probes. */
const DOOR_SEEDS = [0x165667b1, 0xd3a2646d] as const;

/** A 32-bit hash of a key (FNV-1a, then murmur3's finalizer to spread the high bits). */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The smallest power of two at least `n` (and at least 2^4). */
function pow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}

export class FrequencySketch {
  /** 4-bit counters, 8 to a word: row `r` holds counters `[r * rowSize, (r + 1) * rowSize)`. */
  readonly #table: Uint32Array;
  readonly #rowBits: number;
  readonly #rowSize: number;
  readonly #door: Uint32Array;
  readonly #doorBits: number;
  /** How many accesses make a sample: the counters are halved after each. */
  readonly sampleSize: number;

  /** @param capacity most entries the cache holds: it sizes the counters and the sample */
  constructor(capacity: number) {
    const slots = pow2(capacity);
    // Four counters per slot and row keep collisions rare at the cache's full size.
    this.#rowSize = slots * 4;
    this.#rowBits = Math.log2(this.#rowSize);
    this.#table = new Uint32Array((this.#rowSize * 4) / 8);
    // The doorkeeper sees each distinct key of a sample once: 32 bits per slot.
    this.#doorBits = Math.log2(slots * 32);
    this.#door = new Uint32Array((slots * 32) / 32);
    this.sampleSize = 10 * capacity;
  }

  /**
   * Records `times` accesses of the key with `hash`. The sample is counted by the caller,
   * which calls {@link age} after each.
   */
  increment(hash: number, times = 1): void {
    const door = this.#door;
    const shift = 32 - this.#doorBits;
    const d0 = Math.imul(hash, DOOR_SEEDS[0]) >>> shift;
    const d1 = Math.imul(hash, DOOR_SEEDS[1]) >>> shift;
    const m0 = 1 << (d0 & 31);
    const m1 = 1 << (d1 & 31);
    let n = times;
    if ((door[d0 >>> 5]! & m0) === 0 || (door[d1 >>> 5]! & m1) === 0) {
      // A first occurrence (in this sample): only the doorkeeper remembers it.
      door[d0 >>> 5]! |= m0;
      door[d1 >>> 5]! |= m1;
      n--;
    }
    if (n > 0) this.#bump(hash, n);
  }

  /** The estimated number of accesses of the key with `hash` (0 to 16). */
  frequency(hash: number): number {
    const table = this.#table;
    const rowShift = 32 - this.#rowBits;
    let min = 15;
    for (let r = 0; r < 4; r++) {
      const i = r * this.#rowSize + (Math.imul(hash, ROW_SEEDS[r]!) >>> rowShift);
      const count = (table[i >>> 3]! >>> ((i & 7) << 2)) & 15;
      if (count < min) min = count;
    }
    const door = this.#door;
    const shift = 32 - this.#doorBits;
    const d0 = Math.imul(hash, DOOR_SEEDS[0]) >>> shift;
    const d1 = Math.imul(hash, DOOR_SEEDS[1]) >>> shift;
    const seen =
      (door[d0 >>> 5]! & (1 << (d0 & 31))) !== 0 && (door[d1 >>> 5]! & (1 << (d1 & 31))) !== 0;
    return seen ? min + 1 : min;
  }

  /** Adds `n` to the key's counter in each row, up to 15. */
  #bump(hash: number, n: number): void {
    const table = this.#table;
    const rowShift = 32 - this.#rowBits;
    for (let r = 0; r < 4; r++) {
      const i = r * this.#rowSize + (Math.imul(hash, ROW_SEEDS[r]!) >>> rowShift);
      const at = (i & 7) << 2;
      const count = (table[i >>> 3]! >>> at) & 15;
      table[i >>> 3]! += Math.min(n, 15 - count) << at;
    }
  }

  /** Halves every counter and forgets first occurrences: old popularity fades. */
  age(): void {
    const table = this.#table;
    for (let i = 0; i < table.length; i++) table[i] = (table[i]! >>> 1) & 0x77777777;
    this.#door.fill(0);
  }
}
