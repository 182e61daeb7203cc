/**
 * Constant-time checks of presented secrets (bearer tokens, session values), shared by the
 * admin API and the example Worker's raw routes.
 *
 * @module
 */

/** The shortest bearer token accepted. */
export const MIN_TOKEN_LENGTH = 16;

const encoder = new TextEncoder();

/**
 * Compares a presented secret with an expected one in the same time whatever they hold:
 * both become HMAC-SHA-256 digests under a random key of this instance, so the byte loop
 * always runs over 32 bytes and what it compares is unknown to the caller. The key is made
 * on first use: a Worker may build this at module scope, where random values are not allowed.
 */
export class SecretCheck {
  #key: Promise<CryptoKey> | undefined;

  async digest(text: string): Promise<Uint8Array> {
    this.#key ??= crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]) as Promise<CryptoKey>;
    return new Uint8Array(await crypto.subtle.sign("HMAC", await this.#key, encoder.encode(text)));
  }

  async equal(presented: string, expected: Promise<Uint8Array>): Promise<boolean> {
    const [a, b] = await Promise.all([this.digest(presented), expected]);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
    return diff === 0;
  }
}

/** `isToken(t)` for the token of an `Authorization: Bearer <t>` header, else a lookalike. */
export async function bearerMatches(
  header: string | undefined,
  isToken: (presented: string) => Promise<boolean>,
): Promise<boolean> {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? "");
  // Compared even when missing or malformed, so that a refusal takes as long as a check.
  const ok = await isToken(match?.[1] ?? "");
  return ok && match !== null;
}

/** A check of presented tokens against `token`, in constant time. */
export function tokenCheck(token: string): (presented: string) => Promise<boolean> {
  const check = new SecretCheck();
  let expected: Promise<Uint8Array> | undefined;
  return (presented) => {
    expected ??= check.digest(token);
    return check.equal(presented, expected);
  };
}
