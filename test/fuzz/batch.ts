/**
 * `setMany` batches: good and bad entries mixed, in entry shapes and containers of every
 * kind. One bad entry makes the whole batch bad: nothing of it may be written.
 * @module
 */
import fc from "fast-check";
import { type SerializerName, serializerName } from "./harness.js";
import { keyCase, setOptionsCase } from "./inputs.js";
import { topValueCase, type ValueCase } from "./values.js";
import { type Case, type Verdict, worst } from "./verdict.js";

type Shape = "pair" | "triple" | "object" | "key only" | "empty";

const entryCase = fc.record({
  key: keyCase,
  value: topValueCase,
  options: setOptionsCase,
  shape: fc.constantFrom<Shape>(
    ...(["pair", "pair", "pair", "triple", "triple", "triple", "triple"] as const),
    ...(["object", "key only", "empty"] as const),
  ),
});
type Entry = typeof entryCase extends fc.Arbitrary<infer E> ? E : never;

/** A batch and what must come of it. */
export interface Batch {
  readonly input: unknown;
  readonly verdict: Verdict;
  readonly why: string;
  readonly serializer: SerializerName;
  /** What an accepted batch writes: each key and its value. */
  readonly written: Array<[key: string, value: ValueCase]>;
}

function build(e: Entry): unknown {
  const k = e.key.input;
  const v = e.value.value;
  switch (e.shape) {
    case "pair":
      return [k, v];
    case "triple":
      return [k, v, e.options.input];
    case "object":
      return { key: k, value: v };
    case "key only":
      return [k];
    default:
      return [];
  }
}

function judge(e: Entry, serializer: SerializerName): Verdict {
  if (e.shape !== "pair" && e.shape !== "triple") return "bad";
  const options: Case["verdict"] = e.shape === "triple" ? e.options.verdict : "ok";
  return worst(e.key.verdict, options, serializer === "json" ? e.value.json : e.value.sj);
}

const CONTAINERS: Record<string, (entries: unknown[]) => unknown> = {
  array: (entries) => entries,
  null: () => null,
  object: (entries) => ({ ...entries }),
  Set: (entries) => new Set(entries),
  string: () => "entries",
};

/** A `setMany` argument, mostly an array of up to 4 entries with distinct keys. */
export const batchCase: fc.Arbitrary<Batch> = fc
  .tuple(
    fc.uniqueArray(entryCase, { maxLength: 4, selector: (e) => e.key.input }),
    fc.constantFrom(...Array<string>(12).fill("array"), "null", "object", "Set", "string"),
    serializerName,
  )
  .map(([entries, container, serializer]) => {
    const verdicts = entries.map((e) => judge(e, serializer));
    const listed = entries.map(
      (e, i) => `${e.shape} ${e.key.why}, ${e.value.why}, ${e.options.why} => ${verdicts[i]}`,
    );
    return {
      input: CONTAINERS[container]!(entries.map(build)),
      verdict: container === "array" ? worst(...verdicts) : "bad",
      why: `${container} of [${listed.join(" | ")}]`,
      serializer,
      written: entries.map((e) => [e.key.input as string, e.value]),
    };
  });
