// The processes the fault suite kills, stops and restarts: a redis-server of its own on a
// fixed port (startRedisServer from edgecache/node neither exposes its pid nor restarts on
// the same port), the REST bridge as a child process through the package's CLI, and a
// minimal RESP client to read Redis directly (the checker's snapshots do not go through
// the bridge or the proxy).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A free loopback TCP port (the OS picks it; the probe is closed before returning). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Encodes one command as a RESP array of bulk strings. */
function encode(args) {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) {
    const text = String(arg);
    parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
  }
  return parts.join("");
}

/**
 * Parses one RESP2 reply from `buf` at `at`: `[value, next offset]`, or undefined while
 * the reply is incomplete. Errors become `{ error: text }`; bulk strings become strings.
 */
function parse(buf, at = 0) {
  const eol = buf.indexOf("\r\n", at);
  if (eol === -1) return undefined;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString("utf8", at + 1, eol);
  const next = eol + 2;
  if (type === "+") return [line, next];
  if (type === "-") return [{ error: line }, next];
  if (type === ":") return [Number(line), next];
  if (type === "$") {
    const n = Number(line);
    if (n === -1) return [null, next];
    if (buf.length < next + n + 2) return undefined;
    return [buf.toString("utf8", next, next + n), next + n + 2];
  }
  if (type === "*") {
    const n = Number(line);
    if (n === -1) return [null, next];
    const items = [];
    let offset = next;
    for (let i = 0; i < n; i++) {
      const item = parse(buf, offset);
      if (item === undefined) return undefined;
      items.push(item[0]);
      offset = item[1];
    }
    return [items, offset];
  }
  throw new Error(`unexpected RESP type ${JSON.stringify(type)}`);
}

/**
 * Runs one command on a fresh connection and resolves with its reply (rejects on a
 * connection error, on an error reply, or after `timeoutMs`).
 */
export function redisCommand(port, args, timeoutMs = 2_000) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const fail = (error) => {
      socket.destroy();
      reject(error);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`redis did not answer ${args[0]}`)));
    socket.on("error", fail);
    socket.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      let reply;
      try {
        reply = parse(buf);
      } catch (error) {
        return fail(error);
      }
      if (reply === undefined) return;
      socket.end();
      const [value] = reply;
      if (value && typeof value === "object" && "error" in value) reject(new Error(value.error));
      else resolve(value);
    });
    socket.write(encode(args));
  });
}

/** Waits until `probe()` resolves truthy, polling every 20 ms, for at most `ms`. */
async function until(what, ms, probe) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not become ready in ${ms} ms`);
    await sleep(20);
  }
}

/** The exit of `child` as a promise that never rejects. */
const exited = (child) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : once(child, "exit").then(() => undefined);

/**
 * A redis-server on a fixed port, without persistence, that can be SIGKILLed and started
 * again on the same port (its data is then gone), or SIGSTOPped (a hang) and SIGCONTed.
 */
export class RedisProcess {
  #child;
  constructor({ port, dir }) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}`;
  }

  async start() {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--save", ""];
    args.push("--appendonly", "no", "--dir", this.dir, "--daemonize", "no");
    this.#child = spawn("redis-server", args, { stdio: "ignore" });
    const child = this.#child;
    child.on("error", () => {}); // a failed signal later must not crash the orchestrator
    let gone = false;
    void exited(child).then(() => {
      gone = true;
    });
    await until("redis-server", 10_000, async () => {
      if (gone) throw new Error("redis-server exited during startup");
      return (await redisCommand(this.port, ["PING"], 500)) === "PONG";
    });
  }

  /** SIGKILL: every write it had is lost. Resolves once the process is gone. */
  async kill() {
    const child = this.#child;
    child.kill("SIGCONT"); // a stopped process dies just as well, but be explicit
    child.kill("SIGKILL");
    await exited(child);
  }

  stop() {
    this.#child.kill("SIGSTOP");
  }

  cont() {
    this.#child.kill("SIGCONT");
  }

  async close() {
    if (!this.#child) return;
    this.#child.kill("SIGCONT");
    this.#child.kill("SIGKILL");
    await exited(this.#child);
  }
}

/**
 * The REST bridge as its own process, started through the package's CLI (`edgecache
 * bridge`), so that it can be SIGKILLed mid-request and started again on the same port.
 */
export class BridgeProcess {
  #child;
  constructor({ cli, redisUrl, port, token }) {
    this.cli = cli;
    this.redisUrl = redisUrl;
    this.port = port;
    this.token = token;
    this.url = `http://127.0.0.1:${port}`;
  }

  async start() {
    const args = [this.cli, "bridge", "--redis", this.redisUrl, "--port", String(this.port)];
    args.push("--token", this.token);
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    child.on("error", () => {});
    let output = "";
    const ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bridge did not start: ${output}`)), 10_000);
      child.stdout.on("data", (chunk) => {
        output += chunk;
        if (/listening on/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.stderr.on("data", (chunk) => {
        output += chunk;
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`bridge exited with ${code} during startup: ${output.slice(-500)}`));
      });
    });
    await ready;
  }

  async kill() {
    this.#child.kill("SIGKILL");
    await exited(this.#child);
  }

  async close() {
    if (!this.#child) return;
    this.#child.kill("SIGTERM");
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 3_000);
    await exited(this.#child);
    clearTimeout(timer);
  }
}
