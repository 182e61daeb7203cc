/**
 * The `cached` Hono middleware: cache keys: normalization, Vary and poisoning attempts. Through
 * `app.request`, over real caches (`upstashStore` on the REST bridge, or `memoryStore` where a
 * test moves the clock); every rule is asserted by counting handler runs, so a rule that breaks
 * fails its case.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { type CachedOptions, cached } from "../../src/hono/cached/index.js";
import { normalizePath, normalizeUrl, variantKey } from "../../src/hono/cached/key.js";
import { bridged, cacheStatus, fresh, site } from "./cached-helpers.js";
import { serve } from "./serve.js";

describe("cached: keys and poisoning attempts", () => {
  it("query parameters in any order, or spelled differently, share an entry", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(`${JSON.stringify(c.req.queries())} ${n}`),
    );
    const first = await (await s.get("/q?b=2&a=1&c=x%20y")).text();
    for (const spelling of ["/q?a=1&b=2&c=x+y", "/q?c=x%20y&a=%31&b=2", "/q?a=1&&b=2&c=x y"]) {
      expect(await (await s.get(spelling)).text()).toBe(first);
    }
    expect(s.calls).toBe(1);
  });

  it("spellings a handler can tell apart never share an entry: %FF vs %25FF, %26 vs &", async () => {
    // c.req.query() reads %FF (not UTF-8, left as is) and %25FF both as "%FF";
    // URLSearchParams reads "\uFFFD" and "%FF". A handler may use either.
    const s = site({ cache: bridged() }, (c) =>
      c.text(JSON.stringify([new URL(c.req.url).searchParams.get("q"), c.req.queries()])),
    );
    const raw = await (await s.get("/q?q=%FF")).text();
    const escaped = await (await s.get("/q?q=%25FF")).text();
    expect(raw).not.toBe(escaped);
    expect(JSON.parse(escaped)[0]).toBe("%FF");
    // Undecodable runs next to text that encodes to escapes: c.req.query() tells these
    // apart ("%FF/" and "%FF%2F"; "%E2%82 " and "%E2%82%20").
    for (const [a, b] of [
      ["/q?q=%FF/", "/q?q=%FF%2F"],
      ["/q?q=%E2%82+", "/q?q=%E2%82%20"],
      ["/q?q=/%FF", "/q?q=%2F%FF"],
      ["/q?q=%FF%", "/q?q=%FF%25"],
    ] as const) {
      const one = JSON.parse(await (await s.get(a)).text())[1];
      const other = JSON.parse(await (await s.get(b)).text())[1];
      expect(one).not.toEqual(other);
    }
    // An encoded separator is part of the value, not a second parameter.
    const one = await (await s.get("/q?a=1%26b%3D2")).text();
    const two = await (await s.get("/q?a=1&b=2")).text();
    expect(JSON.parse(one)[1]).toEqual({ a: ["1&b=2"] });
    expect(JSON.parse(two)[1]).toEqual({ a: ["1"], b: ["2"] });
    expect(s.calls).toBe(12);
    // Each spelling is still a hit for itself.
    expect(await (await s.get("/q?q=%FF")).text()).toBe(raw);
    expect(await (await s.get("/q?q=%25FF")).text()).toBe(escaped);
    expect(s.calls).toBe(12);
  });

  it("repeated parameters keep their order, which c.req.query depends on", async () => {
    const s = site({ cache: bridged() }, (c) => c.text(c.req.query("a") ?? ""));
    expect(await (await s.get("/q?a=1&a=2")).text()).toBe("1");
    expect(await (await s.get("/q?a=2&a=1")).text()).toBe("2");
    expect(s.calls).toBe(2);
  });

  it("paths differing in case or encoding (%2F, %2f, /) never share an entry", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text(`${c.req.path} ${new URL(c.req.url).pathname}`),
    );
    const paths = ["/a/b", "/a%2Fb", "/a%2fb", "/A/b"];
    const first = await Promise.all(paths.map(async (p) => (await s.get(p)).text()));
    expect(new Set(first).size).toBe(4);
    const again = await Promise.all(paths.map(async (p) => (await s.get(p)).text()));
    expect(again).toEqual(first);
    expect(s.calls).toBe(4);
  });

  it("the host is part of the key: a forged host fills only its own entry", async () => {
    const s = site({ cache: bridged() }, (c) =>
      c.text(`<link href="//${new URL(c.req.url).host}/">`),
    );
    await s.get("http://evil.example/page");
    const good = await s.get("http://shop.example/page");
    expect(await good.text()).toBe('<link href="//shop.example/">');
    expect(await (await s.get("http://shop.example/page")).text()).toBe(
      '<link href="//shop.example/">',
    );
    expect(s.calls).toBe(2);
  });

  it("unkeyed request headers do not split the cache", async () => {
    const s = site({ cache: bridged() });
    await s.get("/u", { headers: { "x-forwarded-host": "evil.example", "user-agent": "a" } });
    const other = await s.get("/u", {
      headers: { "x-forwarded-host": "shop.example", "user-agent": "b" },
    });
    expect(cacheStatus(other)).toMatch(/; hit;/);
    expect(s.calls).toBe(1);
  });

  it("a response's Vary keys it on those request headers: one variant never serves another", async () => {
    const s = site({ cache: bridged() }, (c, n) =>
      c.text(
        `${c.req.header("x-forwarded-host") ?? "-"}/${c.req.header("accept-language") ?? "-"} ${n}`,
        200,
        {
          vary: "Accept-Language, X-Forwarded-Host",
        },
      ),
    );
    const evil = { "x-forwarded-host": "evil.example", "accept-language": "fr" };
    const fr = { "accept-language": "fr" };
    const en = { "accept-language": "en" };
    const a = await s.get("/v", { headers: evil });
    expect(cacheStatus(a)).toBe("edgecache; fwd=miss; fwd-status=200; stored; ttl=60");
    const b = await s.get("/v", { headers: fr });
    expect(await b.text()).toBe("-/fr 2");
    expect(cacheStatus(b)).toBe("edgecache; fwd=vary-miss; fwd-status=200; stored; ttl=60");
    expect(await (await s.get("/v", { headers: en })).text()).toBe("-/en 3");
    expect(await (await s.get("/v", { headers: fr })).text()).toBe("-/fr 2");
    expect(await (await s.get("/v", { headers: en })).text()).toBe("-/en 3");
    expect(await (await s.get("/v", { headers: evil })).text()).toBe("evil.example/fr 1");
    expect(await (await s.get("/v")).text()).toBe("-/- 4");
    expect(s.calls).toBe(4);
  });

  it("when a URL's Vary changes, no response is served to a request it does not match", async () => {
    let vary: string | undefined = "Accept-Language";
    const s = site({ cache: bridged(), ttl: 60_000 }, (c, n) =>
      c.text(`${c.req.header("accept-language") ?? "-"} ${n}`, 200, vary ? { vary } : {}),
    );
    await s.get("/c", { headers: { "accept-language": "fr" } });
    vary = "Accept-Language, Accept-Encoding";
    // A variant key made with one header, answered by a response varying on two.
    const en = await s.get("/c", {
      headers: { "accept-language": "en", "accept-encoding": "gzip" },
    });
    expect(await en.text()).toBe("en 2");
    const enBr = await s.get("/c", {
      headers: { "accept-language": "en", "accept-encoding": "br" },
    });
    expect(await enBr.text()).toBe("en 3");
    expect(
      await (
        await s.get("/c", { headers: { "accept-language": "en", "accept-encoding": "gzip" } })
      ).text(),
    ).toBe("en 2");
    vary = undefined;
    // No Vary any more: the response goes under the URL's own key, for every request.
    await s.get("/c", { headers: { "accept-language": "de", "accept-encoding": "x" } });
    const plain = await s.get("/c", { headers: { "accept-language": "it" } });
    expect(await plain.text()).toBe("de 4");
    expect(cacheStatus(plain)).toMatch(/; hit;/);
    expect(s.calls).toBe(4);
  });

  it('two instances on different ports share entries with key: "path", not by default', async () => {
    const namespace = fresh();
    // Two instances: each its own app, cache and port, over one Redis.
    const instances = async (options: Partial<CachedOptions>) => {
      let calls = 0;
      const servers: Server[] = [];
      for (let i = 0; i < 2; i++) {
        const app = new Hono();
        const cache = bridged(namespace);
        app.get("*", cached({ cache, ...options }), (c) => c.text(`run ${++calls}`));
        servers.push(await serve(app.fetch));
      }
      const [a, b] = servers.map((s) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`);
      return {
        a: a!,
        b: b!,
        calls: () => calls,
        close: () => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))),
      };
    };
    const byUrl = await instances({});
    expect(await (await fetch(`${byUrl.a}/page?x=1&y=2`)).text()).toBe("run 1");
    const other = await fetch(`${byUrl.b}/page?x=1&y=2`);
    expect(await other.text()).toBe("run 2");
    expect(cacheStatus(other)).toMatch(/fwd=miss/);
    await byUrl.close();

    const byPath = await instances({ key: "path" });
    expect(await (await fetch(`${byPath.a}/shared?x=1&y=2`)).text()).toBe("run 1");
    // The other port, and the query in another order: the same entry.
    const shared = await fetch(`${byPath.b}/shared?y=2&x=1`);
    expect(await shared.text()).toBe("run 1");
    expect(cacheStatus(shared)).toMatch(/; hit;/);
    expect(byPath.calls()).toBe(1);
    await byPath.close();
  });

  it("the key option replaces the URL in the key", async () => {
    const s = site({ cache: bridged(), key: (c) => c.req.path });
    await s.get("/k?utm_source=a");
    expect(cacheStatus(await s.get("/k?utm_source=b"))).toMatch(/; hit;/);
    expect(s.calls).toBe(1);
  });
});

describe("cached: key construction", () => {
  it("no base, however crafted, produces another base's key", async () => {
    const fr = new Headers({ "accept-language": "fr" });
    const victim = await variantKey("GET http://shop.example/a", ["accept-language"], fr);
    const suffix = victim.slice(victim.lastIndexOf("|") + 1);
    expect(suffix).toMatch(/^[0-9a-f]{64}$/);
    // A path ending in "|<that hash>" is still followed by a hash of its own.
    const forged = await variantKey(`GET http://shop.example/a|${suffix}`, [], new Headers());
    expect(forged).not.toBe(victim);
    expect(forged.startsWith(victim)).toBe(true);
  });

  it('key: "path" leaves scheme, host and port out, and normalizes the query the same way', () => {
    expect(normalizePath("http://a.example:3000/P%2fx?b=2&a=%31")).toBe("/P%2fx?a=1&b=2");
    expect(normalizePath("https://b.example/P%2fx?a=1&b=2")).toBe("/P%2fx?a=1&b=2");
    expect(normalizePath("http://a.example/")).toBe("/");
  });

  it("normalizes scheme, host and default port, and sorts the query; leaves the path alone", () => {
    expect(normalizeUrl("HTTP://Shop.EXAMPLE:80/A/%7e/b%2f?z=1&a=%7E&a=x+y&b")).toBe(
      "http://shop.example/A/%7e/b%2f?a=~&a=x%20y&b=&z=1",
    );
    expect(normalizeUrl("https://shop.example:8443/?%ZZ=%E2%82&c=%E2%82%AC")).toBe(
      "https://shop.example:8443/?%25ZZ=[%E2%82]&c=%E2%82%AC",
    );
  });

  it("hashes a base too long for a key, so long URLs are cached too", async () => {
    const s = site({ cache: bridged() });
    const long = `/search?q=${"x".repeat(3_000)}`;
    await s.get(long);
    expect(cacheStatus(await s.get(long))).toMatch(/; hit;/);
    expect(cacheStatus(await s.get(`${long}y`))).toMatch(/fwd=miss/);
    expect(s.calls).toBe(2);
  });
});
