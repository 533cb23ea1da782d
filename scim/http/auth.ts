// Bearer-token authentication of SCIM requests (D2; RFC 6750 §2.1, §3): constant-time, header only;
// the token matching itself is shared with the admin API (lib/bearer-tokens.ts).
import type { NextFunction, Request, Response } from 'express';
import { BearerTokens, bearerCredentials } from '../../lib/bearer-tokens.js';
import { ScimError } from '../errors.js';

const REALM = 'Bearer realm="rolegate"';

/** Where a successful check leaves the caller's identity, for audit: `scim-token#<position>`. */
export const ACTOR_LOCAL = 'scimActor';

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
