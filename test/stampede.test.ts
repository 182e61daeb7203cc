/**
 * Stampede protection across processes: five Node processes, each a cache on the real
 * redis-server behind the REST bridge, ask for one cold key 200 times each at the same
 * moment. The origin behind the loader counts its calls. Runs the built package (dist).
 */
import { describe, expect, inject, it } from "vitest";
// @ts-expect-error: a plain ESM helper shared with bench/stampede.mjs
import { runStampede } from "./stampede/run.mjs";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

describe("1,000 concurrent gets of one cold key over 5 processes", () => {
  it("with lock: true the loader runs exactly once and everyone gets its value", async () => {
    const r = await runStampede({ url, token, instances: 5, perInstance: 200, lock: true });
    console.log("stampede with lock", JSON.stringify(r));
    expect(r.errors).toEqual([]);
    expect(r.gets).toBe(1000);
    expect(r.rejected).toBe(0);
    expect(r.loaderCalls).toBe(1);
    expect(r.distinct).toHaveLength(1);
    // Four instances found the lease taken and waited for the value.
    expect(r.lockWaits).toBe(4);
  });

  it("without the lock each process loads at most once", async () => {
    const r = await runStampede({ url, token, instances: 5, perInstance: 200, lock: false });
    console.log("stampede without lock", JSON.stringify(r));
    expect(r.errors).toEqual([]);
    expect(r.gets).toBe(1000);
    expect(r.rejected).toBe(0);
    expect(r.loaderCalls).toBeGreaterThanOrEqual(1);
    expect(r.loaderCalls).toBeLessThanOrEqual(5);
    expect(Math.max(...r.loadsPerInstance)).toBe(1);
  });
});
