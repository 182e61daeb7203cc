/**
 * The old home of `cacheAdmin`, kept so that `worker/index.ts` still resolves `./admin.js`
 * until its import points at `./admin/index.js`; then this file goes.
 * @module
 */
export { ADMIN_SESSION_COOKIE, type CacheAdminOptions, cacheAdmin } from "./admin/index.js";
