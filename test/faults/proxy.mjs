// The fault proxy: an HTTP proxy in front of the REST bridge that the orchestrator switches
// between modes over time windows. It logs every request it receives with what it did:
// when (if ever) it forwarded it upstream, what the upstream answered, and what the
// request was (which store script, which keys, its arguments). The checker joins that log
// with the processes' histories: a write the upstream applied after the client recorded
// its rejection is a late write.
//
// Modes (each applied to a request with probability `p`, the others pass through):
//   pass          forward, relay the answer
//   hold          hold the request `holdMs` (longer than the store timeout), then forward
//                 it anyway: the client has given up, the command still reaches Redis later
//   delay         forward at once, relay the answer `delayMs` later
//   error-before  answer 5xx without forwarding (nothing ran)
//   error-after   forward, then answer 5xx (the command ran)
//   garbage       forward, then answer 200 with a body that is not a valid answer
//   truncated     forward, then send part of the real answer and cut it off
//   reset-before  reset the connection without forwarding
//   reset-after   forward, then reset the connection (the command ran)
import { createHash } from "node:crypto";
import { Agent, createServer, request } from "node:http";

export const PROXY_MODES = [
  "hold",
  "delay",
  "error-before",
  "error-after",
  "garbage",
  "truncated",
  "reset-before",
  "reset-after",
];

const sha1 = (text) => createHash("sha1").update(text).digest("hex");
const SCRIPT_KINDS = {
  READ: "read",
  SYNC: "sync",
  WRITE: "set",
  DELETE: "delete",
  CLEAR: "clear",
  ACQUIRE: "lease",
  RELEASE: "release",
};

/**
 * The store's scripts by SHA-1 (sha -> kind), from the built module the processes run
 * (`dist/stores/scripts.js`), so that EVAL and EVALSHA calls are told apart exactly. Empty
 * when it cannot be loaded; requests are then classified by their KEYS alone.
 */
export async function loadScriptKinds(moduleUrl) {
  const kinds = new Map();
  try {
    for (const [name, text] of Object.entries(await import(moduleUrl))) {
      const kind = SCRIPT_KINDS[name.replace(/_SCRIPT$/, "")];
      if (kind !== undefined && typeof text === "string") kinds.set(sha1(text), kind);
    }
  } catch {
    // Not built, or moved: fall back to the KEYS layout.
  }
  return kinds;
}

/**
 * A script call's kind from its KEYS layout, for when its text is unknown. This is the
 * layout from before the write deadlines; since then a sync and a clear, and a set and a
 * delete, share a layout, which only the script's SHA-1 tells apart.
 */
function scriptKind(roles) {
  const [a, b, c] = roles;
  const entries = (from) => roles.slice(from).every((r) => r.startsWith("k:"));
  if (a === "c" && b === "v" && c === "log" && entries(3)) return "read";
  if (roles.length === 2 && a === "v" && b === "log") return "sync";
  if (a === "v" && b === "c" && c === "log" && entries(3)) {
    return roles.length === 3 ? "clear" : "set";
  }
  if (a === "v" && b === "log" && roles.length > 2 && entries(2)) return "delete";
  if (roles.length === 1 && a.startsWith("l:")) return "release";
  return "other";
}

/**
 * Describes an Upstash REST request body: `{ kind, keys, argv }`, where `kind` is the store
 * script it runs (read, sync, set, delete, clear, lease, release), "time" or "other", `keys`
 * the cache keys it names and, for writes, `argv` the script's arguments (origin, deadline,
 * values...). `scripts` maps script SHA-1s to kinds (see {@link loadScriptKinds}).
 */
