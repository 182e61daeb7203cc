/**
 * The admin API's entry routes over real caches on the REST bridge: keys listed by prefix in
 * bounded pages (`GET /keys`), and a `cached()` response found by its URL
 * (`GET /entries/by-url`), variants included, without knowing its internal key.
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { describe, expect, inject, it } from "vitest";
import { createCache } from "../../src/cache.js";
import { cacheAdmin } from "../../src/hono/admin/index.js";
import { cached } from "../../src/hono/cached/index.js";
import { memoryStore } from "../../src/index.js";
import type { Store } from "../../src/store/contract.js";
import { upstashStore } from "../../src/stores/upstash.js";

const TOKEN = `admin-${randomBytes(18).toString("base64url")}`;
const store = upstashStore({ url: inject("bridgeUrl"), token: inject("bridgeToken") });
const auth = { authorization: `Bearer ${TOKEN}` };

/** An app with `cached()` routes on the `http` namespace and the admin at /_cache. */
function setup(adminStore: Store = store) {
  const cache = createCache({ store: adminStore, namespace: `entries.${crypto.randomUUID()}` });
  const http = cache.namespace("http");
  const app = new Hono();
  let runs = 0;
  app.route("/_cache", cacheAdmin({ cache, token: TOKEN, caches: { http } }));
  app.get("/plain/*", cached({ cache: http }), (c) => c.json({ path: c.req.path, run: ++runs }));
  app.get("/shared/*", cached({ cache: http, key: "path" }), (c) => c.text(`shared ${++runs}`));
  app.get("/lang", cached({ cache: http, vary: ["x-tenant"] }), (c) =>
    c.text(`${c.req.header("x-tenant")} ${c.req.header("accept-language")} ${++runs}`, 200, {
      vary: "Accept-Language",
    }),
  );
  const admin = (path: string) => app.request(`/_cache${path}`, { headers: auth });
  return { cache, http, app, admin };
}

describe("GET /keys", () => {
  it("lists a namespace's keys by prefix in bounded pages, with a cursor to the end", async () => {
    const { cache, http, admin } = setup();
    await cache.setMany(Array.from({ length: 30 }, (_, i) => [`user:${i}`, i] as const));
    await cache.set("other", 1, { tags: ["t"] });
    // Writes a tag marker (a key of the cache's own) in this namespace.
    await cache.invalidateTag("t2");
    await http.set("user:in-http", 1);
    const seen: string[] = [];
    let cursor = "";
    let pages = 0;
    do {
      const res = await admin(`/keys?prefix=user%3A&limit=7&cursor=${encodeURIComponent(cursor)}`);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.ns).toBe("");
      expect(body.keys.length).toBeLessThanOrEqual(14);
      seen.push(...body.keys);
      cursor = body.cursor;
      pages++;
    } while (cursor !== "" && pages < 100);
    expect(cursor).toBe("");
    expect(pages).toBeGreaterThan(1);
    expect([...new Set(seen)].sort()).toEqual(
      Array.from({ length: 30 }, (_, i) => `user:${i}`).sort(),
    );
    // Without a prefix: everything, tag markers (the cache's own keys) left out. A page may
    // come back empty before the end: a store that scans a large database covers a bounded
    // stretch of it per page.
    const everything = async (query: string) => {
      const found: string[] = [];
      let at = "";
      for (let page = 0; page < 1000; page++) {
        const body = await (await admin(`/keys?${query}&cursor=${encodeURIComponent(at)}`)).json();
        found.push(...body.keys);
        at = body.cursor;
        if (at === "") return [...new Set(found)].sort();
      }
      throw new Error("the listing did not end");
    };
    const all = await everything("limit=1000");
    expect(all).toContain("other");
    expect(all.some((k) => k.startsWith("\u0000"))).toBe(false);
    expect(all).toHaveLength(31);
    // ?ns= lists another namespace.
    expect(await everything("ns=http")).toEqual(["user:in-http"]);
  });

  it("refuses a limit over 1000, a bad cursor, and a store that cannot list (400)", async () => {
    const { admin } = setup();
    for (const query of ["limit=1001", "limit=0", "limit=abc", "cursor=nope"]) {
      const res = await admin(`/keys?${query}`);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe("EC_INVALID_OPTION");
    }
    const { keys: _keys, ...lacking } = memoryStore();
    const res = await setup(lacking as Store).admin("/keys");
    expect(res.status).toBe(400);
    expect((await res.json()).message).toMatch(/cannot list keys/);
  });
});

