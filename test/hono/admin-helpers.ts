/**
 * What the admin API tests share: the admin (src/hono/admin) mounted at `/_cache` of a Hono
 * app over real caches on the REST bridge, and request helpers (bearer, session, bodies).
 */
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { afterAll, beforeAll, expect, inject } from "vitest";
import { createCache } from "../../src/cache.js";
import { cacheAdmin } from "../../src/hono/admin/index.js";
import type { Cache } from "../../src/index.js";
import { upstashStore } from "../../src/stores/upstash.js";

export const url = inject("bridgeUrl");
export const bridgeToken = inject("bridgeToken");
export const TOKEN = `admin-${randomBytes(18).toString("base64url")}`;
export const ORIGIN = "http://admin.test";

export const store = upstashStore({ url, token: bridgeToken });
export const namespace = `admin.${crypto.randomUUID()}`;
export let cache: Cache;
export let other: Cache;
export let scores: Cache;
export let app: Hono;

export const call = (path: string, init: RequestInit = {}, target: Hono = app) =>
  target.fetch(new Request(`${ORIGIN}${path}`, init));
export const bearer = (token = TOKEN) => ({ authorization: `Bearer ${token}` });
export const withBearer = (init: RequestInit = {}, token = TOKEN): RequestInit => ({
  ...init,
  headers: { ...(init.headers as Record<string, string>), ...bearer(token) },
});
export const jsonBody = (body: unknown): RequestInit => ({
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});
export const key = (k: string) => `/_cache/keys/${encodeURIComponent(k)}`;

export function loginRequest(token: string, headers: Record<string, string> = {}, origin = ORIGIN) {
  return new Request(`${origin}/_cache/login`, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      origin,
      "sec-fetch-site": "same-origin",
      ...headers,
    },
    body: new URLSearchParams({ token }).toString(),
  });
}

/** The attributes of a Set-Cookie value (what follows `name=value`). */
export const cookieAttributes = (header: string) => header.split("; ").slice(1);

/** Signs in through the form and returns the `Cookie` header value to send back. */
export async function session(target: Hono = app, token = TOKEN): Promise<string> {
  const res = await target.fetch(loginRequest(token));
  expect(res.status).toBe(303);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

/** Mounts the admin at `/_cache` of an app, over fresh caches, for the tests of one file. */
export function useAdminApp(): void {
  beforeAll(() => {
    cache = createCache({ store, namespace });
    other = createCache({ store, namespace: `${namespace}.other`, sync: false });
    scores = cache.namespace("scores");
    app = new Hono();
    app.get("/", (c) => c.text("the app"));
    app.route("/_cache", cacheAdmin({ cache, token: TOKEN, caches: { scores, other } }));
  });

  afterAll(async () => {
    await cache.close();
    await other.close();
  });
}
