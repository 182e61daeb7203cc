// Event-loop stalls of a process: the moments it was not running (a 2-core machine shared
// with other test runs starves processes for hundreds of ms). A read is judged on the time
// it was not stalled, in its own process or in the orchestrator that runs the proxy.

/**
 * Watches this process's event loop with a `tick` ms timer; a tick late by more than `min`
 * ms is a stall, recorded as `[from, to]` on `now`'s clock. The timer does not keep the
 * process alive; `stop()` ends it.
 */
export function watchStalls(now, { tick = 10, min = 20 } = {}) {
  const stalls = [];
  let last = now();
  const timer = setInterval(() => {
    const t = now();
    const late = t - last - tick;
    if (late > min) stalls.push([t - late, t]);
    last = t;
  }, tick);
  timer.unref();
  return { stalls, stop: () => clearInterval(timer) };
}

/** How much of `[start, end]` the stall intervals (of any processes, overlapping) cover. */
export function stalledDuring(intervals, start, end) {
  const parts = intervals
    .map(([a, b]) => [Math.max(a, start), Math.min(b, end)])
    .filter(([a, b]) => b > a)
    .sort((x, y) => x[0] - y[0]);
  let total = 0;
  let reach = start;
  for (const [a, b] of parts) {
    if (b <= reach) continue;
    total += b - Math.max(a, reach);
    reach = b;
  }
  return total;
}
