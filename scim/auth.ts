// Bearer-token authentication of SCIM requests (D2; RFC 6750 §2.1, §3): constant-time, header only.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { ScimError } from './errors.js';

const REALM = 'Bearer realm="rolegate"';

/** Where a successful check leaves the caller's identity, for audit: `scim-token#<position>`. */
export const ACTOR_LOCAL = 'scimActor';

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
    if (t.length === 0) throw new Error('scim.tokens must not contain an empty token');
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

/**
 * Express middleware that admits only requests carrying one of `tokens` in the Authorization header.
 * It runs before any body is read, so unauthenticated callers learn nothing from 400/413/415 (D2).
 * A token in the query string (RFC 6750 §2.3) is never looked at.
 */
export function requireBearer(tokens: readonly string[] | BearerTokens): (req: Request, res: Response, next: NextFunction) => void {
  const accepted = BearerTokens.of(tokens);
  return (req, res, next) => {
    const presented = bearerCredentials(req.headers.authorization);
    const position = presented === undefined ? 0 : accepted.match(presented);
    if (position === 0) {
      // RFC 6750 §3.1: no error code when the request carried no bearer credentials at all.
      res.setHeader('WWW-Authenticate', presented === undefined ? REALM : `${REALM}, error="invalid_token"`);
      next(new ScimError(401, undefined, 'Authentication required: a valid bearer token must be presented'));
      return;
    }
    res.locals[ACTOR_LOCAL] = `scim-token#${position}`;
    next();
  };
}
