/**
 * What the Upstash store's scripts answer, decoded: entries, change-log batches, and the
 * records the write scripts publish.
 * @module
 */
import { StoreError } from "../errors.js";
import type { ChangeBatch, ChangedKey, ChangeRecord, StoreEntry } from "../store/contract.js";
import { ENTRY_MAGIC } from "./scripts.js";

const OPS: Record<string, ChangeRecord["op"]> = { s: "set", d: "delete", c: "clear" };

/** A record the write scripts published: JSON `[id, fields, now]`. */
export function parsePushed(payload: string, keyPrefix: string): ChangeRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (!Array.isArray(raw) || raw.length !== 3 || typeof raw[0] !== "string") return undefined;
  const last = Number(raw[0].slice(0, raw[0].indexOf("-")));
  const now = Number(raw[2]);
  if (!Number.isSafeInteger(last) || last < 1 || !Number.isFinite(now)) return undefined;
  return parseRecord(raw[1], last, keyPrefix, now);
}

/**
 * Decodes `{ head, now, records[, repaired] }` from the scripts. A record that does not parse stands in
 * as a clear (the cache then drops its whole L1), so foreign data in the log can cost hit
 * ratio but never coherence.
 */
export function parseChanges(raw: unknown, keyPrefix: string): ChangeBatch {
  if (!Array.isArray(raw) || raw.length < 3 || raw.length > 4 || !Array.isArray(raw[2])) {
    throw new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");
  }
  const head = Number(raw[0]);
  const now = Number(raw[1]);
  if (!Number.isSafeInteger(head) || !Number.isFinite(now)) {
    throw new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");
  }
  const records: ChangeRecord[] = [];
  for (const item of raw[2] as unknown[]) {
    const id = Array.isArray(item) && typeof item[0] === "string" ? item[0] : "";
    const last = Number(id.slice(0, id.indexOf("-")));
    if (!Number.isSafeInteger(last) || last < 1) {
      throw new StoreError("EC_STORE_ERROR", "unexpected change log id");
    }
    records.push(parseRecord((item as unknown[])[1], last, keyPrefix, now));
  }
  return { head, records };
}

function parseRecord(fields: unknown, last: number, keyPrefix: string, now: number): ChangeRecord {
  const opaque: ChangeRecord = { op: "clear", first: last, last, origin: "", keys: [] };
  if (!Array.isArray(fields) || fields.length < 6 || (fields.length - 6) % 6 !== 0) return opaque;
  const [o, op, i, origin, f, firstText] = fields as unknown[];
  const kind = typeof op === "string" ? OPS[op] : undefined;
  const first = Number(firstText);
  if (o !== "o" || i !== "i" || f !== "f" || kind === undefined || typeof origin !== "string") {
    return opaque;
  }
  if (!Number.isSafeInteger(first) || first < 1 || first > last) return opaque;
  const keys: ChangedKey[] = [];
  for (let j = 6; j < fields.length; j += 6) {
    const [k, key, v, value, x, expiry] = fields.slice(j, j + 6) as unknown[];
    if (k !== "k" || v !== "v" || x !== "x") return opaque;
    if (typeof key !== "string" || !key.startsWith(keyPrefix) || typeof value !== "string") {
      return opaque;
    }
    // A set record's keys hold consecutive versions; a delete's all share the record's.
    const version = kind === "set" ? first + keys.length : last;
    const userKey = key.slice(keyPrefix.length);
    if (value === "") keys.push({ key: userKey, version });
    else keys.push({ key: userKey, version, value, ttl: Number(expiry) - now });
  }
  if (kind === "set" && first + keys.length - 1 !== last) return opaque;
  return { op: kind, first, last, origin, keys };
}

export function parseEntry(raw: unknown, pttl: unknown): StoreEntry | undefined {
  if (typeof raw !== "string" || !raw.startsWith(ENTRY_MAGIC)) return undefined;
  const sep = raw.indexOf(":", ENTRY_MAGIC.length);
  if (sep === -1) return undefined;
  const digits = raw.slice(ENTRY_MAGIC.length, sep);
  if (!/^[1-9][0-9]{0,15}$/.test(digits)) return undefined;
  const version = Number(digits);
  if (!Number.isSafeInteger(version)) return undefined;
  if (typeof pttl !== "number") return undefined;
  // -1: no expiry (someone PERSISTed it); the cache then bounds L1 by its own limits.
  const ttl = pttl === -1 ? Number.POSITIVE_INFINITY : pttl;
  return { value: raw.slice(sep + 1), version, ttl };
}
