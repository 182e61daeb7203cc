/**
 * RFC cases of `cached` on freshness and age: RFC 9110 5.6.7 (HTTP-date), RFC 9111 4.2
 * (freshness, heuristic, age), 5.1 (Age), 5.2.1 (request directives), 5.3 (Expires), and the
 * origin-driven mode. Run in Node (test/hono/cached-rfc.test.ts) and in workerd
 * (test/workers/hono-cached-rfc.test.ts).
 */
import { describe, expect, it } from "vitest";
import { parseHttpDate } from "../../src/hono/cached/dates.js";
import { httpDate, rfcSite, type Send, status, T0 } from "./rfc-site.js";

export function freshnessCases(send: Send) {
  describe("RFC 9110 5.6.7 and RFC 9111 5.3: dates and Expires", () => {
    it("RFC 9110 §5.6.7 reads the IMF-fixdate and both obsolete formats", () => {
      const at = Date.UTC(1994, 10, 6, 8, 49, 37);
      expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT", T0)).toBe(at);
      expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT", T0)).toBe(at);
      expect(parseHttpDate("Sun Nov  6 08:49:37 1994", T0)).toBe(at);
    });

    it("RFC 9110 §5.6.7 a two-digit year more than 50 years ahead is the latest past one", () => {
      // T0 is in 2023: 30 is 2030, 80 would be 2080 (more than 50 years on), so 1980.
      expect(parseHttpDate("Monday, 01-Jan-30 00:00:00 GMT", T0)).toBe(Date.UTC(2030, 0, 1));
      expect(parseHttpDate("Monday, 01-Jan-80 00:00:00 GMT", T0)).toBe(Date.UTC(1980, 0, 1));
    });

    it("RFC 9110 §5.6.7 anything else is not an HTTP-date (case, zone, spacing, digits)", () => {
      for (const text of [
        "Thu, 01 Jan 2050 00:00:00 UTC",
        "Thu 01 Jan 2050 00:00:00 GMT",
        "Thu, 01  Jan  2050 00:00:00 GMT",
        "Thu, 01-Jan-2050 00:00:00 GMT",
        "Thu, 01 Jan 2050 0:00:00 GMT",
        "Thu, 01 Jan 2050 00.00.00 GMT",
        "THU, 01 Jan 2050 00:00:00 GMT",
        "Thu, 01 JAN 2050 00:00:00 GMT",
        "Thu, 31 Feb 2050 00:00:00 GMT",
        "0",
      ]) {
        expect(parseHttpDate(text, T0), text).toBeUndefined();
      }
    });

    it("§5.3 an invalid Expires means already expired", async () => {
      let expires = "";
      const s = rfcSite(send, {}, (c, n) => c.text(`${n}`, 200, { date: httpDate(T0), expires }));
      for (const value of ["Thu, 01 Jan 2050 00:00:00 UTC", "Thu 01 Jan 2050 00:00:00 GMT", "0"]) {
        expires = value;
        const first = await s.get(`/e/${encodeURIComponent(value)}`);
        expect(status(first), value).toMatch(/detail=expired$/);
        await s.get(`/e/${encodeURIComponent(value)}`);
      }
      expect(s.calls).toBe(6);
    });

    it("§5.3 a valid Expires less Date is the freshness lifetime", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.text(`${n}`, 200, { date: httpDate(T0), expires: httpDate(T0 + 90_000) }),
      );
      expect(status(await s.get("/x"))).toMatch(/stored; ttl=90$/);
      s.advance(89_000);
      expect(status(await s.get("/x"))).toMatch(/^edgecache; hit; ttl=1$/);
      s.advance(2_000);
      await s.get("/x");
      expect(s.calls).toBe(2);
    });
  });

  describe("RFC 9111 5.1 and 4.2.3: Age", () => {
    it("§5.1 a list-valued Age uses its first member", async () => {
      const s = rfcSite(send, {}, (c, n) => {
        // Two Age lines reach a handler as one list: "7200, 0".
        const h = new Headers({ "cache-control": "max-age=3600" });
        if (c.req.path === "/two") {
          h.append("age", "7200");
          h.append("age", "0");
        } else h.set("age", c.req.path === "/old" ? "7200, 0" : "10, 7200");
        return new Response(`${n}`, { headers: h });
      });
      // Older than its lifetime on arrival: stale, not stored.
      expect(status(await s.get("/old"))).toMatch(/detail=expired$/);
      expect(status(await s.get("/two"))).toMatch(/detail=expired$/);
      expect(status(await s.get("/young"))).toMatch(/stored; ttl=3590$/);
    });

    it("§4.2.3 Age counts the time since the response was generated, from its Date", async () => {
      const s = rfcSite(send, {}, (c) =>
        c.text("x", 200, { date: httpDate(T0 - 10_000), "cache-control": "max-age=60" }),
      );
      const miss = await s.get("/d");
      expect(status(miss)).toMatch(/stored; ttl=50$/);
      expect(miss.headers.get("age")).toBe("10");
      s.advance(5_000);
      expect((await s.get("/d")).headers.get("age")).toBe("15");
    });

    it("§4.2.3 the response delay counts in its age", async () => {
      const s = rfcSite(send, {}, (c) => {
        s.advance(3_000);
        return c.text("slow", 200, { "cache-control": "max-age=60", age: "2" });
      });
      expect(status(await s.get("/slow"))).toMatch(/stored; ttl=55$/);
      expect((await s.get("/slow")).headers.get("age")).toBe("5");
    });
  });

  describe("RFC 9111 4.2.1, 4.2.2: the origin-driven mode (ttl: 0) and heuristic freshness", () => {
    it("§4.2.1 with ttl: 0 a response without explicit freshness is not stored", async () => {
      const s = rfcSite(send, { ttl: 0 }, (c, n) => c.text(`${n}`, 200, { etag: '"a"' }));
      expect(status(await s.get("/n"))).toMatch(/detail=expired$/);
      await s.get("/n");
      expect(s.calls).toBe(2);
    });

    it("§4.2.1 with ttl: 0 a response is fresh for exactly what its headers say", async () => {
      const s = rfcSite(send, { ttl: 0 }, (c, n) =>
        c.text(`${n}`, 200, { "cache-control": "max-age=5" }),
      );
      expect(status(await s.get("/m"))).toMatch(/stored; ttl=5$/);
      s.advance(4_000);
      expect(await (await s.get("/m")).text()).toBe("1");
      s.advance(1_000);
      expect(await (await s.get("/m")).text()).toBe("2");
    });

    it("§4.2.2 with ttl: 0 a Last-Modified makes a heuristic lifetime, a fraction of its age, capped", async () => {
      const s = rfcSite(send, { ttl: 0, heuristic: { fraction: 0.1, max: 3_600_000 } }, (c) =>
        c.text("h", 200, {
          date: httpDate(T0),
          "last-modified": httpDate(T0 - (c.req.path === "/young" ? 100_000 : 100_000_000)),
        }),
      );
      expect(status(await s.get("/young"))).toMatch(/stored; ttl=10$/);
      expect(status(await s.get("/old"))).toMatch(/stored; ttl=3600$/);
    });

    it("§4.2.2 no heuristic for a status that is not heuristically cacheable, nor when off", async () => {
      const lm = { "last-modified": httpDate(T0 - 100_000_000) };
      const s = rfcSite(send, { ttl: 0, statuses: [200, 302] }, (c) =>
        c.text("r", c.req.path === "/302" ? 302 : 200, lm),
      );
      expect(status(await s.get("/302"))).toMatch(/detail=expired$/);
      const off = rfcSite(send, { ttl: 0, heuristic: false }, (c) => c.text("r", 200, lm));
      expect(status(await off.get("/200"))).toMatch(/detail=expired$/);
    });

    it("§4.2.1 in the default mode a response without freshness gets the ttl option", async () => {
      const s = rfcSite(send, { ttl: 30_000 }, (c) => c.text("own"));
      expect(status(await s.get("/own"))).toMatch(/stored; ttl=30$/);
    });
  });

  describe("RFC 9111 5.2.1: request directives", () => {
    const fresh = { "cache-control": "max-age=3600" };

    it("§5.2.1.1 max-age: a stored response older than it is not used", async () => {
      const s = rfcSite(send, {}, (c, n) => c.text(`${n}`, 200, fresh));
      await s.get("/a");
      s.advance(700_000);
      const ok = await s.get("/a", { headers: { "cache-control": "max-age=800" } });
      expect(await ok.text()).toBe("1");
      const old = await s.get("/a", { headers: { "cache-control": "max-age=600" } });
      expect(await old.text()).toBe("2");
      expect(status(old)).toMatch(/fwd=request; fwd-status=200; stored/);
    });

    it("§5.2.1.3 min-fresh: a response fresh for less than that is not used", async () => {
      const s = rfcSite(send, {}, (c, n) => c.text(`${n}`, 200, fresh));
      await s.get("/f");
      s.advance(2_000_000);
      expect(
        await (await s.get("/f", { headers: { "cache-control": "min-fresh=1000" } })).text(),
      ).toBe("1");
      expect(
        await (await s.get("/f", { headers: { "cache-control": "min-fresh=2000" } })).text(),
      ).toBe("2");
    });

    it("§5.2.1.2 max-stale: a stale response within it is used", async () => {
      const s = rfcSite(send, {}, (c, n) => c.text(`${n}`, 200, { "cache-control": "max-age=1" }));
      await s.get("/s");
      s.advance(30_000);
      const stale = await s.get("/s", { headers: { "cache-control": "max-stale=60" } });
      expect(await stale.text()).toBe("1");
      expect(status(stale)).toMatch(/^edgecache; hit; ttl=-29/);
      const tooStale = await s.get("/s", { headers: { "cache-control": "max-stale=10" } });
      expect(await tooStale.text()).toBe("2");
    });

    it("§5.2.2.2 must-revalidate wins over a request's max-stale", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.text(`${n}`, 200, { "cache-control": "max-age=1, must-revalidate" }),
      );
      await s.get("/mr");
      s.advance(5_000);
      const res = await s.get("/mr", { headers: { "cache-control": "max-stale" } });
      expect(await res.text()).toBe("2");
    });

    it("§5.2.1.4 no-cache revalidates the stored response with its validator", async () => {
      const s = rfcSite(send, {}, (c, n) =>
        c.req.header("if-none-match") === '"v"'
          ? c.body(null, 304, { etag: '"v"' })
          : c.text(`${n}`, 200, { ...fresh, etag: '"v"' }),
      );
      await s.get("/nc");
      const res = await s.get("/nc", { headers: { "cache-control": "no-cache" } });
      expect(await res.text()).toBe("1");
      expect(s.seen[1]?.headers.get("if-none-match")).toBe('"v"');
      expect(status(res)).toMatch(/fwd=request; fwd-status=304; stored/);
    });
  });
}
