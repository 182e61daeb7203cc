import { inject } from "vitest";
import { upstashStore } from "../../src/stores/upstash.js";
import { otelCases } from "./cases.js";

const url = inject("bridgeUrl");
const token = inject("bridgeToken");

otelCases(() => upstashStore({ url, token }));
