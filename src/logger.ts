/**
 * Where edgecache writes diagnostics. Messages never contain cached values or tokens.
 *
 * @example
 * ```ts
 * createCache({ store, logger: { warn: (m, meta) => log.warn(meta, m), error: (m, meta) => log.error(meta, m) } });
 * ```
 */
export interface Logger {
  debug?(message: string, meta?: Record<string, unknown>): void;
  info?(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
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
