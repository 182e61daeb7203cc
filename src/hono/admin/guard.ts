/**
 * What stands in front of the admin's routes: Hono's `secureHeaders` (with the pages'
 * nonce'd CSP) and `csrf`, the credential check (bearer token or session cookie), and the
 * session cookie itself, written with Hono's cookie helpers.
 * @module
 */

import type { Context, MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { csrf } from "hono/csrf";
import { secureHeaders } from "hono/secure-headers";
import { base64url } from "../../util/bytes.js";
import { bearerMatches } from "../secret.js";
import { type AdminEnv, isHttps, mountOf, problem } from "./http.js";
import { loginPage } from "./page.js";
import type { Credentials } from "./session.js";

/** The session cookie's name. */
export const ADMIN_SESSION_COOKIE = "edgecache_admin";

const SAFE_METHODS = new Set(["GET", "HEAD"]);
/** Characters of a path that can go into a cookie's `Path` as they are. */
const COOKIE_PATH = /^[A-Za-z0-9\-._~!$&'()*+=:@%/]*$/;

/** This response's CSP nonce (base64url, so it needs no escaping anywhere), made on first use. */
export function nonceOf(c: Context<AdminEnv>): string {
  let nonce = c.get("adminNonce");
  if (nonce === undefined) {
    nonce = base64url(crypto.getRandomValues(new Uint8Array(16)));
    c.set("adminNonce", nonce);
  }
  return nonce;
}

const nonceSource = (c: Context) => `'nonce-${nonceOf(c as Context<AdminEnv>)}'`;

/**
 * The admin's security headers, on every response: a CSP that allows nothing but the
 * nonce'd inline style and script, same-origin requests and form posts; no framing; no
 * caching. HSTS is left to the site: from a sub-app it would pin the whole host to https.
 */
export function adminHeaders(): MiddlewareHandler<AdminEnv> {
  const secure = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      scriptSrc: [nonceSource],
      styleSrc: [nonceSource],
      connectSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
    },
    xFrameOptions: "DENY",
    // Not no-referrer: with it, browsers send `Origin: null` on form posts, which /login refuses.
    referrerPolicy: "same-origin",
    strictTransportSecurity: false,
  });
  return async function adminHeaders(c, next) {
    c.header("cache-control", "no-store");
    await secure(c, next);
  };
}

/**
 * Whether a browser sent this request from the admin's own origin: `Sec-Fetch-Site` (when
 * sent) says so and `Origin` (when sent) has this host. Both must agree, where Hono's
 * default accepts either; the host alone is compared, since behind a TLS proxy the request
 * URL may say http.
 */
function sameOrigin(c: Context): boolean {
  const site = c.req.header("sec-fetch-site");
  if (site !== undefined && site !== "same-origin" && site !== "none") return false;
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === new URL(c.req.url).host;
  } catch {
    // "null" (sandboxed frames, redirects across origins) and garbage.
    return false;
  }
}

/**
 * Hono's `csrf` with {@link sameOrigin} as its test: refuses (403) a form post unless the
 * browser vouches that it comes from the admin's origin.
 */
export const sameOriginPosts: MiddlewareHandler = csrf({
  origin: (_origin, c) => sameOrigin(c),
  secFetchSite: (_site, c) => sameOrigin(c),
});

/** Sets the session cookie: `HttpOnly; SameSite=Strict`, `Secure` over https, `Path` the mount. */
export function setSession(c: Context, value: string, maxAge: number): void {
  setCookie(c, ADMIN_SESSION_COOKIE, value, { ...cookieScope(c), maxAge });
}

/** Clears the session cookie (the same attributes, `Max-Age=0`). */
export function clearSession(c: Context): void {
  deleteCookie(c, ADMIN_SESSION_COOKIE, cookieScope(c));
}

function cookieScope(c: Context) {
  const raw = mountOf(c).raw;
  // A mount with a parameter could put `;` into the path: never into the cookie's attributes.
  const path = raw !== "" && COOKIE_PATH.test(raw) ? raw : "/";
  return { path, httpOnly: true, sameSite: "Strict", secure: isHttps(c) } as const;
}

/** The login form, with 401 and `WWW-Authenticate: Bearer`. */
export function loginForm(c: Context<AdminEnv>, failed: boolean): Response {
  c.header("www-authenticate", "Bearer");
  const action = `${mountOf(c).raw}/login`;
  return c.html(loginPage({ action, nonce: nonceOf(c), failed }), 401);
}

/**
 * The credential check in front of every route but `/login`. The bearer token allows
 * everything; the session cookie, which a browser sends along with any request, allows
 * reading, and signing out from the admin's own origin. Without either, the page answers
 * with the login form and the rest with `401` and no detail.
 */
export function requireCredentials(credentials: Credentials): MiddlewareHandler<AdminEnv> {
  return async function adminAuth(c, next) {
    const header = c.req.header("authorization");
    if (header !== undefined) {
      if (await bearerMatches(header, credentials.token)) return next();
    } else {
      const session = getCookie(c, ADMIN_SESSION_COOKIE);
      if (session !== undefined && (await credentials.session(session))) {
        if (SAFE_METHODS.has(c.req.method)) return next();
        const logout = c.req.method === "POST" && c.req.path === `${mountOf(c).path}/logout`;
        if (logout) return sameOriginPosts(c, next);
        return problem(
          c,
          403,
          "bearer_required",
          "changes need the Authorization header, not the session cookie",
        );
      }
    }
    if (c.req.method === "GET" && c.req.path === (mountOf(c).path || "/")) {
      return loginForm(c, false);
    }
    c.header("www-authenticate", "Bearer");
    return c.json({ error: "unauthorized" }, 401);
  };
}
