/**
 * The `cached` Hono middleware: requests that bypass or revalidate the cache, and the Cookie
 * opt-in. Through `app.request`, over real caches (`upstashStore` on the REST bridge, or
 * `memoryStore` where a test moves the clock); every rule is asserted by counting handler runs,
 * so a rule that breaks fails its case.
 */
import { describe, expect, it } from "vitest";
import { createCache } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";
import { bridged, cacheStatus, fresh, recording, site, token, url } from "./cached-helpers.js";

describe("cached: requests that bypass the cache", () => {
  it("methods other than GET and HEAD go to the handler (fwd=method)", async () => {
    const s = site({ cache: bridged() });
    for (const method of ["POST", "PUT", "DELETE", "POST"]) {
      const res = await s.get("/items", { method });
      expect(cacheStatus(res)).toBe("edgecache; fwd=method; fwd-status=200");
    }
    expect(s.calls).toBe(4);
    const getOnly = site({ cache: bridged(), methods: ["GET"] });
    await getOnly.get("/items");
    expect(cacheStatus(await getOnly.get("/items", { method: "HEAD" }))).toMatch(/fwd=method/);
    expect(getOnly.calls).toBe(2);
  });

  it("other methods are cached when listed with a key function", async () => {
    const s = site({
      cache: bridged(),
      methods: ["GET", "POST"],
      key: async (c) => `${c.req.path}#${await c.req.raw.clone().text()}`,
    });
    await s.get("/search", { method: "POST", body: "q=1" });
    const again = await s.get("/search", { method: "POST", body: "q=1" });
    expect(cacheStatus(again)).toMatch(/; hit;/);
    await s.get("/search", { method: "POST", body: "q=2" });
    await s.get("/search");
    expect(s.calls).toBe(3);
  });

  for (const [header, value] of [
    ["authorization", "Bearer secret-token"],
    ["cookie", "session=alice"],
  ] as const) {
    it(`a request with ${header} neither reads nor populates the shared entry`, async () => {
      const s = site({ cache: bridged() }, (c, n) =>
        c.text(c.req.header(header) ? `personal ${n}` : `public ${n}`),
      );
      // It comes first: its personalized response must not become the shared one.
      const personal = await s.get("/home", { headers: { [header]: value } });
      expect(await personal.text()).toBe("personal 1");
      expect(cacheStatus(personal)).toBe(
        "edgecache; fwd=bypass; fwd-status=200; detail=credentials",
      );
      expect(await (await s.get("/home")).text()).toBe("public 2");
      // And it does not read the shared one either.
      expect(await (await s.get("/home", { headers: { [header]: value } })).text()).toBe(
        "personal 3",
      );
      expect(await (await s.get("/home")).text()).toBe("public 2");
      expect(s.calls).toBe(3);
    });
  }

  it("vary: ['Authorization'] caches per credential, and keys hold only its hash", async () => {
    const { store, written } = recording(upstashStore({ url, token }));
    const cache = createCache({ store, namespace: fresh(), logger: false });
    const s = site({ cache, vary: ["Authorization"] }, (c, n) =>
      c.text(`for ${c.req.header("authorization")?.slice(-1)} ${n}`),
    );
    const as = (who: string) => ({ headers: { authorization: `Bearer token-of-${who}` } });
    expect(await (await s.get("/me", as("a"))).text()).toBe("for a 1");
    expect(await (await s.get("/me", as("b"))).text()).toBe("for b 2");
    expect(await (await s.get("/me", as("a"))).text()).toBe("for a 1");
    expect(await (await s.get("/me", as("b"))).text()).toBe("for b 2");
    expect(s.calls).toBe(2);
    expect(written.length).toBeGreaterThan(0);
    expect(written.join("\n")).not.toContain("token-of");
  });

  it("a request with Cache-Control: no-store goes to the handler and is not stored", async () => {
    const s = site({ cache: bridged() });
    const res = await s.get("/x", { headers: { "cache-control": "no-store" } });
    expect(cacheStatus(res)).toBe("edgecache; fwd=request; fwd-status=200; detail=no-store");
    await s.get("/x");
    expect(s.calls).toBe(2);
  });

  for (const [what, headers] of [
    ["Cache-Control: no-cache", { "cache-control": "no-cache" }],
    ["Cache-Control: max-age=0", { "cache-control": "max-age=0" }],
    ["Pragma: no-cache", { pragma: "no-cache" }],
  ] as const) {
    it(`${what} revalidates: the handler runs and its response replaces the stored one`, async () => {
      const s = site({ cache: bridged() });
      expect(await (await s.get("/r")).text()).toBe("body 1");
      const revalidated = await s.get("/r", { headers });
      expect(await revalidated.text()).toBe("body 2");
      expect(cacheStatus(revalidated)).toBe(
        "edgecache; fwd=request; fwd-status=200; stored; ttl=60",
      );
      const after = await s.get("/r");
      expect(await after.text()).toBe("body 2");
      expect(cacheStatus(after)).toMatch(/; hit;/);
      expect(s.calls).toBe(2);
    });
  }

  it("no-cache revalidates a URL whose responses vary, replacing that variant", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(`${c.req.header("accept-language")} ${n}`, 200, { vary: "Accept-Language" }),
    );
    const fr = { "accept-language": "fr" };
    await s.get("/rv", { headers: fr });
    await s.get("/rv", { headers: { "accept-language": "en" } });
    const revalidated = await s.get("/rv", { headers: { ...fr, "cache-control": "no-cache" } });
    expect(await revalidated.text()).toBe("fr 3");
    expect(await (await s.get("/rv", { headers: fr })).text()).toBe("fr 3");
    expect(await (await s.get("/rv", { headers: { "accept-language": "en" } })).text()).toBe(
      "en 2",
    );
    expect(s.calls).toBe(3);
  });

  it("only-if-cached answers from the cache, or 504 without running the handler", async () => {
    const s = site({ cache: bridged() });
    const miss = await s.get("/o", { headers: { "cache-control": "only-if-cached" } });
    expect(miss.status).toBe(504);
    expect(s.calls).toBe(0);
    await s.get("/o");
    const hit = await s.get("/o", { headers: { "cache-control": "only-if-cached" } });
    expect(await hit.text()).toBe("body 1");
    expect(s.calls).toBe(1);
  });
});

