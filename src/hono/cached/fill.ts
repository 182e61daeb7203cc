/**
 * The loader of `cached`: runs the rest of the chain inside `getOrSet` and decides what
 * becomes of its response, in order: judge (may it be stored?), tags, body, vary (under
 * which key?), put. What this request's own run came to goes to `c.var.cachedRun`.
 * @module
 */

import { checkTags } from "../../envelope.js";
import type { Loader, LoaderContext } from "../../types.js";
import type { Exchange, Run } from "./exchange.js";
import { hasValidator, judgeResponse, type Timing, usable } from "./freshness.js";
import type { RequestPolicy } from "./http.js";
import { headerNames, variantKey } from "./key.js";
import {
  isStoredResponse,
  isVaryRecord,
  nullBody,
  PASSED,
  readBody,
  type Stored,
  type StoredResponse,
  storedHeaders,
  toBase64,
  type VaryRecord,
} from "./snapshot.js";
import { freshened, sameRepresentation, withValidators } from "./validate.js";

/** One `getOrSet` of a request: the key, and what the flow knows about it. */
export interface Load {
  readonly key: string;
  /**
   * The names a variant's key was made with (from the URL's vary record), beyond the `vary`
   * option; `null` for the URL's own key.
   */
  readonly expected: readonly string[] | null;
  /** The base of every key of this request (method and resource). */
  readonly base: string;
  /** The URL's key: where a variant's load writes the vary record. */
  readonly urlKey: string;
  /** The request asked to revalidate: a write under another key replaces what is there. */
  readonly force: boolean;
  /** What the request accepts (its max-stale lets a stale response answer it as it is). */
  readonly policy?: RequestPolicy;
  /** Only look: answer with the stored response, stale or not, and never run the chain. */
  readonly peek?: boolean;
}

/**
 * Thrown by a load whose handler failed (an error, or 5xx) while a stale response is at hand,
 * so that `getOrSet` serves that response (grace). Carries the status only.
 */
class HandlerFailed extends Error {
  constructor(status: number) {
    super(`the handler failed (status ${status}); a stale response may be served`);
    this.name = "HandlerFailed";
  }
}

const macrotask = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Releases the body of a response nobody will read. */
export async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // Already consumed or errored: nothing to release.
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** The loader of one load of this request. */
export function fill(x: Exchange, load: Load): Loader<Stored> {
  return async function cachedFill(_key, ctx) {
    // A URL's vary record is renewed as it is: the variant's own load checks it.
    if (load.expected === null && isVaryRecord(ctx.stale)) {
      ctx.setTtl(x.s.ttl > 0 ? x.s.ttl : 60_000);
      return ctx.stale;
    }
    const background = ctx.background;
    const stale = isStoredResponse(ctx.stale) ? ctx.stale : undefined;
    // A look (HEAD, only-if-cached), or a request whose max-stale accepts the stale response:
    // that response as it is, for this caller only.
    const accepted =
      !background &&
      stale !== undefined &&
      load.policy?.maxStale !== undefined &&
      usable(stale, x.s.now(), load.policy, x.s.rules, "none");
    if (
      load.peek === true ||
      (accepted !== false && accepted.ok && accepted.stale === "max-stale")
    ) {
      ctx.noStore();
      return stale ?? PASSED;
    }
    if (background) {
      // A refresh may start before getOrSet answers this request with the stale response:
      // wait until that response is handed over, then let the middleware before this one
      // have a macrotask to finish with it (two turns: their timer may be set after ours).
      await x.finished;
      await macrotask();
      await macrotask();
    }
    if (x.chainUsed) {
      ctx.noStore();
      return PASSED;
    }
    x.chainUsed = true;
    // A refresh answers nobody: what it passes on is released, not reported.
    const report = (run: Run) => {
      if (!background) x.c.set("cachedRun", run);
      else if (run.kind === "pass" || run.kind === "failed") void discard(run.response);
    };
    // A stale response with a validator is revalidated: the handler sees its validators.
    const sent = stale !== undefined && hasValidator(stale) ? stale : undefined;
    const requestTime = x.s.now();
    const { res, error } = await withValidators(x, sent, () =>
      background ? detached(x) : foreground(x, report),
    );
    const timing = { requestTime, responseTime: x.s.now() };
    return keep(x, load, ctx, { res, failed: error !== undefined, timing, sent }, report);
  };
}

