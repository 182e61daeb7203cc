import { Breaker, guardStore, resolveBreaker } from "../breaker.js";
import type { CacheOptions } from "../cache-options.js";
import { resolveOptions } from "../options.js";
import type { Store } from "../store/contract.js";
import { Coherence } from "./coherence.js";
import { Core } from "./core.js";
import type { Inherited } from "./namespace.js";
import { Reader } from "./read.js";
import { Fills } from "./read-through/fill.js";
import { ReadThrough } from "./read-through/get-or-set.js";
import { Leases } from "./read-through/lease.js";
import { Loads } from "./read-through/load.js";
import { Writer } from "./write.js";

/** The parts of one cache, wired together. */
export interface Parts {
  core: Core;
  breaker: Breaker | undefined;
  /** The cache's default TTL. */
  ttl: number;
  coherence: Coherence;
  reader: Reader;
  writer: Writer;
  leases: Leases;
  readThrough: ReadThrough;
}

/**
 * Builds a cache's parts from its options: a namespace shares its parent's store and
 * breaker (`inherited`); a top-level cache guards its store with a breaker of its own.
 */
export function assemble(options: CacheOptions, inherited: Inherited | undefined): Parts {
  const o = resolveOptions(options);
  let store: Store;
  let breaker: Breaker | undefined;
  if (inherited) {
    store = inherited.store;
    breaker = inherited.breaker;
  } else {
    const settings = resolveBreaker(options.breaker);
    breaker = settings && new Breaker(settings, o.now, o.namespace);
    store = breaker ? guardStore(o.store, breaker) : o.store;
  }
  const core = new Core(o, store);
  const coherence = new Coherence(core, o);
  const reader = new Reader(core, coherence);
  const writer = new Writer(core, coherence);
  const loads = new Loads(core, new Fills(core, writer));
  const leases = new Leases(core, reader, loads);
  const readThrough = new ReadThrough(core, reader, loads, leases);
  coherence.changed = (key) => leases.wake(key);
  if (breaker && !inherited) breaker.changed = (state) => core.emit("breaker", { state });
  return { core, breaker, ttl: o.ttl, coherence, reader, writer, leases, readThrough };
}
