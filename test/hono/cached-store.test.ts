/**
 * The `cached` Hono middleware: storing and replaying responses, and what is never stored.
 * Through `app.request`, over real caches (`upstashStore` on the REST bridge, or `memoryStore`
 * where a test moves the clock); every rule is asserted by counting handler runs, so a rule
 * that breaks fails its case.
 */
import { describe, expect, it } from "vitest";
import { until } from "../helpers.js";
import { bridged, cacheStatus, clocked, sameBytes, site } from "./cached-helpers.js";

describe("cached: storing and replaying", () => {
  it("stores a miss and replays it: status, headers and body, with Age and Cache-Status", async () => {
    const s = site({ cache: bridged(), ttl: 60_000 }, (c, n) =>
      c.json({ n }, 200, { "x-custom": "yes", etag: '"v1"' }),
    );
    const miss = await s.get("/products/1");
    expect(miss.status).toBe(200);
    expect(cacheStatus(miss)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await miss.json()).toEqual({ n: 1 });
    expect(miss.headers.get("age")).toBeNull();

    const hit = await s.get("/products/1");
    expect(s.calls).toBe(1);
    expect(hit.status).toBe(200);
    expect(await hit.json()).toEqual({ n: 1 });
    expect(hit.headers.get("content-type")).toMatch(/^application\/json/);
    expect(hit.headers.get("x-custom")).toBe("yes");
    expect(hit.headers.get("etag")).toBe('"v1"');
    expect(hit.headers.get("age")).toBe("0");
    expect(cacheStatus(hit)).toMatch(/^edgecache; hit; ttl=(59|60)$/);
  });

  it("runs the handler once for concurrent misses; the others are collapsed onto it", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const s = site({ cache: bridged() }, async (c, n) => {
      await gate;
      return c.text(`body ${n}`);
    });
    const all = Promise.all(Array.from({ length: 8 }, () => s.get("/hot")));
    await until(() => s.calls === 1);
    release();
    const responses = await all;
    expect(s.calls).toBe(1);
    expect(await Promise.all(responses.map((r) => r.text()))).toEqual(Array(8).fill("body 1"));
    const statuses = responses.map(cacheStatus);
    expect(statuses.filter((v) => v?.includes("stored"))).toHaveLength(1);
    expect(statuses.filter((v) => v?.startsWith("edgecache; fwd=miss; collapsed"))).toHaveLength(7);
  });

  it("round-trips binary bodies byte for byte", async () => {
    const bytes = new Uint8Array(70_001);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + (i >> 8)) & 0xff;
    for (let i = 0; i < 256; i++) bytes[i] = i; // every byte value
    const s = site({ cache: bridged() }, (c) =>
      c.body(bytes.slice(), 200, { "content-type": "application/octet-stream" }),
    );
    const miss = new Uint8Array(await (await s.get("/blob")).arrayBuffer());
    const hit = await s.get("/blob");
    expect(cacheStatus(hit)).toMatch(/; hit;/);
    expect(hit.headers.get("content-type")).toBe("application/octet-stream");
    const replayed = new Uint8Array(await hit.arrayBuffer());
    expect(s.calls).toBe(1);
    expect(replayed.length).toBe(bytes.length);
    expect(sameBytes(replayed, bytes)).toBe(true);
    expect(sameBytes(miss, bytes)).toBe(true);
  });

  it("answers HEAD from the GET entry without a body, and never stores from a HEAD", async () => {
    const s = site({ cache: bridged() }, (c, n) => c.text(`body ${n}`));
    const headFirst = await s.get("/page", { method: "HEAD" });
    expect(headFirst.status).toBe(200);
    expect(await headFirst.text()).toBe("");
    expect(cacheStatus(headFirst)).toBe("edgecache; fwd=miss; fwd-status=200");
    expect(s.calls).toBe(1);

    const get = await s.get("/page");
    expect(await get.text()).toBe("body 2");
    expect(cacheStatus(get)).toMatch(/fwd=miss; fwd-status=200; stored/);

    const head = await s.get("/page", { method: "HEAD" });
    expect(s.calls).toBe(2);
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    expect(cacheStatus(head)).toMatch(/^edgecache; hit; ttl=/);
  });

  it("replays 404s and 204s (cacheable statuses), not 201s or 500s", async () => {
    const s = site({ cache: bridged() }, (c) => {
      const status = Number(c.req.query("status"));
      return status === 204 ? c.body(null, 204) : c.text("x", status as 201);
    });
    for (const status of [404, 204]) {
      await s.get(`/s?status=${status}`);
      const again = await s.get(`/s?status=${status}`);
      expect(again.status).toBe(status);
      expect(cacheStatus(again)).toMatch(/; hit;/);
    }
    expect(s.calls).toBe(2);
    for (const status of [201, 500]) {
      await s.get(`/s?status=${status}`);
      const again = await s.get(`/s?status=${status}`);
      expect(again.status).toBe(status);
      expect(cacheStatus(again)).toBe(`edgecache; fwd=miss; fwd-status=${status}; detail=status`);
    }
    expect(s.calls).toBe(6);
  });

  it("stores only the statuses of the `statuses` option", async () => {
    const s = site({ cache: bridged(), statuses: [200] }, (c) => c.text("gone", 404));
    await s.get("/x");
    await s.get("/x");
    expect(s.calls).toBe(2);
  });

  it("works on a namespace and takes its TTL as the default", async () => {
    const http = bridged().namespace("http", { ttl: 5_000 });
    const s = site({ cache: http });
    expect(cacheStatus(await s.get("/n"))).toBe(
      "edgecache; fwd=miss; fwd-status=200; stored; ttl=5",
    );
    expect(cacheStatus(await s.get("/n"))).toMatch(/^edgecache; hit; ttl=[45]$/);
    expect(s.calls).toBe(1);
  });
});