/** What the chain answered a load with. */
interface Answer {
  res: Response;
  failed: boolean;
  timing: Timing;
  /** The stored response whose validators the request carried, if any. */
  sent: StoredResponse | undefined;
}

/** Whether a failed revalidation may serve `stale` (stale-if-error, grace). */
function servesOnError(x: Exchange, stale: StoredResponse): boolean {
  if (stale.revalidate !== undefined) return false;
  const window = stale.sie ?? x.s.rules.sie;
  return window > 0 && x.s.now() - (stale.storedAt + stale.ttl) < window;
}

/** Runs the rest of the chain for this request; what it throws is reported, then rethrown. */
async function foreground(x: Exchange, report: (run: Run) => void) {
  try {
    await x.next();
  } catch (thrown) {
    report({ kind: "threw", error: thrown });
    throw thrown;
  }
  return { res: x.c.res, error: x.c.error };
}

/**
 * Runs the rest of the chain for a background refresh, detached from the response this
 * request already returned (restored afterwards), so neither can touch the other.
 */
async function detached(x: Exchange): Promise<{ res: Response; error: unknown }> {
  const c = x.c;
  const client = c.res;
  const error = c.error;
  c.res = undefined;
  c.finalized = false;
  try {
    await x.next();
    return { res: c.res, error: c.error };
  } finally {
    c.res = undefined;
    c.res = client;
    c.error = error;
  }
}

