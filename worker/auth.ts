/**
 * The bearer-token guard of the example Worker's raw routes (`/cache/*`, `/stats`): they can
 * read, write and delete any key of the database, so they need `EDGECACHE_ADMIN_TOKEN`, the
 * token of the `/_cache` admin API, and are off while it is not set.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";

/** The shortest token accepted: the same floor as `cacheAdmin`'s. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

const encoder = new TextEncoder();

/**
 * A check of presented tokens against `expected` that takes the same time whatever they
 * hold: both sides are HMAC-SHA-256 digests under a random key made for this check, so the
 * byte comparison runs over 32 bytes every time and what it compares is unknown to a caller.
 * The key is made on first use: a Worker may build this at module scope, where random values
 * are not allowed.
 */
export function tokenCheck(expected: string): (presented: string) => Promise<boolean> {
  let key: Promise<CryptoKey> | undefined;
  let expectedDigest: Promise<Uint8Array> | undefined;
  const digest = async (text: string): Promise<Uint8Array> => {
    key ??= crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]) as Promise<CryptoKey>;
    const mac = await crypto.subtle.sign("HMAC", await key, encoder.encode(text));
    return new Uint8Array(mac);
  };
  return async (presented) => {
    expectedDigest ??= digest(expected);
    const [a, b] = await Promise.all([digest(presented), expectedDigest]);
    // Always 32 bytes each; the length term only keeps this honest should that change.
    let diff = a.length ^ b.length;
    for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
    return diff === 0;
  };
}

/** `Authorization: Bearer <token>`: the token, or undefined when the header is not that. */
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Middleware that lets a request through only with `Authorization: Bearer <token>`.
 *
 * - No usable token (unset, empty or shorter than 16 characters): every request gets `404`
 *   and a JSON error saying the route is off until `EDGECACHE_ADMIN_TOKEN` is set. Never open.
 * - A missing, malformed or wrong token: `401` with `WWW-Authenticate: Bearer`, no detail.
 */
export function requireAdminToken(token: string | undefined): MiddlewareHandler {
  if (typeof token !== "string" || token.length < MIN_ADMIN_TOKEN_LENGTH) {
    if (typeof token === "string" && token !== "") {
      console.error(
        `edgecache worker: /cache and /stats off: EDGECACHE_ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
      );
    }
    return async function adminTokenUnset(c: Context) {
      return c.json(
        {
          error: `this route is off until EDGECACHE_ADMIN_TOKEN (${MIN_ADMIN_TOKEN_LENGTH}+ characters) is set`,
        },
        404,
      );
    };
  }
  const check = tokenCheck(token);
  return async function adminTokenRequired(c, next) {
    const match = BEARER.exec(c.req.header("authorization") ?? "");
    // Compared even when missing or malformed, so that every refusal takes as long as a check.
    const ok = await check(match?.[1] ?? "");
    if (ok && match !== null) return next();
    c.header("www-authenticate", "Bearer");
    return c.json({ error: "unauthorized" }, 401);
  };
}
