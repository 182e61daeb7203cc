import type { Store } from "../store/contract.js";

type Handlers = Parameters<NonNullable<Store["subscribe"]>>[1];

/**
 * One stream per shard, seen as one: open once every shard's is open, ended (all of them
 * closed) as soon as any one ends. Records keep their shard's raw versions, which is what
 * the cache compares per key. `undefined` unless every shard can subscribe.
 */
export function subscribeAll(
  stores: readonly Store[],
): ((namespace: string, handlers: Handlers) => { close(): void }) | undefined {
  if (!stores.every((s) => typeof s.subscribe === "function")) return undefined;
  return (namespace, handlers) => {
    let ended = false;
    let opened = 0;
    const seen = new Set<number>();
    const subs: Array<{ close(): void }> = [];
    const closeAll = () => {
      for (const sub of subs) sub.close();
    };
    stores.forEach((store, i) => {
      if (ended) return;
      subs.push(
        store.subscribe!(namespace, {
          open() {
            // A shard that opens again after the others counted it changes nothing.
            if (ended || seen.has(i)) return;
            seen.add(i);
            if (++opened === stores.length) handlers.open();
          },
          records(records) {
            if (!ended) handlers.records(records);
          },
          end(error) {
            if (ended) return;
            ended = true;
            closeAll();
            handlers.end(error);
          },
        }),
      );
    });
    return {
      close() {
        ended = true;
        closeAll();
      },
    };
  };
}
