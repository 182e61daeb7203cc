/**
 * The admin's browser sessions: stateless values (an expiry and its HMAC), keyed by a
 * PBKDF2 stretch of the admin token, so every instance with the token accepts them and no
 * session store is needed.
 * @module
 */

import { base64url } from "../../util/bytes.js";
import { SecretCheck, tokenCheck } from "../secret.js";

const encoder = new TextEncoder();
const SESSION = /^([0-9]{1,15})\.([A-Za-z0-9_-]{43})$/;

/**
 * PBKDF2 rounds that stretch the token into the session MAC key. A session cookie is an
 * HMAC over a known message, so whoever holds one could test guesses of the token against
 * it offline; stretching makes each guess cost this many HMACs. It runs once per admin
 * instance (about 10 ms), when a session is first minted or checked.
 */
const SESSION_KEY_ROUNDS = 20_000;

async function sessionKey(token: string): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey("raw", encoder.encode(token), "PBKDF2", false, [
    "deriveKey",
  ]);
  return crypto.subtle.deriveKey(
    {
      name: "PBKDF2",
      hash: "SHA-256",
      salt: encoder.encode("edgecache-admin-session/v2"),
      iterations: SESSION_KEY_ROUNDS,
    },
    base,
    { name: "HMAC", hash: "SHA-256", length: 256 },
    false,
    ["sign"],
  );
}

/**
 * Token and session checks. Both compare HMAC digests under random keys (`SecretCheck`), so
 * the comparison takes the same time whatever the inputs' lengths and contents.
 *
 * @example
 * ```ts
 * const credentials = new Credentials(token, 8 * 3600_000, Date.now);
 * const value = await credentials.mint(); // "1767225600000.<43 characters>"
 * await credentials.session(value); // true until it expires
 * ```
 */
export class Credentials {
  readonly #token: string;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #check = new SecretCheck();
  /** Whether a presented string is the token. */
  readonly token: (presented: string) => Promise<boolean>;
  // Made on first use, not at construction: a Worker may build the admin at module scope.
  #sessionKey: Promise<CryptoKey> | undefined;

  constructor(token: string, ttl: number, now: () => number) {
    this.#token = token;
    this.#ttl = ttl;
    this.#now = now;
    this.token = tokenCheck(token);
  }

  /** How long a session lasts, in ms. */
  get ttl(): number {
    return this.#ttl;
  }

  async #mac(expires: number): Promise<string> {
    if (this.#sessionKey === undefined) {
      const made = sessionKey(this.#token);
      this.#sessionKey = made;
      // A failure is not kept: the next session check derives the key again.
      made.catch(() => {
        if (this.#sessionKey === made) this.#sessionKey = undefined;
      });
    }
    const key = await this.#sessionKey;
    const mac = await crypto.subtle.sign(
      "HMAC",
      key,
      encoder.encode(`edgecache-admin-session/v2/${expires}`),
    );
    return base64url(new Uint8Array(mac));
  }

  /** A new session value: its expiry and an HMAC of it (keyed by the stretched token). */
  async mint(): Promise<string> {
    const expires = this.#now() + this.#ttl;
    return `${expires}.${await this.#mac(expires)}`;
  }

  /** Whether `value` is a session this token minted that has not expired. */
  async session(value: string): Promise<boolean> {
    const match = SESSION.exec(value);
    if (match === null) return false;
    const expires = Number(match[1]);
    const now = this.#now();
    // A session expiring further out than a new one would was not made with this ttl.
    if (!(expires > now) || expires > now + this.#ttl + 60_000) return false;
    return this.#check.equal(value, this.#check.digest(`${expires}.${await this.#mac(expires)}`));
  }
}
