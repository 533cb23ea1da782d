// The guard of the admin API (docs/design.md §5): an `admin.tokens` bearer, compared in constant time;
// SCIM tokens never open it. Every /admin router mounts it first.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { BearerTokens, bearerCredentials } from '../lib/bearer-tokens.js';

/** Refuses a request without a valid admin token (401); with no admin tokens configured, refuses every one. */
export function requireAdminToken(tokens: readonly string[] | BearerTokens): RequestHandler {
  const accepted = BearerTokens.of(tokens);
  return (req: Request, res: Response, next: NextFunction) => {
    const presented = bearerCredentials(req.headers.authorization);
    if (presented === undefined || accepted.match(presented) === 0) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="rolegate-admin"');
      sendJson(res, 401, { error: 'unauthorized', detail: 'A valid admin bearer token is required' });
      return;
    }
    next();
  };
}

export function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(JSON.stringify(body));
}