describe("cached: what is never stored", () => {
  const never: Array<[string, Record<string, string>, string]> = [
    ["Cache-Control: no-store", { "cache-control": "no-store" }, "no-store"],
    ["Cache-Control: private", { "cache-control": "private, max-age=60" }, "private"],
    ["Cache-Control: no-cache", { "cache-control": "no-cache" }, "no-cache"],
    ["Set-Cookie", { "set-cookie": "session=abc; HttpOnly" }, "set-cookie"],
    ["Vary: *", { vary: "*" }, "vary-star"],
    ["max-age=0", { "cache-control": "max-age=0" }, "expired"],
  ];
  for (const [what, headers, detail] of never) {
    it(`a response with ${what}`, async () => {
      const cache = bridged();
      const s = site({ cache }, (c, n) => c.text(`private ${n}`, 200, headers));
      const first = await s.get("/me");
      const second = await s.get("/me");
      expect(s.calls).toBe(2);
      // Nothing was written at all (not even a placeholder).
      expect(cache.stats().sets).toBe(0);
      expect(await second.text()).toBe("private 2");
      expect(cacheStatus(first)).toBe(`edgecache; fwd=miss; fwd-status=200; detail=${detail}`);
      if (headers["set-cookie"])
        expect(second.headers.get("set-cookie")).toBe(headers["set-cookie"]);
    });
  }

  it("a response that turned out private is not handed to requests that joined its load", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const s = site({ cache: bridged() }, async (c, n) => {
      await gate;
      return c.text(`for caller ${n}`, 200, { "cache-control": "private" });
    });
    const all = Promise.all(Array.from({ length: 4 }, () => s.get("/account")));
    await until(() => s.calls === 1);
    release();
    const bodies = await Promise.all((await all).map((r) => r.text()));
    expect(s.calls).toBe(4);
    expect(new Set(bodies).size).toBe(4);
  });

  it("a handler that throws: the 500 passes through and is not stored", async () => {
    let fail = true;
    const s = site({ cache: bridged() }, (c) => {
      if (fail) throw new Error("boom");
      return c.text("ok");
    });
    const failed = await s.get("/flaky");
    expect(failed.status).toBe(500);
    expect(cacheStatus(failed)).toBe("edgecache; fwd=miss; fwd-status=500; detail=error");
    fail = false;
    expect(await (await s.get("/flaky")).text()).toBe("ok");
    expect(s.calls).toBe(2);
  });

  it("a body over maxBodyBytes passes through whole, streamed, and is not stored", async () => {
    const chunk = new Uint8Array(1000).fill(42);
    const s = site({ cache: bridged(), maxBodyBytes: 2500 }, (c) => {
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 4; i++) controller.enqueue(chunk.slice());
          controller.close();
        },
      });
      return c.body(stream, 200, { "content-type": "application/octet-stream" });
    });
    const first = await s.get("/big");
    expect(
      sameBytes(new Uint8Array(await first.arrayBuffer()), new Uint8Array(4000).fill(42)),
    ).toBe(true);
    expect(cacheStatus(first)).toBe("edgecache; fwd=miss; fwd-status=200; detail=too-large");
    await s.get("/big");
    expect(s.calls).toBe(2);
    // With a declared Content-Length over the limit, the body is not even read.
    const declared = site({ cache: bridged(), maxBodyBytes: 10 }, (c) =>
      c.body("0123456789abcdef", 200, { "content-length": "16" }),
    );
    expect(await (await declared.get("/d")).text()).toBe("0123456789abcdef");
    await declared.get("/d");
    expect(declared.calls).toBe(2);
  });

  it("a must-revalidate response is served while fresh, and never stale, even with stale windows on", async () => {
    const { clock, cache } = clocked();
    const headers = { "cache-control": "max-age=60, must-revalidate" };
    const s = site(
      { cache, staleWhileRevalidate: 60_000, grace: 60_000, now: clock.now },
      (c, n) => (n === 3 ? c.text("down", 500) : c.text(`x ${n}`, 200, headers)),
    );
    await s.get("/m");
    expect(cacheStatus(await s.get("/m"))).toMatch(/^edgecache; hit; ttl=/);
    clock.advance(61_000);
    // Stale within the stale-while-revalidate window: revalidated in the foreground instead.
    const revalidated = await s.get("/m");
    expect(await revalidated.text()).toBe("x 2");
    expect(cacheStatus(revalidated)).toMatch(/fwd=stale; fwd-status=200; stored/);
    clock.advance(61_000);
    // Within grace, a failure shows rather than the stale response.
    expect((await s.get("/m")).status).toBe(500);
    expect(s.calls).toBe(3);
  });
});
