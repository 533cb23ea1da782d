// The admin sessions API (docs/design.md §5): list live sessions, end one. Guarded by admin.tokens,
// which are not SCIM tokens (and the reverse); compared in constant time.
import express, { type Response, type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken } from './admin-auth.js';

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
  const router = express.Router();
  router.use(requireAdminToken(opts.tokens));
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
