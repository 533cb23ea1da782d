// GET /admin/audit/head (docs/design.md §6): the audit chain's current head (seq and hash of the last
// line on disk) for an outside system to record, so that cutting off the newest lines shows. With
// `proxy.workers` every worker writes a chain of its own, and the answer carries every worker's head
// (admin/per-worker.ts). Guarded by admin.tokens; admin/ gets the head through this port, not from audit/.
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken } from './admin-auth.js';
import { sendForEveryWorker, type PerWorker } from './per-worker.js';

/** One chain's head as served. */
export interface AuditHead {
  readonly instance: string;
  readonly seq: number;
  readonly hash: string;
  readonly ts: string | null;
  readonly file: string | null;
  readonly available: boolean;
}

/** What the route needs from the audit log (structural: admin does not import audit/). */
export interface AuditHeadPort {
  head(): AuditHead;
  /** With `proxy.workers`: every worker's head (this one's included), gathered by the supervisor. */
  everyWorker?(): Promise<PerWorker<AuditHead>>;
}

function headJson(h: AuditHead): AuditHead {
  return { instance: h.instance, seq: h.seq, hash: h.hash, ts: h.ts, file: h.file, available: h.available };
}

/** Mount at `/admin`. */
export function createAuditHeadRouter(opts: { tokens: readonly string[] | BearerTokens; audit: AuditHeadPort }): Router {
  const router = express.Router();
  router.get('/audit/head', requireAdminToken(opts.tokens), async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const every = opts.audit.everyWorker?.bind(opts.audit);
    await sendForEveryWorker(res, headJson(opts.audit.head()), every, 'audit chain head', headJson);
  });
  return router;
}
