/**
 * Hand-offs to the runtime that differ between Node, Bun, Deno and Workers: letting a timer
 * not keep the process alive, and giving background work to `waitUntil`.
 * @module
 */

/** A runtime's `waitUntil`: keeps the invocation alive until the promise settles. */
export type WaitUntil = (promise: Promise<unknown>) => void;

/**
 * Lets `timer` (what `setTimeout` or `setInterval` returned) not keep the process alive:
 * `timer.unref()` in Node and Bun, `Deno.unrefTimer(id)` in Deno; nothing elsewhere
 * (Workers have no process to keep alive).
 */
export function unref(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
  } else if (typeof timer === "number") {
    (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno?.unrefTimer?.(timer);
  }
}

/**
 * Hands `work` to `waitUntil` when there is one. Returns `false` when there is none or it
 * threw (as Workers' does outside a request context): the work then runs in-process, and
 * the caller decides whether to wait for it. `work` must not reject: the caller catches its
 * errors and reports them, since `waitUntil` would only log them.
 * @example
 * ```ts
 * if (!handOff(publish, settings.waitUntil)) await publish;
 * ```
 */
export function handOff(work: Promise<unknown>, waitUntil: WaitUntil | undefined): boolean {
  if (waitUntil === undefined) return false;
  try {
    waitUntil(work);
    return true;
  } catch {
    return false;
  }
}
