/**
 * Load leases over shards: each key's lease lives on the shard that holds the key, and
 * several keys' leases are asked for (or let go) with one request per shard involved.
 * @module
 */

import { StoreError } from "../errors.js";
import type { Store } from "../store/contract.js";
import { groupByShard } from "./sharded-ring.js";

type Leases = Pick<Store, "acquireLease" | "releaseLease" | "acquireLeases" | "releaseLeases">;

/** The lease methods of a store over `stores`: those that every shard has. */
export function shardedLeases(stores: readonly Store[], shardOf: (key: string) => number): Leases {
  const out: Leases = {};
  if (stores.every((x) => x.acquireLease !== undefined && x.releaseLease !== undefined)) {
    out.acquireLease = (ns, key, token, ttl) =>
      stores[shardOf(key)]!.acquireLease!(ns, key, token, ttl);
    out.releaseLease = (ns, key, token) => stores[shardOf(key)]!.releaseLease!(ns, key, token);
  }
  if (stores.every((x) => x.acquireLeases !== undefined && x.releaseLeases !== undefined)) {
    const byShard = (keys: readonly string[]) => [
      ...groupByShard(shardOf, keys.length, (i) => keys[i]!),
    ];
    out.acquireLeases = async (ns, keys, token, ttl) => {
      const answers: Array<boolean | "repaired"> = new Array(keys.length);
      await Promise.all(
        byShard(keys).map(async ([shard, at]) => {
          const got = await stores[shard]!.acquireLeases!(
            ns,
            at.map((i) => keys[i]!),
            token,
            ttl,
          );
          if (got.length !== at.length) {
            throw new StoreError(
              "EC_STORE_ERROR",
              "acquireLeases returned the wrong number of answers",
            );
          }
          at.forEach((i, j) => {
            answers[i] = got[j]!;
          });
        }),
      );
      return answers;
    };
    out.releaseLeases = async (ns, keys, token) => {
      await Promise.all(
        byShard(keys).map(([shard, at]) =>
          stores[shard]!.releaseLeases!(
            ns,
            at.map((i) => keys[i]!),
            token,
          ),
        ),
      );
    };
  }
  return out;
}
