/**
 * RFC cases of `cached` on storing, revalidating, serving stale and invalidating: RFC 9111 3,
 * 4.3, 4.4, 5.2.2; RFC 5861; RFC 9213; RFC 9211 (Cache-Status). Run in Node
 * (test/hono/cached-rfc.test.ts) and in workerd (test/workers/hono-cached-rfc.test.ts).
 */
import { describe, expect, it } from "vitest";
import { httpDate, rfcSite, type Send, status, T0 } from "./rfc-site.js";

export function validationCases(send: Send) {
  describe("RFC 9111 3: storing", () => {
    it("§3.1 Proxy-Authentication-Info and fields Connection names are not stored", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.text("x", 200, {
          "cache-control": "max-age=60",
          "proxy-authentication-info": 'nextnonce="abc"',
          connection: "x-hop",
          "x-hop": "1",
          "x-kept": "1",
        }),
      );
      await s.get("/p");
      const hit = await s.get("/p");
      expect(status(hit)).toMatch(/; hit;/);
      expect(hit.headers.get("proxy-authentication-info")).toBeNull();
      expect(hit.headers.get("x-hop")).toBeNull();
      expect(hit.headers.get("x-kept")).toBe("1");
    });

    it("§5.2.2.4 qualified no-cache: the fields it names are not stored", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.text("x", 200, {
          "cache-control": 'no-cache="a, b", max-age=60',
          a: "1",
          b: "2",
          d: "3",
        }),
      );
      await s.get("/q");
      const hit = await s.get("/q");
      expect(status(hit)).toMatch(/; hit;/);
      expect([hit.headers.get("a"), hit.headers.get("b"), hit.headers.get("d")]).toEqual([
        null,
        null,
        "3",
      ]);
    });

    it("§3 (a choice) Set-Cookie responses are not stored, stricter than the RFC", async () => {
      const s = rfcSite(send, { ttl: 0 }, (c, n) =>
        c.text(`${n}`, 200, { "cache-control": "max-age=60", "set-cookie": "a=b" }),
      );
      expect(status(await s.get("/c"))).toMatch(/detail=set-cookie$/);
      await s.get("/c");
      expect(s.calls).toBe(2);
    });
  });

  describe("RFC 9111 4.3: validation", () => {
    const etagged = (n: number) => ({ "cache-control": "max-age=1", etag: `"e"`, "x-n": `${n}` });

    it("§4.3.1 a stale response with an ETag is revalidated with If-None-Match", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.header("if-none-match") === '"e"'
          ? c.body(null, 304, { etag: '"e"' })
          : c.text("body", 200, etagged(n)),
      );
      await s.get("/e");
      s.advance(2_000);
      const res = await s.get("/e");
      expect(s.seen[1]?.headers.get("if-none-match")).toBe('"e"');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("body");
      expect(status(res)).toBe("edgecache; fwd=stale; fwd-status=304; stored; ttl=1");
    });

    it("§4.3.1 a stale response with Last-Modified is revalidated with If-Modified-Since", async () => {
      const lm = httpDate(T0 - 86_400_000);
      const s = rfcSite(send, {}, (c) =>
        c.req.header("if-modified-since") === lm
          ? c.body(null, 304)
          : c.text("body", 200, { "cache-control": "max-age=1", "last-modified": lm }),
      );
      await s.get("/lm");
      s.advance(2_000);
      expect(await (await s.get("/lm")).text()).toBe("body");
      expect(s.seen[1]?.headers.get("if-modified-since")).toBe(lm);
    });

    it("§4.3.4 a 304 updates the stored response's fields and freshness", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.header("if-none-match") === '"e"'
          ? c.body(null, 304, { etag: '"e"', "cache-control": "max-age=3600", "x-n": `${n}` })
          : c.text("body", 200, etagged(n)),
      );
      await s.get("/u");
      s.advance(2_000);
      expect((await s.get("/u")).headers.get("x-n")).toBe("2");
      s.advance(60_000);
      const hit = await s.get("/u");
      expect(status(hit)).toMatch(/^edgecache; hit; ttl=/);
      expect(hit.headers.get("x-n")).toBe("2");
      expect(hit.headers.get("cache-control")).toBe("max-age=3600");
      expect(s.calls).toBe(2);
    });

    it("§3.2 a 304's Content-Length and Content-Encoding are not taken on", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.header("if-none-match") === '"e"'
          ? c.body(null, 304, { etag: '"e"', "content-length": "10", "content-encoding": "x" })
          : c.text("body", 200, { ...etagged(n), "content-length": "4" }),
      );
      await s.get("/cl");
      s.advance(2_000);
      const validated = await s.get("/cl");
      expect(status(validated)).toMatch(/fwd=stale; fwd-status=304/);
      s.advance(500);
      const hit = await s.get("/cl");
      expect(status(hit)).toMatch(/; hit;/);
      for (const res of [validated, hit]) {
        expect(res.headers.get("content-length")).toBe("4");
        expect(res.headers.get("content-encoding")).toBeNull();
        expect(await res.text()).toBe("body");
      }
    });

    it("§4.3.2 a client's matching conditional request is answered 304 after revalidation", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.header("if-none-match") === '"e"'
          ? c.body(null, 304, { etag: '"e"' })
          : c.text("body", 200, etagged(n)),
      );
      await s.get("/c");
      s.advance(2_000);
      const res = await s.get("/c", { headers: { "if-none-match": '"e"' } });
      expect(res.status).toBe(304);
      // A miss does not pass the client's conditions on: the cache wants the whole response.
      const miss = await s.get("/other", { headers: { "if-none-match": '"e"' } });
      expect(s.seen[2]?.headers.get("if-none-match")).toBeNull();
      expect(miss.status).toBe(304);
    });

    it("§5.2.2.4 no-cache with a validator is stored and revalidated on every use", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.req.header("if-none-match") === '"n"'
          ? c.body(null, 304, { etag: '"n"' })
          : c.text("body", 200, { "cache-control": "no-cache", etag: '"n"' }),
      );
      await s.get("/nc");
      const again = await s.get("/nc");
      expect(await again.text()).toBe("body");
      expect(status(again)).toMatch(/fwd=stale; fwd-status=304/);
      await s.get("/nc");
      expect(s.calls).toBe(3);
    });

    it("§4.3.5 a 200 to a HEAD freshens the stored GET response", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.text("body", 200, {
          "cache-control": n === 1 ? "max-age=1" : "max-age=600",
          "x-n": `${n}`,
        }),
      );
      await s.get("/h");
      s.advance(2_000);
      const head = await s.get("/h", { method: "HEAD" });
      expect(head.status).toBe(200);
      const hit = await s.get("/h");
      expect(status(hit)).toMatch(/^edgecache; hit; ttl=600$/);
      expect(hit.headers.get("x-n")).toBe("2");
      expect(await hit.text()).toBe("body");
    });

    it("§4.3.5 a HEAD whose validator differs invalidates the stored GET response", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.text(`body ${n}`, 200, { "cache-control": "max-age=1", etag: `"${n}"` }),
      );
      await s.get("/hv");
      s.advance(2_000);
      await s.get("/hv", { method: "HEAD" });
      expect(await (await s.get("/hv")).text()).toBe("body 3");
    });
  });

  describe("RFC 9111 5.2.2 and RFC 5861: serving stale", () => {
    it("§5.2.2.10 s-maxage implies proxy-revalidate: never served stale, under SWR or grace", async () => {
      let fail = false;
      const s = rfcSite(send, { staleWhileRevalidate: 60_000, grace: 60_000 }, (c, n) =>
        fail ? c.text("down", 503) : c.text(`${n}`, 200, { "cache-control": "s-maxage=1" }),
      );
      await s.get("/s");
      s.advance(2_000);
      expect(await (await s.get("/s")).text()).toBe("2");
      s.advance(2_000);
      fail = true;
      expect((await s.get("/s")).status).toBe(503);
    });

    it("§5.2.2.8 proxy-revalidate: a failed revalidation shows, not the stale response", async () => {
      let fail = false;
      const s = rfcSite(send, { grace: 60_000 }, (c) =>
        fail
          ? c.text("down", 500)
          : c.text("ok", 200, { "cache-control": "max-age=1, proxy-revalidate" }),
      );
      await s.get("/p");
      s.advance(2_000);
      fail = true;
      expect((await s.get("/p")).status).toBe(500);
    });

    it("§4 a refresh whose response may not be stored removes the stale response", async () => {
      let cc = "max-age=1";
      const s = rfcSite(send, { staleWhileRevalidate: 60_000 }, (c, n) =>
        c.text(`${n}`, 200, { "cache-control": cc }),
      );
      await s.get("/r");
      s.advance(2_000);
      cc = "no-cache";
      const stale = await s.get("/r");
      expect(status(stale)).toMatch(/detail=stale-while-revalidate$/);
      // The background refresh got a response that may not be stored: the stale one is gone.
      expect(s.calls).toBe(2);
      expect(await (await s.get("/r")).text()).toBe("3");
    });

    it("RFC 5861 §3 a response's stale-while-revalidate is honoured within the option's window", async () => {
      const s = rfcSite(send, { staleWhileRevalidate: 60_000 }, (c, n) =>
        c.text(`${n}`, 200, { "cache-control": "max-age=1, stale-while-revalidate=10" }),
      );
      await s.get("/w");
      s.advance(5_000);
      expect(status(await s.get("/w"))).toMatch(/detail=stale-while-revalidate$/);
      s.advance(20_000);
      const late = await s.get("/w");
      expect(status(late)).toMatch(/fwd=stale; fwd-status=200; stored/);
    });

    it("RFC 5861 §4 a response's stale-if-error is honoured within grace", async () => {
      let fail = false;
      const s = rfcSite(send, { grace: 60_000 }, (c, n) =>
        fail
          ? c.text("down", 500)
          : c.text(`${n}`, 200, { "cache-control": "max-age=1, stale-if-error=5" }),
      );
      await s.get("/i");
      s.advance(3_000);
      fail = true;
      const graced = await s.get("/i");
      expect(await graced.text()).toBe("1");
      expect(status(graced)).toMatch(/fwd=stale; fwd-status=500; .*detail=stale-if-error$/);
      s.advance(20_000);
      expect((await s.get("/i")).status).toBe(500);
    });

    it("RFC 5861 with ttl: 0 a response without the directives is not served stale", async () => {
      let fail = false;
      const s = rfcSite(send, { ttl: 0, grace: 60_000, staleWhileRevalidate: 60_000 }, (c, n) =>
        fail ? c.text("down", 500) : c.text(`${n}`, 200, { "cache-control": "max-age=1" }),
      );
      await s.get("/o");
      s.advance(2_000);
      fail = true;
      expect((await s.get("/o")).status).toBe(500);
    });
  });

  describe("RFC 9111 4.4: invalidation", () => {
    const fresh = { "cache-control": "max-age=3600" };

    // An unknown method too, where the runtime's Request takes one (workerd does not).
    const unknown = (() => {
      try {
        return new Request("http://localhost/", { method: "M-SEARCH" }).method;
      } catch {
        return undefined;
      }
    })();
    for (const method of ["POST", "PUT", "DELETE", "PATCH", ...(unknown ? [unknown] : [])]) {
      it(`§4.4 a successful ${method} invalidates its URL`, async () => {
        const s = rfcSite(send, {}, (c, n) => c.text(`${n}`, 200, fresh));
        await s.get("/doc");
        await s.get("/doc", { method, body: method === "M-SEARCH" ? null : "x" });
        expect(await (await s.get("/doc")).text()).toBe("3");
      });
    }

    it("§4.4 a failed unsafe request invalidates nothing", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.method === "POST" ? c.text("no", 500) : c.text(`${n}`, 200, fresh),
      );
      await s.get("/doc");
      await s.get("/doc", { method: "POST", body: "x" });
      expect(await (await s.get("/doc")).text()).toBe("1");
    });

    it("§4.4 same-origin Location and Content-Location are invalidated, other origins not", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.method === "POST"
          ? c.text("made", 201, {
              location: "/made",
              "content-location": "http://localhost/listing",
              link: "ignored",
            })
          : c.text(`${c.req.path} ${n}`, 200, fresh),
      );
      for (const path of ["/made", "/listing", "http://elsewhere.example/made"]) await s.get(path);
      await s.get("/new", { method: "POST", body: "x" });
      expect(await (await s.get("/made")).text()).toBe("/made 5");
      expect(await (await s.get("/listing")).text()).toBe("/listing 6");
      expect(await (await s.get("http://elsewhere.example/made")).text()).toBe("/made 3");
    });
  });

  describe("RFC 9213: targeted cache control", () => {
    it("RFC 9213 §2.2 CDN-Cache-Control takes precedence over Cache-Control", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.text(
          `${n}`,
          200,
          c.req.path === "/short"
            ? { "cache-control": "max-age=3600", "cdn-cache-control": "max-age=1" }
            : { "cache-control": "no-store", "cdn-cache-control": "max-age=600" },
        ),
      );
      expect(status(await s.get("/short"))).toMatch(/stored; ttl=1$/);
      expect(status(await s.get("/long"))).toMatch(/stored; ttl=600$/);
    });

    it("RFC 9213 §2.1 a targeted field's no-store and private are obeyed", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.text("x", 200, {
          "cache-control": "max-age=600",
          "cdn-cache-control": c.req.path.slice(1),
        }),
      );
      expect(status(await s.get("/no-store"))).toMatch(/detail=no-store$/);
      expect(status(await s.get("/private"))).toMatch(/detail=private$/);
    });

    it("RFC 9213 §2.1 a targeted field that is not a valid Dictionary is ignored", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.text("x", 200, {
          "cache-control": "no-store",
          "cdn-cache-control": c.req.path === "/junk" ? "max-age=600, &&&" : 'max-age="600"',
        }),
      );
      expect(status(await s.get("/junk"))).toMatch(/detail=no-store$/);
      expect(status(await s.get("/type"))).toMatch(/detail=no-store$/);
    });

    it("RFC 9213 §2.1 the most specific field first: Cloudflare-CDN-Cache-Control, or the list given", async () => {
      const headers = {
        "cache-control": "max-age=10",
        "cdn-cache-control": "max-age=20",
        "cloudflare-cdn-cache-control": "max-age=30",
        "x-my-cache-control": "max-age=40",
      };
      const s = rfcSite(send, {}, (c) => c.text("x", 200, headers));
      expect(status(await s.get("/t"))).toMatch(/ttl=30$/);
      const mine = rfcSite(send, { targetedFields: ["X-My-Cache-Control"] }, (c) =>
        c.text("x", 200, headers),
      );
      expect(status(await mine.get("/t"))).toMatch(/ttl=40$/);
      const none = rfcSite(send, { targetedFields: [] }, (c) => c.text("x", 200, headers));
      expect(status(await none.get("/t"))).toMatch(/ttl=10$/);
    });
  });
}
