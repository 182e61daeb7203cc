/**
 * The admin API's HTML: the login form and the live stats page. Self-contained (inline CSS,
 * JS and SVG, nothing fetched from elsewhere), so it works under a strict Content Security
 * Policy whose only allowances are the per-response nonce and same-origin `fetch`.
 *
 * @module
 */

/** HTML-escapes text for element content and double- or single-quoted attributes. */
export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

const STYLE = `
:root{--bg:#f5f6f8;--card:#fff;--ink:#1b1f24;--muted:#667085;--line:#e4e7ec;--l1:#2563eb;--l2:#d97706;--ok:#16a34a;--warn:#d97706;--bad:#dc2626;--off:#98a2b3}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;align-items:center;gap:16px;padding:12px 24px;background:#101828;color:#fff}
header h1{font-size:16px;margin:0;font-weight:600;letter-spacing:.2px}
header .grow{flex:1}
header select,header button{font:inherit;border-radius:6px;border:1px solid #475467;background:#1d2939;color:#fff;padding:4px 8px}
header button{cursor:pointer}
.pill{display:inline-flex;align-items:center;gap:6px;padding:2px 10px;border-radius:999px;background:#1d2939;font-size:12px}
.dot{width:8px;height:8px;border-radius:50%;background:var(--off)}
.dot.ok{background:var(--ok)}.dot.warn{background:var(--warn)}.dot.bad{background:var(--bad)}
main{padding:20px 24px;max-width:1200px;margin:0 auto}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;margin-bottom:16px}
.panel{margin-bottom:12px}
.card,.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card h2,.panel h2{margin:0 0 6px;font-size:12px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.6px}
.big{font-size:28px;font-weight:650;font-variant-numeric:tabular-nums}
.name{font-size:15px;font-weight:600;word-break:break-all;margin:6px 0 4px}
.sub{color:var(--muted);font-variant-numeric:tabular-nums}
.grid2 .panel{margin-bottom:0}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin-bottom:12px}
@media (max-width:900px){.grid2{grid-template-columns:1fr}}
svg{width:100%;height:auto;display:block}
.legend{display:flex;gap:14px;font-size:12px;color:var(--muted);margin-top:4px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.sw.l1{background:var(--l1)}.sw.l2{background:var(--l2)}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
td{padding:3px 6px;border-bottom:1px solid var(--line)}
td:last-child{text-align:right}
.counters{columns:3 240px;column-gap:24px}
.counters div{display:flex;justify-content:space-between;border-bottom:1px solid var(--line);padding:3px 0;break-inside:avoid}
.counters span:first-child{color:var(--muted)}
#status{font-size:12px;color:#d0d5dd}
.login{max-width:360px;margin:12vh auto;background:var(--card);border:1px solid var(--line);border-radius:12px;padding:24px}
.login h1{font-size:18px;margin:0 0 4px}
.login p{color:var(--muted);margin:0 0 16px}
.login input{width:100%;font:inherit;padding:8px 10px;border:1px solid var(--line);border-radius:6px;margin-bottom:12px}
.login button{width:100%;font:inherit;padding:8px;border:0;border-radius:6px;background:#101828;color:#fff;cursor:pointer}
.login .error{color:var(--bad);margin:0 0 12px}
`;

/**
 * The login form, answered with 401 to a visit without a session. It posts the token to
 * `action` (the admin's `/login`), which sets the session cookie; nothing else is on the
 * page, and nothing about the cache.
 */