export function describeRequest(body, scripts = new Map()) {
  let command;
  try {
    command = JSON.parse(body);
  } catch {
    return { kind: "junk", keys: [] };
  }
  if (!Array.isArray(command) || Array.isArray(command[0])) return { kind: "other", keys: [] };
  const name = String(command[0]).toUpperCase();
  if (name === "TIME") return { kind: "time", keys: [] };
  if (name === "SET" && /:l:/.test(String(command[1]))) return { kind: "lease", keys: [] };
  if (name !== "EVAL" && name !== "EVALSHA") return { kind: "other", keys: [] };
  const n = Number(command[2]);
  const redisKeys = command.slice(3, 3 + n).map(String);
  const roles = redisKeys.map((k) => /^[^:]*:\{[^}]*\}:(.*)$/s.exec(k)?.[1] ?? "?");
  const sha = name === "EVAL" ? sha1(String(command[1])) : String(command[1]);
  const kind = scripts.get(sha) ?? scriptKind(roles);
  const keys = roles.filter((r) => r.startsWith("k:")).map((r) => r.slice(2));
  const writes = kind === "set" || kind === "delete" || kind === "clear";
  return writes ? { kind, keys, argv: command.slice(3 + n).map(String) } : { kind, keys };
}

/** A version in an answer: a JSON number, or a base64 string (Upstash-Encoding: base64). */
function asVersion(value) {
  const n =
    typeof value === "string" ? Number(Buffer.from(value, "base64").toString("utf8")) : value;
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * What an upstream answer says happened: "applied" (a write answered with its version),
 * "ok" (any other successful answer), "refused" (an error reply: the command did not run,
 * or a write answered without a version), or "unknown" (a 5xx or an unreadable answer: it
 * may or may not have run).
 */
export function judgeAnswer(kind, status, body) {
  if (status >= 400 && status < 500) return { outcome: "refused" };
  let json;
  try {
    json = JSON.parse(body);
  } catch {
    return { outcome: "unknown" };
  }
  if (status !== 200) {
    // The bridge could not even connect to Redis: the command was never sent. Any other
    // failure (a connection lost mid-command) may have come after Redis ran it.
    const text = typeof json?.error === "string" ? json.error : "";
    return { outcome: /unavailable: Cannot connect/.test(text) ? "refused" : "unknown" };
  }
  if (json === null || typeof json !== "object" || "error" in json) return { outcome: "refused" };
  if (kind !== "set" && kind !== "delete" && kind !== "clear") return { outcome: "ok" };
  const version = Array.isArray(json.result) ? asVersion(json.result[0]) : undefined;
  return version === undefined ? { outcome: "refused" } : { outcome: "applied", version };
}

const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "host"]);
const copyHeaders = (headers) =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP.has(name.toLowerCase())));

const GARBAGE = [
  "<html><body>502 Bad Gateway</body></html>",
  '{"result": [1, 2',
  '{"result": 42}',
  '{"result": ["bm90IGFuIGVudHJ5", null]}',
  "{}",
  "null",
];

/** Resets a socket (RST) where Node can, otherwise just destroys it. */
function reset(socket) {
  if (!socket || socket.destroyed) return;
  if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
  else socket.destroy();
}

/**
 * Starts the proxy on a free loopback port in front of `target` (the bridge's port).
 * `now` is the shared clock (CLOCK_MONOTONIC in ms), `random` a seeded PRNG.
 */
