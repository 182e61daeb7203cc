/**
 * What the fuzz expects of one generated input: `ok` must be accepted (and round-trip),
 * `bad` must be refused with a typed input error, `either` may go both ways (a shape the
 * docs leave open), but what happens must still be one of the two, done right.
 * @module
 */
import fc from "fast-check";

export type Verdict = "ok" | "bad" | "either";

/** A generated input with its verdict and a short note of what it is, for the report. */
export interface Case<T = unknown> {
  readonly input: T;
  readonly verdict: Verdict;
  readonly why: string;
}

/** The strictest of several verdicts: one bad part makes the whole call bad. */
export function worst(...verdicts: Verdict[]): Verdict {
  if (verdicts.includes("bad")) return "bad";
  return verdicts.includes("either") ? "either" : "ok";
}

/** Cases of one verdict drawn from `arb`. */
export function cases<T>(
  verdict: Verdict,
  why: string,
  arb: fc.Arbitrary<T>,
): fc.Arbitrary<Case<T>> {
  return arb.map((input) => ({ input, verdict, why }));
}

/** Cases of one verdict drawn from a list of constants. */
export function consts(verdict: Verdict, why: string, ...values: unknown[]): fc.Arbitrary<Case> {
  return cases(verdict, why, fc.constantFrom(...values));
}

/** Cases whose verdict is computed from the input by an oracle (the documented rule). */
export function judged<T>(
  arb: fc.Arbitrary<T>,
  judge: (input: T) => Verdict,
  why: string,
): fc.Arbitrary<Case<T>> {
  return arb.map((input) => ({ input, verdict: judge(input), why }));
}

/**
 * An options object made of optional fields, each judged on its own: the object's verdict
 * is the worst of its fields' (and of `extra`, a rule across fields). Most objects have no
 * bad field, the others exactly one, so that an accepted call is common and a refusal
 * points at one field.
 */
export function record(
  fields: Record<string, fc.Arbitrary<Case>>,
  extra: (input: Record<string, unknown>) => Verdict = () => "ok",
): fc.Arbitrary<Case<Record<string, unknown>>> {
  const names = Object.keys(fields);
  // Every field needs a case that is not bad (`undefined`, if nothing else), or the
  // filter below never ends.
  const fine: Record<string, fc.Arbitrary<Case | undefined>> = {};
  for (const name of names) {
    fine[name] = fc.option(
      fields[name]!.filter((c) => c.verdict !== "bad"),
      { nil: undefined, freq: 2 },
    );
  }
  const oneAny = fc
    .constantFrom(...names)
    .chain((name) => fields[name]!.map((c) => [name, c] as const));
  return fc
    .tuple(fc.record(fine), fc.option(oneAny, { nil: undefined, freq: 2 }))
    .map(([chosen, single]) => {
      const all: Record<string, Case | undefined> = { ...chosen };
      if (single !== undefined) all[single[0]] = single[1];
      const input: Record<string, unknown> = {};
      const verdicts: Verdict[] = [];
      const notes: string[] = [];
      for (const [name, c] of Object.entries(all)) {
        if (c === undefined) continue;
        input[name] = c.input;
        verdicts.push(c.verdict);
        if (c.verdict !== "ok") notes.push(`${name}: ${c.why}`);
      }
      const verdict = worst(...verdicts, extra(input));
      return { input, verdict, why: notes.length === 0 ? "good fields" : notes.join("; ") };
    });
}

/** Whether `text` has no lone surrogate (an independent check, not the library's). */
export function wellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return false;
  }
  return true;
}
