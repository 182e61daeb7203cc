/**
 * Key listing over shards: the shards are listed one after the other, each to its end, under
 * a composite cursor `<shard index>:<that shard's cursor>`.
 * @module
 */

import { InvalidOptionError } from "../errors.js";
import { checkKeysPage, type Store } from "../store/contract.js";

type Page = Parameters<NonNullable<Store["keys"]>>[1];
type Listing = Awaited<ReturnType<NonNullable<Store["keys"]>>>;

/**
 * One page of the keys of `ns` over `stores` (each with `keys`). A page goes on to the next
 * shard while it has room, so a page asks each shard once at most.
 */
export async function shardedKeys(
  stores: readonly Store[],
  ns: string,
  page: Page,
): Promise<Listing> {
  checkKeysPage(page);
  let shard = 0;
  let cursor = "";
  if (page.cursor !== "") {
    const at = page.cursor.indexOf(":");
    shard = at > 0 ? Number(page.cursor.slice(0, at)) : Number.NaN;
    if (!Number.isInteger(shard) || shard < 0 || shard >= stores.length) {
      throw new InvalidOptionError("keys: not a cursor of this store");
    }
    cursor = page.cursor.slice(at + 1);
  }
  const keys: string[] = [];
  while (shard < stores.length) {
    const listing = await stores[shard]!.keys!(ns, {
      prefix: page.prefix,
      cursor,
      limit: page.limit - keys.length,
    });
    keys.push(...listing.keys);
    if (listing.cursor !== "") return { keys, cursor: `${shard}:${listing.cursor}` };
    shard++;
    cursor = "";
    if (keys.length >= page.limit) break;
  }
  return { keys, cursor: shard < stores.length ? `${shard}:` : "" };
}
