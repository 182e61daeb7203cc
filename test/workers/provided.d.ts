/**
 * What `test/setup/global.ts` provides, restated for the workers tests: their type check
 * leaves out that file, which is Node code.
 */
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** The REST bridge of this run (`http://127.0.0.1:PORT`). */
    bridgeUrl: string;
    /** The bridge's bearer token. */
    bridgeToken: string;
  }
}
