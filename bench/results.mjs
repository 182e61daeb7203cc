// bench/RESULTS.md is written in one `npm run bench`: bench/peers.mjs runs first and writes the
// whole file (its header, its own sections, and a placeholder for every section below), then
// each later bench fills its own section between `<!-- id:start -->` and `<!-- id:end -->`.
//
// A bench fills its section only while it still holds its `<!-- id:pending -->` marker, that is
// only into a RESULTS.md that this run's peers.mjs wrote: a bench run alone, after a full run,
// prints only, so that the file never mixes sections from different runs. BENCH_<ID>_WRITE=1
// (BENCH_L1_WRITE, BENCH_HIT_RATIO_WRITE, BENCH_HUB_WRITE, BENCH_PUBSUB_WRITE,
// BENCH_STAMPEDE_WRITE) or BENCH_RESULTS_WRITE=1 (any section) writes anyway.
import { readFileSync, writeFileSync } from "node:fs";

export const RESULTS = new URL("./RESULTS.md", import.meta.url);

/** The sections the later benches fill, in the order `npm run bench` runs them. */
export const SECTIONS = [
  { id: "l1", title: "L1-hit throughput", by: "bench/l1.mjs" },
  { id: "hit-ratio", title: "L1 admission: TinyLFU vs LRU", by: "bench/hit-ratio.mjs" },
  { id: "hub", title: "Hub propagation", by: "bench/hub.mjs" },
  { id: "pubsub", title: "Pub/sub propagation", by: "bench/pubsub.mjs" },
  { id: "stampede", title: "Cross-process stampede", by: "bench/stampede.mjs" },
];

const markers = (id) => ({
  start: `<!-- ${id}:start -->`,
  end: `<!-- ${id}:end -->`,
  pending: `<!-- ${id}:pending -->`,
});

function section(id) {
  const found = SECTIONS.find((s) => s.id === id);
  if (found === undefined) throw new Error(`bench/results: no section ${JSON.stringify(id)}`);
  return found;
}

/** The placeholders bench/peers.mjs leaves for every later section, as Markdown. */
export function placeholders() {
  return SECTIONS.map(({ id, title, by }) => {
    const m = markers(id);
    return `${m.start}\n## ${title}\n\n${m.pending}\nFilled by \`${by}\` later in the same \`npm run bench\`.\n${m.end}`;
  }).join("\n\n");
}

/** The variable that writes the section `id` anyway, though an earlier run filled it. */
const forceVar = (id) => `BENCH_${id.toUpperCase().replace(/[^A-Z0-9]/g, "_")}_WRITE`;

/**
 * Puts `body` (Markdown, without the section's heading) into the section `id` of RESULTS.md,
 * if this run's peers.mjs left it pending (or BENCH_<ID>_WRITE=1). Says what it did; returns
 * whether it wrote.
 */
export function fillSection(id, body) {
  const { title } = section(id);
  const m = markers(id);
  let md = "";
  try {
    md = readFileSync(RESULTS, "utf8");
  } catch {}
  const at = md.indexOf(m.start);
  const end = md.indexOf(m.end);
  if (at < 0 || end < at) {
    console.log(`bench/RESULTS.md has no "${title}" section to fill (run \`npm run bench\`)`);
    return false;
  }
  const force = process.env[forceVar(id)] === "1" || process.env.BENCH_RESULTS_WRITE === "1";
  if (!md.slice(at, end).includes(m.pending) && !force) {
    // Filled already, by an earlier run: the section must come from the run that wrote the rest.
    console.log(
      `bench/RESULTS.md was not written by this run's bench/peers.mjs: "${title}" printed only (${forceVar(id)}=1 writes)`,
    );
    return false;
  }
  const text = `${m.start}\n## ${title}\n\n${body.trim()}\n${m.end}`;
  writeFileSync(RESULTS, md.slice(0, at) + text + md.slice(end + m.end.length));
  console.log(`wrote the "${title}" section of bench/RESULTS.md`);
  return true;
}

/** A Markdown table from a header row and rows of cells. */
export function mdTable(head, rows) {
  const line = (cells) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/** "met" or "not met", for a target checked against measured numbers. */
export const verdict = (ok) => (ok ? "**met**" : "**not met**");
