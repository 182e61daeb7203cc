// A horizontal bar chart as a standalone SVG, with no dependencies.

const xml = (text) =>
  String(text).replace(
    /[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c],
  );

/**
 * @param {{ label: string, value: number }[]} bars
 * @param {{ title: string, width?: number, digits?: number, labelWidth?: number }} options
 */
export function barChart(bars, { title, width = 760, digits = 2, labelWidth = 260 }) {
  const barHeight = 24;
  const gap = 10;
  const top = 40;
  const plot = width - labelWidth - 80;
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const height = top + bars.length * (barHeight + gap) + 10;
  const rows = bars
    .map((b, i) => {
      const y = top + i * (barHeight + gap);
      const w = Math.max(1, (b.value / max) * plot);
      const fill = b.label.startsWith("edgecache")
        ? "#f38020"
        : b.label.includes("floor")
          ? "#8a8a8a"
          : "#4a78b0";
      return [
        `<text x="${labelWidth - 8}" y="${y + barHeight * 0.7}" text-anchor="end">${xml(b.label)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${fill}"/>`,
        `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + barHeight * 0.7}">${b.value.toFixed(digits)}</text>`,
      ].join("");
    })
    .join("\n  ");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img" aria-label="${xml(title)}">
  <title>${xml(title)}</title>
  <rect width="100%" height="100%" fill="white"/>
  <text x="10" y="24" font-size="15" font-weight="bold">${xml(title)}</text>
  ${rows}
</svg>
`;
}
