/**
 * Packing of the publish frames a subscribed client sends over its sockets or by HTTP.
 * @module
 */
import type { ChangeRecord } from "../store/contract.js";

/** Keys per published record, and the JSON size a publish frame stays under. */
const RECORD_KEYS = 100;
const FRAME_BYTES = 256 * 1024;

/**
 * Publish frames for `records`: records split to at most RECORD_KEYS keys (a set's keys
 * have consecutive versions, so each part keeps exact first/last versions), packed into
 * frames of about FRAME_BYTES, well under the hub's limit.
 */
export function publishFrames(
  records: readonly ChangeRecord[],
): Array<{ text: string; records: ChangeRecord[] }> {
  const parts: ChangeRecord[] = [];
  for (const r of records) {
    if (r.keys.length <= RECORD_KEYS) {
      parts.push(r);
      continue;
    }
    for (let i = 0; i < r.keys.length; i += RECORD_KEYS) {
      const keys = r.keys.slice(i, i + RECORD_KEYS);
      parts.push(
        r.op === "set"
          ? { ...r, keys, first: keys[0]!.version, last: keys[keys.length - 1]!.version }
          : { ...r, keys },
      );
    }
  }
  const out: Array<{ text: string; records: ChangeRecord[] }> = [];
  let batch: ChangeRecord[] = [];
  let texts: string[] = [];
  let size = 0;
  const flush = () => {
    // Assembled from the records' own JSON, so each is serialized once.
    if (batch.length > 0) {
      out.push({ text: `{"t":"publish","records":[${texts.join(",")}]}`, records: batch });
    }
    batch = [];
    texts = [];
    size = 0;
  };
  for (const r of parts) {
    const text = JSON.stringify(r);
    if (batch.length > 0 && (size + text.length > FRAME_BYTES || batch.length >= 500)) flush();
    batch.push(r);
    texts.push(text);
    size += text.length;
  }
  flush();
  return out;
}
