// The admin sessions API (docs/design.md §5): list live sessions, end one. Guarded by admin.tokens,
// which are not SCIM tokens (and the reverse); compared in constant time.
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { BearerTokens, bearerCredentials } from '../lib/bearer-tokens.js';

/** What the API needs from the session registry (structural: admin does not import the proxy). */
export interface SessionsPort {
  list(): readonly object[];
  /** Ends the session with 57P01 "terminated by administrator"; false when no such session. */
  end(id: string): boolean;
}

function sendJson(res: Response, status: number, body: unknown): void {
  res.status(status).type('application/json').send(JSON.stringify(body));
}

/** Mount at `/admin`. With no admin tokens configured every request is refused. */
export function createSessionsRouter(opts: { tokens: readonly string[] | BearerTokens; sessions: SessionsPort }): Router {
  const accepted = BearerTokens.of(opts.tokens);
  const router = express.Router();
  router.use((req: Request, res: Response, next: NextFunction) => {
    const presented = bearerCredentials(req.headers.authorization);
    if (presented === undefined || accepted.match(presented) === 0) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="rolegate-admin"');
      sendJson(res, 401, { error: 'unauthorized', detail: 'A valid admin bearer token is required' });
      return;
    }
    next();
  });
  router.get('/sessions', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, { sessions: opts.sessions.list() });
  });
  router.delete('/sessions/:id', (req, res) => {
    if (opts.sessions.end(String(req.params.id))) res.status(204).end();
    else sendJson(res, 404, { error: 'not_found', detail: 'No live session with that id on this instance' });
  });
  return router;
}
