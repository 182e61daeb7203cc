/**
 * The invalidation hub's wire protocol, shared by the Durable Object (`edgecache/cloudflare`)
 * and the subscribers and publishers in the core.
 *
 * HTTP, on the Worker that hosts the hub:
 * - `GET /hub/:namespace?shard=<i>&token=<subscribe token>` with `Upgrade: websocket`:
 *   a subscription to shard `i` of the namespace (subscribers connect to every shard).
 * - `POST /hub/:namespace/publish` with `Authorization: Bearer <publish token>` and a
 *   {@link PublishFrame} body: fans the records out; answers `202 {"accepted": n}`.
 *
 * WebSocket frames are JSON text, except `"ping"`, which the hub answers `"pong"` without
 * waking up:
 * - hub → subscriber: {@link ChangesFrame}: at once when the hub's pacing allows a frame
 *   (after a frame to `n` sockets, the next waits `n / 20,000` s, between 5 ms and
 *   {@link BATCH_MS} ms), otherwise batched until it does or {@link BATCH_RECORDS} records
 *   wait;
 * - subscriber → hub: {@link PublishFrame}, accepted only on sockets whose token carries the
 *   publish role.
 *
 * The hub is an accelerator: the change log in Redis stays the source of truth, so a lost
 * frame costs latency, never coherence.
 *
 * @module
 */
import { utf8Length } from "../codec.js";
import type { ChangeRecord } from "../store/contract.js";

/** Records sent by a publisher: exactly the change-log records its write appended. */
export interface PublishFrame {
  t: "publish";
  records: ChangeRecord[];
}

/** Records fanned out to the subscribers of one shard. */
export interface ChangesFrame {
  t: "changes";
  shard: number;
  records: ChangeRecord[];
}

/**
 * The longest the hub holds a record back to batch it, in ms: its pacing (by fan-out cost, see
 * `src/cloudflare/pacing.ts`) never waits longer between frames, which is the pace of a hub
 * with 1,000 sockets or more (at most one frame per this many ms, plus one per
 * BATCH_RECORDS records).
 */
export const BATCH_MS = 50;
/** Most records in one frame. */
export const BATCH_RECORDS = 100;
/** Largest frame the hub or a subscriber accepts, in bytes; larger ones are dropped. */
export const MAX_FRAME_BYTES = 1 << 20;
/** Most records in one publish. */
export const MAX_PUBLISH_RECORDS = 1000;

/** The name of the Durable Object that serves shard `shard` of `namespace`. */
export function hubObjectName(namespace: string, shard: number): string {
  return `${namespace}#${shard}`;
}

const OPS = new Set(["set", "delete", "clear"]);

/**
 * Validates one record from the wire; `undefined` when it is not a well-formed
 * {@link ChangeRecord}. Both ends use it, so a malformed record is dropped, never applied.
 */
export function parseRecord(value: unknown): ChangeRecord | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const r = value as Record<string, unknown>;
  const { op, first, last, origin, keys } = r;
  if (typeof op !== "string" || !OPS.has(op)) return undefined;
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last)) return undefined;
  if ((first as number) < 1 || (last as number) < (first as number)) return undefined;
  if (typeof origin !== "string" || origin.length > 64) return undefined;
  if (!Array.isArray(keys) || keys.length > 10_000) return undefined;
  const out: ChangeRecord["keys"][number][] = [];
  for (const k of keys) {
    if (typeof k !== "object" || k === null) return undefined;
    const { key, version, value: v, ttl } = k as Record<string, unknown>;
    if (typeof key !== "string" || key.length === 0 || !Number.isSafeInteger(version)) {
      return undefined;
    }
    if (v === undefined) out.push({ key, version: version as number });
    else if (typeof v === "string" && typeof ttl === "number" && Number.isFinite(ttl)) {
      out.push({ key, version: version as number, value: v, ttl });
    } else return undefined;
  }
  return {
    op: op as ChangeRecord["op"],
    first: first as number,
    last: last as number,
    origin,
    keys: out,
  };
}

/**
 * Parses a frame of records (`{ t, records }`), dropping it whole when anything in it is
 * malformed. `kind` is the `t` expected.
 */
export function parseFrame(
  text: unknown,
  kind: "changes" | "publish",
): { shard?: number; records: ChangeRecord[] } | undefined {
  if (typeof text !== "string" || text.length > MAX_FRAME_BYTES) return undefined;
  // Characters undercount bytes; count exactly only when it can matter.
  if (text.length * 3 > MAX_FRAME_BYTES && utf8Length(text) > MAX_FRAME_BYTES) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const frame = parsed as Record<string, unknown>;
  if (frame.t !== kind || !Array.isArray(frame.records)) return undefined;
  if (frame.records.length > MAX_PUBLISH_RECORDS) return undefined;
  const records: ChangeRecord[] = [];
  for (const r of frame.records) {
    const record = parseRecord(r);
    if (!record) return undefined;
    records.push(record);
  }
  if (kind === "changes") {
    if (!Number.isSafeInteger(frame.shard) || (frame.shard as number) < 0) return undefined;
    return { shard: frame.shard as number, records };
  }
  return { records };
}
