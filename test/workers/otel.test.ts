/** edgecache/otel inside workerd, with the SDK's in-memory exporter (see test/otel/cases.ts). */
import { env } from "cloudflare:workers";
import { upstashStore } from "../../src/stores/upstash.js";
import { otelCases } from "../otel/cases.js";

otelCases(() =>
  upstashStore({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN }),
);
