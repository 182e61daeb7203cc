/**
 * Cache statistics in the Prometheus text exposition format (version 0.0.4), as served by
 * the admin API's `GET /metrics` ({@link cacheAdmin}).
 *
 * @module
 */
import type { CacheStats } from "../../types.js";

/** One cache's statistics, labelled with its namespace. */
export interface NamespaceStats {
  /** The cache's namespace (`cache.name`), the value of the `namespace` label. */
  readonly namespace: string;
  /** What `cache.stats()` returned. */
  readonly stats: CacheStats;
}

/** The `Content-Type` of {@link prometheusMetrics}' output. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Kind = "counter" | "gauge";

/** One metric family: its samples for one cache (none when the feature is off). */
interface Family {
  readonly name: string;
  readonly kind: Kind;
  readonly help: string;
  readonly samples: (
    stats: CacheStats,
  ) => ReadonlyArray<readonly [labels: Record<string, string>, value: number]>;
  /**
   * For state several caches share (a parent's breaker, which its namespaces use): the
   * namespace that owns it. It is reported once, under that name, so sums over the
   * `namespace` label count it once.
   */
  readonly owner?: (stats: CacheStats) => string | undefined;
}

const one = (value: number | undefined) => (value === undefined ? [] : [[{}, value] as const]);

const counter = (name: string, help: string, read: (s: CacheStats) => number | undefined) => ({
  name: `edgecache_${name}_total`,
  kind: "counter" as const,
  help,
  samples: (s: CacheStats) => one(read(s)),
});

const gauge = (name: string, help: string, read: (s: CacheStats) => number | undefined) => ({
  name: `edgecache_${name}`,
  kind: "gauge" as const,
  help,
  samples: (s: CacheStats) => one(read(s)),
});

const BREAKER_STATES = ["closed", "open", "half-open"] as const;
const breakerOwner = (s: CacheStats) => s.breaker?.owner;

