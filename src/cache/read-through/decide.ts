import type { LoadSettings } from "../../load.js";
import type { LocalEntry } from "../../local.js";
import type { Loader } from "../../types.js";
import type { Core } from "../core.js";
import type { Reader } from "../read.js";
import type { Fills } from "./fill.js";
import type { Job, Outcome } from "./load.js";

/** What the callers of a miss get, decided once per miss. */
export type Resolution =
  | { kind: "fresh"; entry: LocalEntry }
  /** Stale within staleWhileRevalidate: served while a refresh runs. */
  | { kind: "stale"; entry: LocalEntry }
  /** L2 could not be read: the last value, within grace, served while a refresh runs. */
  | { kind: "graced"; entry: LocalEntry }
  /** A load that ended after the read was sent answers it. */
  | { kind: "done"; outcome: Outcome; stale: LocalEntry | undefined }
  | { kind: "load"; stale: LocalEntry | undefined };

/** What deciding a miss looks at besides L2's answer. */
export interface Deciding {
  readonly core: Core;
  readonly reader: Reader;
  readonly fills: Fills;
  /** Loads that ended while a read of their key was in flight, and when (in `seq` order). */
  readonly finished: ReadonlyMap<string, { seq: number; outcome: Outcome }>;
  /** Loads running on this instance, by key. */
  readonly running: ReadonlyMap<string, unknown>;
}

/** One miss to decide: its key, loader and settings, and when its L2 read was sent. */
export interface Miss {
  key: string;
  loader: Loader;
  o: LoadSettings;
  t: number;
  /** The read's place in the order of reads and finished loads. */
  asked: number;
  readStarted: number;
}

/**
 * What the callers of a miss get, from what L2 answered (`found`). Background refreshes
 * it calls for are added to `refresh`, for the caller to start (one by one, or together).
 */
export function decide(
  d: Deciding,
  m: Miss,
  found: LocalEntry | undefined,
  failed: boolean,
  refresh: Job[],
): Resolution {
  const { key, loader, o, t, asked, readStarted } = m;
  const now = d.core.now();
  if (found !== undefined && found.expiresAt > now) return { kind: "fresh", entry: found };
  // Past its TTL, or (when L2 failed) what L1 still holds, not vouched for by a sync:
  // usable only as stale. Looked up after the read, so that a change, delete or drop that
  // arrived meanwhile (a sync may have got through where the read did not) counts.
  const down = failed && found === undefined;
  const kept = d.reader.lookupStale(key, t);
  // Held off after a failed load (graceBackoff): served without calling the loader, while
  // L2 still has that very version or cannot be read.
  if (
    kept?.holdUntil !== undefined &&
    kept.holdUntil > now &&
    (down || (found !== undefined && found.version === kept.version))
  ) {
    return { kind: "graced", entry: kept };
  }
  const last = found ?? (down ? kept : undefined);
  // Loaded (or remembered as failed) here while L2 could not take it: good for its TTL.
  if (down && last?.unvouched === true && (last.unvouchedUntil ?? last.expiresAt) > now) {
    return { kind: "fresh", entry: last };
  }
  let stale: LocalEntry | undefined;
  if (last !== undefined && last.negative === undefined) {
    const age = now - last.expiresAt;
    if (age < o.staleWhileRevalidate) {
      refresh.push({ key, loader, o, stale: last, background: true });
      return { kind: "stale", entry: last };
    }
    if (age < o.grace) {
      if (!down) stale = last;
      else {
        // Fail-safe: with L2 unreachable, leases cannot coordinate the instances, so a
        // foreground load on each would hit the origin at once. The caller gets the last
        // value now (the L2 error is reported) and one refresh runs in the background.
        refresh.push({ key, loader, o, stale: last, background: true });
        return { kind: "graced", entry: last };
      }
    }
  }
  // A load of this key that ended after the read was sent answers it: the read missed
  // only because it overtook that load's write.
  const done = d.finished.get(key);
  if (done !== undefined && done.seq > asked) return { kind: "done", outcome: done.outcome, stale };
  // The L2 time of the miss that starts the load; one that joins a running load has its own
  // (charging it to that load would let its write run one store timeout too long).
  if (!d.running.has(key)) d.fills.missed(key, now - readStarted);
  return { kind: "load", stale };
}
