/**
 * Which Redis commands the REST bridge runs. It shares one connection among all clients, so
 * commands that change a connection's state are always refused; server administration is
 * refused unless `allowAdminCommands`; blocking commands get a connection of their own.
 *
 * @module
 */

import type { RespArg } from "./resp.js";

/** Commands that would change the state of the shared connection or need a push channel. */
const REFUSED = new Set([
  "AUTH",
  "HELLO",
  "SELECT",
  "QUIT",
  "RESET",
  "MONITOR",
  "SYNC",
  "PSYNC",
  "READONLY",
  "READWRITE",
  "ASKING",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
]);
const TRANSACTION = new Set(["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"]);
/**
 * Server administration, refused unless `allowAdminCommands`: whatever stops, reconfigures,
 * wipes or replicates the server, or shows other clients' traffic (SLOWLOG keeps arguments).
 */
const ADMIN = new Set([
  "SHUTDOWN",
  "FLUSHALL",
  "FLUSHDB",
  "SWAPDB",
  "CONFIG",
  "ACL",
  "DEBUG",
  "MODULE",
  "SAVE",
  "BGSAVE",
  "BGREWRITEAOF",
  "REPLICAOF",
  "SLAVEOF",
  "REPLCONF",
  "FAILOVER",
  "MIGRATE",
  "CLUSTER",
  "SLOWLOG",
  "LATENCY",
  "PFDEBUG",
  "PFSELFTEST",
]);
/**
 * Commands whose subcommands differ: `allowed` ones run, `state` ones would change the shared
 * connection (refused always), `admin` ones are named in the refusal. Any other subcommand,
 * a future one included, counts as administration.
 */
const FAMILIES: Record<string, { allowed: string[]; state: string[]; admin: string[] }> = {
  CLIENT: {
    allowed: ["ID", "GETNAME", "INFO", "GETREDIR", "TRACKINGINFO", "HELP"],
    state: ["REPLY", "SETNAME", "SETINFO", "TRACKING", "CACHING", "NO-TOUCH"],
    admin: ["KILL", "LIST", "PAUSE", "UNPAUSE", "UNBLOCK", "NO-EVICT"],
  },
  // The official client loads scripts with SCRIPT LOAD and checks them with SCRIPT EXISTS.
  SCRIPT: { allowed: ["LOAD", "EXISTS", "HELP"], state: ["DEBUG"], admin: ["FLUSH", "KILL"] },
  // FCALL of loaded functions runs; installing or removing server-wide code does not.
  FUNCTION: {
    allowed: ["LIST", "DUMP", "STATS", "HELP"],
    state: [],
    admin: ["LOAD", "DELETE", "FLUSH", "RESTORE", "KILL"],
  },
};
const BLOCKING = new Set([
  "BLPOP",
  "BRPOP",
  "BLMOVE",
  "BRPOPLPUSH",
  "BLMPOP",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "WAITAOF",
]);

const argText = (arg: RespArg | undefined) => String(arg ?? "").toUpperCase();
/**
 * A command or subcommand name as Redis matches it: case-insensitively and only up to a NUL
 * byte (its command table compares with strcasecmp), so `FLUSHALL\0x` cannot slip past.
 */
const nameOf = (arg: RespArg | undefined) => argText(arg).split("\0", 1)[0] ?? "";

/** Why a command cannot run through the bridge, or undefined when it can. */
export function refusal(command: readonly RespArg[], allowAdmin: boolean): string | undefined {
  const name = nameOf(command[0]);
  if (TRANSACTION.has(name)) {
    return `ERR ${name} is not supported by the REST bridge; send transactions to /multi-exec`;
  }
  if (REFUSED.has(name)) return `ERR ${name} is not supported by the REST bridge`;
  const family = FAMILIES[name];
  const sub = family ? nameOf(command[1]) : "";
  if (family?.state.includes(sub)) return `ERR ${name} ${sub} is not supported by the REST bridge`;
  if (allowAdmin || !(ADMIN.has(name) || (family && !family.allowed.includes(sub)))) {
    return undefined;
  }
  // Only names from the tables above are echoed: arguments may be values.
  const shown = family?.admin.includes(sub) ? `${name} ${sub}` : name;
  return (
    `ERR command not allowed through the bridge: ${shown} ` +
    "(start it with allowAdminCommands / --allow-admin-commands)"
  );
}

/**
 * Whether `command` may wait on the server (BLPOP, WAIT, XREAD ... BLOCK): such a command
 * must not hold up the shared connection.
 */
export function isBlocking(command: readonly RespArg[]): boolean {
  const name = nameOf(command[0]);
  if (BLOCKING.has(name)) return true;
  if (name !== "XREAD" && name !== "XREADGROUP") return false;
  for (const arg of command.slice(1)) {
    const text = argText(arg);
    if (text === "STREAMS") return false;
    if (text === "BLOCK") return true;
  }
  return false;
}