/** Every family, in output order. Counters end in `_total`, as the format's conventions ask. */
const FAMILIES: readonly Family[] = [
  counter("l1_hits", "Reads answered from L1.", (s) => s.l1Hits),
  counter("l1_misses", "Reads that found nothing fresh in L1.", (s) => s.l1Misses),
  counter("l2_hits", "L1 misses answered from L2.", (s) => s.l2Hits),
  counter("l2_misses", "L1 misses that L2 could not answer.", (s) => s.l2Misses),
  counter("sets", "Entries written.", (s) => s.sets),
  counter("deletes", "Keys deleted.", (s) => s.deletes),
  counter("clears", "Namespace clears.", (s) => s.clears),
  counter("errors", "Errors absorbed or thrown by L2 operations.", (s) => s.errors),
  counter("corrupt", "L2 entries that could not be decoded.", (s) => s.corrupt),
  counter("l1_evictions", "Entries L1 dropped to stay within its bounds.", (s) => s.l1Evictions),
  counter("syncs", "Change-log reads applied.", (s) => s.syncs),
  counter(
    "changes_applied",
    "Key changes from other instances applied to L1.",
    (s) => s.changesApplied,
  ),
  counter("flushes", "Times L1 was dropped whole.", (s) => s.flushes),
  counter("loads", "Loader calls made by this instance.", (s) => s.loads),
  counter("load_errors", "Loader calls that threw or timed out.", (s) => s.loadErrors),
  counter("coalesced", "Reads that joined a load already running here.", (s) => s.coalesced),
  counter("lock_waits", "Loads that waited for another instance's lease.", (s) => s.lockWaits),
  counter(
    "stale_hits",
    "Stale values served at once (stale-while-revalidate).",
    (s) => s.staleHits,
  ),
  counter("grace_hits", "Stale values served because the loader or L2 failed.", (s) => s.graceHits),
  gauge("l1_items", "Entries in L1.", (s) => s.l1Items),
  gauge("l1_bytes", "Bytes budgeted in L1.", (s) => s.l1Bytes),
  gauge("sync_lag", "Versions behind the change-log head at the last sync.", (s) => s.syncLag),
  gauge("cursor", "The last change-log version applied (-1 before the first).", (s) => s.cursor),
  {
    name: "edgecache_breaker_state",
    kind: "gauge",
    help: "The L2 circuit breaker's state: 1 for the current one, 0 for the others.",
    samples: (s) =>
      s.breaker === undefined
        ? []
        : BREAKER_STATES.map((state) => [{ state }, s.breaker!.state === state ? 1 : 0] as const),
    owner: breakerOwner,
  },
  {
    ...gauge("breaker_failures", "Consecutive L2 failures counted by the breaker.", (s) =>
      s.breaker === undefined ? undefined : s.breaker.failures,
    ),
    owner: breakerOwner,
  },
  {
    ...counter("breaker_opens", "Times the circuit breaker opened.", (s) => s.breaker?.opens),
    owner: breakerOwner,
  },
  {
    ...counter("breaker_rejected", "L2 calls refused while the breaker was open.", (s) =>
      s.breaker === undefined ? undefined : s.breaker.rejected,
    ),
    owner: breakerOwner,
  },
  gauge(
    "hub_healthy",
    "1 when every hub shard is connected and caught up (an instance that only publishes: when its last publish succeeded), else 0.",
    (s) => s.hub && (s.hub.healthy ? 1 : 0),
  ),
  gauge(
    "hub_subscribed",
    "1 when this instance subscribes to the hub, 0 when it only publishes.",
    (s) => s.hub && (s.hub.subscribed ? 1 : 0),
  ),
  gauge("hub_connected", "Hub shard sockets open now.", (s) => s.hub?.connected),
  counter("hub_reconnects", "Hub socket reconnections.", (s) => s.hub?.reconnects),
  counter("hub_frames_received", "Frames received from the hub.", (s) => s.hub?.framesReceived),
  counter("hub_frames_dropped", "Hub frames dropped as malformed.", (s) => s.hub?.framesDropped),
  counter("hub_published", "Change records published to the hub.", (s) => s.hub?.published),
  counter("hub_publish_errors", "Failed hub publishes.", (s) => s.hub?.publishErrors),
];

/** A label value, escaped as the format asks: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text: backslash and line feed are escaped. */
const escapeHelp = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

/**
 * Renders caches' statistics as Prometheus text (exposition format 0.0.4): one `# HELP`
 * and one `# TYPE` line per metric family, then one sample per cache with a `namespace`
 * label. Counters end in `_total`; `l1_items`, `l1_bytes`, `sync_lag`, `cursor`,
 * `breaker_state` (one sample per state, 1 for the current one), `breaker_failures`,
 * `hub_healthy`, `hub_subscribed` and `hub_connected` are gauges. Breaker and hub families appear only for
 * caches that have them. A breaker is reported once, labelled with the namespace that owns
 * it, however many of its namespaces are listed.
 *
 * @example
 * ```ts
 * const body = prometheusMetrics([{ namespace: cache.name, stats: cache.stats() }]);
 * return new Response(body, { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
 * ```
 */
export function prometheusMetrics(caches: readonly NamespaceStats[]): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    const rows: string[] = [];
    const owners = new Set<string>();
    for (const { namespace: name, stats } of caches) {
      let namespace = name;
      const owner = family.owner?.(stats);
      if (owner !== undefined) {
        if (owners.has(owner)) continue;
        owners.add(owner);
        namespace = owner;
      }
      for (const [labels, value] of family.samples(stats)) {
        const pairs = Object.entries({ namespace, ...labels })
          .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
          .join(",");
        rows.push(`${family.name}{${pairs}} ${formatValue(value)}`);
      }
    }
    // A family with no samples (no cache has a breaker, say) is left out altogether.
    if (rows.length === 0) continue;
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`);
    lines.push(`# TYPE ${family.name} ${family.kind}`);
    lines.push(...rows);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
