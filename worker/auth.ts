/**
 * The bearer-token guard of the example Worker's raw routes (`/cache/*`, `/stats`): they can
 * read, write and delete any key of the database, so they need `EDGECACHE_ADMIN_TOKEN`, the
 * token of the `/_cache` admin API, and are off while it is not set.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerMatches, MIN_TOKEN_LENGTH, tokenCheck } from "../src/hono/secret.js";

/**
 * Middleware that lets a request through only with `Authorization: Bearer <token>`.
 *
 * - No usable token (unset, empty or shorter than 16 characters): every request gets `404`
 *   and a JSON error saying the route is off until `EDGECACHE_ADMIN_TOKEN` is set. Never open.
 * - A missing, malformed or wrong token: `401` with `WWW-Authenticate: Bearer`, no detail.
 */
export function requireAdminToken(token: string | undefined): MiddlewareHandler {
  if (typeof token !== "string" || token.length < MIN_TOKEN_LENGTH) {
    if (typeof token === "string" && token !== "") {
      console.error(
        `edgecache worker: /cache and /stats off: EDGECACHE_ADMIN_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters`,
      );
    }
    return async function adminTokenUnset(c: Context) {
      return c.json(
        {
          error: `this route is off until EDGECACHE_ADMIN_TOKEN (${MIN_TOKEN_LENGTH}+ characters) is set`,
        },
        404,
      );
    };
  }
  const isToken = tokenCheck(token);
  return async function adminTokenRequired(c, next) {
    if (await bearerMatches(c.req.header("authorization"), isToken)) return next();
    c.header("www-authenticate", "Bearer");
    return c.json({ error: "unauthorized" }, 401);
  };
}
