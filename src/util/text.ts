/**
 * Strings as they cross into UTF-8 (Redis keys, payloads, frames): their byte length, and
 * whether they are well-formed, that is free of lone surrogates, which UTF-8 cannot carry.
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