describe("GET /entries/by-url", () => {
  it("finds the entry cached() keeps for a URL: query order and spelling as the middleware sees them", async () => {
    const { app, admin } = setup();
    const miss = await app.request("http://shop.example/plain/a?b=2&a=1");
    expect(await miss.json()).toEqual({ path: "/plain/a", run: 1 });
    const url = encodeURIComponent("http://shop.example/plain/a?a=%31&b=2");
    const res = await admin(`/entries/by-url?ns=http&url=${url}`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.resource).toBe("http://shop.example/plain/a?a=1&b=2");
    expect(body.key).toMatch(/^GET http:\/\/shop\.example\/plain\/a\?a=1&b=2\|[0-9a-f]{64}$/);
    expect(body.value).toMatchObject({ kind: "response", status: 200 });
    expect(body.ttl).toBeGreaterThan(0);
    // Another host is another entry; in another namespace, nothing.
    const elsewhere = encodeURIComponent("http://other.example/plain/a?a=1&b=2");
    expect((await admin(`/entries/by-url?ns=http&url=${elsewhere}`)).status).toBe(404);
    expect((await admin(`/entries/by-url?url=${url}`)).status).toBe(404);
  });

  it('finds a key: "path" entry from any origin, or from the path alone', async () => {
    const { app, admin } = setup();
    await app.request("http://127.0.0.1:3001/shared/x?q=1");
    for (const url of ["http://127.0.0.1:3000/shared/x?q=1", "/shared/x?q=1"]) {
      const res = await admin(`/entries/by-url?ns=http&key=path&url=${encodeURIComponent(url)}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ resource: "/shared/x?q=1" });
    }
    // Keyed by URL it is not there.
    const res = await admin(
      `/entries/by-url?ns=http&url=${encodeURIComponent("http://127.0.0.1:3001/shared/x?q=1")}`,
    );
    expect(res.status).toBe(404);
  });

  it("follows the URL's Vary to the variant the given headers select", async () => {
    const { app, admin } = setup();
    const send = (tenant: string, lang: string) =>
      app.request("http://shop.example/lang", {
        headers: { "x-tenant": tenant, "accept-language": lang },
      });
    expect(await (await send("a", "fr")).text()).toBe("a fr 1");
    expect(await (await send("a", "de")).text()).toBe("a de 2");
    const lookup = (...headers: string[]) =>
      admin(
        `/entries/by-url?ns=http&vary=x-tenant&url=${encodeURIComponent("http://shop.example/lang")}${headers
          .map((h) => `&header=${encodeURIComponent(h)}`)
          .join("")}`,
      );
    const fr = await lookup("x-tenant: a", "accept-language: fr");
    expect(fr.status).toBe(200);
    const body = await fr.json();
    expect(body.varies).toEqual(["accept-language"]);
    expect(body.varyKey).not.toBe(body.key);
    expect(body.value).toMatchObject({ kind: "response", status: 200 });
    expect(Buffer.from(body.value.body, "base64").toString()).toBe("a fr 1");
    const de = await (await lookup("x-tenant: a", "accept-language: de")).json();
    expect(Buffer.from(de.value.body, "base64").toString()).toBe("a de 2");
    // A variant nobody asked for: 404, saying the URL varies.
    const none = await lookup("x-tenant: a", "accept-language: it");
    expect(none.status).toBe(404);
    expect(await none.json()).toMatchObject({ error: "not_found", varies: ["accept-language"] });
    // Without the `vary` option's header, the key is another one: nothing there.
    expect((await lookup("accept-language: fr")).status).toBe(404);
  });

  it("answers 400 for a missing or relative URL, a bad key scope or header", async () => {
    const { admin } = setup();
    for (const query of [
      "",
      "url=%2Fplain",
      "url=ftp%3A%2F%2Fx%2F",
      "url=http%3A%2F%2Fx%2F&key=host",
      "url=http%3A%2F%2Fx%2F&header=novalue",
      "url=http%3A%2F%2Fx%2F&header=bad%20name%3A%20x",
    ]) {
      const res = await admin(`/entries/by-url?ns=http&${query}`);
      expect(res.status, query).toBe(400);
      expect((await res.json()).error).toBe("invalid_query");
    }
  });
});
