import { InvalidOptionError } from "../errors.js";
import { NAMESPACE_PATTERN } from "../store/contract.js";
import { base64url, fromBase64url } from "../util/bytes.js";
import { duration } from "../util/check.js";

/** What a hub token allows. */
export type HubRole = "publish" | "subscribe" | "both";

/** The claims a hub token carries. */
export interface HubClaims {
  /** The namespace it is scoped to. */
  namespace: string;
  /** What it allows on that namespace. */
  role: HubRole;
  /** Expiry, in ms since the epoch. */
  expiresAt: number;
}

/** Options of {@link mintHubToken}. */
export interface MintHubTokenOptions {
  /** The shared secret the hub verifies with (`EDGECACHE_HUB_SECRET`), at least 32 characters. */
  secret: string;
  /** The namespace the token is scoped to. */
  namespace: string;
  /** `"subscribe"` for servers that listen, `"publish"` for writers, `"both"` for both. */
  role: HubRole;
  /**
   * Lifetime in ms.
   * @default 86_400_000 (one day)
   */
  ttl?: number;
  /**
   * The clock, in ms.
   * @default Date.now
   */
  now?: () => number;
}

const PREFIX = "v1.";
const ROLES = new Set<HubRole>(["publish", "subscribe", "both"]);
const encoder = new TextEncoder();

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    [usage],
  );
}

function checkSecret(secret: unknown): asserts secret is string {
  if (typeof secret !== "string" || secret.length < 32) {
    throw new InvalidOptionError("the hub secret must be a string of at least 32 characters");
  }
}

/**
 * Mints a token for the invalidation hub: HMAC-SHA256 signed with the shared secret, scoped
 * to one namespace and role, with an expiry. Never log tokens.
 *
 * @example
 * ```ts
 * const token = await mintHubToken({ secret: env.EDGECACHE_HUB_SECRET, namespace: "app", role: "both" });
 * ```
 * @see docs/hub.md (shipped in the package).
 */
export async function mintHubToken(options: MintHubTokenOptions): Promise<string> {
  const { secret, namespace, role } = options;
  checkSecret(secret);
  if (typeof namespace !== "string" || !NAMESPACE_PATTERN.test(namespace)) {
    throw new InvalidOptionError("invalid namespace for a hub token");
  }
  if (!ROLES.has(role))
    throw new InvalidOptionError('role must be "publish", "subscribe" or "both"');
  const ttl = duration("ttl", options.ttl, { zero: false, fallback: 86_400_000 });
  const now = options.now ?? Date.now;
  const payload = base64url(
    encoder.encode(JSON.stringify({ ns: namespace, r: role, exp: Math.floor(now() + ttl) })),
  );
  const signed = PREFIX + payload;
  const sig = await crypto.subtle.sign(
    "HMAC",
    await hmacKey(secret, "sign"),
    encoder.encode(signed),
  );
  return `${signed}.${base64url(new Uint8Array(sig))}`;
}

/**
 * Verifies a hub token: its signature (in constant time, by Web Crypto), its expiry, and
 * that it allows `role` on `namespace`. Resolves to its claims, or `undefined` for any token
 * that must be refused; never says why, so a refusal leaks nothing.
 */
export async function verifyHubToken(
  token: unknown,
  secret: string,
  expect: { namespace: string; role: "publish" | "subscribe" },
  now: () => number = Date.now,
): Promise<HubClaims | undefined> {
  checkSecret(secret);
  if (typeof token !== "string" || token.length > 2048 || !token.startsWith(PREFIX)) {
    return undefined;
  }
  const dot = token.lastIndexOf(".");
  if (dot <= PREFIX.length) return undefined;
  const signed = token.slice(0, dot);
  const sig = fromBase64url(token.slice(dot + 1));
  const payload = fromBase64url(signed.slice(PREFIX.length));
  if (!sig || !payload || sig.length !== 32) return undefined;
  const ok = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret, "verify"),
    sig,
    encoder.encode(signed),
  );
  if (!ok) return undefined;
  let claims: { ns?: unknown; r?: unknown; exp?: unknown };
  try {
    claims = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return undefined;
  }
  if (claims.ns !== expect.namespace || typeof claims.exp !== "number" || claims.exp <= now()) {
    return undefined;
  }
  if (claims.r !== expect.role && claims.r !== "both") return undefined;
  return { namespace: claims.ns, role: claims.r as HubRole, expiresAt: claims.exp };
}
