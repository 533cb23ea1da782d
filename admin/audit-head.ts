// GET /admin/audit/head (docs/design.md §6): the audit chain's current head (seq and hash of the last
// line on disk) for an outside system to record, so that cutting off the newest lines shows. With
// `proxy.workers` every worker writes a chain of its own, and the answer carries every worker's head.
// Guarded by admin.tokens; admin/ gets the head through this port, not from audit/.
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken, sendJson } from './admin-auth.js';

/** One chain's head as served. */
export interface AuditHead {
  readonly instance: string;
  readonly seq: number;
  readonly hash: string;
  readonly ts: string | null;
  readonly file: string | null;
  readonly available: boolean;
}

/** Every worker's chain head, and the workers whose head could not be had. */
export interface AuditHeads {
  readonly heads: readonly (AuditHead & { readonly worker: number })[];
  readonly missing: readonly { readonly worker: number; readonly why: 'not running' | 'no answer' }[];
}

/** What the route needs from the audit log (structural: admin does not import audit/). */
export interface AuditHeadPort {
  head(): AuditHead;
  /** With `proxy.workers`: every worker's head (this one's included), gathered by the supervisor. */
  everyWorker?(): Promise<AuditHeads>;
}

function headJson(h: AuditHead): AuditHead {
  return { instance: h.instance, seq: h.seq, hash: h.hash, ts: h.ts, file: h.file, available: h.available };
}

/** Mount at `/admin`. */
export function createAuditHeadRouter(opts: { tokens: readonly string[] | BearerTokens; audit: AuditHeadPort }): Router {
  const router = express.Router();
  router.get('/audit/head', requireAdminToken(opts.tokens), async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const own = headJson(opts.audit.head());
    if (opts.audit.everyWorker === undefined) {
      sendJson(res, 200, own);
      return;
    }
    let all: AuditHeads;
    try {
      all = await opts.audit.everyWorker();
    } catch {
      sendJson(res, 503, { error: 'unavailable', detail: 'The other workers\' audit chain heads could not be gathered', ...own, workers: [] });
      return;
    }
    const workers = all.heads.map((h) => ({ worker: h.worker, ...headJson(h) }));
    if (all.missing.length === 0) {
      sendJson(res, 200, { ...own, workers });
      return;
    }
    // Half the chains answered as if they were all would leave the others' newest lines unrecorded.
    const which = all.missing.map((m) => `worker ${m.worker} (${m.why})`).join(', ');
    sendJson(res, 503, { error: 'unavailable', detail: `The audit chain head of ${which} is not in this answer`, ...own, workers });
  });
  return router;
}
