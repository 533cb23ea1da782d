// The admin view of this instance's directory (docs/design.md §5 and §8): whether it is current, how far
// it applied the shared change log, its size, and a digest that is equal on instances that agree.
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken, sendJson } from './admin-auth.js';

export interface DirectoryView {
  readonly instance: string;
  readonly store: 'sqlite' | 'postgres';
  readonly current: boolean;
  /** Why it is not current (absent when it is). */
  readonly reason?: string;
  /** The change-log position applied (postgres; "0" on sqlite). */
  readonly position: string;
  readonly persons: number;
  readonly groups: number;
  readonly memberships: number;
  /** A digest of the index's content, independent of order: equal on instances that agree. */
  readonly digest: string;
}

/** Mount at `/admin/directory`. */
export function createDirectoryRouter(opts: { tokens: readonly string[] | BearerTokens; view: () => Promise<DirectoryView> }): Router {
  const router = express.Router();
  router.use(requireAdminToken(opts.tokens));
  router.get('/', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    sendJson(res, 200, await opts.view());
  });
  return router;
}
