#!/usr/bin/env node
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type RestBridge, startRestBridge } from "./bridge.js";
import { type RedisServer, startRedisServer } from "./redis-server.js";

const HELP = `Usage:
  edgecache bridge [--redis URL] [--port N] [--host H] [--token T]
      Serve the Upstash Redis REST protocol in front of a Redis server.
  edgecache dev [--port N] [--host H] [--token T] [--redis-server PATH]
      Start a throwaway redis-server (in memory) plus the bridge, for local development.

Options:
  --redis URL           Redis to serve (redis://, rediss://, unix://)  [default: redis://127.0.0.1:6379]
  --port N              HTTP port (0 picks a free one)                  [default: 8079]
  --host H              Interface to listen on                          [default: 127.0.0.1]
  --token T             Bearer token clients must send; prefer the EDGECACHE_BRIDGE_TOKEN
                        environment variable, which other users cannot see in \`ps\`.
                        Required for \`bridge\`; \`dev\` defaults to "dev".
  --redis-server PATH   redis-server executable for \`dev\`               [default: from PATH]
  -h, --help            Show this help.

Clients connect with UPSTASH_REDIS_REST_URL=<printed URL> and UPSTASH_REDIS_REST_TOKEN=<token>.
`;

/** A command line, parsed by {@link parseCliArgs}. */
export type CliCommand =
  | { kind: "help" }
  | { kind: "bridge"; redisUrl: string; port: number; host: string; token: string }
  | {
      kind: "dev";
      port: number;
      host: string;
      token: string;
      tokenIsDefault: boolean;
      redisServerPath: string | undefined;
    };

/** The command line is wrong; the message says how, without echoing secrets. */
export class CliUsageError extends Error {
  override name = "CliUsageError";
}

/** Where {@link main} writes and how it learns to stop; tests pass their own. */
export interface CliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  env: Record<string, string | undefined>;
  /** Aborting it shuts the servers down and makes {@link main} resolve. */
  signal: AbortSignal;
}

function parsePort(text: string | undefined): number {
  if (text === undefined) return 8079;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new CliUsageError("--port must be an integer from 0 to 65535");
  }
  return port;
}

/**
 * Parses `edgecache` arguments (without the `node` and script entries).
 * @throws {CliUsageError} on unknown options, a missing subcommand or a missing token.
 */
export function parseCliArgs(
  argv: readonly string[],
  env: Record<string, string | undefined> = {},
): CliCommand {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    throw new CliUsageError(error instanceof Error ? error.message : "Invalid arguments");
  }
  const { values, positionals } = parsed;
  if (values.help) return { kind: "help" };
  const [subcommand, ...extra] = positionals;
  if (extra.length > 0) throw new CliUsageError("Too many arguments");
  const port = parsePort(values.port);
  const host = values.host ?? "127.0.0.1";
  const token = values.token ?? env.EDGECACHE_BRIDGE_TOKEN;
  if (token === "") throw new CliUsageError("The token must not be empty");
  switch (subcommand) {
    case "bridge":
      if (token === undefined) {
        throw new CliUsageError("A token is required: --token or EDGECACHE_BRIDGE_TOKEN");
      }
      if (values["redis-server"] !== undefined) {
        throw new CliUsageError("--redis-server only applies to `edgecache dev`");
      }
      return {
        kind: "bridge",
        redisUrl: values.redis ?? "redis://127.0.0.1:6379",
        port,
        host,
        token,
      };
    case "dev":
      if (values.redis !== undefined) {
        throw new CliUsageError("`edgecache dev` starts its own Redis; use `bridge` for --redis");
      }
      return {
        kind: "dev",
        port,
        host,
        token: token ?? "dev",
        tokenIsDefault: token === undefined,
        redisServerPath: values["redis-server"],
      };
    case undefined:
      throw new CliUsageError("Missing command: `bridge` or `dev`");
    default:
      throw new CliUsageError("Unknown command: expected `bridge` or `dev`");
  }
}

function parseOptions(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      redis: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      token: { type: "string" },
      "redis-server": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

/** The Redis URL without credentials, fit for printing. */
function describeRedis(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    parsed.search = "";
    return parsed.toString();
  } catch {
    return "(invalid URL)";
  }
}

/** The bridge connects lazily; one PING at startup turns a typo in --redis into a clear hint. */
async function warnIfRedisUnreachable(bridge: RestBridge, io: CliIo): Promise<void> {
  const response = await fetch(bridge.url, {
    method: "POST",
    headers: { authorization: `Bearer ${bridge.token}` },
    body: JSON.stringify(["PING"]),
  });
  if (response.ok) return;
  const body = (await response.json().catch(() => ({}))) as { error?: unknown };
  io.stderr(
    `edgecache: warning: Redis did not answer PING: ${String(body.error ?? response.status)}`,
  );
}

function defaultIo(): CliIo {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  controller.signal.addEventListener("abort", () => {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  });
  return {
    stdout: (line) => process.stdout.write(`${line}\n`),
    stderr: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    signal: controller.signal,
  };
}

/**
 * Runs the `edgecache` command line: starts what it was asked to, prints the URL, and
 * resolves with the exit code once `io.signal` aborts (SIGINT/SIGTERM by default).
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2));
 */
export async function main(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  let command: CliCommand;
  try {
    command = parseCliArgs(argv, io.env);
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error;
    io.stderr(`edgecache: ${error.message}\nRun \`edgecache --help\` for usage.`);
    return 2;
  }
  if (command.kind === "help") {
    io.stdout(HELP);
    return 0;
  }
  let redis: RedisServer | undefined;
  let bridge: RestBridge | undefined;
  try {
    if (command.kind === "dev") {
      redis = await startRedisServer({ path: command.redisServerPath });
      io.stdout(`redis-server: ${redis.url} (in memory, discarded on exit)`);
    }
    const redisUrl = command.kind === "dev" ? (redis?.url ?? "") : command.redisUrl;
    bridge = await startRestBridge({
      redisUrl,
      token: command.token,
      port: command.port,
      host: command.host,
    });
    io.stdout(`edgecache REST bridge for ${describeRedis(redisUrl)} listening on ${bridge.url}`);
    await warnIfRedisUnreachable(bridge, io);
    if (command.kind === "dev" && command.tokenIsDefault) {
      io.stdout(`token: "dev" (the default; pass --token to change it)`);
    }
    if (!io.signal.aborted) {
      await new Promise((resolve) => io.signal.addEventListener("abort", resolve, { once: true }));
    }
    return 0;
  } catch (error) {
    io.stderr(`edgecache: ${error instanceof Error ? error.message : "failed to start"}`);
    return 1;
  } finally {
    await bridge?.close();
    await redis?.close();
  }
}

function invokedAsBin(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (invokedAsBin()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error);
      process.exitCode = 1;
    },
  );
}
