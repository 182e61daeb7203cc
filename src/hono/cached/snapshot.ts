/**
 * Responses as the `cached` Hono middleware stores them: plain objects (status, headers, the
 * body as base64) that any serializer can encode, read from a Response with a size limit and
 * turned back into a fresh Response for every caller.
 * @module
 */

/** A stored response. Plain data: strings, numbers and arrays only. */
export interface StoredResponse {
  readonly kind: "response";
  /** Format version. */
  readonly v: 1;
  /** Unique per stored response: tells the load this request made from another one's. */
  readonly id: string;
  readonly status: number;
  /** Header fields as received, less hop-by-hop fields, `Age` and `Cache-Status`. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  /** The body bytes, base64. */
  readonly body: string;
  /** When it was stored (ms, the middleware's clock). */
  readonly storedAt: number;
  /** Freshness lifetime from `storedAt`, in ms. */
  readonly ttl: number;
  /** Its age when received, in seconds (RFC 9111 4.2.3 corrected_initial_age). */
  readonly age: number;
  /** The lowercased names of the request headers it varies on. */
  readonly vary: readonly string[];
  /** Ms it may be served stale while revalidated; absent: the middleware's setting. */
  readonly swr?: number;
  /** Ms it may be served stale when revalidation fails; absent: the middleware's setting. */
  readonly sie?: number;
  /** `always`: revalidated on every use (no-cache); `stale`: never served stale. */
  readonly revalidate?: "always" | "stale";
}

/**
 * Stored under a URL's key when its responses vary on request headers: the names to add to
 * the key before looking up the response itself.
 */
export interface VaryRecord {
  readonly kind: "vary";
  readonly v: 1;
  readonly names: readonly string[];
}

/** What a load returns when its response is not to be stored (never cached: `noStore`). */
export interface Passed {
  readonly kind: "pass";
}

/** Everything a load of `cached` returns. */
export type Stored = StoredResponse | VaryRecord | Passed;

/** The one {@link Passed} value. */
export const PASSED: Passed = Object.freeze({ kind: "pass" });

/** Whether a cached value is a response this format version wrote (not another release's). */
export function isStoredResponse(value: unknown): value is StoredResponse {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<StoredResponse>;
  return (
    v.kind === "response" &&
    v.v === 1 &&
    typeof v.id === "string" &&
    typeof v.status === "number" &&
    Array.isArray(v.headers) &&
    typeof v.body === "string" &&
    typeof v.storedAt === "number" &&
    typeof v.ttl === "number" &&
    typeof v.age === "number" &&
    Array.isArray(v.vary)
  );
}

/** Whether a cached value is a vary record this format version wrote. */
export function isVaryRecord(value: unknown): value is VaryRecord {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<VaryRecord>;
  return (
    v.kind === "vary" &&
    v.v === 1 &&
    Array.isArray(v.names) &&
    v.names.every((n) => typeof n === "string")
  );
}

/** Standard base64 of some bytes; in chunks, so a large body does not overflow the call stack. */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The bytes of a base64 text. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Fields never stored: hop-by-hop ones (RFC 9110 7.6.1), and per-trip ones. */
const UNSTORED = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-authentication-info",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "age",
  "cache-status",
  "set-cookie",
]);

/** The header fields of a response to store; `omit` names more not to (no-cache="..."). */
export function storedHeaders(
  headers: Headers,
  bodyBytes: number,
  omit: readonly string[] = [],
): Array<[string, string]> {
  const connection = new Set(
    (headers.get("connection") ?? "")
      .split(",")
      .map((n) => n.trim().toLowerCase())
      .filter((n) => n !== ""),
  );
  for (const name of omit) connection.add(name);
  const out: Array<[string, string]> = [];
  headers.forEach((value, name) => {
    if (UNSTORED.has(name) || connection.has(name)) return;
    // A Content-Length that does not match the bytes read would break the replay.
    if (name === "content-length" && value.trim() !== String(bodyBytes)) return;
    out.push([name, value]);
  });
  return out;
}

/** Statuses whose responses have no body. */
export function nullBody(status: number): boolean {
  return status === 204 || status === 205 || status === 304 || status < 200;
}

/** A fresh Response from a stored one; every call makes a new one. */
export function replay(stored: StoredResponse): Response {
  return new Response(nullBody(stored.status) ? null : fromBase64(stored.body), {
    status: stored.status,
    headers: stored.headers as Array<[string, string]>,
  });
}

/** A body read whole, or a response to pass on because its body is over the limit. */
export type ReadBody = { bytes: Uint8Array<ArrayBuffer> } | { over: Response };

/**
 * Reads a response's body up to `limit` bytes. Over the limit, gives back a response that
 * streams what was read and then the rest, so a large body passes through unbuffered.
 */
export async function readBody(res: Response, limit: number): Promise<ReadBody> {
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) return { over: res };
  if (res.body === null) return { bytes: new Uint8Array(0) };
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
    if (total > limit) {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (const chunk of chunks) controller.enqueue(chunk);
        },
        async pull(controller) {
          const next = await reader.read();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel(reason) {
          return reader.cancel(reason);
        },
      });
      return {
        over: new Response(stream, {
          status: res.status,
          statusText: res.statusText,
          headers: res.headers,
        }),
      };
    }
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return { bytes };
}
