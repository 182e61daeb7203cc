/**
 * How the Upstash store talks to Redis: one script call per request over an
 * `@upstash/redis` transport, errors turned into {@link StoreError}s that carry no values,
 * tokens or URLs, and writes that can never land after they were reported as failed.
 *
 * A write carries a deadline on Redis' own clock (see {@link RedisClock}): the local limit
 * `timeout` ms after it was sent, moved onto Redis' clock by a lower bound of the offset
 * between the clocks. The script refuses to run past it. So once the local limit has
 * passed, the write has either run or never will; a failed write is reported only then:
 * a timeout fires at the limit, and any other failure whose request may still be on its
 * way (a reset connection, a proxy's error, a garbled answer) waits for the limit first.
 *
 * @module
 */

import { Redis } from "@upstash/redis";
import { InvalidOptionError, StoreError } from "../errors.js";
import { clockFor, type RedisClock } from "./redis-clock.js";

/** What an `@upstash/redis` client uses underneath to send requests. */
export interface Requester {
  request(req: { body: unknown; signal?: unknown }): Promise<{ result?: unknown; error?: string }>;
}

/** Connection settings for the store when it builds its own client. */
export interface Connection {
  url: string;
  token: string;
  retries?: number;
  keepAlive?: boolean;
}

/**
 * A `Redis` client of `@upstash/redis` (1.34 or later), taken by its shape rather than by its
 * class, so that the copy a project installs works whatever its version. edgecache sends raw
 * `EVALSHA`/`EVAL` commands (the two below are the client's own methods for them) through
 * the client's transport: its `client` field, which is `protected` in the client's types and
 * so cannot be part of this one; `upstashStore` checks at run time that it is there.
 */
export interface UpstashRedisClient {
  /** Runs a script Redis already holds, by its SHA-1. */
  evalsha(sha1: string, keys: string[], args: string[]): Promise<unknown>;
  /** Runs a script by its text. */
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
}

/** A Lua script, sent by hash once Redis has it. */
export interface Script {
  readonly text: string;
  sha?: Promise<string>;
  loaded: boolean;
}

export const script = (text: string): Script => ({ text, loaded: false });

type Arg = string | number;

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Redis quotes user input in its error texts ("unknown command 'x', with args beginning
// with: 'value'"); strip quoted runs and URLs so no value or credential reaches a message.
function redact(text: string): string {
  return text
    .replace(/'[^']*'/g, "'…'")
    .replace(/"[^"]*"/g, '"…"')
    .replace(/[A-Za-z][A-Za-z0-9+.-]*:\/\/\S*/g, "<url>")
    .slice(0, 200);
}

/**
 * A stand-in for an error thrown below us (fetch, the client) to use as a `cause`: its
 * name and system error code only. Messages of network errors can hold the request URL
 * with its credentials.
 */
function scrubbed(err: unknown): Error {
  const name = err instanceof Error && /^\w{1,40}$/.test(err.name) ? err.name : "Error";
  const raw =
    (err as { code?: unknown } | null)?.code ??
    (err as { cause?: { code?: unknown } } | null)?.cause?.code;
  const code = typeof raw === "string" && /^[A-Z0-9_]{1,40}$/.test(raw) ? raw : undefined;
  const stand = new Error(code === undefined ? name : `${name} (${code})`);
  stand.name = name;
  return stand;
}

// Replies that mean "not now" rather than "never": Redis is loading, busy, out of memory,
// read-only or without a master. They count as unavailability, like a network failure.
const TRANSIENT =
  /^(LOADING|BUSY|MASTERDOWN|OOM|READONLY|CLUSTERDOWN|TRYAGAIN|NOREPLICAS|MISCONF)\b/;
// A Redis error reply starts with an upper-case code (ERR, WRONGTYPE, NOSCRIPT, ...).
const REDIS_ERROR = /^[A-Z][A-Z_]*( |$)/;

/**
 * Failures that prove the request did not and will not run: an answer from Redis or the
 * REST server refusing it, or a connection that was never made. A write failing so needs
 * no wait for its deadline.
 */
const NOT_RUN = new WeakSet<StoreError>();

function notRun(err: StoreError): StoreError {
  NOT_RUN.add(err);
  return err;
}

// Errors below us that mean no connection was made, so nothing was sent: Node and Bun
// codes, and the text of Deno's and workerd's fetch errors.
const NO_CONNECTION = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ConnectionRefused|FailedToOpenSocket)$/;
const NO_CONNECTION_TEXT = /connection refused|failed to lookup address|dns error/i;