/** Judge, tags, body, vary, put: what the chain's response becomes. */
async function keep(
  x: Exchange,
  load: Load,
  ctx: LoaderContext<Stored>,
  answer: Answer,
  report: (run: Run) => void,
): Promise<Stored> {
  const s = x.s;
  const { failed, timing, sent } = answer;
  let res = answer.res;
  const stale = isStoredResponse(ctx.stale) ? ctx.stale : undefined;
  // A 304 to the validators sent: the stored response, freshened with its fields (4.3.4).
  let validated = false;
  if (
    sent !== undefined &&
    !failed &&
    res.status === 304 &&
    sameRepresentation(sent, res.headers)
  ) {
    const update = res.headers;
    void discard(res);
    res = freshened(sent, update);
    validated = true;
  }
  // Served, not stored.
  const pass = (response: Response, detail: string): Stored => {
    ctx.noStore();
    report({ kind: "pass", response, detail });
    return PASSED;
  };
  // Bad tags, or tags the cache cannot carry: the response is served, and not stored.
  const refuseTags = (thrown: unknown, response: Response): Stored => {
    s.onError(thrown);
    return pass(response, "tag-error");
  };

  const verdict = judgeResponse(res, failed, s.rules, timing);
  if (!verdict.ok) {
    const error = failed || res.status >= 500;
    if (error && stale !== undefined && servesOnError(x, stale)) {
      report({ kind: "failed", response: res });
      throw new HandlerFailed(res.status);
    }
    // The origin's newer answer may not be stored: neither may the older one be served.
    if (!error && stale !== undefined) await drop(x, load.key);
    return pass(res, verdict.detail);
  }

  let tags: readonly string[];
  try {
    const fromOption = typeof s.tags === "function" ? await s.tags(x.c) : (s.tags ?? []);
    tags = checkTags([...fromOption, ...x.tags]) ?? [];
  } catch (thrown) {
    return refuseTags(thrown, res);
  }

  let body: Awaited<ReturnType<typeof readBody>>;
  try {
    body = await readBody(res, s.maxBodyBytes);
  } catch (thrown) {
    // The body failed midway: nothing whole to store or to pass on; Hono answers 500.
    report({ kind: "threw", error: thrown });
    throw thrown;
  }
  if ("over" in body) return pass(body.over, "too-large");

  const entry: StoredResponse = {
    kind: "response",
    v: 1,
    id: crypto.randomUUID(),
    status: res.status,
    headers: storedHeaders(res.headers, body.bytes.byteLength, verdict.omit),
    body: toBase64(body.bytes),
    storedAt: timing.responseTime,
    ttl: verdict.ttl,
    age: verdict.age,
    vary: verdict.vary,
    // Only what differs from the middleware's settings, so older entries read the same.
    ...(verdict.swr === s.rules.swr ? {} : { swr: verdict.swr }),
    ...(verdict.sie === s.rules.sie ? {} : { sie: verdict.sie }),
    ...(verdict.revalidate === undefined ? {} : { revalidate: verdict.revalidate }),
  };
  // getOrSet keeps nothing for less than 1 ms; freshness is the entry's own `ttl`.
  const ttl = Math.max(1, verdict.ttl);
  const response = new Response(nullBody(res.status) ? null : body.bytes, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });

  // Names the response varies on beyond the `vary` option, which every key has already.
  const extra = verdict.vary.filter((name) => !s.vary.includes(name));
  if (sameNames(extra, load.expected ?? [])) {
    // It belongs under the key being loaded: getOrSet stores it.
    ctx.setTtl(ttl);
    if (tags.length > 0) {
      try {
        ctx.tag(...tags);
      } catch (thrown) {
        // The cache cannot carry tags (a sharded store): served, not stored.
        return refuseTags(thrown, response);
      }
    }
    x.recent.note(load.key, entry.id);
    report({ kind: "stored", response, entry, stored: true, validated });
    return entry;
  }

  // It varies on other headers than this key was made with: it goes under the key made
  // with those, never under this one (a request differing in them could read it here).
  const right = await variantKey(
    load.base,
    headerNames([...s.vary, ...extra]),
    x.c.req.raw.headers,
  );
  const varyRecord: VaryRecord = { kind: "vary", v: 1, names: extra };
  let stored: boolean;
  let value: Stored = PASSED;
  if (load.expected === null) {
    // The URL's load: the variant is written first, then getOrSet stores the vary record
    // here, so whoever joined this load (or waits on its lease) finds the variant.
    stored = await putVariant(x, right, entry, ttl, tags);
    ctx.setTtl(ttl);
    value = varyRecord;
  } else {
    // A variant's load whose response names other headers: both writes are plain sets.
    ctx.noStore();
    stored = await put(x, right, entry, ttl, tags);
    if (extra.length > 0) stored = (await put(x, load.urlKey, varyRecord, ttl, [])) && stored;
  }
  if (stored) x.recent.note(right, entry.id);
  report({ kind: "stored", response, entry, stored, validated });
  return value;
}

/** Deletes a stored response that must no longer be served; failures are reported. */
export async function drop(x: Exchange, key: string): Promise<void> {
  try {
    await x.s.cache.delete(key);
  } catch (error) {
    x.s.onError(error);
  }
}

/**
 * A plain write under another key than the one being loaded, kept in L2 past its TTL as a
 * load's own write is. It waits for no other load (a variant's load waiting on the URL's,
 * and back, would never end). Failures are reported.
 */
export async function put(
  x: Exchange,
  key: string,
  value: Stored,
  ttl: number,
  tags: readonly string[],
): Promise<boolean> {
  try {
    await x.s.cache.set(key, value, {
      ttl,
      staleFor: x.s.staleFor,
      ...(tags.length > 0 ? { tags } : {}),
    });
    return true;
  } catch (error) {
    x.s.onError(error);
    return false;
  }
}

/**
 * The URL's load writes the variant its response belongs under before it returns. It
 * replaces what is there: this response is the newest (RFC 9111 4), and after an
 * invalidation of the URL an older variant must not come back.
 */
function putVariant(
  x: Exchange,
  key: string,
  entry: StoredResponse,
  ttl: number,
  tags: readonly string[],
): Promise<boolean> {
  return put(x, key, entry, ttl, tags);
}
