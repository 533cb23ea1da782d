// Bearer tokens a listener accepts (RFC 6750): the header parser and a constant-time matcher over a
// token set that SIGHUP can swap in place. The SCIM endpoint and the admin API each hold their own set.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Returns the 1-based position of the configured token equal to `presented`, or 0.
 * Every candidate is compared, with no early exit, on SHA-256 digests of equal length, so the time
 * taken says nothing about the tokens' contents, lengths or which one matched.
 */
export function tokenMatcher(tokens: readonly string[]): (presented: string) => number {
  for (const t of tokens) {
    // An empty token would let `Authorization: Bearer` with no credentials in; refuse to start.
    if (t.length === 0) throw new Error('a bearer token list must not contain an empty token');
  }
  const digests = tokens.map(digest);
  return (presented) => {
    const d = digest(presented);
    let found = 0;
    for (let i = 0; i < digests.length; i++) {
      const hit = timingSafeEqual(d, digests[i]!);
      if (hit && found === 0) found = i + 1;
    }
    return presented.length > 0 ? found : 0;
  };
}

/**
 * The bearer tokens one listener accepts. `adopt` takes over another set's tokens at once (SIGHUP
 * rotation: a removed token stops working on the next request); the new set was validated when it
 * was constructed, so a bad configuration never reaches a running listener.
 */
export class BearerTokens {
  #match: (presented: string) => number;
  #count: number;

  constructor(tokens: readonly string[]) {
    this.#match = tokenMatcher(tokens);
    this.#count = tokens.length;
  }

  /** A fixed list becomes a set of its own; a set is used as given (and can be swapped later). */
  static of(tokens: readonly string[] | BearerTokens): BearerTokens {
    return tokens instanceof BearerTokens ? tokens : new BearerTokens(tokens);
  }

  /** 1-based position of the matching token, or 0; constant-time as {@link tokenMatcher}. */
  match(presented: string): number {
    return this.#match(presented);
  }

  get size(): number {
    return this.#count;
  }

  adopt(other: BearerTokens): void {
    this.#match = other.#match;
    this.#count = other.#count;
  }
}

/** Extracts the credentials of an `Authorization: Bearer <token>` header (scheme case-insensitive). */
export function bearerCredentials(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. Any visible ASCII is accepted as the token,
  // not only b64token characters: IdP admin UIs let operators paste arbitrary secrets, and a
  // configured token that could never match would fail silently. Surrounding whitespace is tolerated.
  const m = /^[ \t]*([A-Za-z]+) +([\x21-\x7e]+)[ \t]*$/.exec(header);
  if (m === null || m[1]!.toLowerCase() !== 'bearer') return undefined;
  return m[2];
}

