/**
 * Which hub shard carries a key: a consistent hash, so that adding a shard moves about
 * 1/(n+1) of the keys. FNV-1a over the key's UTF-16 units, then Lamping and Veach's jump
 * consistent hash.
 */
export function shardOf(key: string, shards: number): number {
  if (shards <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Jump consistent hash, driven by a 32-bit LCG seeded with the key's hash (24 bits of
  // each step are used, plenty for the handful of shards a namespace has).
  let b = -1;
  let j = 0;
  let state = h;
  while (j < shards) {
    b = j;
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    j = Math.floor((b + 1) * ((1 << 24) / ((state >>> 8) + 1)));
  }
  return b;
}

/**
 * Splits records by shard: a set or delete goes to the shard of each of its keys (one
 * record per shard, keeping its versions), a clear to every shard.
 */
export function recordsByShard<R extends { op: string; keys: readonly { key: string }[] }>(
  records: readonly R[],
  shards: number,
): Map<number, R[]> {
  const out = new Map<number, R[]>();
  const add = (shard: number, record: R) => {
    const list = out.get(shard);
    if (list) list.push(record);
    else out.set(shard, [record]);
  };
  for (const record of records) {
    if (record.op === "clear" || shards <= 1) {
      if (shards <= 1) add(0, record);
      else for (let s = 0; s < shards; s++) add(s, record);
      continue;
    }
    const parts = new Map<number, R["keys"][number][]>();
    for (const k of record.keys) {
      const s = shardOf(k.key, shards);
      const list = parts.get(s);
      if (list) list.push(k);
      else parts.set(s, [k]);
    }
    for (const [s, keys] of parts) add(s, { ...record, keys });
  }
  return out;
}
