/**
 * Where edgecache writes diagnostics. Messages never contain cached values or tokens.
 *
 * @example
 * ```ts
 * createCache({ store, logger: { warn: (m, meta) => log.warn(meta, m), error: (m, meta) => log.error(meta, m) } });
 * ```
 */
export interface Logger {
  /** Detail for tracing a problem (optional: left out, debug lines are dropped). */
  debug?(message: string, meta?: Record<string, unknown>): void;
  /** Events worth knowing, such as a hub connection made (optional). */
  info?(message: string, meta?: Record<string, unknown>): void;
  /** Something failed and was absorbed: an L2 read served as a miss, a reconnect. */
  warn(message: string, meta?: Record<string, unknown>): void;
  /** Something failed that the cache could not absorb. */
  error(message: string, meta?: Record<string, unknown>): void;
}

/** Log levels, most verbose first. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

/**
 * A {@link Logger} on `console` that drops messages below `level`.
 * @param level - lowest level printed
 * @default level "warn"
 */
export function consoleLogger(level: LogLevel = "warn"): Logger {
  const on = (l: LogLevel) => ORDER[l] >= ORDER[level];
  const emit =
    (l: Exclude<LogLevel, "silent">) => (message: string, meta?: Record<string, unknown>) => {
      if (!on(l)) return;
      const line = `[edgecache] ${message}`;
      if (meta === undefined) console[l](line);
      else console[l](line, meta);
    };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** A {@link Logger} that discards everything. */
export const silentLogger: Logger = { warn() {}, error() {} };

/** Most kinds of lines whose repeats are counted; the least recent is forgotten first. */
const MAX_KINDS = 64;

/** Where the count of repeats of one kind of line stands. */
interface Repeats {
  /** When the last line of this kind was written. */
  since: number;
  /** Lines of this kind dropped since then. */
  suppressed: number;
}

/**
 * The logger a cache writes through: it never throws (a method that throws, rejects or is
 * missing is skipped), and it writes one line per level and error code (or message, for
 * lines without a code) per `interval` ms. The next line of that kind after the interval
 * carries the count of the ones dropped in between: in its message, `(41 similar suppressed
 * in the last 60 s)`, and in its meta, `{ suppressed: 41 }`. Time comes from the cache's
 * clock and nothing is scheduled, so it works where timers cannot outlive a request; a
 * count nothing follows is not written.
 */
export class GuardedLogger implements Logger {
  readonly #sink: Logger;
  readonly #now: () => number;
  readonly #interval: number;
  readonly #kinds = new Map<string, Repeats>();

  /** `interval` 0 writes every line. */
  constructor(sink: Logger, now: () => number, interval: number) {
    this.#sink = sink;
    this.#now = now;
    this.#interval = interval;
  }

  debug(message: string, meta?: Record<string, unknown>): void {
    this.#log("debug", message, meta);
  }

  info(message: string, meta?: Record<string, unknown>): void {
    this.#log("info", message, meta);
  }

  warn(message: string, meta?: Record<string, unknown>): void {
    this.#log("warn", message, meta);
  }

  error(message: string, meta?: Record<string, unknown>): void {
    this.#log("error", message, meta);
  }

  #log(level: Exclude<LogLevel, "silent">, message: string, meta?: Record<string, unknown>): void {
    try {
      let line = message;
      let data = meta;
      if (this.#interval > 0) {
        const code = meta?.code;
        const kind = `${level} ${typeof code === "string" ? code : message}`;
        const t = this.#now();
        const seen = this.#kinds.get(kind);
        if (seen !== undefined) {
          if (t - seen.since < this.#interval) {
            seen.suppressed++;
            return;
          }
          if (seen.suppressed > 0) {
            line += ` (${seen.suppressed} similar suppressed in the last ${span(t - seen.since)})`;
            data = { ...meta, suppressed: seen.suppressed };
          }
          this.#kinds.delete(kind);
        } else if (this.#kinds.size >= MAX_KINDS) {
          this.#kinds.delete(this.#kinds.keys().next().value as string);
        }
        this.#kinds.set(kind, { since: t, suppressed: 0 });
      }
      const method = this.#sink[level];
      if (typeof method !== "function") return;
      const result: unknown =
        data === undefined ? method.call(this.#sink, line) : method.call(this.#sink, line, data);
      // An async logger: its rejection must not become an unhandled one.
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
        (result as Promise<unknown>).then(undefined, () => {});
      }
    } catch {
      // A diagnostics sink that fails must not fail the read or write that logged.
    }
  }
}

function span(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}

/** Whether `value` is a {@link Logger}: `warn` and `error` methods, `debug`/`info` optional. */
export function isLogger(value: unknown): value is Logger {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const l = value as Record<string, unknown>;
  return (
    typeof l.warn === "function" &&
    typeof l.error === "function" &&
    (l.debug === undefined || typeof l.debug === "function") &&
    (l.info === undefined || typeof l.info === "function")
  );
}