describe("cached: the Cookie opt-in and event streams", () => {
  it("vary: ['Cookie'] caches per cookie; two sessions never share an entry, keys hold only its hash", async () => {
    const { store, written } = recording(upstashStore({ url, token }));
    const cache = createCache({ store, namespace: fresh(), logger: false });
    const s = site({ cache, vary: ["Cookie"] }, (c, n) =>
      c.text(`for ${c.req.header("cookie") ?? "nobody"} ${n}`),
    );
    const as = (who: string) => ({ headers: { cookie: `session=cookie-of-${who}` } });
    const alice = await s.get("/me", as("alice"));
    expect(cacheStatus(alice)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    expect(await alice.text()).toBe("for session=cookie-of-alice 1");
    expect(await (await s.get("/me", as("bob"))).text()).toBe("for session=cookie-of-bob 2");
    const again = await s.get("/me", as("alice"));
    expect(cacheStatus(again)).toMatch(/^edgecache; hit;/);
    expect(await again.text()).toBe("for session=cookie-of-alice 1");
    expect(await (await s.get("/me", as("bob"))).text()).toBe("for session=cookie-of-bob 2");
    // Without a cookie: an entry of its own, not one of theirs.
    expect(await (await s.get("/me")).text()).toBe("for nobody 3");
    expect(s.calls).toBe(3);
    expect(written.length).toBeGreaterThan(0);
    expect(written.join("\n")).not.toContain("cookie-of");
    // Listing Cookie does not let a request with Authorization in.
    const bearer = await s.get("/me", { headers: { authorization: "Bearer x" } });
    expect(cacheStatus(bearer)).toBe("edgecache; fwd=bypass; fwd-status=200; detail=credentials");
    expect(s.calls).toBe(4);
  });

  for (const type of ["text/event-stream", "Text/Event-Stream; charset=utf-8"]) {
    it(`never stores a ${type} response`, async () => {
      const cache = bridged();
      const s = site({ cache }, (c, n) =>
        c.body(`data: ${n}\n\n`, 200, { "content-type": type, "cache-control": "max-age=60" }),
      );
      const first = await s.get("/events");
      expect(cacheStatus(first)).toBe("edgecache; fwd=miss; fwd-status=200; detail=event-stream");
      expect(await first.text()).toBe("data: 1\n\n");
      const second = await s.get("/events");
      expect(cacheStatus(second)).toBe("edgecache; fwd=miss; fwd-status=200; detail=event-stream");
      expect(await second.text()).toBe("data: 2\n\n");
      expect(s.calls).toBe(2);
      expect(cache.stats().sets).toBe(0);
    });
  }
});
