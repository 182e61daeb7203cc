/**
 * The admin's stats page in a real browser: headless Chromium (Debian's `chromium`, driven
 * by playwright-core) against a Hono app served on a real port, with caches on the REST
 * bridge. Signs in through the form, watches the numbers and charts follow cache traffic,
 * and saves a screenshot to /tmp/edgecache-admin.png.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Hono } from "hono";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { createCache } from "../../src/cache.js";
import { cacheAdmin } from "../../src/hono/admin/index.js";
import type { Cache, CacheStats } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";
import { serve } from "./serve.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = "/tmp/edgecache-admin.png";
const url = inject("bridgeUrl");
const bridgeToken = inject("bridgeToken");
const TOKEN = `admin-${randomBytes(18).toString("base64url")}`;
const namespace = `page.${crypto.randomUUID()}`;

let server: Server;
let origin: string;
let browser: Browser | undefined;
let cache: Cache;
let writer: Cache;
/** A namespace subscribed to a hub (a WebSocket server that plays one quietly). */
let hubbed: Cache;
let hub: WebSocketServer;
/** Under /_fresh: a root namespace nobody uses, and its `http` namespace with traffic. */
let quiet: Cache;
let busy: Cache;
/** Publishes through a binding (as a Worker does) and subscribes to nothing. */
let publisher: Cache;
let publishFails = false;

/**
 * The browser, or a failure that says what is missing: a missing Chromium fails each test
 * (it is never skipped), since CI installs it.
 */
function needBrowser(): Browser {
  if (browser === undefined) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: the admin page test needs it. ` +
        "Install it with `apt-get install -y chromium` (.ci/run does this when it is missing).",
    );
  }
  return browser;
}

beforeAll(async () => {
  const store = upstashStore({ url, token: bridgeToken });
  cache = createCache({ store, namespace });
  // Another instance on the same namespace: what it writes, `cache` finds in L2.
  writer = createCache({ store, namespace });
  const app = new Hono();
  app.get("/", (c) => c.text("the app"));
  hub = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((r) => hub.once("listening", r));
  hubbed = createCache({
    store,
    namespace: `${namespace}.hubbed`,
    sync: {
      hub: {
        url: `http://127.0.0.1:${(hub.address() as AddressInfo).port}`,
        token: "t",
        WebSocket: WebSocket as never,
        // Once cut it stays cut for the test, so the page has time to show it.
        minBackoff: 600_000,
        maxBackoff: 600_000,
      },
    },
  });
  app.route(
    "/_cache",
    cacheAdmin({ cache, token: TOKEN, caches: { scores: cache.namespace("scores"), hubbed } }),
  );
  quiet = createCache({ store, namespace: `${namespace}.quiet` });
  busy = quiet.namespace("http");
  publisher = createCache({
    store,
    namespace: `${namespace}.publisher`,
    logger: false,
    sync: {
      hub: {
        binding: {
          getByName: () => ({
            publish: async () => {
              if (publishFails) throw new Error("the hub is away");
            },
          }),
        },
      },
    },
  });
  app.route(
    "/_fresh",
    cacheAdmin({ cache: quiet, token: TOKEN, caches: { http: busy, publisher } }),
  );
  server = await serve(app.fetch);
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  if (existsSync(CHROMIUM)) {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (server !== undefined) await new Promise((resolve) => server.close(resolve));
  await cache?.close();
  await writer?.close();
  await hubbed?.close();
  await quiet?.close();
  await publisher?.close();
  for (const c of hub?.clients ?? []) c.terminate();
  await new Promise((r) => hub?.close(r));
});

/**
 * A page that collects console errors (CSP violations land there) and script errors; the
 * browser's notes about answers with error statuses, which the tests provoke, are not kept.
 */
async function openPage(): Promise<{ page: Page; errors: string[] }> {
  const context = await needBrowser().newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      errors.push(m.text());
    }
  });
  page.on("pageerror", (e) => errors.push(e.message));
  return { page, errors };
}

async function signIn(page: Page, token: string) {
  await page.fill('input[name="token"]', token);
  await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
}

/** Waits until the page shows these stats (and has drawn `samples` polls or more). */
async function waitForStats(page: Page, stats: CacheStats, samples = 1) {
  await page.waitForFunction(
    ({ expected, samples }) => {
      if (Number(document.body.dataset.samples) < samples) return false;
      for (const [name, value] of Object.entries(expected)) {
        const shown = Array.from(document.querySelectorAll(`[data-stat="${name}"]`));
        if (shown.some((e) => e.textContent !== String(value))) return false;
      }
      return true;
    },
    {
      expected: {
        l1Hits: stats.l1Hits,
        l1Misses: stats.l1Misses,
        l2Hits: stats.l2Hits,
        l2Misses: stats.l2Misses,
        sets: stats.sets,
        syncs: stats.syncs,
        l1Items: stats.l1Items,
      },
      samples,
    },
    { timeout: 10_000 },
  );
}

