// The values the fault suite writes. Each is unique and names its key, so that the proxy
// can tell which write a request carries and the checker can tell where a read value
// came from: `fv/<key>/<process>/<seq>/`, with id `<process>/<seq>`.

const VALUE = /fv\/([A-Za-z0-9_]+)\/([A-Za-z0-9_]+)\/(\d+)\//g;

/** The value process `inst` writes to `key` as its `seq`-th value. */
export const valueFor = (key, inst, seq) => `fv/${key}/${inst}/${seq}/`;

/** `{ key, id }` of a value read back, or undefined when it is not one of ours. */
export function parseValue(value) {
  if (typeof value !== "string") return undefined;
  const m = /^fv\/([A-Za-z0-9_]+)\/([A-Za-z0-9_]+)\/(\d+)\/$/.exec(value);
  return m ? { key: m[1], id: `${m[2]}/${m[3]}` } : undefined;
}

/** Every value embedded anywhere in `text` (a request argument, a Redis entry), in order. */
export function valuesIn(text) {
  return [...String(text).matchAll(VALUE)].map((m) => ({ key: m[1], id: `${m[2]}/${m[3]}` }));
}
