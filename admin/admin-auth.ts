// The admin bearer check every /admin route sits behind: `admin.tokens`, which are not SCIM tokens
// (and the reverse), compared in constant time; with none configured every request is refused.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { BearerTokens, bearerCredentials } from '../lib/bearer-tokens.js';

/** Middleware that answers 401 unless the request carries one of `tokens`. */
export function requireAdminToken(tokens: readonly string[] | BearerTokens): RequestHandler {
  const accepted = BearerTokens.of(tokens);
  return (req: Request, res: Response, next: NextFunction) => {
    const presented = bearerCredentials(req.headers.authorization);
    if (presented === undefined || accepted.match(presented) === 0) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="rolegate-admin"');
      res.status(401).type('application/json').send(JSON.stringify({ error: 'unauthorized', detail: 'A valid admin bearer token is required' }));
      return;
    }
    next();
  };
}
