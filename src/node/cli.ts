#!/usr/bin/env node
import { randomBytes } from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MIN_TOKEN_LENGTH } from "../hono/secret.js";
import { isLoopbackHost, type RestBridge, startRestBridge } from "./bridge.js";
import { type RedisServer, startRedisServer } from "./redis-server.js";

const HELP = `Usage:
  edgecache bridge [--redis URL] [--port N] [--host H] [--token T] [--allow-admin-commands]
      Serve the Upstash Redis REST protocol in front of a Redis server.
  edgecache dev [--port N] [--host H] [--token T] [--redis-server PATH] [--allow-admin-commands]
      Start a throwaway redis-server (in memory) plus the bridge, for local development.

Options:
  --redis URL           Redis to serve (redis://, rediss://, unix://)  [default: redis://127.0.0.1:6379]
  --port N              HTTP port (0 picks a free one)                  [default: 8079]
  --host H              Interface to listen on                          [default: 127.0.0.1]
  --token T             Bearer token clients must send; prefer the EDGECACHE_BRIDGE_TOKEN
                        environment variable, which other users cannot see in \`ps\`.
                        Without one, a random token is made and printed at startup.
                        At least ${MIN_TOKEN_LENGTH} characters unless --host is loopback.
  --allow-admin-commands
                        Let clients run server administration (FLUSHALL, FLUSHDB, CONFIG,
                        SHUTDOWN, ACL, CLIENT KILL, DEBUG, SCRIPT FLUSH, ...), e.g. for a
                        test suite that resets the server. Refused by default; \`dev\` then
                        also denies its redis-server's default user the admin commands
                        Lua scripts could still run (FLUSHALL, FLUSHDB, SWAPDB, MIGRATE, ...).
  --redis-server PATH   redis-server executable for \`dev\`               [default: from PATH]
  -h, --help            Show this help.

Clients connect with UPSTASH_REDIS_REST_URL=<printed URL> and UPSTASH_REDIS_REST_TOKEN=<token>.
`;

/** A command line, parsed by {@link parseCliArgs}. */
export type CliCommand =
  | { kind: "help" }
  | ({ kind: "bridge"; redisUrl: string } & ServeOptions)
  | ({ kind: "dev"; redisServerPath: string | undefined } & ServeOptions);

/** What `bridge` and `dev` share. */
interface ServeOptions {
  port: number;
  host: string;
  /** Undefined when none was given: {@link main} makes a random one and prints it. */
  token: string | undefined;
  allowAdminCommands: boolean;
}

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
 * @throws {CliUsageError} on unknown options, a missing subcommand, or a token under 16
 * characters with a non-loopback `--host`.
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
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH && !isLoopbackHost(host)) {
    throw new CliUsageError(
      `The token must be at least ${MIN_TOKEN_LENGTH} characters when --host is not loopback ` +
        "(or leave it out to get a random one)",
    );
  }
  const serve = { port, host, token, allowAdminCommands: values["allow-admin-commands"] === true };
  switch (subcommand) {
    case "bridge":
      if (values["redis-server"] !== undefined) {
        throw new CliUsageError("--redis-server only applies to `edgecache dev`");
      }
      return { kind: "bridge", redisUrl: values.redis ?? "redis://127.0.0.1:6379", ...serve };
    case "dev":
      if (values.redis !== undefined) {
        throw new CliUsageError("`edgecache dev` starts its own Redis; use `bridge` for --redis");
      }
      return { kind: "dev", redisServerPath: values["redis-server"], ...serve };
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
      "allow-admin-commands": { type: "boolean" },
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

/**
 * Admin commands Redis 7 still lets a Lua script run (they lack the `noscript` flag, unlike
 * CONFIG, SHUTDOWN, ACL, DEBUG, ...): `dev` denies them to its server's default user, so an
 * EVAL through the bridge cannot do what the bridge refuses.
 */
const SCRIPT_REACHABLE_ADMIN = [
  "flushall",
  "flushdb",
  "swapdb",
  "migrate",
  "slowlog",
  "pfdebug",
  "pfselftest",
];
const DEV_ACL = ["--user", "default", "on", "nopass", "~*", "&*", "+@all"].concat(
  SCRIPT_REACHABLE_ADMIN.map((command) => `-${command}`),
);

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
    const { allowAdminCommands } = command;
    if (command.kind === "dev") {
      const args = allowAdminCommands ? [] : DEV_ACL;
      redis = await startRedisServer({ path: command.redisServerPath, args });
      io.stdout(`redis-server: ${redis.url} (in memory, discarded on exit)`);
    }
    const redisUrl = command.kind === "dev" ? (redis?.url ?? "") : command.redisUrl;
    const token = command.token ?? randomBytes(24).toString("base64url");
    bridge = await startRestBridge({
      redisUrl,
      token,
      port: command.port,
      host: command.host,
      allowAdminCommands,
    });
    io.stdout(`edgecache REST bridge for ${describeRedis(redisUrl)} listening on ${bridge.url}`);
    io.stdout(`UPSTASH_REDIS_REST_URL=${bridge.url}`);
    if (command.token === undefined) {
      // Printed once, as asked for by leaving the token out; a given token is never printed.
      io.stdout(`UPSTASH_REDIS_REST_TOKEN=${token}`);
      io.stdout("(a random token for this run; pass --token or EDGECACHE_BRIDGE_TOKEN to fix one)");
    }
    if (allowAdminCommands) {
      io.stderr(
        "edgecache: warning: --allow-admin-commands lets any token holder run FLUSHALL, " +
          "CONFIG, SHUTDOWN and other server administration",
      );
    }
    await warnIfRedisUnreachable(bridge, io);
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
