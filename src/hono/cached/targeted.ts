/**
 * Targeted cache control (RFC 9213): fields such as `CDN-Cache-Control` that carry cache
 * directives for one class of caches, as a Structured Fields Dictionary (RFC 8941 3.2). The
 * first of the configured fields that is present and valid replaces `Cache-Control` for
 * this cache; one that does not parse is ignored, as if absent.
 * @module
 */

import type { Directives } from "./http.js";

const KEY = /^[a-z*][a-z0-9_\-.*]*/;
const TOKEN = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*/;
const NUMBER = /^-?\d{1,15}(?:\.\d{1,3})?/;
const BYTES = /^:[A-Za-z0-9+/=]*:/;

/** A bare item: its text (integers as digits, strings unquoted), `true`/`false`, or a list. */
type Item = string | boolean | { number: string } | Item[];

/** A strict RFC 8941 parser over one field value, position by position. */
class Parser {
  i = 0;
  constructor(readonly s: string) {}

  fail(): never {
    throw new SyntaxError("not a structured field");
  }

  ows(): void {
    while (this.s[this.i] === " " || this.s[this.i] === "\t") this.i++;
  }

  match(re: RegExp): string | undefined {
    const m = re.exec(this.s.slice(this.i));
    if (m === null) return undefined;
    this.i += m[0].length;
    return m[0];
  }

  bareItem(): Item {
    const c = this.s[this.i];
    if (c === '"') return this.string();
    if (c === "?") {
      const b = this.s[this.i + 1];
      if (b !== "0" && b !== "1") this.fail();
      this.i += 2;
      return b === "1";
    }
    const number = this.match(NUMBER);
    if (number !== undefined) {
      if (number.includes(".") && number.split(".")[0]!.replace("-", "").length > 12) this.fail();
      return { number };
    }
    const bytes = this.match(BYTES);
    if (bytes !== undefined) return bytes;
    const token = this.match(TOKEN);
    if (token !== undefined) return token;
    return this.fail();
  }

  string(): string {
    let out = "";
    for (this.i++; this.i < this.s.length; this.i++) {
      const c = this.s[this.i] as string;
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === "\\") {
        const next = this.s[++this.i];
        if (next !== '"' && next !== "\\") this.fail();
        out += next;
      } else if (c < " " || c > "~") this.fail();
      else out += c;
    }
    return this.fail();
  }

  parameters(): void {
    while (this.s[this.i] === ";") {
      this.i++;
      while (this.s[this.i] === " ") this.i++;
      if (this.match(KEY) === undefined) this.fail();
      if (this.s[this.i] === "=") {
        this.i++;
        this.bareItem();
      }
    }
  }

  itemOrInnerList(): Item {
    if (this.s[this.i] !== "(") {
      const item = this.bareItem();
      this.parameters();
      return item;
    }
    this.i++;
    const list: Item[] = [];
    for (;;) {
      while (this.s[this.i] === " ") this.i++;
      if (this.s[this.i] === ")") {
        this.i++;
        this.parameters();
        return list;
      }
      list.push(this.bareItem());
      this.parameters();
      if (this.s[this.i] !== " " && this.s[this.i] !== ")") this.fail();
    }
  }

  dictionary(): Map<string, Item> {
    const out = new Map<string, Item>();
    while (this.s[this.i] === " ") this.i++;
    if (this.i >= this.s.length) return out;
    for (;;) {
      const key = this.match(KEY) ?? this.fail();
      let value: Item = true;
      if (this.s[this.i] === "=") {
        this.i++;
        value = this.itemOrInnerList();
      } else this.parameters();
      // A repeated key's last value wins (RFC 8941 4.2.2).
      out.delete(key);
      out.set(key, value);
      this.ows();
      if (this.i >= this.s.length) return out;
      if (this.s[this.i] !== ",") this.fail();
      this.i++;
      this.ows();
      if (this.i >= this.s.length) this.fail();
    }
  }
}

/** Directives whose value must be an Integer (RFC 9213 2.1); the rest are flags. */
const INTEGER_DIRECTIVES = new Set([
  "max-age",
  "s-maxage",
  "stale-while-revalidate",
  "stale-if-error",
]);

/**
 * The directives of one targeted field value, or `undefined` when it is not a valid
 * Dictionary, or a known directive has a value of the wrong type (the field is then
 * ignored, and `Cache-Control` applies, rather than half of it being read).
 */
export function parseTargeted(value: string): Directives | undefined {
  let dict: Map<string, Item>;
  try {
    const p = new Parser(value.trim());
    dict = p.dictionary();
    if (p.i !== p.s.length) return undefined;
  } catch {
    return undefined;
  }
  const directives: Directives = new Map();
  for (const [name, item] of dict) {
    if (INTEGER_DIRECTIVES.has(name)) {
      if (typeof item !== "object" || Array.isArray(item) || item.number.includes(".")) {
        return undefined;
      }
      // A negative integer is not a delta-seconds: read as 0, so the response is stale.
      directives.set(name, item.number.startsWith("-") ? "0" : item.number);
    } else if (item === false) {
      // `no-store=?0` says the directive is off.
    } else if (item === true) directives.set(name, true);
    else if (typeof item === "string") directives.set(name, item);
    else if (!Array.isArray(item)) directives.set(name, item.number);
  }
  return directives;
}

/**
 * The directives this cache obeys: those of the first of `fields` that the response has
 * and that parses, else `undefined` (use `Cache-Control`).
 */
export function targetedDirectives(
  headers: Headers,
  fields: readonly string[],
): Directives | undefined {
  for (const field of fields) {
    const value = headers.get(field);
    if (value === null) continue;
    const directives = parseTargeted(value);
    if (directives !== undefined) return directives;
  }
  return undefined;
}