function neverConnected(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === "object" && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && NO_CONNECTION.test(code)) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === "string" && NO_CONNECTION_TEXT.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The error for an error text the server answered with. */
function replyError(text: string): StoreError {
  if (/^unauthori[sz]ed/i.test(text) || /^(WRONGPASS|NOAUTH|NOPERM)\b/.test(text)) {
    return notRun(new StoreError("EC_STORE_AUTH", "upstash refused the token"));
  }
  if (TRANSIENT.test(text)) {
    return notRun(new StoreError("EC_STORE_UNAVAILABLE", `redis is unavailable: ${redact(text)}`));
  }
  if (REDIS_ERROR.test(text)) {
    return notRun(new StoreError("EC_STORE_ERROR", `redis error: ${redact(text)}`));
  }
  // Not from Redis: a proxy or gateway in between (a 502, a 504 while the request goes on).
  return new StoreError(
    "EC_STORE_UNAVAILABLE",
    `upstash answered with an error that did not come from Redis: ${redact(text)}`,
  );
}

/**
 * The Redis error text of an `@upstash/redis` failure, without the command the client
 * appends to its messages (which would include keys and values).
 */
function replyText(err: unknown): string | undefined {
  if (!(err instanceof Error) || err.name !== "UpstashError") return undefined;
  const at = err.message.indexOf(", command was:");
  return at === -1 ? err.message : err.message.slice(0, at);
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export const shapeError = (): StoreError =>
  new StoreError("EC_STORE_ERROR", "unexpected answer shape from the store");

export class Transport {
  readonly #requester: Requester;
  readonly #timeout: number;
  readonly #clock: RedisClock;

  /** `timeout`: ms per call, retries included; `0` for none (and then no write deadlines). */
  constructor(connection: Connection | UpstashRedisClient, timeout: number) {
    const { requester, endpoint } = requesterOf(connection);
    this.#requester = requester;
    this.#timeout = timeout;
    this.#clock = clockFor(endpoint);
  }

  /**
   * One request, failing with `EC_STORE_TIMEOUT` after `budget` ms (the store's timeout by
   * default). Resolves to the reply's result.
   */
  async send(body: Arg[], budget = this.#timeout): Promise<unknown> {
    if (this.#timeout > 0 && budget <= 0) throw this.#timedOut();
    const signal = this.#timeout > 0 ? AbortSignal.timeout(Math.ceil(budget)) : undefined;
    let res: { result?: unknown; error?: string };
    try {
      res = await untilAborted(this.#requester.request({ body, signal }), signal);
    } catch (err) {
      if (signal?.aborted) throw this.#timedOut();
      const text = replyText(err);
      if (text !== undefined) throw replyError(text);
      if (err instanceof Error && err.name === "UpstashJSONParseError") {
        throw new StoreError(
          "EC_STORE_UNAVAILABLE",
          "upstash answered with a body that is not JSON",
        );
      }
      const failure = new StoreError("EC_STORE_UNAVAILABLE", "upstash is unreachable", {
        cause: scrubbed(err),
      });
      throw neverConnected(err) ? notRun(failure) : failure;
    }
    // From 1.35.1 the client answers a request aborted by a plain signal with a result of
    // its own making ("Aborted" or the abort's reason), as if Redis had said it.
    if (signal?.aborted) throw this.#timedOut();
    if (res === null || typeof res !== "object") throw shapeError();
    if (res.error !== undefined) throw replyError(String(res.error));
    return res.result;
  }

  /** Runs a script within the store's timeout. */
  run(s: Script, keys: string[], args: Arg[]): Promise<unknown> {
    return this.#run(s, keys, args, this.#timeout);
  }

  /** Runs a script that changes nothing, learning Redis' time from its reply. */
  async read(s: Script, keys: string[], args: Arg[], nowAt: (raw: unknown[]) => unknown) {
    const sent = this.#clock.local();
    const raw = await this.#run(s, keys, args, this.#timeout);
    const received = this.#clock.local();
    if (!Array.isArray(raw)) throw shapeError();
    this.#clock.observe(nowAt(raw), sent, received);
    return raw;
  }

  /**
   * Runs a write script with arguments `args`, a deadline on Redis' clock, then `tail`.
   * Resolves to its reply (never one refused as late). Rejects only once the write can no
   * longer happen.
   */
  async write(
    s: Script,
    keys: string[],
    args: Arg[],
    nowAt: (raw: unknown[]) => unknown,
    tail: Arg[] = [],
  ) {
    if (this.#timeout === 0) {
      const raw = await this.#run(s, keys, [...args, 0, ...tail], 0);
      if (!Array.isArray(raw)) throw shapeError();
      return raw;
    }
    const clock = this.#clock;
    const limit = clock.local() + this.#timeout;
    for (let attempt = 0; ; attempt++) {
      // Nothing has told this process Redis' time yet: ask once (no write is sent yet, so a
      // failure here needs no wait).
      if (!clock.known) await this.#learnTime(limit);
      const deadline = clock.deadline(limit)!;
      const sent = clock.local();
      let raw: unknown;
      try {
        raw = await this.#run(s, keys, [...args, deadline, ...tail], limit - sent);
      } catch (err) {
        // The request may still be on its way; past the limit it can no longer run. A
        // timeout is at the limit already; a refusal or a connection never made ran nothing.
        const settled =
          err instanceof StoreError && (err.code === "EC_STORE_TIMEOUT" || NOT_RUN.has(err));
        if (!settled) {
          await sleep(limit - clock.local() + 1);
        }
        throw err;
      }
      const received = clock.local();
      if (!Array.isArray(raw)) throw shapeError();
      clock.observe(nowAt(raw), sent, received);
      if (raw[0] !== -1) return raw;
      // Refused as late while this call still had time: the deadline was set from a worn
      // estimate of Redis' clock, which this reply has just renewed. Refused, so safe to send
      // again, once.
      if (attempt > 0 || clock.local() >= limit) throw this.#timedOut();
    }
  }

  async #learnTime(limit: number): Promise<void> {
    const sent = this.#clock.local();
    const raw = await this.send(["TIME"], limit - sent);
    const received = this.#clock.local();
    if (!Array.isArray(raw) || raw.length !== 2) throw shapeError();
    const [s, us] = raw.map(Number) as [number, number];
    this.#clock.observe(s * 1000 + Math.floor(us / 1000), sent, received);
    if (!this.#clock.known) throw shapeError();
  }

  async #run(s: Script, keys: string[], args: Arg[], budget: number): Promise<unknown> {
    const started = this.#clock.local();
    if (s.loaded && s.sha) {
      try {
        return await this.send(["EVALSHA", await s.sha, keys.length, ...keys, ...args], budget);
      } catch (err) {
        // Scripts vanish on SCRIPT FLUSH, restarts and failovers; fall back to EVAL once.
        if (!(err instanceof StoreError && err.message.startsWith("redis error: NOSCRIPT"))) {
          throw err;
        }
        s.loaded = false;
      }
    }
    s.sha ??= sha1(s.text);
    const rest = budget - (this.#clock.local() - started);
    const result = await this.send(["EVAL", s.text, keys.length, ...keys, ...args], rest);
    s.loaded = true;
    return result;
  }

  #timedOut(): StoreError {
    return new StoreError(
      "EC_STORE_TIMEOUT",
      `upstash request timed out after ${this.#timeout} ms`,
    );
  }
}

/**
 * `request`, or a rejection as soon as `signal` aborts: clients before 1.35.1 go on through
 * their retries and backoff (seconds with their defaults) after an abort.
 */
function untilAborted<T>(request: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return request;
  // What the request does after the abort is of no interest; it must not go unhandled.
  request.catch(() => {});
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    request.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The transport of a client or connection settings, and what identifies its Redis. */
function requesterOf(connection: Connection | UpstashRedisClient): {
  requester: Requester;
  endpoint: string | object;
} {
  if (typeof connection !== "object" || connection === null) {
    throw new InvalidOptionError("upstashStore needs { url, token } or an @upstash/redis client");
  }
  if (!("url" in connection)) {
    // `client` is the transport the Redis class is built on (its constructor argument), in
    // every release; the project's copy of the class may not be ours, so no `instanceof`.
    const requester = (connection as unknown as { client?: Requester }).client;
    if (!requester || typeof requester.request !== "function") {
      throw new InvalidOptionError("upstashStore needs { url, token } or an @upstash/redis client");
    }
    return { requester, endpoint: requester };
  }
  const { url, token } = connection;
  let parsed: URL | undefined;
  try {
    parsed = typeof url === "string" ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw new InvalidOptionError("upstashStore url must be an http(s) URL");
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw new InvalidOptionError(
      "upstashStore url must not hold credentials (user:password@); pass the token as `token`",
    );
  }
  if (typeof token !== "string" || token.length === 0) {
    throw new InvalidOptionError("upstashStore token must be a non-empty string");
  }
  const retries = connection.retries ?? 1;
  if (typeof retries !== "number" || !Number.isInteger(retries) || retries < 0 || retries > 10) {
    throw new InvalidOptionError("upstashStore retries must be an integer from 0 to 10");
  }
  const keepAlive = connection.keepAlive ?? true;
  if (typeof keepAlive !== "boolean") {
    throw new InvalidOptionError("upstashStore keepAlive must be a boolean");
  }
  const redis = new Redis({
    url,
    token,
    automaticDeserialization: false,
    enableAutoPipelining: false,
    enableTelemetry: false,
    keepAlive,
    retry: { retries, backoff: (attempt) => Math.min(25 * 2 ** attempt, 200) },
  });
  return {
    requester: (redis as unknown as { client: Requester }).client,
    endpoint: `${parsed.origin}${parsed.pathname}`,
  };
}