export async function startFaultProxy({ target, now, random, holdMs, delayMs, scripts }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  const log = [];
  const counts = {};
  let mode = { name: "pass", p: 1 };
  let pending = 0;
  let pendingWrites = 0;
  let idleWaiters = [];
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Sends `body` upstream; resolves with the answer, or undefined when it failed. */
  function forward(entry, req, body) {
    return new Promise((resolve) => {
      const upstream = request(
        {
          host: "127.0.0.1",
          port: target,
          method: req.method,
          path: req.url,
          headers: { ...copyHeaders(req.headers), "content-length": body.length },
          agent,
        },
        (answer) => {
          const chunks = [];
          answer.on("data", (c) => chunks.push(c));
          answer.on("error", () => {});
          answer.on("end", () => {
            const text = Buffer.concat(chunks);
            entry.ans = now();
            entry.status = answer.statusCode;
            Object.assign(entry, judgeAnswer(entry.kind, answer.statusCode, text.toString()));
            resolve({ status: answer.statusCode, headers: answer.headers, body: text });
          });
          answer.on("aborted", () => {
            entry.ans = now();
            entry.outcome = "unknown";
            resolve(undefined);
          });
        },
      );
      upstream.on("error", (error) => {
        entry.ans ??= now();
        entry.upstreamError = error.code ?? error.message;
        // Refused: nothing reached the bridge. Anything else may have reached Redis.
        entry.outcome ??= error.code === "ECONNREFUSED" ? "none" : "unknown";
        resolve(undefined);
      });
      entry.fwd = now();
      upstream.end(body);
    });
  }

  function relay(res, answer, { status, body } = {}) {
    if (res.destroyed) return;
    const headers = copyHeaders(answer?.headers ?? {});
    const out = body ?? answer.body;
    res.writeHead(status ?? answer.status, { ...headers, "content-length": out.length });
    res.end(out);
  }

  async function handle(req, res, body) {
    // The client's port tells which process sent a request (each has its own sockets).
    const entry = {
      id: log.length,
      at: now(),
      port: req.socket.remotePort,
      ...describeRequest(body, scripts),
    };
    log.push(entry);
    const write = entry.kind === "set" || entry.kind === "delete" || entry.kind === "clear";
    if (write) pendingWrites++;
    try {
      await serve(req, res, body, entry);
    } finally {
      if (write) pendingWrites--;
      wake();
    }
  }

  function wake() {
    idleWaiters = idleWaiters.filter((w) => {
      if ((w.writes ? pendingWrites : pending) > 0) return true;
      w.resolve();
      return false;
    });
  }

  async function serve(req, res, body, entry) {
    const faulty = mode.name !== "pass" && random() < mode.p;
    entry.mode = faulty ? mode.name : "pass";
    counts[entry.mode] = (counts[entry.mode] ?? 0) + 1;
    res.on("close", () => {
      if (!res.writableFinished) entry.clientGone ??= now();
    });
    switch (entry.mode) {
      case "error-before":
        entry.outcome = "none";
        return random() < 0.5
          ? relay(res, undefined, {
              status: 503,
              body: Buffer.from('{"error":"fault proxy: unavailable"}'),
            })
          : relay(res, undefined, { status: 502, body: Buffer.from("Bad Gateway") });
      case "reset-before":
        entry.outcome = "none";
        return reset(req.socket);
      case "hold":
        await wait(holdMs);
        break;
    }
    const answer = await forward(entry, req, body);
    if (answer === undefined) return reset(req.socket);
    switch (entry.mode) {
      case "delay":
        await wait(delayMs);
        return relay(res, answer);
      case "error-after":
        return relay(res, answer, {
          status: 500,
          body: Buffer.from('{"error":"ERR fault proxy: failed after forwarding"}'),
        });
      case "garbage":
        return relay(res, answer, {
          status: 200,
          body: Buffer.from(GARBAGE[Math.floor(random() * GARBAGE.length)]),
        });
      case "truncated": {
        if (res.destroyed) return;
        const cut = answer.body.subarray(0, Math.floor(answer.body.length / 2));
        if (random() < 0.5) {
          // Promise the whole body, send half, cut the connection.
          res.writeHead(200, {
            ...copyHeaders(answer.headers),
            "content-length": answer.body.length,
          });
          res.write(cut, () => reset(req.socket));
        } else {
          relay(res, answer, { status: 200, body: cut }); // a complete answer of half a body
        }
        return;
      }
      case "reset-after":
        return reset(req.socket);
      default:
        return relay(res, answer);
    }
  }

  const server = createServer((req, res) => {
    pending++;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      pending--;
      wake();
    };
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("error", () => {});
    // The client went away before its whole body arrived: nothing to forward.
    req.on("close", () => {
      if (!req.complete) settle();
    });
    req.on("end", () => {
      handle(req, res, Buffer.concat(chunks))
        .catch(() => reset(req.socket))
        .finally(settle);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}`,
    /** Every request received, in arrival order. */
    log,
    /** Requests per mode applied. */
    counts,
    /** Switches the mode for requests arriving from now on. */
    setMode(name, p = 1) {
      mode = { name, p };
    },
    /**
     * Resolves once no request (with `writes`: no write request) is held, in flight
     * upstream or waiting to be answered.
     */
    idle({ writes = false } = {}) {
      if ((writes ? pendingWrites : pending) === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push({ writes, resolve }));
    },
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
      agent.destroy();
      idleWaiters = [];
    },
  };
}
