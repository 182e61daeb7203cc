/**
 * examples/reverse-proxy.mjs (the built package, as a user imports it) in front of a real
 * HTTP origin: origin-driven storing, conditional revalidation, nothing stored that the
 * origin did not make fresh, and invalidation by an unsafe method.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: a plain ESM module, the example as users copy it
import { createProxy } from "../../examples/reverse-proxy.mjs";
import { createCache, memoryStore } from "../../src/index.js";
import { fakeClock } from "../helpers.js";

let server: Server;
let origin: string;
const seen: IncomingMessage[] = [];
let version = 1;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req);
    if (req.method === "POST") {
      version++;
      res.writeHead(204).end();
      return;
    }
    if (req.url === "/doc") {
      const etag = `"v${version}"`;
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, { etag, "cache-control": "max-age=60" }).end();
        return;
      }
      res.writeHead(200, { etag, "cache-control": "max-age=60", "content-type": "text/plain" });
      res.end(`doc v${version}`);
      return;
    }
    // No freshness information: an origin-driven cache stores nothing of it.
    res.writeHead(200, { "content-type": "text/plain" }).end(`plain ${seen.length}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  origin = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("examples/reverse-proxy.mjs", () => {
  it("stores what the origin makes fresh, revalidates it with 304s, and nothing else", async () => {
    const clock = fakeClock();
    const cache = createCache({
      store: memoryStore({ now: clock.now }),
      now: clock.now,
      sync: { maxStaleness: 0 },
      logger: false,
    });
    const app = createProxy({ cache, origin, now: clock.now });
    const get = (path: string, init?: RequestInit) =>
      app.request(`http://proxy.example${path}`, init);

    const miss = await get("/doc");
    expect(await miss.text()).toBe("doc v1");
    expect(miss.headers.get("cache-status")).toBe(
      "edgecache; fwd=miss; fwd-status=200; stored; ttl=60",
    );
    expect(await (await get("/doc")).text()).toBe("doc v1");
    expect(seen.length).toBe(1);

    clock.advance(61_000);
    const revalidated = await get("/doc");
    expect(await revalidated.text()).toBe("doc v1");
    expect(revalidated.headers.get("cache-status")).toMatch(/fwd=stale; fwd-status=304; stored/);
    expect(seen[1]?.headers["if-none-match"]).toBe('"v1"');

    await get("/plain");
    expect((await get("/plain")).headers.get("cache-status")).toMatch(/detail=expired$/);
    expect(seen.length).toBe(4);

    // A POST to the URL invalidates what is stored for it.
    await get("/doc", { method: "POST", body: "change" });
    expect(await (await get("/doc")).text()).toBe("doc v2");
  });

  it("hands on a body that survives the fetched response being garbage-collected (Node)", async () => {
    // Node's fetch cancels the body of a fetched response once that response object is
    // collected, and a proxied body outlives it: the example must keep the body its own.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const cache = createCache({ store: memoryStore(), sync: { maxStaleness: 0 }, logger: false });
    const app = createProxy({ cache, origin });
    for (const path of ["/plain", "/doc"]) {
      const res = await app.request(`http://proxy.example${path}`, { headers: { x: path } });
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(await res.text()).toMatch(/^(plain \d+|doc v\d)$/);
    }
  });
});