const pct = (hits: number, misses: number) =>
  hits + misses === 0 ? "n/a" : `${((hits / (hits + misses)) * 100).toFixed(1)}%`;

describe("the stats page in Chromium", () => {
  it("shows only the login form to a visitor without a session", async () => {
    const { page, errors } = await openPage();
    const res = await page.goto(`${origin}/_cache`);
    expect(res!.status()).toBe(401);
    expect(await page.locator('input[name="token"]').count()).toBe(1);
    expect(await page.locator("[data-stat]").count()).toBe(0);
    expect(await page.locator("script").count()).toBe(0);
    const text = await page.textContent("body");
    expect(text).not.toContain(namespace);
    // The JSON routes are closed too, and a wrong token gets the form again.
    const stats = await page.goto(`${origin}/_cache/stats`);
    expect(stats!.status()).toBe(401);
    await page.goto(`${origin}/_cache`);
    await signIn(page, `${TOKEN}-wrong`);
    expect(await page.textContent(".error")).toContain("not accepted");
    expect(await page.locator("[data-stat]").count()).toBe(0);
    expect((await page.context().cookies()).length).toBe(0);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("signs in, then charts the stats as cache traffic happens", async () => {
    const { page, errors } = await openPage();
    await page.goto(`${origin}/_cache`);
    await signIn(page, TOKEN);
    expect(page.url()).toBe(`${origin}/_cache`);
    const [cookie] = await page.context().cookies();
    expect(cookie).toMatchObject({
      name: "edgecache_admin",
      httpOnly: true,
      sameSite: "Strict",
      path: "/_cache",
    });
    expect(cookie!.value).not.toContain(TOKEN);
    await page.waitForFunction(() => Number(document.body.dataset.samples) >= 1);
    expect(await page.textContent("#namespace")).toBe(namespace);

    // Rounds of traffic, each after the page has drawn another poll, so the charts get
    // points: L1 hits, L2 hits (written by the other instance) and misses in both tiers.
    for (let round = 0; round < 4; round++) {
      const drawn = Number(await page.getAttribute("body", "data-samples"));
      await page.waitForFunction((n) => Number(document.body.dataset.samples) > n, drawn);
      await cache.setMany(Array.from({ length: 5 }, (_, i) => [`r${round}.${i}`, i] as const));
      await cache.getMany(Array.from({ length: 5 }, (_, i) => `r${round}.${i}`));
      await writer.set(`w${round}`, round);
      await cache.get(`w${round}`);
      for (let i = 0; i <= round; i++) await cache.get(`absent.${round}.${i}`);
    }
    const stats = cache.stats();
    await waitForStats(page, stats);
    expect(await page.textContent('[data-ratio="l1"]')).toBe(pct(stats.l1Hits, stats.l1Misses));
    expect(await page.textContent('[data-ratio="l2"]')).toBe(pct(stats.l2Hits, stats.l2Misses));
    expect(await page.textContent('[data-lookups="l1"]')).toBe(
      String(stats.l1Hits + stats.l1Misses),
    );
    expect(await page.textContent('[data-state="breaker"]')).toBe("closed");
    expect(await page.textContent('[data-state="hub"]')).toBe("off");

    // The numbers are the JSON route's, fetched with the session cookie.
    const json = await page.evaluate(async () => (await fetch("/_cache/stats")).json());
    for (const name of ["l1Hits", "l1Misses", "l2Hits", "l2Misses", "syncs"] as const) {
      expect(await page.textContent(`.counters [data-stat="${name}"]`)).toBe(
        String(json.stats[name]),
      );
    }

    // Both tiers' ratio lines are drawn, with a point per poll that saw lookups.
    expect(
      await page.locator('#chart-ratio circle[data-series="l1"]').count(),
    ).toBeGreaterThanOrEqual(3);
    expect(
      await page.locator('#chart-ratio circle[data-series="l2"]').count(),
    ).toBeGreaterThanOrEqual(3);
    expect(
      await page.locator('#chart-ratio polyline[data-series="l1"]').count(),
    ).toBeGreaterThanOrEqual(1);
    expect(await page.locator("#chart-syncs circle").count()).toBeGreaterThanOrEqual(3);
    expect(await page.locator("#chart-states rect").count()).toBeGreaterThan(4);

    // More traffic moves the numbers again.
    await cache.get("r0.0");
    await waitForStats(page, cache.stats());

    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);

    // The session reads, but cannot change anything: a delete from the page's origin
    // without the bearer header is refused.
    const status = await page.evaluate(
      async () => (await fetch("/_cache/keys/r0.0", { method: "DELETE" })).status,
    );
    expect(status).toBe(403);
    expect(await cache.get("r0.0")).toBe(0);
    expect(errors).toEqual([]);

    // Another namespace, picked in the header.
    await page.selectOption("#ns", "scores");
    await page.waitForFunction(() =>
      document.querySelector("#namespace")?.textContent?.endsWith("/scores"),
    );
    expect(page.url()).toBe(`${origin}/_cache?ns=scores`);

    // Logging out ends the session: the page is the login form again.
    await Promise.all([page.waitForNavigation(), page.click("header form button")]);
    expect(await page.locator('input[name="token"]').count()).toBe(1);
    expect((await page.context().cookies()).length).toBe(0);
    const after = await page.evaluate(async () => (await fetch("/_cache/stats")).status);
    expect(after).toBe(401);
    await page.context().close();
  });

  it("shows the hub's state as it changes: healthy while connected, unhealthy once cut", async () => {
    const { page, errors } = await openPage();
    await page.goto(`${origin}/_cache?ns=hubbed`);
    await signIn(page, TOKEN);
    await page.goto(`${origin}/_cache?ns=hubbed`);
    await page.waitForFunction(
      () => document.querySelector('[data-state="hub"]')?.textContent === "healthy",
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.textContent("#hubdetail")).toMatch(/^1 connected, 0 reconnects/);
    const greens = await page.locator('#chart-states rect[fill="#16a34a"]').count();
    expect(greens).toBeGreaterThan(0);
    // The hub goes away: the page follows.
    for (const c of hub.clients) c.terminate();
    await page.waitForFunction(
      () => document.querySelector('[data-state="hub"]')?.textContent === "unhealthy",
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForFunction(
      () =>
        document.querySelector("#hubdetail")?.textContent?.startsWith("0 connected, 1 reconnects"),
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.locator('#chart-states rect[fill="#dc2626"]').count()).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("opens on the namespace with traffic, charts it at once, and shows a publish-only hub by its publishes", async () => {
    // Traffic under `http` only, before the page is opened: hits and misses in both tiers.
    await busy.setMany(Array.from({ length: 4 }, (_, i) => [`p${i}`, i] as const));
    await busy.getMany(["p0", "p1", "p2", "absent"]);
    await publisher.set("k", 1);
    const { page, errors } = await openPage();
    await page.goto(`${origin}/_fresh`);
    await signIn(page, TOKEN);
    // No ?ns=: the page moves to the namespace with traffic rather than the empty root.
    await page.waitForFunction(
      () =>
        Number(document.body.dataset.samples) >= 1 &&
        document.querySelector("#namespace")?.textContent?.endsWith("/http"),
      undefined,
      { timeout: 10_000 },
    );
    expect(page.url()).toBe(`${origin}/_fresh?ns=http`);
    expect(await page.inputValue("#ns")).toBe("http");
    await waitForStats(page, busy.stats(), 2);
    // The charts start from the counters: a ratio point per tier although nothing happened
    // since the page opened, and a rate from the second answer on.
    expect(await page.locator('#chart-ratio circle[data-series="l1"]').count()).toBe(1);
    expect(await page.locator('#chart-ratio circle[data-series="l2"]').count()).toBe(1);
    expect(await page.locator("#chart-syncs circle").count()).toBeGreaterThanOrEqual(1);

    // A hub this instance only publishes to: green while its publishes go through.
    await page.selectOption("#ns", "publisher");
    await page.waitForFunction(
      () => document.querySelector('[data-state="hub"]')?.textContent === "publish-only",
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.getAttribute('[data-dot="hub"]', "class")).toBe("dot ok");
    expect(await page.textContent("#hubdetail")).toMatch(
      /^publishes only .*: 1 published, 0 failed$/,
    );
    publishFails = true;
    await publisher.set("k", 2);
    await page.waitForFunction(
      () => document.querySelector('[data-state="hub"]')?.textContent === "publish failing",
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.getAttribute('[data-dot="hub"]', "class")).toBe("dot bad");
    publishFails = false;
    expect(errors).toEqual([]);
    await page.context().close();
  });
});
