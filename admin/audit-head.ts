// GET /admin/audit/head (docs/design.md §6): the audit chain's current head (seq and hash of the last
// line on disk) for an outside system to record, so that cutting off the newest lines shows.
// Guarded by admin.tokens; admin/ gets the head through this port, not from audit/.
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken } from './admin-auth.js';

/** What the route needs from the audit log (structural: admin does not import audit/). */
export interface AuditHeadPort {
  head(): { instance: string; seq: number; hash: string; ts: string | null; file: string | null; available: boolean };
}

/** Mount at `/admin`. */
export function createAuditHeadRouter(opts: { tokens: readonly string[] | BearerTokens; audit: AuditHeadPort }): Router {
  const router = express.Router();
  router.get('/audit/head', requireAdminToken(opts.tokens), (_req, res) => {
    const h = opts.audit.head();
    res.setHeader('Cache-Control', 'no-store');
    res.status(200).type('application/json').send(JSON.stringify({ instance: h.instance, seq: h.seq, hash: h.hash, ts: h.ts, file: h.file, available: h.available }));
  });
  return router;
}
