/**
 * Text as bytes: the UTF-8 length of strings as they cross into Redis keys, payloads and
 * frames, whether they are well-formed (free of lone surrogates, which UTF-8 cannot carry),
 * and base64url for bytes that must travel as text (tokens, cookies, signatures).
 * @module
 */

/** A lone surrogate: with the `u` flag, a surrogate pair is one code point and never matches. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Whether `text` is well-formed UTF-16: no lone surrogates (U+D800 to U+DFFF). Encoding to
 * UTF-8 turns each lone surrogate into U+FFFD, so `"\uD800"`, `"\uDC00"` and `"\uFFFD"`
 * would name one Redis key.
 */
export function isWellFormed(text: string): boolean {
  // Native in Node 20, workerd, Deno and Bun; the regex is for older engines.
  const native = (text as { isWellFormed?: () => boolean }).isWellFormed;
  return native === undefined ? !LONE_SURROGATE.test(text) : native.call(text);
}

/**
 * UTF-8 length of a string without allocating; the size that L1 budgets and `maxValueBytes`
 * count, and what crosses the wire. A lone surrogate counts 3 bytes, as the U+FFFD that
 * `TextEncoder` writes for it.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c <= 0xdbff && c >= 0xd800 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: 4 bytes for 2 UTF-16 units.
      bytes += 2;
      i++;
    } else bytes += 2; // 3 bytes: the rest of the BMP, and U+FFFD for a lone surrogate
  }
  return bytes;
}

/** Bytes as a binary string, in chunks so that a large array does not overflow the call stack. */
function binary(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return text;
}

/**
 * Unpadded base64url (RFC 4648 section 5) of `bytes`: safe in URLs, cookies and tokens
 * without escaping.
 * @example
 * ```ts
 * base64url(new Uint8Array([0xfb, 0xff])); // "-_8"
 * ```
 */
export function base64url(bytes: Uint8Array): string {
  return btoa(binary(bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The bytes of unpadded base64url `text`; `undefined` when it is anything else (padding
 * included), so that a caller checking a token can refuse it without saying why.
 */
export function fromBase64url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  let decoded: string;
  try {
    decoded = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    return undefined;
  }
  const bytes = new Uint8Array(new ArrayBuffer(decoded.length));
  for (let i = 0; i < decoded.length; i++) bytes[i] = decoded.charCodeAt(i);
  return bytes;
}
