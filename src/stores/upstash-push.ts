/**
 * The Upstash store's change-record stream: Redis pub/sub over the REST protocol's SSE
 * subscribe (`POST /subscribe/<channel>`, `Accept: text/event-stream`), read with `fetch`
 * so that it runs in Node, Deno and Bun alike.
 * @module
 */
import { StoreError } from "../errors.js";
import type { ChangeRecord, Store } from "../store/contract.js";
import { unref } from "../util/runtime.js";

type Handlers = Parameters<NonNullable<Store["subscribe"]>>[1];

/** Longest line accepted from the stream (a record carries at most `propagateMaxBytes` of value). */
const MAX_LINE = 16 << 20;

/** The payload of the liveness probe a silent stream publishes to itself. */
export const PROBE = "probe";

/** Where and how one stream subscribes. */
export interface PushTarget {
  url: string;
  token: string;
  channel: string;
  /** A record from a published payload; `undefined` for one that does not parse. */
  parse(payload: string): ChangeRecord | undefined;
  /** Publishes {@link PROBE} on the channel. */
  probe(): Promise<unknown>;
  /** Ms of silence after which the stream probes itself; three times that ends it. */
  heartbeat: number;
}

/**
 * Opens one SSE subscription. `open` is called on Redis' confirmation, `records` per
 * message, `end` once when the stream ends, fails, or stays silent through a probe.
 */
export function openPush(target: PushTarget, handlers: Handlers): { close(): void } {
  const controller = new AbortController();
  let done = false;
  let lastSeen = Date.now();
  let probed = false;
  const finish = (error?: unknown) => {
    if (done) return;
    done = true;
    clearInterval(timer);
    controller.abort();
    handlers.end(error);
  };
  const timer = setInterval(
    () => {
      const silent = Date.now() - lastSeen;
      if (silent >= 3 * target.heartbeat) {
        finish(new StoreError("EC_STORE_UNAVAILABLE", "the pub/sub stream went silent"));
      } else if (silent >= target.heartbeat && !probed) {
        probed = true;
        target.probe().catch(() => {}); // an unanswered probe ends the stream by silence
      }
    },
    Math.max(10, Math.floor(target.heartbeat / 2)),
  );
  unref(timer);

  const confirm = `subscribe,${target.channel},`;
  const message = `message,${target.channel},`;
  const event = (data: string) => {
    if (data.startsWith(confirm)) handlers.open();
    else if (data.startsWith(message)) {
      const payload = data.slice(message.length);
      if (payload === PROBE) return;
      const record = target.parse(payload);
      // One that does not parse stands in as a clear: it may have named any key.
      handlers.records([record ?? { op: "clear", first: 0, last: 0, origin: "", keys: [] }]);
    }
  };

  const read = async () => {
    const res = await fetch(`${target.url}/subscribe/${encodeURIComponent(target.channel)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${target.token}`, accept: "text/event-stream" },
      body: "[]",
      signal: controller.signal,
    });
    if (!res.ok || res.body === null) {
      await res.body?.cancel();
      throw new StoreError(
        res.status === 401 ? "EC_STORE_AUTH" : "EC_STORE_UNAVAILABLE",
        `the pub/sub subscription was refused (status ${res.status})`,
      );
    }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let data: string[] = [];
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      lastSeen = Date.now();
      probed = false;
      buffer += decoder.decode(value, { stream: true });
      let nl = buffer.indexOf("\n");
      while (nl >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        if (line === "") {
          if (data.length > 0) event(data.join("\n"));
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
        }
        nl = buffer.indexOf("\n");
      }
      if (buffer.length > MAX_LINE) {
        throw new StoreError("EC_STORE_UNAVAILABLE", "the pub/sub stream sent a line too long");
      }
    }
    throw new StoreError("EC_STORE_UNAVAILABLE", "the pub/sub stream ended");
  };
  read().catch((error: unknown) => {
    if (done) return;
    finish(
      error instanceof StoreError
        ? error
        : new StoreError("EC_STORE_UNAVAILABLE", "the pub/sub stream failed"),
    );
  });

  return {
    close() {
      done = true;
      clearInterval(timer);
      controller.abort();
    },
  };
}
