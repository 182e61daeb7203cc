/**
 * Spans through the Workers runtime's own tracing (`tracing` from `cloudflare:workers`, or
 * `ctx.tracing`): it nests a span around a callback and ends it when the callback settles,
 * so each operation and each loader call runs inside `enterSpan`.
 * @module
 */
import type { Op, Tracing } from "../cache/trace.js";
import { closing, counters, errorType, opening, type Value } from "./attributes.js";

/** The runtime's tracing API, as much of it as is used here. */
export interface WorkersTracing {
  enterSpan<T>(
    name: string,
    callback: (span: { setAttribute(key: string, value?: boolean | number | string): void }) => T,
  ): T;
}

/** Whether `tracer` is the Workers runtime's tracing API rather than an OpenTelemetry tracer. */
export function isWorkersTracing(tracer: unknown): tracer is WorkersTracing {
  return (
    typeof tracer === "object" &&
    tracer !== null &&
    typeof (tracer as { enterSpan?: unknown }).enterSpan === "function" &&
    typeof (tracer as { startSpan?: unknown }).startSpan !== "function"
  );
}

/** The runtime's attributes are scalars: a list of key names is joined. */
function scalar(value: Value): string | number | boolean {
  return Array.isArray(value) ? value.join(",") : value;
}

/** Operations traced with the Workers runtime's spans. */
export function workersTracing(tracing: WorkersTracing, recordKeys: boolean): Tracing {
  return {
    run(operation, namespace, keys, work) {
      return tracing.enterSpan(`edgecache.${operation}`, async (span) => {
        for (const [k, v] of Object.entries(opening(operation, namespace, keys, recordKeys))) {
          span.setAttribute(k, scalar(v));
        }
        const op: Op = {
          ...counters(),
          load: (loaded, call, timedOut) =>
            tracing.enterSpan("edgecache.load", async (child) => {
              child.setAttribute("edgecache.namespace", namespace);
              child.setAttribute("edgecache.keys.count", loaded.length);
              try {
                const value = await call();
                child.setAttribute("edgecache.load.outcome", "ok");
                return value;
              } catch (error) {
                const outcome = timedOut() ? "timeout" : "error";
                child.setAttribute("edgecache.load.outcome", outcome);
                child.setAttribute("error.type", outcome);
                throw error;
              }
            }),
        };
        try {
          return await work(op);
        } catch (error) {
          span.setAttribute("error.type", errorType(error));
          throw error;
        } finally {
          for (const [k, v] of Object.entries(closing(op, keys.length))) {
            span.setAttribute(k, scalar(v));
          }
        }
      });
    },
  };
}
