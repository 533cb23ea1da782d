// The admin sessions API (docs/design.md §5 and §8): list live sessions, end one, on whichever instance
// of a shared store holds it. Guarded by admin.tokens, which are not SCIM tokens (and the reverse).
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken, sendJson } from './admin-auth.js';

/** What ending a session came to: the instance holding it could not be asked when `unreachable`. */
export type EndOutcome = 'ended' | 'not_found' | 'unreachable';

/** What the API needs from the session registry (structural: admin does not import the proxy). */
export interface SessionsPort {
  /** Every live session: this instance's, and on a shared store every live instance's; `complete` false when the others' could not be read. */
  list(): Promise<{ sessions: readonly object[]; complete: boolean }>;
  /** Ends the session with 57P01 "terminated by administrator", wherever it lives. */
  end(id: string): Promise<EndOutcome>;
}

/** Mount at `/admin`. With no admin tokens configured every request is refused. */
export function createSessionsRouter(opts: { tokens: readonly string[] | BearerTokens; sessions: SessionsPort }): Router {
  const router = express.Router();
  router.use(requireAdminToken(opts.tokens));
  router.get('/sessions', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const { sessions, complete } = await opts.sessions.list();
    if (complete) sendJson(res, 200, { sessions });
    // A partial list answered as if it were whole would hide sessions from the security team.
    else sendJson(res, 503, { error: 'unavailable', detail: 'Only this instance\'s sessions could be listed: the directory store is unreachable', sessions });
  });
  router.delete('/sessions/:id', async (req, res) => {
    const outcome = await opts.sessions.end(String(req.params.id));
    if (outcome === 'ended') res.status(204).end();
    else if (outcome === 'not_found') sendJson(res, 404, { error: 'not_found', detail: 'No live session with that id' });
    else sendJson(res, 503, { error: 'unavailable', detail: 'The session is not on this instance, and the instance holding it did not answer' });
  });
  return router;
}
