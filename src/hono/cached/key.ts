/**
 * Cache keys of the `cached` Hono middleware: the request's URL normalized so that spellings
 * a handler cannot tell apart share an entry while spellings it might tell apart never do,
 * and the values of the headers a response varies on, hashed.
 * @module
 */

import { utf8Length } from "../../util/bytes.js";

// Made on first use: nothing runs at import time.
let encoder: TextEncoder | undefined;
let strictUtf8: TextDecoder | undefined;

function utf8(text: string) {
  encoder ??= new TextEncoder();
  return encoder.encode(text);
}

/** Lowercase hex SHA-256 of a string's UTF-8 bytes (Web Crypto: every runtime has it). */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", utf8(text)));
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/**
 * One query component in canonical form: decoded the way Hono's query parser decodes it (`+`
 * is a space; a run of escapes that is not valid UTF-8 stays as it was), so the key sees the
 * values `c.req.query()` sees, then re-encoded with `encodeURIComponent`. A run that stays
 * undecoded is kept as sent, between `[` and `]` (which `encodeURIComponent` always escapes,
 * so nothing else writes them): `%FF` and `%25FF` read the same through `c.req.query()` but
 * not through `URLSearchParams`, and `%FF/` and `%FF%2F` the other way round, so each must
 * keep an entry of its own.
 */
function canonicalComponent(raw: string): string {
  const spaced = raw.includes("+") ? raw.replace(/\+/g, " ") : raw;
  if (!spaced.includes("%")) return encodeURIComponent(spaced);
  let out = "";
  let last = 0;
  for (const match of spaced.matchAll(/(?:%[0-9A-Fa-f]{2})+/g)) {
    const run = match[0];
    const at = match.index;
    out += encodeURIComponent(spaced.slice(last, at));
    last = at + run.length;
    const bytes = new Uint8Array(run.length / 3);
    for (let i = 0; i < bytes.length; i++)
      bytes[i] = Number.parseInt(run.slice(i * 3 + 1, i * 3 + 3), 16);
    try {
      strictUtf8 ??= new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
      out += encodeURIComponent(strictUtf8.decode(bytes));
    } catch {
      // Not UTF-8: kept as sent, and fenced off from the encoded text around it.
      out += `[${run}]`;
    }
  }
  return out + encodeURIComponent(spaced.slice(last));
}

/**
 * The query string in one canonical form: parameters decoded as Hono decodes them, re-encoded
 * with `encodeURIComponent`, and sorted by name. The sort is stable, so repeated parameters
 * keep their order (`?a=1&a=2` and `?a=2&a=1` differ: `c.req.query("a")` reads the first).
 * A parameter without `=` is the same as one with an empty value, as it is to Hono.
 */
export function normalizeQuery(search: string): string {
  const query = search.startsWith("?") ? search.slice(1) : search;
  if (query === "") return "";
  const params: Array<[string, string]> = [];
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = canonicalComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? "" : canonicalComponent(part.slice(eq + 1));
    params.push([name, value]);
  }
  params.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return params.map(([name, value]) => `${name}=${value}`).join("&");
}

/**
 * The default base of a key: scheme, host (with a non-default port) and path exactly as the
 * URL parser serialized them, plus the canonical query. The host is part of the key, so a
 * forged `Host` can only fill its own entries. The path is not decoded or case-folded:
 * `/a%2Fb`, `/a/b`, `/A/b` and `/a%2fb` may be routed or rendered differently, so they are
 * distinct entries (odd spellings split the cache; they never merge with another path).
 */
export function normalizeUrl(url: string): string {
  const u = new URL(url);
  const query = normalizeQuery(u.search);
  return `${u.protocol}//${u.host}${u.pathname}${query === "" ? "" : `?${query}`}`;
}

/**
 * The base of a key under `key: "path"`: {@link normalizeUrl} without scheme and host, so
 * every origin serving the same paths (instances on other ports or hosts) shares entries.
 */
export function normalizePath(url: string): string {
  const u = new URL(url);
  const query = normalizeQuery(u.search);
  return `${u.pathname}${query === "" ? "" : `?${query}`}`;
}

/** What the `key` option of `cached` may be besides a function. */
export type KeyScope = "url" | "path";

/** The resource part of a key for a URL, as `cached` makes it with `key: scope`. */
export function resourceOf(url: string, scope: KeyScope): string {
  return scope === "path" ? normalizePath(url) : normalizeUrl(url);
}

/** Lowercased, deduplicated, sorted header names. */
export function headerNames(names: Iterable<string>): string[] {
  return [...new Set([...names].map((n) => n.trim().toLowerCase()).filter((n) => n !== ""))].sort();
}

/** The field names of a `Vary` header value, lowercased (`*` stays `*`). */
export function parseVary(value: string | null): string[] {
  if (value === null) return [];
  return headerNames(value.split(","));
}

/** Longest base kept readable in keys; longer ones are replaced by their hash. */
const MAX_BASE_BYTES = 512;

/**
 * The key of one stored variant: the base, then a fixed-length hash of the names and
 * request values of the headers it varies on. Because the hash has a fixed length at the
 * end, no base (however crafted) can produce another base's key. Header values, which may
 * be credentials, appear in keys only through this hash.
 */
export async function variantKey(
  base: string,
  names: readonly string[],
  headers: Headers,
): Promise<string> {
  const pairs = names.map((name) => [name, headers.get(name)?.trim() ?? null]);
  return `${base}|${await sha256Hex(JSON.stringify(pairs))}`;
}

/**
 * The base of the keys of a request: its method and the normalized URL (or the user's key),
 * hashed when it would make keys too long.
 */
export async function baseKey(method: string, resource: string): Promise<string> {
  const base = `${method} ${resource}`;
  // A resource starting with "#" is hashed too, so no readable base looks like a hashed one.
  return utf8Length(base) > MAX_BASE_BYTES || resource.startsWith("#")
    ? `${method} #${await sha256Hex(resource)}`
    : base;
}
