/** A small, seedable PRNG (mulberry32), uniform in [0, 1). */
export function rng(seed: number): () => number;