export function loginPage(options: { action: string; nonce: string; failed: boolean }): string {
  const nonce = escapeHtml(options.nonce);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>edgecache admin: sign in</title>
<style nonce="${nonce}">${STYLE}</style></head>
<body><form class="login" method="post" action="${escapeHtml(options.action)}" autocomplete="off">
<h1>edgecache admin</h1><p>Sign in with the admin token.</p>
${options.failed ? '<p class="error" role="alert">That token was not accepted.</p>' : ""}
<input type="password" name="token" aria-label="Admin token" placeholder="Admin token" required autofocus>
<button type="submit">Sign in</button></form></body></html>`;
}

// The page's script. Plain ES2020 for any current browser; it reads its base path from
// the body's data attribute (so no server value is ever spliced into code) and polls
// `<base>/stats` once a second with the session cookie.
const SCRIPT = `
(() => {
  "use strict";
  const base = document.body.dataset.base;
  const SVG = "http://www.w3.org/2000/svg";
  const MAX = 60;
  const W = 600, H = 220, L = 44, R = 8, T = 10, B = 24;
  const SW = 1200, SL = 70;
  const asked = new URLSearchParams(location.search).get("ns");
  let ns = asked || "";
  // Without ?ns=, the first answer moves the page to the namespace with traffic.
  let chosen = asked !== null;
  let samples = [];
  let prev = null;
  const $ = (s) => document.querySelector(s);
  const el = (name, attrs, parent) => {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  };
  const pct = (r) => (r === null ? "n/a" : (r * 100).toFixed(1) + "%");
  const ratio = (hits, misses) => (hits + misses > 0 ? hits / (hits + misses) : null);
  const bytes = (n) => {
    const u = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + u[i];
  };
  const setText = (sel, text) => { const e = $(sel); if (e) e.textContent = text; };
  const status = (text) => setText("#status", text);

  // x of sample i of n, newest at the right edge of a plot from left to width - R.
  function x(i, n, left = L, width = W) { return left + ((width - left - R) * (MAX - n + i)) / (MAX - 1); }

  function axes(svg, max, fmt) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    for (const f of [0, 0.5, 1]) {
      const y = T + (H - T - B) * (1 - f);
      el("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e4e7ec" }, svg);
      const t = el("text", { x: L - 6, y: y + 4, "text-anchor": "end", "font-size": 12, fill: "#667085" }, svg);
      t.textContent = fmt(max * f);
    }
    const t = el("text", { x: W - R, y: H - 6, "text-anchor": "end", "font-size": 12, fill: "#667085" }, svg);
    t.textContent = "now";
    const t2 = el("text", { x: L, y: H - 6, "font-size": 12, fill: "#667085" }, svg);
    t2.textContent = "-" + MAX + "s";
  }

  function line(svg, values, max, color, name) {
    const n = values.length;
    const y = (v) => T + (H - T - B) * (1 - v / max);
    let run = [];
    const flush = () => {
      if (run.length > 1) el("polyline", { points: run.join(" "), fill: "none", stroke: color, "stroke-width": 2, "stroke-linejoin": "round", "data-series": name }, svg);
      run = [];
    };
    values.forEach((v, i) => {
      if (v === null) { flush(); return; }
      run.push(x(i, n).toFixed(1) + "," + y(v).toFixed(1));
      el("circle", { cx: x(i, n).toFixed(1), cy: y(v).toFixed(1), r: 2.2, fill: color, "data-series": name }, svg);
    });
    flush();
  }

  function strip(svg, rows) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const n = samples.length;
    const w = (SW - SL - R) / (MAX - 1);
    rows.forEach((row, r) => {
      const y = 6 + r * 32;
      const t = el("text", { x: SL - 8, y: y + 15, "text-anchor": "end", "font-size": 14, fill: "#667085" }, svg);
      t.textContent = row.label;
      el("rect", { x: SL, y, width: SW - SL - R, height: 22, fill: "#f2f4f7", rx: 3 }, svg);
      samples.forEach((s, i) => {
        el("rect", { x: (x(i, n, SL, SW) - w / 2).toFixed(1), y, width: (w + 0.5).toFixed(1), height: 22, fill: row.color(s) }, svg);
      });
    });
  }

  const GOOD = { closed: 1, healthy: 1, "publish-only": 1 };
  const BAD = { open: 1, unhealthy: 1, "publish failing": 1 };
  const stateColor = (v) => (GOOD[v] ? "#16a34a" : BAD[v] ? "#dc2626" : v === "half-open" ? "#d97706" : "#98a2b3");
  const breakerColor = (s) => stateColor(s.breaker);
  const hubColor = (s) => stateColor(s.hub);
  const dotClass = (v) => (GOOD[v] ? "ok" : BAD[v] ? "bad" : v === "half-open" ? "warn" : "");
  // The hub by what this instance uses it for: a subscriber by its sockets, a publisher
  // (a Worker with the binding only) by its publishes.
  const hubState = (h) => (!h ? "off" : h.subscribed ? (h.healthy ? "healthy" : "unhealthy") : h.healthy ? "publish-only" : "publish failing");
  const hubDetail = (h) =>
    !h ? "not configured"
      : h.subscribed ? h.connected + " connected, " + h.reconnects + " reconnects, " + h.published + " published"
      : "publishes only (this instance does not subscribe): " + h.published + " published, " + h.publishErrors + " failed";

  function render(body) {
    const s = body.stats;
    const hub = hubState(s.hub);
    const breaker = s.breaker ? s.breaker.state : "off";
    let l1 = null, l2 = null, syncs = null;
    if (prev === null) {
      // The first point, from the counters since the cache started, so the charts do not
      // open empty; the rates follow from the next answer on.
      l1 = ratio(s.l1Hits, s.l1Misses);
      l2 = ratio(s.l2Hits, s.l2Misses);
    } else {
      const d = (k) => s[k] - prev.stats[k];
      const seconds = (performance.now() - prev.at) / 1000;
      if (seconds > 0 && d("l1Hits") >= 0 && d("l1Misses") >= 0 && d("l2Hits") >= 0 && d("l2Misses") >= 0 && d("syncs") >= 0) {
        l1 = ratio(d("l1Hits"), d("l1Misses"));
        l2 = ratio(d("l2Hits"), d("l2Misses"));
        syncs = d("syncs") / seconds;
      }
    }
    prev = { stats: s, at: performance.now() };
    samples.push({ l1, l2, syncs, breaker, hub });
    if (samples.length > MAX) samples.shift();
    document.body.dataset.samples = String(samples.length);

    setText("#namespace", body.namespace);
    setText('[data-ratio="l1"]', pct(ratio(s.l1Hits, s.l1Misses)));
    setText('[data-ratio="l2"]', pct(ratio(s.l2Hits, s.l2Misses)));
    setText('[data-lookups="l1"]', String(s.l1Hits + s.l1Misses));
    setText('[data-lookups="l2"]', String(s.l2Hits + s.l2Misses));
    setText("#l1bytes", bytes(s.l1Bytes));
    for (const e of document.querySelectorAll("[data-stat]")) {
      const v = s[e.dataset.stat];
      e.textContent = typeof v === "number" ? String(v) : "n/a";
    }
    for (const [name, value] of [["breaker", breaker], ["hub", hub]]) {
      setText('[data-state="' + name + '"]', value);
      const dot = $('[data-dot="' + name + '"]');
      if (dot) dot.className = "dot " + dotClass(value);
    }
    setText("#hubdetail", hubDetail(s.hub));
    setText("#breakerdetail", s.breaker ? s.breaker.failures + " failures, " + s.breaker.opens + " opens, " + s.breaker.rejected + " rejected" : "not configured");

    const ratioSvg = $("#chart-ratio");
    axes(ratioSvg, 1, (v) => Math.round(v * 100) + "%");
    line(ratioSvg, samples.map((p) => p.l1), 1, "#2563eb", "l1");
    line(ratioSvg, samples.map((p) => p.l2), 1, "#d97706", "l2");
    const syncSvg = $("#chart-syncs");
    const top = Math.max(1, ...samples.map((p) => p.syncs || 0));
    const max = top <= 5 ? 5 : Math.ceil(top / 10) * 10;
    axes(syncSvg, max, (v) => String(Math.round(v * 10) / 10));
    line(syncSvg, samples.map((p) => p.syncs), max, "#7c3aed", "syncs");
    strip($("#chart-states"), [
      { label: "breaker", color: breakerColor },
      { label: "hub", color: hubColor },
    ]);
    status("updated " + new Date(body.time).toLocaleTimeString());
  }

  // The namespace with the most traffic, when the one shown has none.
  function busiest(list) {
    const here = list.find((n) => n.id === ns);
    if (here && here.traffic > 0) return ns;
    let best = here;
    for (const n of list) if (!best || n.traffic > best.traffic) best = n;
    return best && best.traffic > 0 ? best.id : ns;
  }

  function select(id) {
    ns = id;
    samples = [];
    prev = null;
    const url = new URL(location.href);
    if (ns) url.searchParams.set("ns", ns); else url.searchParams.delete("ns");
    history.replaceState(null, "", url);
  }

  function namespaces(list) {
    const select = $("#ns");
    if (select.options.length === list.length && select.value === ns) return;
    select.textContent = "";
    for (const n of list) {
      const o = document.createElement("option");
      o.value = n.id;
      o.textContent = n.id === "" ? n.name : n.id + " (" + n.name + ")";
      if (n.id === ns) o.selected = true;
      select.appendChild(o);
    }
  }

  async function poll() {
    let next = 1000;
    try {
      const res = await fetch(base + "/stats" + (ns ? "?ns=" + encodeURIComponent(ns) : ""), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { accept: "application/json" },
      });
      if (res.status === 401) { location.reload(); return; }
      if (!res.ok) { status("error " + res.status); return; }
      const body = await res.json();
      if (!chosen) {
        chosen = true;
        const id = busiest(body.namespaces);
        if (id !== ns) {
          select(id);
          next = 0;
          return;
        }
      }
      namespaces(body.namespaces);
      render(body);
      // The second point soon after the first, so the per-second charts start at once.
      if (samples.length === 1) next = 250;
    } catch (e) {
      status("cannot reach the server");
    } finally {
      setTimeout(poll, next);
    }
  }

  $("#ns").addEventListener("change", (e) => {
    chosen = true;
    select(e.target.value);
  });
  poll();
})();
`;

const COUNTERS = [
  "l1Hits",
  "l1Misses",
  "l2Hits",
  "l2Misses",
  "sets",
  "deletes",
  "clears",
  "errors",
  "corrupt",
  "l1Items",
  "l1Bytes",
  "l1Evictions",
  "syncs",
  "changesApplied",
  "flushes",
  "syncLag",
  "cursor",
  "loads",
  "loadErrors",
  "coalesced",
  "lockWaits",
  "staleHits",
  "graceHits",
] as const;

/**
 * The live stats page. `base` is the admin's mount path as the browser sees it (the page
 * fetches `<base>/stats`), `nonce` the CSP nonce of this response.
 */
export function statsPage(options: { base: string; nonce: string }): string {
  const nonce = escapeHtml(options.nonce);
  const base = escapeHtml(options.base);
  const counters = COUNTERS.map(
    (name) => `<div><span>${name}</span><span data-stat="${name}">-</span></div>`,
  ).join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><title>edgecache admin</title>
<style nonce="${nonce}">${STYLE}</style></head>
<body data-base="${base}" data-samples="0">
<header><h1>edgecache</h1><select id="ns" aria-label="Namespace"></select>
<span class="pill"><span class="dot" data-dot="breaker"></span>breaker: <b data-state="breaker">-</b></span>
<span class="pill"><span class="dot" data-dot="hub"></span>hub: <b data-state="hub">-</b></span>
<span class="grow"></span><span id="status">connecting...</span>
<form method="post" action="${base}/logout"><button type="submit">Log out</button></form></header>
<main>
<section class="cards">
<div class="card"><h2>L1 hit ratio</h2><div class="big" data-ratio="l1">-</div><div class="sub"><span data-stat="l1Hits">-</span> hits of <span data-lookups="l1">-</span> lookups</div></div>
<div class="card"><h2>L2 hit ratio</h2><div class="big" data-ratio="l2">-</div><div class="sub"><span data-stat="l2Hits">-</span> hits of <span data-lookups="l2">-</span> lookups</div></div>
<div class="card"><h2>L1 occupancy</h2><div class="big"><span data-stat="l1Items">-</span> items</div><div class="sub" id="l1bytes">-</div></div>
<div class="card"><h2>Coherence</h2><div class="big"><span data-stat="syncs">-</span> syncs</div><div class="sub">lag <span data-stat="syncLag">-</span>, cursor <span data-stat="cursor">-</span></div></div>
<div class="card"><h2>Namespace</h2><div class="name" id="namespace">-</div><div class="sub"><span data-stat="errors">-</span> errors</div></div>
</section>
<div class="grid2">
<section class="panel"><h2>Hit ratio per tier, each second</h2><svg id="chart-ratio" viewBox="0 0 600 220" role="img" aria-label="Hit ratio per tier"></svg>
<div class="legend"><span><i class="sw l1"></i>L1 hits / L1 lookups</span><span><i class="sw l2"></i>L2 hits / L2 lookups</span></div></section>
<section class="panel"><h2>Syncs per second</h2><svg id="chart-syncs" viewBox="0 0 600 220" role="img" aria-label="Syncs per second"></svg>
<div class="legend"><span>change-log reads applied</span></div></section>
</div>
<section class="panel"><h2>Breaker and hub</h2>
<p class="sub">breaker: <span id="breakerdetail">-</span>; hub: <span id="hubdetail">-</span></p>
<svg id="chart-states" viewBox="0 0 1200 68" role="img" aria-label="Breaker and hub state over time"></svg></section>
<section class="panel"><h2>Counters</h2><div class="counters">${counters}</div></section>
</main>
<script nonce="${nonce}">${SCRIPT}</script></body></html>`;
}
