/**
 * The old home of `cached`, kept so that `worker/index.ts` still resolves `./cached.js`
 * until its import points at `./cached/index.js`; then this file goes.
 * @module
 */
export {
  type CachedEnv,
  type CachedOptions,
  type CachedVariables,
  cached,
} from "./cached/index.js";
